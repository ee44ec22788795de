"""Checkpointer: round trip, retention, best-by-metric (the best N), restore errors, fallback from a
damaged latest checkpoint."""

import json
import os
import shutil
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax.training import train_state
from setups import build

from s2s_jax.config import base_config
from s2s_jax.evaluation.parameters import restore_configured
from s2s_jax.runtime.checkpointing import Checkpointer
from s2s_jax.runtime.checksums import DamagedCheckpointError


def _state(seed: int = 0, features: int = 3) -> train_state.TrainState:
    """A tiny TrainState after one Adam update (non-trivial optimizer state)."""
    model = nn.Dense(features)
    x = jnp.ones((2, 4))
    params = model.init(jax.random.key(seed), x)["params"]
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(1e-2))
    grads = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x) ** 2))(params)
    return state.apply_gradients(grads=grads)


def _assert_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_round_trip_restores_params_and_optimizer_state(tmp_path):
    state = _state()
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, state)
    ckpt.wait()
    restored = Checkpointer(tmp_path).restore(_state(seed=1))
    assert int(restored.step) == 1
    _assert_equal(restored.params, state.params)
    _assert_equal(restored.opt_state, state.opt_state)


def test_keeps_only_the_latest_n(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    for step in (1, 2, 3, 4):
        ckpt.save(step, _state())
    ckpt.wait()
    assert ckpt.latest_step() == 4
    assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints")) == [3, 4]


@pytest.mark.parametrize(
    "mode, values, best", [("max", [1.0, 3.0, 2.0], 2), ("min", [3.0, 1.0, 2.0], 2)]
)
def test_best_survives_restarts(tmp_path, mode, values, best):
    ckpt = Checkpointer(tmp_path, best_metric="bleu", best_mode=mode)
    for step, value in enumerate(values[:2], start=1):
        ckpt.save_best(step, _state(seed=step), value)
    ckpt.close()
    reopened = Checkpointer(tmp_path, best_metric="bleu", best_mode=mode)
    assert not reopened.save_best(3, _state(seed=3), values[2])
    assert reopened.best_step() == best
    restored = reopened.restore(_state(), which="best")
    _assert_equal(restored.params, _state(seed=best).params)


@pytest.mark.parametrize("mode, sign", [("max", 1.0), ("min", -1.0)])
def test_keeps_the_best_n_across_restarts(tmp_path, mode, sign):
    ckpt = Checkpointer(tmp_path, best_metric="bleu", best_mode=mode, keep_best=2)
    saved = [
        ckpt.save_best(step, _state(seed=step), sign * value)
        for step, value in enumerate([1.0, 3.0, 2.0, 0.5, 4.0, 2.0], start=1)
    ]
    assert saved == [True, True, True, False, True, False]  # a tie with the worst: no
    ckpt.close()
    assert sorted(int(d) for d in os.listdir(tmp_path / "best")) == [2, 5]
    reopened = Checkpointer(tmp_path, best_metric="bleu", best_mode=mode, keep_best=2)
    assert reopened.best_values() == {5: sign * 4.0, 2: sign * 3.0}
    assert list(reopened.best_values()) == [5, 2] and reopened.best_step() == 5
    assert reopened.save_best(7, _state(seed=7), sign * 3.5)
    reopened.wait()
    assert list(reopened.best_values()) == [5, 7]
    assert sorted(int(d) for d in os.listdir(tmp_path / "best")) == [5, 7]
    for step in (5, 7):
        _assert_equal(
            reopened.restore(_state(), step=step, which="best").params, _state(seed=step).params
        )


def test_restore_without_checkpoint_names_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoints"):
        Checkpointer(tmp_path).restore(_state())


def test_unfinished_checkpoint_is_ignored(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, _state())
    ckpt.close()
    os.makedirs(tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp-123")
    assert Checkpointer(tmp_path).latest_step() == 1


def test_relative_workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = Checkpointer("run")
    ckpt.save(1, _state())
    ckpt.wait()
    assert Checkpointer("run").latest_step() == 1


def _files(directory):
    return [os.path.join(root, name) for root, _, names in os.walk(directory) for name in names]


def _truncate_all(step_dir):
    for path in _files(step_dir):
        os.truncate(path, os.path.getsize(path) // 2)


def _garble_arrays(step_dir):
    """Overwrites the array data with random bytes; file sizes and metadata stay."""
    rng = np.random.default_rng(0)
    for path in _files(step_dir / "default" / "d"):
        with open(path, "r+b") as f:
            f.write(rng.bytes(os.path.getsize(path)))


def _drop_item(step_dir):
    """What a copy or sync stopped half-way leaves: the directory, not the arrays."""
    shutil.rmtree(step_dir / "default")


@pytest.mark.parametrize("damage", [_truncate_all, _garble_arrays, _drop_item])
def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path, damage, caplog):
    ckpt = Checkpointer(tmp_path, keep=3)
    for step in (1, 2):
        ckpt.save(step, _state(seed=step))
        ckpt.save_best(step, _state(seed=step), float(step))
    ckpt.close()
    damage(tmp_path / "checkpoints" / "2")
    reopened = Checkpointer(tmp_path, keep=3)
    assert reopened.latest_step() == 2
    restored = reopened.restore(_state(seed=9))
    _assert_equal(restored.params, _state(seed=1).params)
    _assert_equal(restored.opt_state, _state(seed=1).opt_state)
    assert "Cannot restore checkpoint 2" in caplog.text
    # The damaged step is set aside, so training saves it again; the best one is untouched.
    assert reopened.latest_step() == 1
    assert os.listdir(tmp_path / "damaged" / "checkpoints-2")
    assert reopened.save(2, _state(seed=3))
    reopened.wait()
    _assert_equal(reopened.restore(_state()).params, _state(seed=3).params)
    assert reopened.best_step() == 2
    _assert_equal(reopened.restore(_state(), which="best").params, _state(seed=2).params)


def _big_state(seed: int) -> dict:
    """Enough parameters (256 KiB) that 4 KiB in the middle of a data file are values."""
    return {"w": jax.random.normal(jax.random.key(seed), (256, 256)), "step": jnp.int32(seed)}


def _flip_4_kib_mid_file(step_dir):
    """What a bad disk block or a faulty copy does: no size or metadata changes."""
    path = max(_files(step_dir / "default"), key=os.path.getsize)
    middle = os.path.getsize(path) // 2
    with open(path, "r+b") as f:
        f.seek(middle)
        block = f.read(4096)
        f.seek(middle)
        f.write(bytes(b ^ 0xFF for b in block))
    return path


def _garble_one_byte(step_dir):
    path = max(_files(step_dir / "default"), key=os.path.getsize)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(os.path.getsize(path) // 2)
        f.write(bytes([byte[0] ^ 1]))


def test_flipped_bytes_are_caught_by_the_checksum_and_the_step_set_aside(tmp_path, caplog):
    ckpt = Checkpointer(tmp_path, keep=3)
    for step in (1, 2):
        ckpt.save(step, _big_state(step))
    ckpt.wait()
    assert (tmp_path / "checkpoints" / "2" / "checksums.json").exists()
    path = _flip_4_kib_mid_file(tmp_path / "checkpoints" / "2")
    reopened = Checkpointer(tmp_path, keep=3)
    restored = reopened.restore(_big_state(0))
    _assert_equal(restored, _big_state(1))
    assert (
        f"Cannot restore checkpoint 2 of {tmp_path / 'checkpoints'} (DamagedCheckpointError:"
        f" {path} does not match its checksum)"
    ) in caplog.text
    assert os.path.exists(
        str(path).replace(
            str(tmp_path / "checkpoints" / "2"), str(tmp_path / "damaged" / "checkpoints-2")
        )
    )


def _crc32c_bitwise(data: bytes) -> int:
    """CRC32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def test_checksums_are_the_crc32c_of_each_file(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, _state())
    ckpt.wait()
    step_dir = tmp_path / "checkpoints" / "1"
    saved = json.loads((step_dir / "checksums.json").read_text())["crc32c"]
    files = {str(p.relative_to(step_dir)) for p in step_dir.rglob("*") if p.is_file()}
    assert set(saved) == files - {"checksums.json"}
    for relative, crc in saved.items():
        assert int(crc, 16) == _crc32c_bitwise((step_dir / relative).read_bytes()), relative


def test_steps_checksummed_with_crc32_before_crc32c_are_still_verified(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=3)
    for step in (1, 2):
        ckpt.save(step, _state(seed=step))
    ckpt.wait()
    for step in (1, 2):  # the flat {file: CRC32} mapping of earlier versions
        step_dir = tmp_path / "checkpoints" / str(step)
        (step_dir / "checksums.json").write_text(
            json.dumps(
                {
                    relative: f"{zlib.crc32((step_dir / relative).read_bytes()):08x}"
                    for relative in json.loads((step_dir / "checksums.json").read_text())["crc32c"]
                }
            )
        )
    _assert_equal(Checkpointer(tmp_path, keep=3).restore(_state(seed=9)), _state(seed=2))
    _garble_one_byte(tmp_path / "checkpoints" / "2")
    _assert_equal(Checkpointer(tmp_path, keep=3).restore(_state(seed=9)), _state(seed=1))


def test_restore_params_refuses_a_damaged_step_and_eval_falls_back(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=3)
    for step in (1, 2):
        ckpt.save(step, _state(seed=step))
        ckpt.save_best(step, _state(seed=step), float(step))
    ckpt.wait()
    for kind in ("best", "checkpoints"):
        _garble_one_byte(tmp_path / kind / "2")
    abstract = jax.tree.map(jnp.zeros_like, _state().params)
    with pytest.raises(DamagedCheckpointError, match="does not match its checksum"):
        ckpt.restore_params(abstract, 2, "best")
    params, steps = restore_configured(ckpt, abstract, base_config().eval, str(tmp_path))
    assert steps == [1]
    _assert_equal(params, _state(seed=1).params)


def test_training_resumes_from_the_best_when_every_latest_is_damaged(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, _state(seed=step))
        if step == 2:
            ckpt.save_best(step, _state(seed=step), 1.0)
    ckpt.wait()
    for step in (2, 3):
        _garble_one_byte(tmp_path / "checkpoints" / str(step))
    restored = Checkpointer(tmp_path, keep=2).restore(_state(seed=9))
    _assert_equal(restored.opt_state, _state(seed=2).opt_state)


def test_checkpoints_of_another_model_are_kept(tmp_path):
    ckpt = Checkpointer(tmp_path)
    for step in (1, 2):
        ckpt.save(step, _state(seed=step))
    ckpt.wait()
    with pytest.raises(RuntimeError, match=r"can be restored \(steps \[2, 1\]\)"):
        ckpt.restore(_state(features=5))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]


def test_restore_params_reads_the_parameters_alone(tmp_path):
    state = _state()
    ckpt = Checkpointer(tmp_path)
    ckpt.save(7, state)
    ckpt.save_best(7, state, metric_value=1.0)
    ckpt.wait()
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state.params)
    for which in ("latest", "best"):
        _assert_equal(ckpt.restore_params(abstract, 7, which), state.params)
    with pytest.raises(FileNotFoundError, match="No checkpoint for step 8"):
        ckpt.restore_params(abstract, 8)


def test_the_configured_average_of_the_latest_checkpoints(tmp_path):
    config = base_config()
    config.data.update(task="reversal", train_size=50, eval_size=5)
    config.model.update(embed_dim=4, hidden_size=8, attention_dim=8)
    setup = build(config, tmp_path)
    base = setup.state
    for k, step in enumerate((10, 20, 30, 40)):  # keep_checkpoints = 3: 20, 30, 40 stay
        scaled = base.replace(step=step, params=jax.tree.map(lambda p: p * (k + 1), base.params))
        setup.checkpointer.save(step, scaled)
    setup.checkpointer.wait()
    config.eval.average_checkpoints = 3
    params, steps = restore_configured(
        setup.checkpointer, setup.abstract, config.eval, str(tmp_path)
    )
    assert steps == [20, 30, 40]
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(base.params)):
        np.testing.assert_allclose(got, 3.0 * np.asarray(want), rtol=1e-6, atol=1e-7)


def test_a_best_checkpoint_with_cut_metrics_is_set_aside_not_fatal(tmp_path, caplog):
    ckpt = Checkpointer(tmp_path, keep=2, keep_best=2)
    for step in (1, 2):
        ckpt.save(step, _state(seed=step))
        ckpt.save_best(step, _state(seed=step), float(step))
    ckpt.close()
    metrics = tmp_path / "best" / "2" / "metrics" / "metrics"
    metrics.write_text(metrics.read_text()[:3])
    reopened = Checkpointer(tmp_path, keep=2, keep_best=2)
    assert reopened.best_values() == {1: 1.0}
    assert f"Cannot read {metrics}" in caplog.text
    assert (tmp_path / "damaged" / "best-2" / "metrics" / "metrics").exists()
    _assert_equal(reopened.restore(_state(), which="best").params, _state(seed=1).params)
