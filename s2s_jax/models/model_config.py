"""The static hyper-parameters of a Seq2Seq model."""

import dataclasses

import jax.numpy as jnp

from s2s_jax.config import model as model_section


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static hyper-parameters of a Seq2Seq model: the vocabulary sizes and every field
    of ``config.model``, whose defaults and meanings ``s2s_jax/config/model.py`` holds
    (``create`` starts from them)."""

    src_vocab_size: int
    tgt_vocab_size: int
    architecture: str
    cell: str
    embed_dim: int
    hidden_size: int
    encoder_layers: int
    decoder_layers: int
    bidirectional: bool
    residual: bool
    reverse_source: bool
    bridge: str
    attention: str
    attention_dim: int
    num_heads: int
    input_feeding: bool
    dropout: float
    tie_embeddings: bool
    share_embeddings: bool
    unroll: int
    remat: bool
    dtype: str

    @classmethod
    def create(cls, src_vocab_size: int, tgt_vocab_size: int, **fields) -> "ModelConfig":
        """``config.model``'s defaults with ``fields`` changed."""
        return cls(
            src_vocab_size, tgt_vocab_size, **{**model_section.defaults().to_dict(), **fields}
        )

    @property
    def memory_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def loop_options(self) -> dict:
        """Execution options of every recurrent layer (they do not change the math)."""
        return dict(unroll=self.unroll, remat=self.remat, dtype=jnp.dtype(self.dtype))
