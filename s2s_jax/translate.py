"""``--mode=translate``: source lines from stdin to translations on stdout.

Lines are read and decoded in batches for speed, and written in input order, one
output line per input line; an empty input line gives an empty output line.
"""

import itertools
import sys
from typing import Iterable, Iterator, TextIO

from s2s_jax import decoding, parallel
from s2s_jax.data.batching import encode_source, pad_source_batch
from s2s_jax.experiment import Experiment


def translate_lines(experiment: Experiment, lines: Iterable[str]) -> Iterator[str]:
    """Yields one translation per input line (without newline), in order."""
    config = experiment.config
    corpus, mesh = experiment.corpus, experiment.mesh
    batch_size = parallel.round_to_devices(config.eval.batch_size, mesh)
    decode = decoding.compile_decoder(experiment.model, config.eval)
    params = experiment.state.params
    lines = (line.rstrip("\r\n") for line in lines)
    while chunk := list(itertools.islice(lines, batch_size)):
        to_decode = [i for i, line in enumerate(chunk) if line.strip()]
        outputs = [""] * len(chunk)
        if to_decode:
            sources = [encode_source(chunk[i], corpus.src_vocab) for i in to_decode]
            batch = pad_source_batch(sources, batch_size, config.data.buckets)
            arrays = parallel.shard_batch(parallel.process_rows(batch), mesh)
            tokens = parallel.fetch(decode(params, arrays["src"], arrays["src_mask"])).tokens
            for row, i in enumerate(to_decode):
                outputs[i] = corpus.tgt_vocab.decode(tokens[row])  # stops at EOS
        yield from outputs


def run(config, workdir: str, source: TextIO = sys.stdin, sink: TextIO = sys.stdout) -> None:
    experiment = Experiment.create(config, workdir)
    which = config.eval.checkpoint
    if not experiment.restore(which) and not experiment.restore("latest"):
        raise FileNotFoundError(f"no checkpoint to translate with in {workdir!r}")
    for line in translate_lines(experiment, source):
        sink.write(line + "\n")
        sink.flush()
