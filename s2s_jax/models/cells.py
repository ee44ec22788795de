"""Recurrent cells with the input projection split from the recurrence.

Every cell computes its gates from ``x_proj = x @ W_ih + b`` (:meth:`project`) and
``r = h @ W_hh`` through an elementwise :meth:`update` (given the cell's
:meth:`update_params`: the layer-normalised LSTM's gains and biases; none for others).
A layer that sees a whole sequence projects all time steps in one matmul and runs only
``r`` and the update inside the loop (:meth:`sequence`, see ``time_loop.py``); a
decoder step projects its single input (``__call__``). Both paths share the same
parameters and the same update.

An input can also be split: the projection of its first features computed
beforehand for all time steps (``project(x_first)``), the rest projected inside the
step (``__call__(carry, x_proj, rest)``): the input-feeding decoder projects its
embeddings outside its loop and only the fed-back vector inside.

The gates of a cell are fused: one ``[features, G * features]`` recurrent matmul per
step (G = 4 for the LSTM, 3 for the GRU, 1 for the plain RNN).

A carry is a tuple of ``[batch, features]`` arrays whose first element is the hidden
state ``h``: ``(h, c)`` for the LSTM, ``(h,)`` for the GRU and the RNN.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from s2s_jax.config.registry import Registry
from s2s_jax.models.time_loop import Carry, dense, recurrence


def stacked_orthogonal(num_blocks: int) -> Callable:
    """Initialiser for a ``[n, num_blocks * n]`` kernel: one orthogonal block per gate."""
    orthogonal = nn.initializers.orthogonal()

    def init(key, shape, dtype=jnp.float32):
        rows, cols = shape
        keys = jax.random.split(key, num_blocks)
        blocks = [orthogonal(k, (rows, cols // num_blocks), dtype) for k in keys]
        return jnp.concatenate(blocks, axis=-1)

    return init


class Kernel(nn.Module):
    """The parameters of a dense layer, ``kernel [in, features]`` and ``bias [features]``
    (when ``use_bias``), named as ``nn.Dense`` names them, for code that does its own
    matmuls with them."""

    features: int
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, in_features: int) -> tuple[jax.Array, jax.Array | None]:
        kernel = self.param("kernel", self.kernel_init, (in_features, self.features))
        bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
        return kernel, bias


class RecurrentCell(nn.Module):
    """Base class: owns the input projection ``W_ih`` and the recurrent ``W_hh``."""

    features: int
    dtype: jnp.dtype = jnp.float32  # matmul dtype; the carry stays float32
    in_features: int = 0  # input width D, needed when a step gets ``rest``; 0: the
    # width of what ``project`` sees

    num_gates = 1  # gates computed by the fused matmuls
    carry_size = 1  # number of [batch, features] arrays in the carry
    recurrent_bias = False  # whether W_hh has its own bias (the GRU's b_n)
    input_bias = True  # whether W_ih has the gates' bias b (a layer norm adds its own)
    additive = True  # whether update sees only x_proj + r (the GRU's reset gate does not)

    def setup(self):
        self.ih = Kernel(
            self.num_gates * self.features,
            self.input_bias,
            nn.initializers.xavier_uniform(),
            self.bias_init,
            name="ih",
        )
        self.hh = Kernel(
            self.num_gates * self.features,
            self.recurrent_bias,
            stacked_orthogonal(self.num_gates),
            name="hh",
        )

    @staticmethod
    def bias_init(key, shape, dtype=jnp.float32):
        return jnp.zeros(shape, dtype)

    def project(self, x: jax.Array) -> jax.Array:
        """``x [..., D'] -> x W_ih[:D'] + b [..., num_gates * features]`` (float32): the
        projection of the input's first D' features (all D unless ``in_features`` says
        more; the others then come to ``__call__`` as ``rest``)."""
        return dense(x, *self._input_weights(x.shape[-1]), self.dtype)

    def _input_weights(self, width: int) -> tuple[jax.Array, jax.Array | None]:
        """``W_ih``'s rows for the input's first ``width`` features, and ``b``."""
        kernel, bias = self.ih(self.in_features or width)
        return kernel[:width], bias

    def initial_carry(self, batch_size: int) -> Carry:
        zeros = jnp.zeros((batch_size, self.features), jnp.float32)
        return (zeros,) * self.carry_size

    def __call__(
        self, carry: Carry, x_proj: jax.Array, rest: jax.Array | None = None
    ) -> tuple[Carry, jax.Array]:
        """One step: ``x_proj [B, G*H]`` -> (new carry, h ``[B, H]``).

        ``rest [B, R]``: the input's last R features, when ``x_proj`` holds the
        projection of the others only.
        """
        h, kernel, bias = carry[0], *self.hh(self.features)
        if rest is not None:
            ih_rest = self.ih(self.in_features)[0][-rest.shape[-1] :]
            if self.additive:  # one matmul: [rest, h] @ [W_ih's rest rows; W_hh]
                h = jnp.concatenate([rest, h], axis=-1)
                kernel = jnp.concatenate([ih_rest, kernel])
            else:
                x_proj = x_proj + dense(rest, ih_rest, None, self.dtype)
        return self.update(self.update_params(), x_proj, dense(h, kernel, bias, self.dtype), carry)

    def sequence(
        self,
        inputs: jax.Array,
        mask: jax.Array | None,
        carry: Carry,
        *,
        reverse: bool,
        unroll: int,
        remat: bool,
    ) -> tuple[Carry, jax.Array]:
        """All steps: ``inputs [T, B, D]``, ``mask [B, T]`` -> (final carry, outputs
        ``[T, B, H]``); time-major, as the loop reads them.

        The inputs are projected in one matmul. An additive cell adds its bias ``b``
        inside the loop, in the update's elementwise pass, not in a pass of its own
        over the ``[T, B, G*H]`` projections.
        """
        kernel, bias = self.hh(self.features)
        ih_kernel, ih_bias = self._input_weights(inputs.shape[-1])
        if self.additive:
            x_proj = dense(inputs, ih_kernel, None, self.dtype)
            bias = ih_bias if bias is None else bias + ih_bias
        else:
            x_proj = dense(inputs, ih_kernel, ih_bias, self.dtype)
        return recurrence(
            self.update,
            kernel,
            bias,
            x_proj,
            mask,
            carry,
            reverse=reverse,
            unroll=unroll,
            remat=remat,
            additive=self.additive,
            update_params=self.update_params(),
            dtype=self.dtype,
        )

    def update_params(self):
        """The parameters ``update`` takes (a pytree): none but the layer norm's."""
        return ()

    @staticmethod
    def update(params, x_proj: jax.Array, r: jax.Array, carry: Carry) -> tuple[Carry, jax.Array]:
        """Gates from ``x_proj`` and ``r = h W_hh`` -> (carry, h)."""
        raise NotImplementedError


class LSTMCell(RecurrentCell):
    """LSTM (Hochreiter & Schmidhuber), the seeds' equations with gates fused.

    z = x W_ih + b + h W_hh, split into (i, f, g, o);
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(c').
    The forget-gate bias starts at 1.
    """

    num_gates = 4
    carry_size = 2

    @staticmethod
    def bias_init(key, shape, dtype=jnp.float32):
        features = shape[0] // 4
        return jnp.zeros(shape, dtype).at[features : 2 * features].set(1.0)

    @staticmethod
    def update(params, x_proj, r, carry):
        _, c = carry
        i, f, g, o = jnp.split(x_proj + r, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h


def _layer_norm(v: jax.Array, scale: jax.Array, epsilon: float = 1e-5) -> jax.Array:
    """``scale * (v - mean) / std`` over the last axis of ``v``."""
    centred = v - v.mean(axis=-1, keepdims=True)
    return scale * centred * jax.lax.rsqrt(jnp.mean(centred**2, axis=-1, keepdims=True) + epsilon)


class LayerNormLSTMCell(LSTMCell):
    """LSTM with layer normalisation (Ba et al. 2016, section 3.1), as Nematus and
    Marian's ``layer-normalization`` have it:

    z = LN(x W_ih; a_x) + LN(h W_hh; a_h) + b, split into (i, f, g, o);
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g);  h' = sigmoid(o) * tanh(LN(c'; a_c) + b_c),
    LN(v; a) = a * (v - mean(v)) / std(v) over the features of v. The gains start at
    1, b as the LSTM's (forget gate 1), b_c at 0. ``x W_ih`` is normalised inside the
    update, after the input-feeding decoder adds the projection of its fed-back vector.
    """

    additive = False
    input_bias = False  # b comes after the normalisations

    def setup(self):
        super().setup()
        gates = 4 * self.features
        ones = nn.initializers.ones
        self.x_scale = self.param("x_scale", ones, (gates,))
        self.h_scale = self.param("h_scale", ones, (gates,))
        self.bias = self.param("bias", LSTMCell.bias_init, (gates,))
        self.c_scale = self.param("c_scale", ones, (self.features,))
        self.c_bias = self.param("c_bias", nn.initializers.zeros, (self.features,))

    def update_params(self):
        return (self.x_scale, self.h_scale, self.bias, self.c_scale, self.c_bias)

    @staticmethod
    def update(params, x_proj, r, carry):
        x_scale, h_scale, bias, c_scale, c_bias = params
        _, c = carry
        z = _layer_norm(x_proj, x_scale) + _layer_norm(r, h_scale) + bias
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(_layer_norm(c, c_scale) + c_bias)
        return (h, c), h


class GRUCell(RecurrentCell):
    """GRU (Cho et al. 2014) with the reset gate applied after the recurrent matmul.

    r = sigmoid(x_r + h W_r + b_r);  z = sigmoid(x_z + h W_z + b_z);
    n = tanh(x_n + r * (h W_n + b_n));  h' = (1 - z) * n + z * h.
    """

    num_gates = 3
    recurrent_bias = True
    additive = False

    @staticmethod
    def update(params, x_proj, r, carry):
        (h,) = carry
        x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(r, 3, axis=-1)
        r = jax.nn.sigmoid(x_r + h_r)
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * h_n)
        h = (1.0 - z) * n + z * h
        return (h,), h


class SimpleRNNCell(RecurrentCell):
    """Elman RNN: h' = tanh(x W_ih + b + h W_hh)."""

    @staticmethod
    def update(params, x_proj, r, carry):
        h = jnp.tanh(x_proj + r)
        return (h,), h


CELLS: Registry[type[RecurrentCell]] = Registry(
    "model.cell",
    {
        "lstm": LSTMCell,
        "ln_lstm": LayerNormLSTMCell,
        "gru": GRUCell,
        "rnn": SimpleRNNCell,
    },
)
