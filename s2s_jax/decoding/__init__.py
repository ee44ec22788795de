"""Decoding: greedy, sampling and beam search over a trained ``Seq2Seq``; the
translator that joins a model, its vocabularies and its parameters.

* ``search``: the fixed-shape decoding loop, greedy decoding, sampling, attention heatmaps;
* ``penalties``: GNMT's length and coverage penalties and score;
* ``beam``: beam search;
* ``decoders``: the decoder an eval config names, jitted once for every caller;
* ``translator``: ``Translator``.
"""

from s2s_jax.decoding.beam import beam_search
from s2s_jax.decoding.decoders import DECODERS, DecoderSpec, compile_decoder
from s2s_jax.decoding.penalties import coverage_penalty, gnmt_score, length_penalty
from s2s_jax.decoding.search import (
    Decoded,
    attention_of,
    greedy,
    max_decode_length,
    sample,
    until_eos,
)

__all__ = [
    "DECODERS",
    "Decoded",
    "DecoderSpec",
    "attention_of",
    "beam_search",
    "compile_decoder",
    "coverage_penalty",
    "gnmt_score",
    "greedy",
    "length_penalty",
    "max_decode_length",
    "sample",
    "until_eos",
]
