"""``config.model``: the architecture (every field but the vocabulary sizes of
``s2s_jax.models.model_config.ModelConfig``, which takes its defaults from here)."""

import ml_collections

from s2s_jax.config.checks import check, get, one_of, positive


def defaults() -> ml_collections.ConfigDict:
    model = ml_collections.ConfigDict()
    model.architecture = "rnn"  # rnn | transformer
    model.cell = "lstm"  # lstm | ln_lstm (layer-normalised) | gru | rnn, encoder and decoder
    model.embed_dim = 64  # source and target embedding size
    model.hidden_size = 128  # decoder state size; each encoder direction's size
    model.encoder_layers = 1  # stacked encoder layers
    model.decoder_layers = 1  # stacked decoder layers
    model.bidirectional = True  # bidirectional encoder (memory size 2 * hidden_size)
    model.residual = False  # residual connections between stacked layers
    model.reverse_source = False  # feed the source reversed (Sutskever et al. 2014)
    model.bridge = "dense"  # encoder final state -> decoder: copy | dense | zeros
    model.attention = "bahdanau"  # none | bahdanau | dot | general | local_p | concat | multihead
    model.attention_dim = 128  # additive / local-p hidden size, multi-head width
    model.num_heads = 4  # heads of multihead attention
    model.input_feeding = False  # feed the previous attentional vector (Luong et al.)
    model.dropout = 0.1  # embedding, between-layer and output dropout
    model.tie_embeddings = False  # share target embedding and output matrix
    # one embedding for source and target (needs data.joint_vocab); with tie_embeddings
    # the output matrix too: three-way tying (Press & Wolf 2017; Marian's
    # --tied-embeddings-all, fairseq's --share-all-embeddings)
    model.share_embeddings = False
    model.unroll = 1  # time steps unrolled per loop iteration (speed only)
    model.remat = False  # recompute recurrent matmuls in the backward pass (less memory)
    model.dtype = "float32"  # matmul dtype: float32 | bfloat16 (state, softmax stay float32)
    return model


def validate(config) -> None:
    positive(
        config,
        "model.embed_dim",
        "model.hidden_size",
        "model.encoder_layers",
        "model.decoder_layers",
        "model.attention_dim",
        "model.num_heads",
        "model.unroll",
    )
    check(
        0.0 <= get(config, "model.dropout") < 1.0,
        "model.dropout",
        "must be in [0, 1)",
        config.model.dropout,
    )
    one_of(config, "model.dtype", ("float32", "bfloat16"))
    check(
        config.data.joint_vocab or not config.model.share_embeddings,
        "model.share_embeddings",
        "needs one vocabulary for source and target: set data.joint_vocab=True",
        config.model.share_embeddings,
    )
    if config.model.architecture == "transformer":
        _validate_transformer(config)
    else:
        _validate_rnn(config)


def _validate_rnn(config) -> None:
    """What the recurrent model's bridge and attention need of the other fields."""
    model = config.model
    memory_size = model.hidden_size * (2 if model.bidirectional else 1)
    if model.bridge == "copy":
        check(
            model.encoder_layers == model.decoder_layers,
            "model.bridge",
            "'copy' needs encoder_layers == decoder_layers (use 'dense')",
            model.bridge,
        )
        check(
            memory_size == model.hidden_size,
            "model.bridge",
            "'copy' needs a unidirectional encoder (use 'dense')",
            model.bridge,
        )
    if model.attention == "dot":
        check(
            memory_size == model.hidden_size,
            "model.attention",
            "'dot' needs memory size == hidden_size (unidirectional encoder)",
            model.attention,
        )
    if model.attention == "multihead":
        check(
            model.attention_dim % model.num_heads == 0,
            "model.attention_dim",
            f"must be divisible by model.num_heads={model.num_heads}",
            model.attention_dim,
        )


def _validate_transformer(config) -> None:
    """What the transformer needs of the other fields."""
    model = config.model
    check(
        model.embed_dim == model.hidden_size,
        "model.embed_dim",
        f"the transformer needs embed_dim == hidden_size={model.hidden_size}",
        model.embed_dim,
    )
    check(
        model.hidden_size % model.num_heads == 0,
        "model.hidden_size",
        f"the transformer needs it divisible by model.num_heads={model.num_heads}",
        model.hidden_size,
    )
    train = config.train
    check(
        min(train.teacher_forcing_start, train.teacher_forcing_end) >= 1.0,
        "model.architecture",
        "has no scheduled sampling: set train.teacher_forcing_start/end to 1.0",
        model.architecture,
    )
    # Its decoding cache holds 2 * src_len + 16 tokens (models/transformer.py:
    # cache_length): the output length bound must stay within it.
    evaluation = config.eval
    check(
        evaluation.max_len_a <= 2 and evaluation.max_len_b <= 16,
        "eval.max_len_a",
        "and eval.max_len_b must be <= 2 and <= 16 for the transformer (its decoding "
        f"cache holds 2 * src_len + 16 tokens); max_len_b={evaluation.max_len_b}",
        evaluation.max_len_a,
    )
