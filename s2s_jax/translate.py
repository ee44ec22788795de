"""``--mode=translate``: source lines to translations, stdin to stdout by default.

Lines are decoded in batches for speed and written in input order: one output line
per input line (with ``eval.n_best`` > 1, that many lines ``index ||| translation |||
score``, Moses style); an empty input line gives an empty output line, and a line
break the model writes becomes a space. Any input is safe: a line is read up to
``eval.max_input_chars`` characters (the rest is skipped), and one longer than the
largest bucket is truncated to it, both with a warning on stderr; so a batch is never
larger than ``eval.batch_size`` x the largest bucket, and no input creates a new
compiled shape. Bytes that are not UTF-8 reach the model as U+FFFD (see ``main``).
"""

import itertools
import sys
from typing import Iterable, Iterator, TextIO

import numpy as np
from absl import logging

from s2s_jax import decoding, parallel
from s2s_jax.data.batching import encode_source, pad_source_batch
from s2s_jax.data.vocab import EOS_ID
from s2s_jax.experiment import Experiment

Hypotheses = list[tuple[str, float]]  # (translation, score), best first


def read_lines(source: TextIO, max_chars: int) -> Iterator[str]:
    """The lines of ``source``, each cut to ``max_chars`` characters with a warning;
    the rest of a longer line is skipped in pieces, never held in memory whole."""
    for number in itertools.count(1):
        line = source.readline(max_chars)
        if not line:
            return
        skipped, rest = 0, line
        while rest and not rest.endswith("\n"):
            rest = source.readline(max_chars)
            skipped += len(rest.rstrip("\r\n"))
        if skipped:
            logging.warning("input line %d has %d characters; reading its first %d",
                            number, len(line) + skipped, len(line))
        yield line


def translate_lines(experiment: Experiment, lines: Iterable[str]) -> Iterator[Hypotheses]:
    """Yields the n-best translations of each input line, in order, each on one line."""
    config = experiment.config
    corpus, mesh = experiment.corpus, experiment.mesh
    batch_size = parallel.round_to_devices(config.eval.batch_size, mesh)
    max_src_len = max(src_len for src_len, _ in config.data.buckets)
    decode = decoding.compile_decoder(experiment.model, config.eval)
    params = experiment.state.params
    numbered = enumerate((line.rstrip("\r\n") for line in lines), start=1)
    while chunk := list(itertools.islice(numbered, batch_size)):
        to_decode = [i for i, (_, line) in enumerate(chunk) if line.strip()]
        outputs: list[Hypotheses] = [[("", 0.0)] for _ in chunk]
        if to_decode:
            sources = [_truncated(encode_source(chunk[i][1], corpus.src_vocab), max_src_len,
                                  chunk[i][0]) for i in to_decode]
            batch = pad_source_batch(sources, batch_size, config.data.buckets)
            arrays = parallel.shard_batch(parallel.process_rows(batch), mesh)
            decoded = parallel.fetch(decode(params, arrays["src"], arrays["src_mask"]))
            for row, i in enumerate(to_decode):
                nbest = zip(decoded.tokens[row], decoded.scores[row])
                outputs[i] = [(" ".join(corpus.tgt_vocab.decode(tokens).splitlines()),
                               float(score))  # decode stops at EOS
                              for tokens, score in nbest if np.isfinite(score)]
        yield from outputs


def _truncated(src: np.ndarray, max_len: int, line_number: int) -> np.ndarray:
    """Source ids (ending in EOS) cut to ``max_len`` ids, EOS kept, with a warning."""
    if len(src) <= max_len:
        return src
    logging.warning("input line %d has %d tokens; translating its first %d", line_number,
                    len(src) - 1, max_len - 1)
    return np.append(src[:max_len - 1], EOS_ID).astype(src.dtype)


def run(config, workdir: str, source: TextIO = sys.stdin, sink: TextIO = sys.stdout) -> None:
    experiment = Experiment.create(config, workdir)
    which = config.eval.checkpoint
    if not experiment.restore(which) and not experiment.restore("latest"):
        raise FileNotFoundError(f"no checkpoint to translate with in {workdir!r}")
    n_best = config.eval.n_best if config.eval.decoder == "beam" else 1
    lines = read_lines(source, config.eval.max_input_chars)
    for index, hypotheses in enumerate(translate_lines(experiment, lines)):
        if n_best == 1:
            sink.write(hypotheses[0][0] + "\n")
        else:
            sink.writelines(f"{index} ||| {text} ||| {score:.4f}\n"
                            for text, score in hypotheses)
        sink.flush()
