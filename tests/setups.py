"""A small model, corpus and checkpointer built from a config, as training builds them."""

import dataclasses
from typing import Any

from s2s_jax.data.sources import Corpus, load_corpus
from s2s_jax.decoding.translator import Translator
from s2s_jax.evaluation.parameters import make_checkpointer
from s2s_jax.runtime.checkpointing import Checkpointer
from s2s_jax.training.schedules import create_optimizer
from s2s_jax.training.train_state import TrainState, initial_state


@dataclasses.dataclass
class Setup:
    corpus: Corpus
    translator: Translator
    state: TrainState
    checkpointer: Checkpointer

    @property
    def abstract(self) -> Any:
        return self.translator.abstract_params()


def build(config, workdir) -> Setup:
    """The corpus, a translator over its vocabularies, a fresh training state and the
    workdir's checkpointer."""
    workdir = str(workdir)
    corpus = load_corpus(config, workdir)
    translator = Translator.build(config, corpus.src_vocab, corpus.tgt_vocab)
    state = initial_state(
        config, translator.model, create_optimizer(config.train, 1), translator.mesh
    )
    return Setup(corpus, translator, state, make_checkpointer(config, workdir))
