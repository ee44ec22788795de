"""train.ema_decay: a moving average of the parameters, kept, saved and used to evaluate."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from s2s_jax.config import ConfigError, base_config
from s2s_jax.evaluation import parameters
from s2s_jax.registries import validate
from s2s_jax.serving import loading
from s2s_jax.training import model_files
from s2s_jax.training.train import apply_if_finite, train_and_evaluate
from s2s_jax.training.train_state import TrainState


def _state(ema: bool) -> TrainState:
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
    state = TrainState.create(apply_fn=None, params=params, tx=optax.sgd(0.1))
    return state.replace(ema_params=jax.tree.map(jnp.copy, params)) if ema else state


def _grads(t: int) -> dict:
    rng = np.random.default_rng(t)
    return {"w": jnp.asarray(rng.normal(size=(2, 3)), jnp.float32), "b": jnp.full(3, t * 0.5)}


@pytest.mark.parametrize("decay", [0.5, 0.999])
def test_the_average_follows_its_formula(decay):
    """Against float64 numpy: d_t = min(decay, (1 + t) / (10 + t)),
    ema_t = d_t ema_{t-1} + (1 - d_t) params_t, from ema_0 = the initial params."""
    state = _state(ema=True)
    params = {k: np.asarray(v, np.float64) for k, v in state.params.items()}
    ema = {k: v.copy() for k, v in params.items()}
    for t in range(8):
        grads = _grads(t)
        state = state.apply_gradients(grads=grads, ema_decay=decay)
        d = min(decay, (1 + t) / (10 + t))
        for key in params:
            params[key] = params[key] - 0.1 * np.asarray(grads[key], np.float64)
            ema[key] = d * ema[key] + (1 - d) * params[key]
    for key in params:
        np.testing.assert_allclose(state.params[key], params[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state.ema_params[key], ema[key], rtol=1e-5, atol=1e-6)
        assert not np.allclose(ema[key], params[key])  # an average, not the parameters
    assert state.eval_params is state.ema_params


def test_without_it_the_state_and_its_update_are_as_before():
    plain = _state(ema=False).apply_gradients(grads=_grads(0), ema_decay=0.9)
    assert plain.ema_params is None and plain.eval_params is plain.params
    # The leaves a checkpoint holds are those of a state from before the average.
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(plain)]
    assert paths == [".step", ".params['b']", ".params['w']", ".skipped"]


def test_a_skipped_update_leaves_the_average():
    state = _state(ema=True).apply_gradients(grads=_grads(0), ema_decay=0.9)
    sums = {"loss": jnp.float32(jnp.nan), "grad_norm": jnp.float32(1.0)}
    skipped, _ = apply_if_finite(state, _grads(1), sums, 0.9)
    for key in state.params:
        np.testing.assert_array_equal(skipped.ema_params[key], state.ema_params[key])
    assert int(skipped.step) == int(state.step) + 1


def test_training_saves_the_average_and_evaluation_reads_it(tmp_path):
    config = base_config()
    config.data.update(
        task="reversal", train_size=200, eval_size=20, batch_size=16, buckets=((24, 24),)
    )
    config.model.update(embed_dim=8, hidden_size=16, attention_dim=16)
    config.train.update(num_steps=20, eval_every=20, checkpoint_every=20, ema_decay=0.9)
    config.eval.update(num_heatmaps=0)
    train_and_evaluate(config, str(tmp_path))
    assert parameters.make_checkpointer(config, str(tmp_path)).params_field == "ema_params"
    averaged = loading.load(str(tmp_path))  # its stored config: with the average
    without = averaged.config.copy_and_resolve_references()
    without.train.ema_decay = 0.0
    raw = loading.load(str(tmp_path), without)
    pairs = list(zip(jax.tree.leaves(averaged.params), jax.tree.leaves(raw.params)))
    assert len(pairs) == len(jax.tree.leaves(raw.params)) > 0
    assert not all(np.allclose(ema, param) for ema, param in pairs)


def test_ema_decay_is_validated():
    config = base_config()
    for bad in (-0.1, 1.0):
        config.train.ema_decay = bad
        with pytest.raises(ConfigError, match="train.ema_decay"):
            validate(config)


def test_resuming_cannot_turn_the_average_on_or_off(tmp_path):
    stored, given = base_config(), base_config()
    stored.train.ema_decay = 0.999
    given.train.ema_decay = 0.99  # another decay: the same state
    model_files.check_same_training_state(stored, given, str(tmp_path))
    for was, now in ((0.999, 0.0), (0.0, 0.9)):
        stored.train.ema_decay, given.train.ema_decay = was, now
        with pytest.raises(ConfigError, match="train.ema_decay"):
            model_files.check_same_training_state(stored, given, str(tmp_path))
