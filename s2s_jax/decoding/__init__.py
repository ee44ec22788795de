"""Decoding: greedy, sampling and beam search over a trained ``Seq2Seq``; the
translator that joins a model, its vocabularies and its parameters."""

from s2s_jax.decoding.search import (DECODERS, MAX_HALVINGS, Decoded, _while_dropping_finished,
                                     attention_of, beam_search, compile_decoder,
                                     coverage_penalty, gnmt_score, greedy, jitted,
                                     length_penalty, max_decode_length, sample, until_eos)
