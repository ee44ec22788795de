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
from collections.abc import Iterator
from typing import TextIO

from absl import logging

from s2s_jax.decoding.translator import Translator


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
            logging.warning(
                "input line %d has %d characters; reading its first %d",
                number,
                len(line) + skipped,
                len(line),
            )
        yield line


def run(translator: Translator, source: TextIO = sys.stdin, sink: TextIO = sys.stdout) -> None:
    """Writes the translation of each line of ``source`` to ``sink`` as it is ready."""
    config = translator.config
    n_best = config.eval.n_best if config.eval.decoder == "beam" else 1
    lines = read_lines(source, config.eval.max_input_chars)
    for index, hypotheses in enumerate(translator.translate_lines(lines)):
        if n_best == 1:
            sink.write(hypotheses[0][0] + "\n")
        else:
            sink.writelines(f"{index} ||| {text} ||| {score:.4f}\n" for text, score in hypotheses)
        sink.flush()
