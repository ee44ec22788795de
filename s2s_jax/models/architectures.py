"""The model families ``config.model.architecture`` chooses among."""

from flax import linen as nn

from s2s_jax.config.registry import Registry
from s2s_jax.models.seq2seq import Seq2Seq
from s2s_jax.models.transformer import Transformer

# name -> module class, constructed from a ModelConfig; each has Seq2Seq's methods.
ARCHITECTURES: Registry[type[nn.Module]] = Registry(
    "model.architecture", {"rnn": Seq2Seq, "transformer": Transformer}
)
