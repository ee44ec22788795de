"""Corpora at WMT scale: preprocessing, a restart of training, and the input pipeline.

  python -m benchmarks.corpus_scale --pairs=4500000 --workdir=/tmp/corpus_scale

Writes (or takes, with --train_path) a TSV corpus of N pairs, each joining 1-3 random
Multi30k training captions on both sides (about WMT14 en-de's 1.2 GB at 4.5M pairs),
then runs, each in a fresh process whose peak RSS is read from wait4:
  1. ``python -m s2s_jax.main --mode=preprocess`` on configs/tsv.py (vocabularies
     trained on their sample, the pairs encoded into records, held-out splits found);
  2. a restart of training up to its first step, twice: first with an empty XLA cache,
     then as a resumed run finds it (its programs compiled before). It reports the RSS
     the data path adds (corpus opened, batch stream built) before the model exists;
  3. in that restart: tokens/s of the batch stream reading the records, against the
     train step's.
Prints a table, then one JSON line.
"""

import glob
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks.report import print_report

FLAGS = flags.FLAGS
flags.DEFINE_integer("pairs", 1_000_000, "Pairs in the generated corpus.")
flags.DEFINE_string("train_path", None, "A corpus to use instead of generating one.")
flags.DEFINE_string("workdir", "/tmp/corpus_scale", "Corpus, records, vocabularies, cache.")
flags.DEFINE_string("manual_dir", "../shared/data/multi30k", "Multi30k's raw files.")
flags.DEFINE_integer("vocab_size", 8_000, "SentencePiece pieces per side.")
flags.DEFINE_integer("pipeline_steps", 300, "Batches drawn from the stream.")
flags.DEFINE_integer("train_steps", 3, "Timed train steps after the first.")
flags.DEFINE_float("phase", None, "Internal: the time the parent launched this restart.")
CONFIG = "configs/tsv.py"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
config_flags.DEFINE_config_file("config", CONFIG, "Internal: the restart's config.")


def write_corpus(path: str, pairs: int, manual_dir: str, seed: int = 0) -> None:
    """N pairs, each 1-3 random Multi30k en-de training captions joined by spaces."""

    def lines(lang):
        with open(os.path.join(manual_dir, f"train.{lang}"), encoding="utf-8") as f:
            return [line.rstrip("\n").replace("\t", " ") for line in f]

    en, de = lines("en"), lines("de")
    rng = np.random.default_rng(seed)
    with open(path + ".partial", "w", encoding="utf-8") as f:
        for start in range(0, pairs, 100_000):
            count = min(100_000, pairs - start)
            ks, ids = rng.integers(1, 4, count), rng.integers(0, len(en), (count, 3))
            f.writelines(
                " ".join(en[i] for i in row[:k]) + "\t" + " ".join(de[i] for i in row[:k]) + "\n"
                for k, row in zip(ks, ids)
            )
    os.replace(path + ".partial", path)


def _overrides(train_path: str) -> list[str]:
    return [
        f"--config={CONFIG}",
        f"--config.data.train_path={train_path}",
        f"--config.data.vocab_size={FLAGS.vocab_size}",
        f"--config.data.records_dir={FLAGS.workdir}/records",
        f"--config.data.vocab_dir={FLAGS.workdir}/vocab",
        f"--config.compilation_cache_dir={FLAGS.workdir}/xla",
    ]


def _measured(command: list[str], cwd: str | None = None) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, stdout) of a child process."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=cwd)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"error: {' '.join(command)} failed")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, out


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _tokens(batch) -> int:
    return int(batch["src_mask"].sum() + batch["tgt_mask"].sum())


def restart(config, workdir: str, launched: float) -> dict:
    """A restart of training to its first step (in this process), then the batch
    stream's and the train step's tokens/s."""
    import jax

    from s2s_jax.decoding.translator import Translator
    from s2s_jax.runtime import host_memory, parallel
    from s2s_jax.training import schedules, train
    from s2s_jax.training.train_state import initial_state

    host_memory.configure(config)
    parallel.cache_compilations(config.compilation_cache_dir)
    before = _rss_mib()
    corpus, batches = train.training_data(config, workdir)
    data_rss = _rss_mib() - before
    translator = Translator.build(config, corpus.src_vocab, corpus.tgt_vocab)
    state = initial_state(
        config,
        translator.model,
        schedules.create_optimizer(config.train, batches.steps_per_epoch),
        translator.mesh,
    )
    step, rng = train.jit_train_step(config)
    state, sums = step(state, parallel.shard_batch(batches.batch(0), translator.mesh), rng)
    jax.block_until_ready(sums)
    first_step = time.time() - launched
    rates = []
    for index in range(1, FLAGS.train_steps + 1):
        batch = batches.batch(index)
        start = time.perf_counter()
        state, sums = step(state, parallel.shard_batch(batch, translator.mesh), rng)
        jax.block_until_ready(sums)
        rates.append(_tokens(batch) / (time.perf_counter() - start))
    start = time.perf_counter()
    tokens = sum(_tokens(batches.batch(s)) for s in range(FLAGS.pipeline_steps))
    return {
        "restart_to_first_step_seconds": first_step,
        "restart_data_rss_mib": data_rss,
        "pipeline_tokens_per_sec": tokens / (time.perf_counter() - start),
        "train_tokens_per_sec": float(np.median(rates)),
        "train_pairs": len(corpus.train),
        "steps_per_epoch": batches.steps_per_epoch,
    }


def main(argv):
    del argv
    if FLAGS.phase:
        print(json.dumps(restart(FLAGS.config, os.path.join(FLAGS.workdir, "run"), FLAGS.phase)))
        return
    os.makedirs(FLAGS.workdir, exist_ok=True)
    train_path = FLAGS.train_path or os.path.join(FLAGS.workdir, f"corpus_{FLAGS.pairs}.tsv")
    if not FLAGS.train_path and not os.path.exists(train_path):
        write_corpus(train_path, FLAGS.pairs, FLAGS.manual_dir)
    with open(train_path, "rb") as f:
        pairs = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))
    subprocess.run(
        [
            "rm",
            "-rf",
            f"{FLAGS.workdir}/records",
            f"{FLAGS.workdir}/vocab",
            f"{FLAGS.workdir}/xla",
            f"{FLAGS.workdir}/run",
        ],
        check=True,
    )
    workdir = os.path.join(FLAGS.workdir, "run")
    preprocess_seconds, preprocess_rss, _ = _measured(
        [
            sys.executable,
            "-m",
            "s2s_jax.main",
            "--mode=preprocess",
            f"--workdir={workdir}",
            *_overrides(train_path),
        ]
    )
    restarts = []
    for _ in range(2):  # cold XLA cache, then warm: what a resumed run finds
        command = [
            sys.executable,
            "-m",
            "benchmarks.corpus_scale",
            f"--phase={time.time()}",
            f"--train_path={train_path}",
            f"--workdir={FLAGS.workdir}",
            f"--vocab_size={FLAGS.vocab_size}",
            f"--pipeline_steps={FLAGS.pipeline_steps}",
            f"--train_steps={FLAGS.train_steps}",
            *_overrides(train_path),
        ]
        _, rss, out = _measured(command, cwd=REPO)  # where the package is
        restarts.append({**json.loads(out.strip().splitlines()[-1]), "peak_rss_mib": rss})
    cold, warm = restarts
    (manifest_path,) = glob.glob(f"{FLAGS.workdir}/records/*/manifest.json")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    figures = {
        "benchmark": "corpus_scale",
        "pairs": pairs,
        "corpus_bytes": os.path.getsize(train_path),
        "train_pairs": warm["train_pairs"],
        "preprocess_seconds": preprocess_seconds,
        "preprocess_peak_rss_mib": preprocess_rss,
        "records_build_seconds": manifest["build_seconds"],
        "vocabularies_and_rest_seconds": preprocess_seconds - manifest["build_seconds"],
        "first_start_to_first_step_seconds": cold["restart_to_first_step_seconds"],
        "restart_to_first_step_seconds": warm["restart_to_first_step_seconds"],
        "restart_peak_rss_mib": warm["peak_rss_mib"],
        "restart_data_rss_mib": warm["restart_data_rss_mib"],
        "pipeline_tokens_per_sec": warm["pipeline_tokens_per_sec"],
        "train_tokens_per_sec": warm["train_tokens_per_sec"],
        "pipeline_over_train_step": warm["pipeline_tokens_per_sec"] / warm["train_tokens_per_sec"],
        "records_mib": sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(f"{FLAGS.workdir}/records")
            for name in names
        )
        / 2**20,
        "cpus": os.cpu_count(),
    }
    rows = [
        ("corpus pairs / bytes", f"{pairs:,} / {figures['corpus_bytes']:,}"),
        ("preprocess (vocabularies + records), s", f"{preprocess_seconds:.1f}"),
        ("  of which encoding and writing records, s", f"{manifest['build_seconds']:.1f}"),
        ("preprocess peak RSS, MiB", f"{preprocess_rss:,.0f}"),
        ("records on disk, MiB", f"{figures['records_mib']:,.0f}"),
        (
            "first start -> first step (cold XLA cache), s",
            f"{figures['first_start_to_first_step_seconds']:.1f}",
        ),
        ("restart -> first step, s", f"{figures['restart_to_first_step_seconds']:.1f}"),
        ("restart peak RSS (model included), MiB", f"{figures['restart_peak_rss_mib']:,.0f}"),
        ("restart: RSS of the data path, MiB", f"{figures['restart_data_rss_mib']:,.0f}"),
        ("pipeline tokens/s", f"{figures['pipeline_tokens_per_sec']:,.0f}"),
        ("train step tokens/s", f"{figures['train_tokens_per_sec']:,.0f}"),
        ("pipeline / train step", f"{figures['pipeline_over_train_step']:.0f}x"),
    ]
    print_report(rows, figures)


if __name__ == "__main__":
    app.run(main)
