"""Recurrent layers over a time axis: masking, direction, bidirectionality, stacking.

A layer projects the inputs of all time steps in one matmul, then runs the fused
recurrence over them (``time_loop.py``). Padding is masked: at a padded step the carry is kept
unchanged and the output is zero, so the final carry of every sequence is its state
at its own last real token (for the backward direction: at its first token), and a
padded batch computes exactly what each sequence would compute alone.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from s2s_jax.models.cells import CELLS, Carry


class RecurrentLayer(nn.Module):
    """One direction of one layer.

    Attributes:
      cell: name in ``CELLS``.
      features: hidden size H.
      reverse: run from the last time step to the first.
      unroll: time steps unrolled per loop iteration.
      remat: recompute the recurrent matmuls in the backward pass (less memory).
      dtype: matmul dtype (the carry stays float32).
      in_features: input width, needed only by steps whose input comes split
        (``step`` with ``x_proj``); 0: taken from the input.
    """

    cell: str
    features: int
    reverse: bool = False
    unroll: int = 1
    remat: bool = False
    dtype: jnp.dtype = jnp.float32
    in_features: int = 0

    def setup(self):
        self.core = CELLS[self.cell](
            self.features, dtype=self.dtype, in_features=self.in_features, name="cell"
        )

    def initial_carry(self, batch_size: int) -> Carry:
        return self.core.initial_carry(batch_size)

    def __call__(
        self, inputs: jax.Array, mask: jax.Array | None = None, carry: Carry | None = None
    ) -> tuple[Carry, jax.Array]:
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
        # All time steps in one matmul, time-major for the loop: transposing the
        # D-wide inputs and H-wide outputs is cheaper than the G*H-wide projections.
        final, outputs = self.core.sequence(
            jnp.swapaxes(inputs, 0, 1),
            mask,
            carry,
            reverse=self.reverse,
            unroll=self.unroll,
            remat=self.remat,
        )
        return final, jnp.swapaxes(outputs, 0, 1)

    def project(self, inputs: jax.Array) -> jax.Array:
        """``[..., D'] -> [..., G*H]``: the projection (with bias) of the input's first
        D' features, for ``step``'s ``x_proj``."""
        return self.core.project(inputs)

    def step(
        self, carry: Carry, inputs: jax.Array, x_proj: jax.Array | None = None
    ) -> tuple[Carry, jax.Array]:
        """One time step: ``inputs [batch, in_features] -> (carry, h [batch, H])``.

        With ``x_proj = project(first)`` given, ``inputs`` holds only the features
        after ``first``'s (``[batch, R]``, or None when there are none).
        """
        if x_proj is None:
            return self.core(carry, self.core.project(inputs))
        return self.core(carry, x_proj, inputs)


class BidirectionalLayer(nn.Module):
    """A forward and a backward layer; outputs and final carries concatenated (2H)."""

    cell: str
    features: int
    unroll: int = 1
    remat: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jax.Array, mask: jax.Array) -> tuple[Carry, jax.Array]:
        """``[batch, time, D], [batch, time] -> (carry of [batch, 2H], [batch, time, 2H])``."""
        make = lambda reverse, name: RecurrentLayer(  # noqa: E731
            self.cell, self.features, reverse, self.unroll, self.remat, self.dtype, name=name
        )
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
      unroll, remat, dtype: as for ``RecurrentLayer``.
    """

    cell: str
    features: int
    num_layers: int
    bidirectional: bool = False
    residual: bool = False
    dropout: float = 0.0
    unroll: int = 1
    remat: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self, inputs: jax.Array, mask: jax.Array, deterministic: bool
    ) -> tuple[Sequence[Carry], jax.Array]:
        """``[batch, time, D] -> (final carry per layer, outputs [batch, time, H or 2H])``."""
        finals = []
        x = inputs
        for i in range(self.num_layers):
            options = dict(
                unroll=self.unroll, remat=self.remat, dtype=self.dtype, name=f"layer_{i}"
            )
            if self.bidirectional:
                layer = BidirectionalLayer(self.cell, self.features, **options)
            else:
                layer = RecurrentLayer(self.cell, self.features, **options)
            carry, y = layer(x, mask)
            if self.residual and i > 0 and y.shape[-1] == x.shape[-1]:
                y = y + x
            if i < self.num_layers - 1:
                y = nn.Dropout(self.dropout)(y, deterministic=deterministic)
            finals.append(carry)
            x = y
        return tuple(finals), x
