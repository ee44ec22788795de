"""What train, eval and translate share: corpus, model, optimizer, mesh, state.

``Experiment.create(config, workdir)`` builds everything a mode needs from the config,
with the training state initialised and replicated on the mesh, and restores it from
the workdir's checkpoints when asked.
"""

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax.training import train_state
from jax.sharding import Mesh

from s2s_jax import parallel
from s2s_jax.checkpointing import Checkpointer
from s2s_jax.data.sources import Corpus, load_corpus
from s2s_jax.models.seq2seq import ModelConfig, Seq2Seq
from s2s_jax.schedules import create_optimizer


class TrainState(train_state.TrainState):
    """Step, params and optimizer state; randomness is derived from (seed, step).

    ``skipped``: int32 [], updates skipped so far for a non-finite loss or gradient.
    """

    skipped: jax.Array | int = 0


@dataclasses.dataclass
class Experiment:
    config: Any
    workdir: str
    corpus: Corpus
    model: Seq2Seq
    mesh: Mesh
    state: TrainState
    checkpointer: Checkpointer

    @classmethod
    def create(cls, config, workdir: str, corpus: Optional[Corpus] = None,
               steps_per_epoch: int = 1) -> "Experiment":
        """``steps_per_epoch`` matters only to epoch-based learning-rate schedules."""
        corpus = corpus or parallel.process_0_first(load_corpus, config, workdir)
        model = Seq2Seq(ModelConfig(src_vocab_size=corpus.src_vocab.size,
                                    tgt_vocab_size=corpus.tgt_vocab.size,
                                    **config.model.to_dict()))
        mesh = parallel.make_mesh()
        tx = create_optimizer(config.train, steps_per_epoch)
        state = initial_state(config, model, tx, mesh)
        checkpointer = Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                    best_metric=config.train.best_metric,
                                    best_mode=config.train.best_mode,
                                    keep_best=config.train.keep_best_checkpoints)
        return cls(config, workdir, corpus, model, mesh, state, checkpointer)

    def restore(self, which: str = "latest") -> bool:
        """Replaces ``state`` by a checkpoint: "latest", "best" or a step number.

        Returns False when the workdir holds no checkpoint of that kind.
        """
        if which.isdigit():
            self.state = self.checkpointer.restore(self.state, step=int(which))
            return True
        step = (self.checkpointer.best_step() if which == "best"
                else self.checkpointer.latest_step())
        if step is None:
            return False
        self.state = self.checkpointer.restore(self.state, which=which)
        logging.info("restored the %s checkpoint, step %d", which, int(self.state.step))
        return True

    def restore_average(self, count: int) -> list[int]:
        """Replaces ``state`` by the latest checkpoint with its parameters replaced by
        the mean of the latest ``count`` checkpoints' parameters; returns their steps."""
        steps = self.checkpointer.steps()[-count:]
        if not steps:
            raise FileNotFoundError(f"no checkpoint to average in {self.workdir!r}")
        latest = self.checkpointer.restore(self.state, step=steps[-1])
        self.state = latest.replace(
            params=mean_params(self.params_of(steps[:-1]) + [latest.params]))
        logging.info("averaged the parameters of checkpoints %s", steps)
        return steps

    def params_of(self, steps: list[int], which: str = "latest") -> list[Any]:
        """The parameters of these checkpoints of ``checkpoints/`` (latest) or ``best/``."""
        return [self.checkpointer.restore(self.state, step=step, which=which).params
                for step in steps]


def mean_params(params: list[Any]) -> Any:
    """The element-wise mean of parameter trees of one structure."""
    return jax.tree.map(lambda *leaves: sum(leaves) / len(leaves), *params)


def initial_state(config, model: Seq2Seq, tx: optax.GradientTransformation,
                  mesh: Mesh) -> TrainState:
    """Freshly initialised parameters (seed ``config.seed``) and optimizer state,
    replicated on ``mesh``."""
    src_len, tgt_len = config.data.buckets[0]
    src = jnp.zeros((1, src_len), jnp.int32)
    tgt = jnp.zeros((1, tgt_len), jnp.int32)
    init = jax.jit(model.init, out_shardings=parallel.replicated(mesh))
    params = init(jax.random.key(config.seed), src, jnp.ones_like(src, bool), tgt)["params"]
    count = sum(np.size(p) for p in jax.tree.leaves(params))
    logging.info("model parameters: %s", f"{count:,}")
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    return parallel.replicate(state, mesh)
