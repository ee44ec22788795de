"""Every family a config field chooses a member of (sources, tokenizers, cells, ...),
and the whole check of a config: the schema's values (``s2s_jax.config.validate``),
then the names each family offers, checked by the family's ``Registry``."""

import ml_collections

from s2s_jax import config as config_lib
from s2s_jax.data.sources import SOURCES
from s2s_jax.data.tasks import TASKS
from s2s_jax.data.vocabularies import TOKENIZERS
from s2s_jax.decoding import DECODERS
from s2s_jax.models.architectures import ARCHITECTURES
from s2s_jax.models.attention import ATTENTIONS
from s2s_jax.models.cells import CELLS
from s2s_jax.models.seq2seq import BRIDGES
from s2s_jax.training.schedules import LEARNING_RATE_SCHEDULES, OPTIMIZERS

REGISTRIES = (
    SOURCES,
    TASKS,
    TOKENIZERS,
    ARCHITECTURES,
    CELLS,
    ATTENTIONS,
    BRIDGES,
    LEARNING_RATE_SCHEDULES,
    OPTIMIZERS,
    DECODERS,
)


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the first key whose value cannot work."""
    for registry in REGISTRIES:
        registry.check(config)
    config_lib.validate(config)
