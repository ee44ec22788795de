"""load_corpus: every source, vocabularies, empty lines, and errors at the CLI."""

import os
import subprocess
import sys

import pytest

from s2s_jax.config import base_config
from s2s_jax.data import corpus_files, vocabularies
from s2s_jax.data.readers import CorpusError
from s2s_jax.data.sentencepiece_vocab import SentencePieceVocab
from s2s_jax.data.sources import load_corpus

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = "a man in a blue shirt is riding a bike down the street with his dog".split()


def _pairs(n: int) -> list[tuple[str, str]]:
    return [
        (" ".join(WORDS[i % 7 : i % 7 + 3 + i % 5]), " ".join(WORDS[i % 5 : i % 5 + 4]))
        for i in range(n)
    ]


def _config(**data):
    config = base_config()
    with config.unlocked():
        config.data.update({"source": "files", "tokenizer": "char", **data})
    return config


def test_tsv_with_held_out_splits_drops_empty_training_pairs(tmp_path):
    lines = [f"{s}\t{t}" for s, t in _pairs(400)] + ["\t", "only source\t"]
    (tmp_path / "corpus.tsv").write_text("\n".join(lines) + "\n")
    corpus = load_corpus(
        _config(train_path=str(tmp_path / "corpus.tsv"), held_out_fraction=0.1, joint_vocab=True),
        str(tmp_path / "run"),
    )
    sizes = {name: len(pairs) for name, pairs in corpus.splits.items()}
    assert sum(sizes.values()) + len(corpus.train) + corpus.num_dropped == 402
    assert corpus.num_dropped == 2 and sizes["validation"] > 10 and sizes["test"] > 10
    vocab = corpus.src_vocab
    train_sources = {vocab.decode(src) for src in corpus.train.rows(range(len(corpus.train)))[0]}
    assert len(train_sources) > 5 and not train_sources & {s for s, _ in corpus.splits["test"]}
    assert corpus.src_vocab is corpus.tgt_vocab


def test_aligned_files_keep_empty_evaluation_lines(tmp_path):
    for split, pairs in (("train", _pairs(50)), ("test", [("a man", "ein mann"), ("", "")])):
        (tmp_path / f"{split}.en").write_text("".join(s + "\n" for s, _ in pairs))
        (tmp_path / f"{split}.de").write_text("".join(t + "\n" for _, t in pairs))
    config = _config(
        train_path=str(tmp_path / "train"),
        test_path=str(tmp_path / "test"),
        held_out_fraction=0.2,
        joint_vocab=False,
    )
    corpus = load_corpus(config, str(tmp_path / "run"))
    assert corpus.splits["test"] == [("a man", "ein mann"), ("", "")]
    assert corpus.src_vocab is not corpus.tgt_vocab


def test_sentencepiece_vocabulary_is_trained_once_and_cached(tmp_path):
    (tmp_path / "corpus.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in _pairs(300)))
    config = _config(
        train_path=str(tmp_path / "corpus.tsv"),
        tokenizer="sentencepiece",
        vocab_size=300,
        spm_model_type="bpe",
        joint_vocab=True,
    )
    corpus = load_corpus(config, str(tmp_path / "run"))
    assert isinstance(corpus.src_vocab, SentencePieceVocab)
    cached = os.listdir(tmp_path / "run" / "vocab")
    assert len(cached) == 1 and cached[0].endswith(".model")
    mtime = os.path.getmtime(tmp_path / "run" / "vocab" / cached[0])
    load_corpus(config, str(tmp_path / "run"))
    assert os.path.getmtime(tmp_path / "run" / "vocab" / cached[0]) == mtime
    with config.unlocked():
        config.data.vocab_size = 100_000
    with pytest.raises(CorpusError, match="vocabulary size 100000 is too large"):
        load_corpus(config, str(tmp_path / "run2"))


def test_sentencepiece_trains_on_a_sample_no_larger_than_asked(tmp_path, monkeypatch):
    (tmp_path / "corpus.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in _pairs(300)))
    trained_on = []
    original = vocabularies.load_or_train

    def load_or_train(cache_dir, name, texts_fn, *args):
        trained_on.append((name, list(texts_fn())))
        return original(cache_dir, name, texts_fn, *args)

    monkeypatch.setattr(vocabularies, "load_or_train", load_or_train)
    names = []
    for sample in (0, 1_000, 50):
        config = _config(
            train_path=str(tmp_path / "corpus.tsv"),
            tokenizer="sentencepiece",
            vocab_size=284,
            joint_vocab=True,
            held_out_fraction=0.1,
            vocab_sample_sentences=sample,
        )
        corpus = load_corpus(config, str(tmp_path / "run"))
        names.append(trained_on[-1][0])
    (_, whole), (_, no_larger), (_, sampled) = trained_on
    assert no_larger == whole and len(whole) > 50  # a corpus no larger than the sample
    assert len(sampled) == 50 and set(sampled) <= set(whole)
    assert len(set(names)) == 3  # the sample size is part of the cache key
    assert isinstance(corpus.src_vocab, SentencePieceVocab)


def test_multi30k_offline(shared_data_dir, tmp_path, capsys):
    config = _config(
        source="multi30k",
        manual_dir=str(shared_data_dir / "multi30k"),
        src_lang="de",
        tgt_lang="en",
    )
    corpus = load_corpus(config, str(tmp_path))
    assert capsys.readouterr().out == ""  # TFDS's chatter must not reach translate's stdout
    sizes = {name: len(pairs) for name, pairs in corpus.splits.items()}
    assert len(corpus.train) + corpus.num_dropped == 29_000
    assert (sizes["validation"], sizes["test"]) == (1_014, 1_000)
    first_de = (shared_data_dir / "multi30k" / "test_2016_flickr.de").read_text().split("\n")[0]
    assert corpus.splits["test"][0][0] == first_de


def _main(workdir, *flags):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "s2s_jax.main",
            f"--workdir={workdir}",
            "--config=configs/tsv.py",
            "--config.data.tokenizer=char",
            "--config.model.embed_dim=8",
            "--config.model.hidden_size=16",
            "--config.model.attention_dim=16",
            "--config.data.tokens_per_batch=512",
            "--config.data.buckets=((32, 32),)",
            "--config.train.num_steps=4",
            "--config.train.eval_every=4",
            "--config.eval.batch_size=8",
            *flags,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_names_the_bad_line(tmp_path):
    (tmp_path / "bad.tsv").write_text("a\tb\nno tab here\n")
    run = _main(tmp_path / "run", f"--config.data.train_path={tmp_path / 'bad.tsv'}")
    assert run.returncode == 1
    assert (
        f"error: {tmp_path / 'bad.tsv'}, line 2: expected source<TAB>target, found 0 tabs"
        in run.stderr
    )


def test_cli_empty_evaluation_line_gives_empty_translation(tmp_path):
    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in _pairs(200)))
    (tmp_path / "test.tsv").write_text("a man\tein mann\n\t\nthe dog\tder hund\n")
    run = _main(
        tmp_path / "run",
        f"--config.data.train_path={tmp_path / 'train.tsv'}",
        f"--config.data.test_path={tmp_path / 'test.tsv'}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    hypotheses = (tmp_path / "run" / "eval" / "test" / "hypotheses.txt").read_text()
    assert len(hypotheses.split("\n")) == 4 and hypotheses.split("\n")[1] == ""


@pytest.mark.parametrize(
    "tokenizer, message",
    [
        ("char", "no training pair to learn from (3 with a blank side, 0 too long)"),
        ("sentencepiece", "cannot train a SentencePiece model without any non-empty"),
    ],
)
def test_cli_names_an_empty_corpus(tmp_path, tokenizer, message):
    (tmp_path / "blank.tsv").write_text("\t\n \tx\n\n")
    run = _main(
        tmp_path / "run",
        f"--config.data.train_path={tmp_path / 'blank.tsv'}",
        f"--config.data.tokenizer={tokenizer}",
        "--config.data.test_path=",
        f"--config.data.validation_path={tmp_path / 'blank.tsv'}",
        f"--config.data.test_path={tmp_path / 'blank.tsv'}",
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"error: {tmp_path / 'blank.tsv'}: {message}" in run.stderr


def test_cli_names_the_batch_size_too_large_for_the_corpus(tmp_path):
    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in _pairs(200)))
    run = _main(
        tmp_path / "run",
        f"--config.data.train_path={tmp_path / 'train.tsv'}",
        "--config.data.tokens_per_batch=0",
        "--config.data.batch_size=256",
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "error: config.data.batch_size=256 is too large for the training data" in run.stderr


def test_a_corpus_file_is_read_again_only_when_it_changes(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("".join(f"{s}\t{t}\n" for s, t in _pairs(100)))
    config = _config(train_path=str(corpus))
    first = load_corpus(config, str(tmp_path / "run"))
    monkeypatch.setattr(corpus_files.hashlib, "blake2b", None)  # no file is hashed now
    assert load_corpus(config, str(tmp_path / "run")).train.path == first.train.path
    monkeypatch.undo()
    corpus.write_text("".join(f"{t}\t{s}\n" for s, t in _pairs(100)))  # same size
    changed = load_corpus(config, str(tmp_path / "run"))
    assert changed.train.path != first.train.path
