"""The decoder an eval config names, jitted once for every caller.

``DECODERS`` maps ``eval.decoder`` to a ``DecoderSpec``, whose decoder is jitted once,
when the spec is made, with the model, its compiled-in options and the length bound as
static arguments. ``jax.jit``'s cache, keyed on those (the flax module by value: equal
configs are one model) and the argument shapes, is then shared by all callers of
``compile_decoder``: the Evaluators of a beam-search grid reuse one compilation per beam
size (alpha is traced), and a Translator compiles nothing that an Evaluator compiled.
"""

import dataclasses
import functools
import itertools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from s2s_jax.config.registry import Registry
from s2s_jax.decoding.beam import beam_search
from s2s_jax.decoding.search import Decoded, greedy, sample
from s2s_jax.models.seq2seq import Seq2Seq

LENGTH_BOUND = ("max_len_a", "max_len_b")  # eval config fields every decoder takes


@dataclasses.dataclass(frozen=True)
class DecoderSpec:
    """A decoder and the eval config fields it takes by keyword, besides the length bound:
    ``options`` are compiled in (each value compiles its own decoder), ``traced`` are
    passed as float32 scalars (one compiled decoder serves every value).

    ``jitted`` is ``decode`` under ``jax.jit`` with the model, ``options`` and the
    length bound static, made once with the spec.
    """

    decode: Callable[..., Decoded]
    options: tuple[str, ...]
    traced: tuple[str, ...] = ()
    random: bool = False  # takes a PRNG key after src_mask
    jitted: Callable[..., Decoded] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        static = ("model",) + self.options + LENGTH_BOUND
        object.__setattr__(self, "jitted", jax.jit(self.decode, static_argnames=static))


DECODERS: Registry[DecoderSpec] = Registry(
    "eval.decoder",
    {
        "greedy": DecoderSpec(greedy, ()),
        "beam": DecoderSpec(beam_search, ("beam_size", "beta", "n_best"), traced=("alpha",)),
        "sample": DecoderSpec(sample, ("temperature", "top_k"), random=True),
    },
)


def compile_decoder(model: Seq2Seq, eval_config) -> Callable[[Any, jax.Array, jax.Array], Decoded]:
    """``(params, src, src_mask) -> Decoded``, jitted: the decoder ``eval_config.decoder``.

    Reads ``decoder``, ``max_len_a``, ``max_len_b`` and the chosen decoder's options
    (``DECODERS``); sampling also reads ``sample_seed`` and draws with
    ``fold_in(key(sample_seed), n)`` on the n-th call, so a run is reproducible for the
    same sequence of batches.
    """
    if eval_config.decoder not in DECODERS:
        raise ValueError(f"unknown decoder {eval_config.decoder!r}; choose from {sorted(DECODERS)}")
    spec = DECODERS[eval_config.decoder]
    static = {name: getattr(eval_config, name) for name in spec.options + LENGTH_BOUND}
    traced = {name: jnp.float32(getattr(eval_config, name)) for name in spec.traced}
    decode = functools.partial(spec.jitted, model, **static, **traced)
    if not spec.random:
        return decode
    seed, calls = jax.random.key(eval_config.sample_seed), itertools.count()
    return lambda params, src, src_mask: decode(
        params, src, src_mask, jax.random.fold_in(seed, next(calls))
    )
