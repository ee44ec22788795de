"""Losses, schedules and the pure train step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.config import base_config
from s2s_jax.data.batching import TrainBatches, encode_pairs
from s2s_jax.data.tasks import make_splits
from s2s_jax.data.vocab import EOS_ID, PAD_ID, UNK_ID, CharVocab
from s2s_jax.models import token_metrics
from s2s_jax.models.seq2seq import ModelConfig, Seq2Seq
from s2s_jax.runtime.checkpointing import Checkpointer
from s2s_jax.training import schedules
from s2s_jax.training.monitor import DivergenceError, NonFiniteRun
from s2s_jax.training.train import drop_source_words, train_and_evaluate, train_step
from s2s_jax.training.train_state import TrainState


def _numpy_smoothed_loss(logits, targets, eps):
    logits = np.asarray(logits, np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    vocab = logits.shape[-1]
    target_dist = np.full(logits.shape, eps / vocab)
    np.put_along_axis(target_dist, targets[..., None], 1 - eps + eps / vocab, axis=-1)
    return -(target_dist * log_probs).sum(-1)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_losses_match_numpy_and_ignore_padding(eps):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 6)).astype(np.float32)
    targets = rng.integers(0, 6, (2, 4))
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], bool)
    sums = token_metrics.sequence_metrics(
        jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(mask), eps
    )
    expected = (_numpy_smoothed_loss(logits, targets, eps) * mask).sum()
    np.testing.assert_allclose(sums["loss"], expected, rtol=1e-5)
    assert float(sums["tokens"]) == 4
    garbage = np.where(mask[..., None], logits, 1e3 * rng.normal(size=logits.shape))
    again = token_metrics.sequence_metrics(
        jnp.asarray(garbage, jnp.float32), jnp.asarray(targets), jnp.asarray(mask), eps
    )
    for key in sums:
        np.testing.assert_allclose(again[key], sums[key], rtol=1e-6)


def test_learning_rate_schedules():
    train = base_config().train
    with train.unlocked():
        train.learning_rate, train.decay_factor = 1.0, 0.5
        train.decay_start_epoch, train.decay_every_epochs = 2.0, 0.5
        step = schedules.LEARNING_RATE_SCHEDULES["step"](train, 10)
        # Constant for 2 epochs (20 steps), then halved every half epoch (5 steps).
        assert [float(step(s)) for s in (0, 19, 20, 24, 25, 30)] == [1, 1, 0.5, 0.5, 0.25, 0.125]
        train.warmup_steps = 4
        rsqrt = schedules.LEARNING_RATE_SCHEDULES["rsqrt"](train, 10)
        np.testing.assert_allclose([rsqrt(s) for s in (0, 3, 15)], [0.25, 1.0, 0.5])


@pytest.mark.parametrize(
    "start,every,factor,warmup",
    [
        (0.0, 0.5, 0.5, 0),
        (2.0, 0.5, 0.5, 4),
        (7.3, 2.5, 0.1, 30),
        (0.5, 0.1, 0.0, 1),
        (2.0, 1.0, 1.0, 0),
    ],
)
def test_step_and_constant_schedules_match_their_formulas(start, every, factor, warmup):
    """lr * factor ** decays(step) * min(1, (step + 1) / warmup), where decays is 0
    before ``start`` epochs and then 1 + the whole ``every``-epoch periods since."""
    train, steps_per_epoch, lr = base_config().train, 10, 0.7
    with train.unlocked():
        train.learning_rate, train.warmup_steps = lr, warmup
        train.decay_start_epoch, train.decay_every_epochs, train.decay_factor = (
            start,
            every,
            factor,
        )
    steps = np.arange(400, dtype=np.float64)
    first, period = start * steps_per_epoch, max(every * steps_per_epoch, 1.0)
    decays = np.where(steps < first, 0.0, 1.0 + np.floor((steps - first) / period))
    ramp = np.minimum(1.0, (steps + 1) / warmup) if warmup else np.ones_like(steps)
    for name, expected in (("step", lr * factor**decays * ramp), ("constant", lr * ramp)):
        schedule = schedules.LEARNING_RATE_SCHEDULES[name](train, steps_per_epoch)
        np.testing.assert_allclose([schedule(s) for s in steps], expected, rtol=1e-6, err_msg=name)


def test_teacher_forcing_schedule():
    train = base_config().train
    assert not schedules.uses_scheduled_sampling(train)
    with train.unlocked():
        train.teacher_forcing_end, train.teacher_forcing_steps = 0.5, 100
    assert schedules.uses_scheduled_sampling(train)
    np.testing.assert_allclose(
        [schedules.teacher_forcing_ratio(train, s) for s in (0, 50, 100, 400)],
        [1.0, 0.75, 0.5, 0.5],
    )


def _setup(**train_overrides):
    config = base_config()
    with config.unlocked():
        config.data.task = "reversal"
        config.data.buckets = ((8, 8),)
        config.data.batch_size = 8
        config.model.update(embed_dim=16, hidden_size=32, attention_dim=32, dropout=0.1)
        config.train.update({"learning_rate": 1e-2, **train_overrides})
    pairs = make_splits("reversal", 0, {"train": 200})["train"]
    vocab = CharVocab("abcdefghijklmnopqrstuvwxyz")
    batches = TrainBatches(encode_pairs(pairs, vocab, vocab), 8, ((8, 8),), seed=0)
    model = Seq2Seq(ModelConfig.create(vocab.size, vocab.size, **config.model.to_dict()))
    batch = batches.batch(0)
    params = model.init(jax.random.key(0), batch["src"], batch["src_mask"], batch["tgt_in"])[
        "params"
    ]
    state = TrainState.create(
        apply_fn=model.apply, params=params, tx=schedules.create_optimizer(config.train, 10)
    )
    step = jax.jit(functools.partial(train_step, config=config))
    return state, step, batches


def _train(state, step, batches, num_steps, fixed_batch=False):
    rng, curve = jax.random.key(0), []
    for i in range(num_steps):
        state, sums = step(state, batches.batch(0 if fixed_batch else i), rng)
        curve.append(float(sums["loss"] / sums["tokens"]))
    return state, curve


def test_tiny_model_overfits_tiny_batch():
    state, step, batches = _setup()
    _, curve = _train(state, step, batches, 150, fixed_batch=True)
    assert curve[0] > 2.0 and curve[-1] < 0.05, (curve[0], curve[-1])


@pytest.mark.parametrize("forcing_end", [1.0, 0.5])
def test_same_seed_same_loss_curve(forcing_end):
    runs = [
        _train(*_setup(teacher_forcing_end=forcing_end, teacher_forcing_steps=5), 6)
        for _ in range(2)
    ]
    (state_a, curve_a), (state_b, curve_b) = runs
    assert curve_a == curve_b
    for a, b in zip(jax.tree.leaves(state_a.params), jax.tree.leaves(state_b.params)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_by_global_norm_matches_numpy(max_norm):
    rng = np.random.default_rng(0)
    grads = {
        "a": rng.normal(size=(3, 4)).astype(np.float32),
        "b": rng.normal(size=(5,)).astype(np.float32),
    }
    norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads.values()))
    want = {k: g * min(1.0, max_norm / norm) for k, g in grads.items()}
    clip = schedules.clip_by_global_norm(max_norm)
    got, _ = jax.jit(clip.update)(grads, clip.init(grads))
    for key in grads:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6)
    zeros, _ = clip.update(jax.tree.map(np.zeros_like, grads), clip.init(grads))
    assert all(np.all(np.asarray(z) == 0.0) for z in jax.tree.leaves(zeros))


def test_gradient_clipping_bounds_the_update():
    state, step, batches = _setup(grad_clip_norm=1e-3, optimizer="sgd", learning_rate=1.0)
    new_state, sums = step(state, batches.batch(0), jax.random.key(0))
    assert float(sums["grad_norm"]) > 1e-3
    delta = jax.tree.map(lambda a, b: a - b, new_state.params, state.params)
    assert float(jnp.sqrt(sum(jnp.sum(d**2) for d in jax.tree.leaves(delta)))) == (
        pytest.approx(1e-3, rel=1e-3)
    )


def _with_nan_outputs(state: TrainState) -> TrainState:
    """``state`` with a model whose outputs are NaN: what a poisoned batch or an
    overflow makes of the loss and the gradient."""
    apply_fn = state.apply_fn
    return state.replace(
        apply_fn=lambda *args, **kwargs: jax.tree.map(
            lambda x: x * jnp.nan, apply_fn(*args, **kwargs)
        )
    )


def test_nonfinite_step_skips_the_update_and_counts_it():
    state, step, batches = _setup()
    rng = jax.random.key(0)
    state, _ = step(state, batches.batch(0), rng)  # Adam moments become non-zero
    skipped, sums = step(_with_nan_outputs(state), batches.batch(1), rng)
    assert (int(skipped.step), int(skipped.skipped)) == (2, 1)
    assert float(sums["skipped"]) == 1.0 and float(sums["loss"]) == 0.0
    for a, b in zip(
        jax.tree.leaves((skipped.params, skipped.opt_state)),
        jax.tree.leaves((state.params, state.opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    resumed, sums = step(skipped.replace(apply_fn=state.apply_fn), batches.batch(2), rng)
    assert float(sums["skipped"]) == 0.0 and int(resumed.skipped) == 1
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(state.params))
    )


def test_a_run_of_skipped_steps_stops_training():
    run = NonFiniteRun(limit=3)
    for step, skipped in enumerate([1.0, 1.0, 0.0, 1.0, 1.0], start=1):
        run.push(step, jnp.float32(skipped))
    run.flush()  # the longest run is 2
    run.push(6, jnp.float32(1.0))
    with pytest.raises(
        DivergenceError,
        match=r"step 6: .* 3 steps in a row \(config.train."
        r"max_consecutive_nonfinite=3\)",
    ):
        run.push(7, jnp.float32(0.0))  # checks step 6, one step late


def test_early_stopping_after_evaluations_without_a_new_best(tmp_path):
    """With a zero learning rate no evaluation after the first is better: training
    stops at the evaluation ``early_stopping_evals`` after it, with a checkpoint."""
    config = base_config()
    config.data.update(
        task="reversal", train_size=300, eval_size=20, batch_size=16, buckets=((24, 24),)
    )
    config.model.update(embed_dim=8, hidden_size=16, attention_dim=16)
    config.train.update(
        num_steps=60,
        eval_every=10,
        checkpoint_every=1000,
        log_every=10,
        learning_rate=0.0,
        early_stopping_evals=2,
        best_metric="loss",
        best_mode="min",
    )
    config.eval.update(num_heatmaps=0)
    train_and_evaluate(config, str(tmp_path))
    checkpointer = Checkpointer(str(tmp_path), best_metric="loss", best_mode="min")
    assert checkpointer.best_step() == 10
    assert checkpointer.latest_step() == 30


def test_time_budget_stops_at_the_first_log_step_after_it(tmp_path):
    """A spent budget stops training at the next log step, which is then evaluated
    and saved like a last step, and the test split is still scored."""
    config = base_config()
    config.data.update(
        task="reversal", train_size=300, eval_size=20, batch_size=16, buckets=((24, 24),)
    )
    config.model.update(embed_dim=8, hidden_size=16, attention_dim=16)
    config.train.update(
        num_steps=1000, eval_every=500, checkpoint_every=500, log_every=7, time_budget_minutes=1e-6
    )
    config.eval.update(num_heatmaps=0)
    metrics = train_and_evaluate(config, str(tmp_path))
    checkpointer = Checkpointer(str(tmp_path), best_metric="exact_match")
    assert checkpointer.latest_step() == 7 and checkpointer.best_step() == 7
    assert "bleu" in metrics


def test_source_word_dropout_replaces_real_tokens_by_unk_only():
    rng = np.random.default_rng(0)
    src = rng.integers(4, 50, (64, 40)).astype(np.int32)
    lengths = rng.integers(1, 40, 64)
    src[np.arange(40)[None, :] >= lengths[:, None]] = PAD_ID
    src[np.arange(64), lengths - 1] = EOS_ID
    src = jnp.asarray(src)
    key = jax.random.key(0)
    assert drop_source_words(src, 0.0, key) is src
    dropped = np.asarray(drop_source_words(src, 0.3, key))
    changed = dropped != np.asarray(src)
    assert np.all(dropped[changed] == UNK_ID)
    real = (np.asarray(src) != PAD_ID) & (np.asarray(src) != EOS_ID)
    assert not np.any(changed & ~real)  # padding and EOS kept
    assert abs(changed.sum() / real.sum() - 0.3) < 0.03
    everything = np.asarray(drop_source_words(src, 0.999999, key))
    np.testing.assert_array_equal(everything[real], UNK_ID)
