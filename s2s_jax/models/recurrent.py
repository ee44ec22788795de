"""Recurrent layers over a time axis: masking, direction, bidirectionality, stacking.

A layer projects the inputs of all time steps in one matmul, then runs ``nn.scan``
over the fused recurrent step. Padding is masked: at a padded step the carry is kept
unchanged and the output is zero, so the final carry of every sequence is its state
at its own last real token (for the backward direction: at its first token), and a
padded batch computes exactly what each sequence would compute alone.
"""

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from s2s_jax.models.cells import CELLS, Carry


def _masked_step(cell, carry: Carry, inputs) -> tuple[Carry, jax.Array]:
    """One scan step; ``inputs = (x_proj [batch, G*H], mask [batch])``."""
    x_proj, mask = inputs
    new_carry, h = cell(carry, x_proj)
    keep = mask[:, None]
    carry = tuple(jnp.where(keep, new, old) for new, old in zip(new_carry, carry))
    return carry, jnp.where(keep, h, 0.0)


def _step(cell, carry: Carry, x_proj: jax.Array) -> tuple[Carry, jax.Array]:
    return cell(carry, x_proj)


class RecurrentLayer(nn.Module):
    """One direction of one layer.

    Attributes:
      cell: name in ``CELLS``.
      features: hidden size H.
      reverse: run from the last time step to the first.
      unroll: time steps unrolled per scan iteration.
    """

    cell: str
    features: int
    reverse: bool = False
    unroll: int = 1
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.core = CELLS[self.cell](self.features, dtype=self.dtype, name="cell")

    def initial_carry(self, batch_size: int) -> Carry:
        return self.core.initial_carry(batch_size)

    def __call__(self, inputs: jax.Array, mask: Optional[jax.Array] = None,
                 carry: Optional[Carry] = None) -> tuple[Carry, jax.Array]:
        """Runs the layer over a sequence.

        Args:
          inputs: ``[batch, time, in_features]``.
          mask: ``[batch, time]`` bool, True on real steps; None means no padding.
          carry: initial carry, zeros when None.

        Returns:
          the final carry (each ``[batch, H]``) and the outputs ``[batch, time, H]``.
        """
        if carry is None:
            carry = self.initial_carry(inputs.shape[0])
        x_proj = self.core.project(inputs)  # all time steps in one matmul
        body, xs = (_step, x_proj) if mask is None else (_masked_step, (x_proj, mask))
        scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False},
                       in_axes=1, out_axes=1, reverse=self.reverse, unroll=self.unroll)
        return scan(self.core, carry, xs)

    def step(self, carry: Carry, inputs: jax.Array) -> tuple[Carry, jax.Array]:
        """One time step: ``inputs [batch, in_features] -> (carry, h [batch, H])``."""
        return self.core(carry, self.core.project(inputs))


class BidirectionalLayer(nn.Module):
    """A forward and a backward layer; outputs and final carries concatenated (2H)."""

    cell: str
    features: int
    unroll: int = 1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jax.Array, mask: jax.Array) -> tuple[Carry, jax.Array]:
        """``[batch, time, D], [batch, time] -> (carry of [batch, 2H], [batch, time, 2H])``."""
        make = lambda reverse, name: RecurrentLayer(  # noqa: E731
            self.cell, self.features, reverse, self.unroll, self.dtype, name=name)
        fwd_carry, fwd = make(False, "forward")(inputs, mask)
        bwd_carry, bwd = make(True, "backward")(inputs, mask)
        carry = tuple(jnp.concatenate(pair, axis=-1) for pair in zip(fwd_carry, bwd_carry))
        return carry, jnp.concatenate([fwd, bwd], axis=-1)


class StackedEncoderRNN(nn.Module):
    """N layers over a padded source; dropout and optional residuals between layers.

    Attributes:
      cell: name in ``CELLS``.
      features: hidden size H of each direction.
      num_layers: depth.
      bidirectional: each layer reads both directions (outputs 2H).
      residual: add a layer's input to its output when their sizes agree.
      dropout: rate applied to the output of every layer but the last.
    """

    cell: str
    features: int
    num_layers: int
    bidirectional: bool = False
    residual: bool = False
    dropout: float = 0.0
    unroll: int = 1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jax.Array, mask: jax.Array,
                 deterministic: bool) -> tuple[Sequence[Carry], jax.Array]:
        """``[batch, time, D] -> (final carry per layer, outputs [batch, time, H or 2H])``."""
        finals = []
        x = inputs
        for i in range(self.num_layers):
            if self.bidirectional:
                layer = BidirectionalLayer(self.cell, self.features, self.unroll,
                                           self.dtype, name=f"layer_{i}")
            else:
                layer = RecurrentLayer(self.cell, self.features, unroll=self.unroll,
                                       dtype=self.dtype, name=f"layer_{i}")
            carry, y = layer(x, mask)
            if self.residual and i > 0 and y.shape[-1] == x.shape[-1]:
                y = y + x
            if i < self.num_layers - 1:
                y = nn.Dropout(self.dropout)(y, deterministic=deterministic)
            finals.append(carry)
            x = y
        return tuple(finals), x
