"""model.share_embeddings: one embedding table for source and target, alone or with the
output matrix (three-way tying), in the recurrent model and the Transformer.

The reference is the model with two tables that hold the same values: its outputs must
equal the shared model's, and the shared table's gradient must be the sum of the two
tables' gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.config import ConfigError, base_config
from s2s_jax.models.architectures import ARCHITECTURES
from s2s_jax.models.model_config import ModelConfig
from s2s_jax.registries import validate

B, S, T, V = 3, 7, 5, 19
TOL = dict(rtol=1e-5, atol=1e-6)
RNN = dict(embed_dim=8, hidden_size=12, attention="general", input_feeding=True, dropout=0.0)
TRANSFORMER = dict(
    architecture="transformer", embed_dim=16, hidden_size=16, num_heads=4, dropout=0.0
)
# Where the embedding tables live: (shared, [the separate ones]).
TABLES = {
    "rnn": (("embed",), [("encoder", "embed"), ("decoder", "embed")]),
    "transformer": (("tgt_embed",), [("src_embed",), ("tgt_embed",)]),
}


def _inputs():
    rng = np.random.default_rng(0)
    src_mask = np.arange(S)[None, :] < np.array([7, 4, 2])[:, None]
    src = np.where(src_mask, rng.integers(4, V, (B, S)), 0)
    tgt_in = rng.integers(4, V, (B, T))
    tgt_out = rng.integers(4, V, (B, T))
    return jnp.asarray(src), jnp.asarray(src_mask), jnp.asarray(tgt_in), jnp.asarray(tgt_out)


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _set(tree, path, value):
    tree = dict(tree)
    tree[path[0]] = value if len(path) == 1 else _set(tree[path[0]], path[1:], value)
    return tree


def _pair(fields, tie):
    """(shared model, its params, separate model, the same params with the shared
    table in both of its places, the shared table's path, the separate ones)."""
    name = "transformer" if fields.get("architecture") == "transformer" else "rnn"
    shared_path, separate_paths = TABLES[name]
    src, src_mask, tgt_in, _ = _inputs()
    models, params = [], []
    for share in (True, False):
        config = ModelConfig.create(V, V, share_embeddings=share, tie_embeddings=tie, **fields)
        model = ARCHITECTURES[config.architecture](config)
        models.append(model)
        params.append(model.init(jax.random.key(1), src, src_mask, tgt_in)["params"])
    shared_params = params[0]
    table = _get(shared_params, shared_path)
    separate = {k: v for k, v in shared_params.items() if k != shared_path[0]}
    for path in separate_paths:
        separate = _set(separate, path, table)
    assert jax.tree.structure(separate) == jax.tree.structure(params[1])
    return models[0], shared_params, models[1], separate, shared_path, separate_paths


def _loss(model, params):
    src, src_mask, tgt_in, tgt_out = _inputs()
    logits = model.apply({"params": params}, src, src_mask, tgt_in)
    logits = logits[0] if isinstance(logits, tuple) else logits
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), tgt_out[..., None], -1))


@pytest.mark.parametrize("fields", [RNN, TRANSFORMER], ids=["rnn", "transformer"])
@pytest.mark.parametrize("tie", [False, True], ids=["two-way", "three-way"])
def test_sharing_equals_two_equal_tables_and_sums_their_gradients(fields, tie):
    shared, shared_params, separate, separate_params, shared_path, paths = _pair(fields, tie)
    n_shared = sum(np.size(p) for p in jax.tree.leaves(shared_params))
    n_separate = sum(np.size(p) for p in jax.tree.leaves(separate_params))
    assert n_separate - n_shared == V * fields["embed_dim"]  # one table fewer
    loss, grads = jax.value_and_grad(_loss, argnums=1)(shared, shared_params)
    ref_loss, ref_grads = jax.value_and_grad(_loss, argnums=1)(separate, separate_params)
    np.testing.assert_allclose(loss, ref_loss, **TOL)
    tables = [_get(ref_grads, path)["embedding"] for path in paths]
    np.testing.assert_allclose(_get(grads, shared_path)["embedding"], sum(tables), **TOL)
    for table in tables:  # both sides train the table
        assert np.abs(table).sum() > 0


def test_sharing_needs_a_joint_vocabulary():
    config = base_config()
    config.model.share_embeddings = True
    with pytest.raises(ConfigError, match="model.share_embeddings"):
        validate(config)
    config.data.joint_vocab = True
    validate(config)
