"""The paper configs (configs/paper.py) validate and build their models."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2s_jax.models.seq2seq import ModelConfig, Seq2Seq
from s2s_jax.registries import validate
from s2s_jax.training.schedules import create_optimizer

_PATH = pathlib.Path(__file__).resolve().parent.parent / "configs" / "paper.py"
_spec = importlib.util.spec_from_file_location("paper", _PATH)
paper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paper)


@pytest.mark.parametrize("name", sorted(paper.PAPERS))
def test_paper_config_validates_and_builds(name):
    config = paper.get_config(name)
    validate(config)
    vocab = config.data.vocab_size
    model = Seq2Seq(
        ModelConfig.create(src_vocab_size=vocab, tgt_vocab_size=vocab, **config.model.to_dict())
    )
    src = jnp.zeros((2, 10), jnp.int32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), src, src >= 0, src)["params"]
    count = sum(np.prod(s.shape) for s in jax.tree.leaves(shapes))
    # 4x1000 LSTMs and 1000-wide GRUs with tens of thousands of words: large models.
    assert count > 50_000_000, count
    optimizer = create_optimizer(config.train, steps_per_epoch=1_000)
    optimizer.init({"w": jnp.zeros(3)})  # adadelta, sgd: the optimizer exists


def test_unknown_paper_is_named():
    with pytest.raises(ValueError, match="luong2015"):
        paper.get_config("vaswani2017")
