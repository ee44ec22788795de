"""Evaluation: teacher-forced loss, greedy decoding, exact match, BLEU, chrF, heatmaps.

:class:`Evaluator` scores parameters on (source, reference) pairs: a split (used
periodically while training) or any two files. :func:`report` scores a translator and
writes ``hypotheses.txt``, ``metrics.json``, ``bleu_by_length.png`` and
``attention_*.png`` into a directory; :func:`run` is the end of training and
``--mode=eval`` on a workdir: it restores parameters alone, chooses what
``config.eval`` asks on the validation split (``s2s_jax.evaluation.tuning``) and reports
``config.eval.split`` into ``workdir/eval/<split>/``.
"""

import dataclasses
import functools
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import sacrebleu
from absl import logging

from s2s_jax import decoding
from s2s_jax.data.batching import encode_pairs, eval_batches, sort_by_source_length
from s2s_jax.data.sources import load_splits
from s2s_jax.data.vocab import one_line
from s2s_jax.evaluation import parameters, plots, tuning, wmt17
from s2s_jax.models import token_metrics
from s2s_jax.models.seq2seq import Seq2Seq
from s2s_jax.runtime import parallel
from s2s_jax.runtime.checkpointing import Checkpointer

if TYPE_CHECKING:  # the translator builds on this module (its score method)
    from s2s_jax.decoding.translator import Translator


@functools.partial(jax.jit, static_argnames="model")
def eval_step(model: Seq2Seq, params: Any, batch: dict) -> dict:
    """Teacher-forced metric sums on one batch; filler rows (``valid`` False) excluded.

    Jitted with the model static: one compilation per model and batch shape, shared by
    every Evaluator (training's, the tuning grid's and the test split's)."""
    logits, _ = model.apply({"params": params}, batch["src"], batch["src_mask"], batch["tgt_in"])
    mask = batch["tgt_mask"] & batch["valid"][:, None]
    return token_metrics.sequence_metrics(logits, batch["tgt_out"], mask)


@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float]
    hypotheses: list[str]
    heatmaps: list[tuple[np.ndarray, list[str], list[str]]]  # (weights, src, tgt tokens)
    bleu_by_length: list[dict]  # one row per source-length bucket


# Source-length buckets (in source tokens) of the bottleneck study: BLEU by length.
LENGTH_BUCKETS = ((1, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, None))


def bleu_by_length(
    lengths: list[int], hypotheses: list[str], references: list[str], tokenize: str
) -> list[dict]:
    """Corpus BLEU of the sentences in each source-length bucket (None where empty)."""
    rows = []
    for low, high in LENGTH_BUCKETS:
        chosen = [i for i, n in enumerate(lengths) if low <= n and (high is None or n <= high)]
        bleu = None
        if chosen:
            bleu = (
                sacrebleu.metrics.BLEU(tokenize=tokenize)
                .corpus_score([hypotheses[i] for i in chosen], [[references[i] for i in chosen]])
                .score
            )
        rows.append(
            {
                "bucket": f"{low}-{high}" if high else f"{low}+",
                "sentences": len(chosen),
                "bleu": bleu,
            }
        )
    return rows


class Evaluator:
    """Scores parameters on one list of (source, reference) pairs."""

    def __init__(
        self,
        translator: "Translator",
        pairs: list[tuple[str, str]],
        name: str,
        wmt17_split: str | None = None,
    ):
        """``name`` names the pairs in logs and scalars (a split, or a file);
        ``wmt17_split`` is the corpus split they are, whose official tokenized
        references the WMT17 convention may use (None: Moses-tokenized ``pairs``)."""
        config = translator.config
        self.translator = translator
        self.split = name
        self.references = [target for _, target in pairs]
        # (tokenized references, their origin) for the WMT17 convention, when asked.
        self.wmt17 = (
            wmt17.references(config, wmt17_split, self.references)
            if config.eval.wmt17_bleu
            else None
        )
        self.empty_sources = [not source.strip() for source, _ in pairs]
        self.examples = encode_pairs(pairs, translator.src_vocab, translator.tgt_vocab)
        # Decoded shortest source first: a batch's sentences end at about the same step
        # and fit the smallest bucket. Results are put back in the split's order.
        self.order, self._by_length = sort_by_source_length(self.examples)
        self.batch_size = parallel.round_to_devices(config.eval.batch_size, translator.mesh)
        model = translator.model
        self._metrics = functools.partial(eval_step, model)
        self._decode = decoding.compile_decoder(model, config.eval)
        self._attention = functools.partial(decoding.attention_of, model)

    def __call__(
        self, params: Any, num_heatmaps: int = 0, eval_config: Any | None = None
    ) -> EvalResult:
        """Scores ``params``, decoding as ``eval_config`` says (default ``config.eval``:
        the tuning grid passes each of its points)."""
        translator = self.translator
        config, mesh = translator.config, translator.mesh
        decode = (
            self._decode
            if eval_config is None
            else decoding.compile_decoder(translator.model, eval_config)
        )
        src_vocab, tgt_vocab = translator.src_vocab, translator.tgt_vocab
        sums, hypotheses, heatmaps = {}, [None] * len(self.order), {}
        decoded_rows = 0  # self.order[k] is the split position of the k-th decoded row
        for batch in eval_batches(self._by_length, self.batch_size, config.data.buckets):
            arrays = parallel.shard_batch(parallel.process_rows(batch), mesh)
            sums = token_metrics.add(sums, self._metrics(params, arrays))
            decoded = decode(params, arrays["src"], arrays["src_mask"])
            rows = np.flatnonzero(batch["valid"])
            positions = self.order[decoded_rows : decoded_rows + len(rows)]
            decoded_rows += len(rows)
            attention = None  # [B, L, S], for a batch that holds a heatmap's sentence
            if np.any(positions < num_heatmaps):
                attention = parallel.fetch(
                    self._attention(params, arrays["src"], arrays["src_mask"], decoded.tokens[:, 0])
                )
            decoded = parallel.fetch(decoded)
            for row, position in zip(rows, positions):
                tokens = decoding.until_eos(decoded.tokens[row, 0])  # the best hypothesis
                empty = self.empty_sources[position]  # empty in, empty out
                hypotheses[position] = "" if empty else one_line(tgt_vocab.decode(tokens))
                if position < num_heatmaps and attention is not None:
                    src = batch["src"][row][batch["src_mask"][row]]
                    heatmaps[position] = (
                        attention[row][: len(tokens), : len(src)],
                        [src_vocab.piece(i) for i in src],
                        [tgt_vocab.piece(i) for i in tokens],
                    )
        heatmaps = [heatmaps[position] for position in sorted(heatmaps)]
        metrics = token_metrics.summarize(parallel.fetch(sums))
        tokenize = config.eval.bleu_tokenize
        metrics.update(score(hypotheses, self.references, tokenize))
        if self.wmt17:
            tokenized, origin = self.wmt17
            metrics.update(wmt17.score(hypotheses, tokenized, config.data.tgt_lang, origin))
        lengths = [len(src) - 1 for src in self.examples.src]  # without EOS
        return EvalResult(
            metrics,
            hypotheses,
            heatmaps,
            bleu_by_length(lengths, hypotheses, self.references, tokenize),
        )


def score(hypotheses: list[str], references: list[str], tokenize: str) -> dict[str, float]:
    """Exact match (%), sacrebleu BLEU and chrF with their signatures' settings."""
    exact = np.mean([h == r for h, r in zip(hypotheses, references)]) if references else 0.0
    bleu = sacrebleu.metrics.BLEU(tokenize=tokenize)
    chrf = sacrebleu.metrics.CHRF()
    return {
        "exact_match": 100.0 * float(exact),
        "bleu": bleu.corpus_score(hypotheses, [references]).score,
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def write_report(
    result: EvalResult,
    directory: str,
    step: int | None = None,
    parameters_of_steps: list[int] | None = None,
    eval_config: Any | None = None,
) -> None:
    """hypotheses.txt (one line per source line), metrics.json (with BLEU by source
    length, the checkpoint steps whose mean parameters were scored and the decoding
    settings of ``eval_config``, if given), bleu_by_length.png and attention_<i>.png."""
    if jax.process_index() != 0:
        return
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "hypotheses.txt"), "w", encoding="utf-8") as f:
        f.writelines(h + "\n" for h in result.hypotheses)
    decoding_settings = (
        None
        if eval_config is None
        else {key: eval_config[key] for key in parameters.DECODING_FIELDS}
    )
    with open(os.path.join(directory, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "step": step,
                "parameters_of_steps": parameters_of_steps,
                "decoding": decoding_settings,
                **result.metrics,
                "bleu_by_length": result.bleu_by_length,
            },
            f,
            indent=2,
        )
    rows = [row for row in result.bleu_by_length if row["sentences"]]
    plots.bleu_by_length(
        [f"{r['bucket']} ({r['sentences']})" for r in rows],
        {"model": [r["bleu"] for r in rows]},
        os.path.join(directory, "bleu_by_length.png"),
    )
    for i, (weights, src, tgt) in enumerate(result.heatmaps):
        plots.attention_heatmap(
            weights,
            src,
            tgt,
            os.path.join(directory, f"attention_{i}.png"),
            title=f"attention, example {i}",
        )


def choose(
    translator: "Translator", workdir: str, checkpointer: Checkpointer, splits: dict | None = None
) -> tuple["Translator", list[int]]:
    """``translator`` with the parameters ``config.eval`` names, then (where the config
    asks) the parameters and decoding settings chosen on ``config.eval.validation_split``
    (``s2s_jax.evaluation.tuning``); and the checkpoint steps of its parameters. ``splits``: the
    corpus splits at hand (the validation split is loaded if it is not)."""
    config = translator.config
    abstract = translator.abstract_params()
    params, steps = parameters.restore_configured(checkpointer, abstract, config.eval, workdir)
    validation = functools.cache(lambda: validation_evaluator(translator, workdir, splits))
    if config.eval.tune_average_checkpoints + config.eval.tune_average_best:
        params, steps = tuning.choose_parameters(
            config, workdir, checkpointer, abstract, params, steps, validation()
        )
    translator = dataclasses.replace(translator, params=params)
    return choose_decoding(translator, workdir, validation), steps


def validation_evaluator(
    translator: "Translator", workdir: str, splits: dict | None = None
) -> Evaluator:
    """An Evaluator of ``config.eval.validation_split`` (loaded unless in ``splits``)."""
    config = translator.config
    split = config.eval.validation_split
    return Evaluator(
        translator, split_pairs(config, workdir, splits, split), split, wmt17_split=split
    )


def choose_decoding(
    translator: "Translator", workdir: str, validation: Callable[[], Evaluator]
) -> "Translator":
    """``translator`` with the beam size and alpha that decode ``validation()`` best,
    where ``config.eval.tune_beam_sizes`` asks (the grid written into
    ``<workdir>/eval/<validation_split>/``); else ``translator``."""
    config = translator.config
    if not config.eval.tune_beam_sizes:
        return translator
    config = tuning.choose_decoding(config, workdir, translator.params, validation())
    return dataclasses.replace(translator, config=config)


def report(
    translator: "Translator",
    pairs: list[tuple[str, str]],
    name: str,
    directory: str,
    wmt17_split: str | None = None,
    steps: list[int] | None = None,
) -> dict[str, float]:
    """Scores ``translator`` on ``pairs`` and writes the report into ``directory``."""
    config = translator.config
    result = Evaluator(translator, pairs, name, wmt17_split)(
        translator.params, config.eval.num_heatmaps
    )
    step = max(steps) if steps else None
    write_report(result, directory, step, parameters_of_steps=steps, eval_config=config.eval)
    logging.info(
        "%s at step %s: %s",
        name,
        step,
        {k: v for k, v in result.metrics.items() if not k.endswith("signature")},
    )
    logging.info("wrote %s", directory)
    return result.metrics


def run(
    config,
    workdir: str,
    translator: "Translator",
    checkpointer: Checkpointer,
    splits: dict | None = None,
) -> dict[str, float]:
    """Scores ``config.eval.split`` with the parameters and decoding that ``choose``
    picks, into ``<workdir>/eval/<split>/``: the end of training, and ``--mode=eval``
    on a workdir."""
    translator, steps = choose(
        dataclasses.replace(translator, config=config), workdir, checkpointer, splits
    )
    split = config.eval.split
    return report(
        translator,
        split_pairs(config, workdir, splits, split),
        split,
        os.path.join(workdir, "eval", split),
        wmt17_split=split,
        steps=steps,
    )


def split_pairs(config, workdir: str, splits: dict | None, split: str) -> list[tuple[str, str]]:
    """``splits[split]``, or that split loaded from the config's data source."""
    if splits is not None and split in splits:
        return splits[split]
    return load_splits(config, workdir, [split])[split]
