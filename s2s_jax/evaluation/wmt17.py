"""BLEU as the WMT17 multimodal translation task reported it.

Hypotheses are lowercased, punctuation-normalized and tokenized with the Moses
scripts' rules (sacremoses, escaping as ``tokenizer.perl`` does) and scored with
sacrebleu's ``tokenize='none'`` against the official lowercased, normalized, tokenized
references (Multi30k's ``tok/<split>.lc.norm.tok.<lang>``). Published Multi30k
results (e.g. Caglayan et al. 2017) use this convention; it differs from sacrebleu's
default cased 13a BLEU, which s2s_jax reports beside it.
"""

import functools
import os
from typing import TYPE_CHECKING

import sacrebleu

if TYPE_CHECKING:
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

# Multi30k's file names of our splits (see s2s_jax.data.sources).
_SPLIT_FILES = {"validation": "val", "test": "test_2016_flickr"}


@functools.cache
def _moses(lang: str) -> tuple["MosesPunctNormalizer", "MosesTokenizer"]:
    """sacremoses' punctuation normalizer and tokenizer for ``lang``; imported here, on
    first use, as importing it took 0.35-0.5 s of every command-line start."""
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    return MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)


def preprocess(line: str, lang: str) -> str:
    """lowercase -> normalize-punctuation.perl -> tokenizer.perl (escaped)."""
    normalizer, tokenizer = _moses(lang)
    return tokenizer.tokenize(normalizer.normalize(line.lower()), return_str=True, escape=True)


def official_references(manual_dir: str, split: str, lang: str) -> list[str] | None:
    """The official tokenized references of ``split`` in a Multi30k ``manual_dir``, or
    None when that file is not there."""
    name = _SPLIT_FILES.get(split, split)
    path = os.path.join(manual_dir, "tok", f"{name}.lc.norm.tok.{lang}")
    if not manual_dir or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def references(config, split: str | None, raw: list[str]) -> tuple[list[str], str]:
    """Tokenized references for ``split`` and where they come from: the official files
    for a Multi30k split with a manual_dir, else (and for ``split`` None: references
    that are no corpus split) ``raw`` through ``preprocess``."""
    data = config.data
    official = (
        official_references(data.manual_dir, split, data.tgt_lang)
        if data.source == "multi30k" and split is not None
        else None
    )
    if official is not None and len(official) == len(raw):
        return official, "official"
    return [preprocess(line, data.tgt_lang) for line in raw], "moses"


def score(hypotheses: list[str], tokenized_references: list[str], lang: str, origin: str) -> dict:
    """``bleu_wmt17`` and its signature (with the references' origin)."""
    bleu = sacrebleu.metrics.BLEU(tokenize="none")
    tokenized = [preprocess(h, lang) for h in hypotheses]
    result = bleu.corpus_score(tokenized, [tokenized_references])
    return {
        "bleu_wmt17": result.score,
        "bleu_wmt17_signature": f"{bleu.get_signature()}|lc+moses-{lang}|refs:{origin}",
    }
