"""Optimizers, learning-rate schedules and the teacher-forcing schedule."""

import jax
import jax.numpy as jnp
import optax

from s2s_jax.config.registry import Registry


def _with_warmup(schedule: optax.Schedule, warmup_steps: int) -> optax.Schedule:
    """``schedule`` times a linear ramp from ``1 / warmup_steps`` at step 0 to 1 at step
    ``warmup_steps - 1``."""
    if warmup_steps <= 0:
        return schedule
    ramp = optax.linear_schedule(1.0 / warmup_steps, 1.0, warmup_steps - 1)
    return lambda step: schedule(step) * ramp(step)


def _constant(train, steps_per_epoch: int) -> optax.Schedule:
    return _with_warmup(optax.constant_schedule(train.learning_rate), train.warmup_steps)


def _step_decay(train, steps_per_epoch: int) -> optax.Schedule:
    """Multiply by ``decay_factor`` after ``decay_start_epoch``, then every
    ``decay_every_epochs`` (Sutskever et al.: halve every half epoch after epoch 5)."""
    start = train.decay_start_epoch * steps_per_epoch
    every = max(train.decay_every_epochs * steps_per_epoch, 1.0)
    decayed = optax.exponential_decay(
        train.learning_rate * train.decay_factor, every, train.decay_factor, staircase=True
    )
    schedule = optax.join_schedules(
        [optax.constant_schedule(train.learning_rate), decayed], [start]
    )
    return _with_warmup(schedule, train.warmup_steps)


def _rsqrt(train, steps_per_epoch: int) -> optax.Schedule:
    """Linear warm-up to the peak, then decay with the inverse square root of the step
    (optax has no inverse-square-root schedule)."""
    warmup = max(train.warmup_steps, 1)

    def schedule(step):
        step = step + 1.0
        return train.learning_rate * jnp.minimum(step / warmup, jnp.sqrt(warmup / step))

    return schedule


LEARNING_RATE_SCHEDULES = Registry(
    "train.schedule",
    {
        "constant": _constant,
        "step": _step_decay,
        "rsqrt": _rsqrt,
    },
)
OPTIMIZERS = Registry(
    "train.optimizer",
    {
        "adam": optax.adam,
        "sgd": optax.sgd,
        "adadelta": lambda lr: optax.adadelta(lr, rho=0.95, eps=1e-6),
    },
)


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """Scales the gradients by ``min(1, max_norm / global_norm)``.

    The same update as ``optax.clip_by_global_norm``, but as one multiply that XLA fuses
    into the optimizer's pass over the gradients. optax's ``select`` between the
    clipped and unclipped values did not fuse: clipping and Adam over 40M parameters
    took 94 ms with it, 54 ms with this (Adam alone: 49 ms), which the train step of
    benchmarks/train_throughput.py (the large config) pays at every step.
    """

    def update(updates, state, params=None):
        del params
        scale = jnp.minimum(1.0, max_norm / optax.tree.norm(updates))
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def create_optimizer(train, steps_per_epoch: int) -> optax.GradientTransformation:
    """Global-norm clipping (when ``grad_clip_norm`` > 0), then the optimizer."""
    schedule = LEARNING_RATE_SCHEDULES[train.schedule](train, steps_per_epoch)
    optimizer = OPTIMIZERS[train.optimizer](schedule)
    if train.grad_clip_norm > 0:
        return optax.chain(clip_by_global_norm(train.grad_clip_norm), optimizer)
    return optimizer


def uses_scheduled_sampling(train) -> bool:
    """Static: whether any step feeds the decoder its own predictions."""
    return min(train.teacher_forcing_start, train.teacher_forcing_end) < 1.0


def teacher_forcing_ratio(train, step) -> jnp.ndarray:
    """Probability of feeding the gold token, linear from start to end."""
    progress = jnp.minimum(step / train.teacher_forcing_steps, 1.0)
    return (
        train.teacher_forcing_start
        + (train.teacher_forcing_end - train.teacher_forcing_start) * progress
    )
