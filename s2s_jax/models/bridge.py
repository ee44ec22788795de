"""The bridge: the encoder's final carries (the context vector) -> the decoder's
initial carries, one ``[B, H]`` array per carry array of each decoder layer."""

import jax.numpy as jnp
from flax import linen as nn

from s2s_jax.config.registry import Registry
from s2s_jax.models.cells import CELLS, Carry
from s2s_jax.models.model_config import ModelConfig


def _copy_bridge(finals, config, batch_size):
    return finals


def _zeros_bridge(finals, config, batch_size):
    zeros = jnp.zeros((batch_size, config.hidden_size), jnp.float32)
    carry_size = CELLS[config.cell].carry_size
    return tuple((zeros,) * carry_size for _ in range(config.decoder_layers))


def _dense_bridge(finals, config, batch_size):
    """Every decoder carry array is tanh(W [top encoder layer's final carry] + b)."""
    top = jnp.concatenate(finals[-1], axis=-1)
    carry_size = CELLS[config.cell].carry_size
    return tuple(
        tuple(
            jnp.tanh(nn.Dense(config.hidden_size, name=f"layer_{i}_{j}")(top))
            for j in range(carry_size)
        )
        for i in range(config.decoder_layers)
    )


# How the context vector reaches the decoder. "copy" needs equal depths and sizes
# (checked by s2s_jax.config.model); a bidirectional encoder's carries are concatenated.
BRIDGES = Registry(
    "model.bridge",
    {
        "copy": _copy_bridge,
        "dense": _dense_bridge,
        "zeros": _zeros_bridge,
    },
)


class Bridge(nn.Module):
    """Encoder final carries -> decoder initial carries."""

    config: ModelConfig

    @nn.compact
    def __call__(self, finals: tuple[Carry, ...], batch_size: int) -> tuple[Carry, ...]:
        return BRIDGES[self.config.bridge](finals, self.config, batch_size)
