"""The configuration schema and its validation.

``base_config()`` lists every field with its default and meaning; config files in
``configs/`` start from it and change what they need. The config is locked, so a
misspelt ``--config.x.y=...`` override fails naming the key. :func:`validate` checks
every value before any compute and names the offending key.
"""

import os
import tempfile

import ml_collections

from s2s_jax.data.sources import SOURCES, TOKENIZERS
from s2s_jax.decoding import DECODERS
from s2s_jax.data.tasks import TASKS
from s2s_jax.models.attention import ATTENTIONS
from s2s_jax.models.cells import CELLS
from s2s_jax.models.seq2seq import BRIDGES
from s2s_jax.training.schedules import LEARNING_RATE_SCHEDULES, OPTIMIZERS


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key."""


def base_config() -> ml_collections.ConfigDict:
    """Every field, with defaults for a small attention model on a synthetic task."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # one seed for init, data order, dropout and sampling
    # glibc keeps freed host memory for the next step (s2s_jax/runtime/host_memory.py): faster
    # steps on CPU; the heap never shrinks and may hold a spare step's temporaries.
    config.reuse_host_memory = True
    # The command line caches the XLA programs it compiles here, across runs: a later
    # translate, eval or resumed run compiles nothing ("" = no cache; at most 2 GiB, the
    # least recently used go first; the variable JAX_COMPILATION_CACHE_DIR, if set, wins).
    config.compilation_cache_dir = "~/.cache/s2s_jax/xla"

    config.data = data = ml_collections.ConfigDict()
    data.source = "synthetic"  # synthetic | multi30k | tfds | files (s2s_jax/data/sources.py)
    data.task = "dates"  # synthetic: dates | addition | reversal | copy
    data.train_size = 50_000  # synthetic: generated training pairs
    data.eval_size = 1_000  # synthetic: validation and test pairs (disjoint from train)
    data.src_lang = "en"  # multi30k / tfds / files: source language code
    data.tgt_lang = "de"  # ... and target language code
    data.manual_dir = ""  # multi30k: local copy laid out like shared/data/multi30k
    data.tfds_name = ""  # tfds: catalog name, e.g. "wmt14_translate/de-en"
    data.data_dir = ""  # tfds / multi30k: TFDS data_dir ("" = <workdir>/tfds)
    data.train_path = ""  # files: TSV file, or prefix of <prefix>.<src_lang>/<tgt_lang>
    data.validation_path = ""  # files: same; "" = held out from train_path
    data.test_path = ""  # files: same; "" = held out from train_path
    data.held_out_fraction = 0.01  # files: share of train held out per missing split
    data.tokenizer = "char"  # char | word | sentencepiece
    data.vocab_size = 8_000  # word / sentencepiece vocabulary size
    # sentencepiece: train on a seeded random sample of at most this many training
    # sentences (0: all of them); a corpus no larger is used whole, in order. Unigram
    # training takes ~2.8 KB of memory per sentence of ~120 characters: 500k keeps
    # preprocessing a WMT-sized corpus under 3 GB (benchmarks/corpus_scale.py).
    data.vocab_sample_sentences = 500_000
    data.spm_model_type = "unigram"  # sentencepiece: unigram | bpe
    data.joint_vocab = False  # one vocabulary for source and target
    data.vocab_dir = ""  # where vocabularies are cached ("" = <workdir>/vocab)
    # where the training pairs are kept encoded, keyed by corpus and vocabularies, with
    # the splits held out of a corpus file ("" = <workdir>/records; runs may share one)
    data.records_dir = ""
    data.buckets = ((16, 12), (32, 12))  # fixed (src_len, tgt_len) batch shapes
    data.batch_size = 128  # sentences per global batch (all devices, all hosts)
    data.tokens_per_batch = 0  # > 0: size each bucket's batch to ~this many tokens instead
    data.prefetch = 2  # batches prepared ahead by a background thread
    data.bleu_tokenize = "char"  # sacrebleu tokenizer for BLEU: char | 13a | none

    config.model = model = ml_collections.ConfigDict()
    model.cell = "lstm"  # lstm | gru | rnn, for encoder and decoder
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
    model.unroll = 1  # time steps unrolled per loop iteration (speed only)
    model.remat = False  # recompute recurrent matmuls in the backward pass (less memory)
    model.dtype = "float32"  # matmul dtype: float32 | bfloat16 (state, softmax stay float32)

    config.train = train = ml_collections.ConfigDict()
    train.num_steps = 3_000  # optimizer steps
    train.optimizer = "adam"  # adam | sgd | adadelta (rho 0.95, eps 1e-6, Bahdanau et al.)
    train.learning_rate = 3e-3  # peak learning rate
    train.schedule = "constant"  # constant | step | rsqrt
    train.warmup_steps = 0  # linear warm-up steps (rsqrt schedule; optional otherwise)
    train.decay_start_epoch = 0.0  # step schedule: first decay after this many epochs
    train.decay_every_epochs = 1.0  # step schedule: then every this many epochs
    train.decay_factor = 0.5  # step schedule: multiply the rate by this at each decay
    train.grad_clip_norm = 1.0  # global-norm gradient clipping (0 disables)
    train.label_smoothing = 0.0  # target distribution smoothing
    # Dropout / sampling random bits: rbg (XLA's generator, fast on CPU and GPU) |
    # threefry2x32 (JAX's default: the same bits whatever the device count, slower).
    train.prng_impl = "rbg"
    # Output layer + loss: real tokens per chunk (0: one chunk). Memory holds one chunk's
    # logits, and padding costs nothing past the last chunk.
    train.loss_chunk_tokens = 256
    train.teacher_forcing_start = 1.0  # ratio of gold decoder inputs at step 0
    train.teacher_forcing_end = 1.0  # ratio reached linearly at teacher_forcing_steps
    train.teacher_forcing_steps = 1  # length of the ratio's linear decay
    train.sample_own_inputs = False  # where not forced: sample (True) or argmax (False)
    train.log_every = 100  # steps between training log lines
    train.eval_every = 1_000  # steps between evaluations (and at the end)
    train.checkpoint_every = 500  # steps between checkpoints (and at the end)
    train.keep_checkpoints = 3  # latest checkpoints kept; the best are kept apart:
    train.keep_best_checkpoints = 1  # best checkpoints kept, by train.best_metric
    train.best_metric = "exact_match"  # eval metric that selects the best checkpoint
    train.early_stopping_evals = 0  # > 0: stop when this many evaluations bring no new best
    # > 0: stop at the first log step after this many minutes since the command started
    # (then evaluate, save, and score the test split); a resumed run starts a new clock.
    train.time_budget_minutes = 0.0
    train.best_mode = "max"  # max | min
    train.max_consecutive_nonfinite = 10  # stop after this many skipped updates in a row

    config.eval = evaluation = ml_collections.ConfigDict()
    evaluation.split = "test"  # split decoded by --mode=eval and at the end of training
    evaluation.train_split = "validation"  # split evaluated periodically while training
    evaluation.batch_size = 256  # sentences per decoding batch
    evaluation.decoder = "greedy"  # greedy | beam | sample
    evaluation.beam_size = 5  # beam: hypotheses kept per sentence
    evaluation.alpha = 0.6  # beam: GNMT length penalty ((5 + |Y|) / 6) ** alpha
    evaluation.beta = 0.0  # beam: coverage penalty weight (needs attention)
    evaluation.n_best = 1  # beam: hypotheses returned per sentence
    evaluation.temperature = 1.0  # sample: softmax temperature
    evaluation.top_k = 0  # sample: keep the k most likely tokens (0: all)
    evaluation.sample_seed = 0  # sample: random seed
    evaluation.max_len_a = 1.0  # output length bound a * src_len + b
    evaluation.max_len_b = 10  # (src_len is the padded source length)
    # Non-empty: before scoring eval.split, choose eval.beam_size and eval.alpha among
    # these on eval.train_split by train.best_metric (s2s_jax/evaluation/tuning.py).
    evaluation.tune_beam_sizes = ()
    evaluation.tune_alphas = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    evaluation.checkpoint = "best"  # best | latest | a step number
    evaluation.average_checkpoints = 0  # > 1: the mean parameters of the latest N instead
    # Non-empty: before the beam, keep the checkpoint's parameters or the mean of the
    # latest N for an N among these, whichever decodes eval.train_split best (tuning.py),
    evaluation.tune_average_checkpoints = ()
    evaluation.tune_average_best = ()  # ... or of the best N (train.keep_best_checkpoints)
    evaluation.num_heatmaps = 2  # attention heatmaps written per evaluation
    evaluation.wmt17_bleu = False  # also BLEU as WMT17 multimodal scored it (wmt17.py)
    evaluation.max_input_chars = 10_000  # translate: longer lines are cut (with a warning)

    config.distributed = dist = ml_collections.ConfigDict()
    dist.coordinator_address = ""  # "host:port": multi-process; "auto": detect (TPU, SLURM,
    # Open MPI, ...; then num_processes and process_id are ignored); "": one process
    dist.num_processes = 1  # processes in the job
    dist.process_id = 0  # this process's index

    config.lock()
    return config


# Metrics an evaluation reports (s2s_jax.evaluation.evaluate), any of which can select the best.
EVAL_METRICS = ("exact_match", "bleu", "chrf", "loss", "nll", "perplexity",
                "token_accuracy", "bleu_wmt17")


def _check(ok: bool, key: str, message: str, value) -> None:
    if not ok:
        raise ConfigError(f"config.{key} {message}, got {value!r}")


def _positive(config, *keys: str) -> None:
    for key in keys:
        value = _get(config, key)
        _check(value > 0, key, "must be > 0", value)


def _one_of(config, key: str, choices) -> None:
    value = _get(config, key)
    _check(value in choices, key, f"must be one of {sorted(choices)}", value)


def _get(config, key: str):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the first key whose value cannot work."""
    _one_of(config, "data.source", SOURCES)
    _one_of(config, "data.tokenizer", TOKENIZERS)
    _one_of(config, "data.spm_model_type", ("unigram", "bpe"))
    if config.data.source == "synthetic":
        _one_of(config, "data.task", TASKS)
    _positive(config, "data.train_size", "data.eval_size", "data.batch_size",
              "data.vocab_size",
              "model.embed_dim", "model.hidden_size", "model.encoder_layers",
              "model.decoder_layers", "model.attention_dim", "model.num_heads",
              "model.unroll", "train.num_steps", "train.learning_rate",
              "train.log_every", "train.eval_every", "train.checkpoint_every",
              "train.keep_checkpoints", "train.keep_best_checkpoints",
              "train.teacher_forcing_steps",
              "train.max_consecutive_nonfinite", "eval.batch_size", "eval.max_input_chars")
    beam_sizes, alphas = config.eval.tune_beam_sizes, config.eval.tune_alphas
    _check(all(_is_int(k) and k > 0 for k in beam_sizes),
           "eval.tune_beam_sizes", "must hold positive beam sizes", beam_sizes)
    _check(not beam_sizes or len(alphas) > 0, "eval.tune_alphas",
           "must not be empty when eval.tune_beam_sizes is set", alphas)
    _check(all(isinstance(alpha, (int, float)) and alpha >= 0 for alpha in alphas),
           "eval.tune_alphas",
           "must hold alphas >= 0", alphas)
    _check(config.train.time_budget_minutes >= 0, "train.time_budget_minutes",
           "must be >= 0", config.train.time_budget_minutes)
    _check(config.data.tokens_per_batch >= 0, "data.tokens_per_batch", "must be >= 0",
           config.data.tokens_per_batch)
    buckets = config.data.buckets
    _check(len(buckets) > 0 and all(isinstance(b, (tuple, list)) and len(b) == 2 and
                                    all(_is_int(n) and n > 0 for n in b) for b in buckets),
           "data.buckets", "must be (src_len, tgt_len) pairs of positive sizes", buckets)
    _check(list(buckets) == sorted(buckets), "data.buckets", "must be sorted", buckets)
    for key in ("model.dropout", "train.label_smoothing"):
        _check(0.0 <= _get(config, key) < 1.0, key, "must be in [0, 1)", _get(config, key))
    for key in ("train.teacher_forcing_start", "train.teacher_forcing_end"):
        _check(0.0 <= _get(config, key) <= 1.0, key, "must be in [0, 1]", _get(config, key))
    _one_of(config, "model.cell", CELLS)
    _one_of(config, "model.attention", ATTENTIONS)
    _one_of(config, "model.bridge", BRIDGES)
    _one_of(config, "model.dtype", ("float32", "bfloat16"))
    _one_of(config, "train.prng_impl", ("rbg", "threefry2x32"))
    _one_of(config, "train.optimizer", OPTIMIZERS)
    _one_of(config, "train.schedule", LEARNING_RATE_SCHEDULES)
    _one_of(config, "train.best_mode", ("max", "min"))
    _one_of(config, "train.best_metric", EVAL_METRICS)
    _check(config.eval.average_checkpoints <= config.train.keep_checkpoints,
           "eval.average_checkpoints", f"must be <= train.keep_checkpoints="
           f"{config.train.keep_checkpoints} (the checkpoints kept)",
           config.eval.average_checkpoints)
    for key, kept in (("eval.tune_average_checkpoints", "train.keep_checkpoints"),
                      ("eval.tune_average_best", "train.keep_best_checkpoints")):
        counts, most = _get(config, key), _get(config, kept)
        _check(all(_is_int(n) and 2 <= n <= most for n in counts), key,
               f"each must be in [2, {kept}={most}]", counts)
        _check(not (counts and config.eval.average_checkpoints > 1), key,
               "chooses the average itself: leave eval.average_checkpoints at 0", counts)
    if config.train.best_metric == "bleu_wmt17":
        _check(config.eval.wmt17_bleu, "eval.wmt17_bleu",
               "must be True for train.best_metric='bleu_wmt17'", config.eval.wmt17_bleu)
    for key in ("eval.max_len_a", "eval.max_len_b"):
        _check(_get(config, key) >= 0, key, "must be >= 0", _get(config, key))
    _check(config.eval.max_len_a > 0 or config.eval.max_len_b > 0, "eval.max_len_b",
           "must be > 0 where eval.max_len_a is 0 (the output length bound a * src_len + b)",
           config.eval.max_len_b)
    _one_of(config, "eval.decoder", DECODERS)
    _positive(config, "eval.beam_size", "eval.n_best", "eval.temperature")
    _check(config.eval.n_best <= config.eval.beam_size, "eval.n_best",
           f"must be <= eval.beam_size={config.eval.beam_size}", config.eval.n_best)
    for key in ("eval.alpha", "eval.beta", "eval.top_k", "train.loss_chunk_tokens",
                "data.vocab_sample_sentences",
                "train.early_stopping_evals"):
        _check(_get(config, key) >= 0, key, "must be >= 0", _get(config, key))
    if config.model.attention == "none":
        _check(config.eval.beta == 0, "eval.beta",
               "must be 0 without attention (the coverage penalty needs it)", config.eval.beta)
    model = config.model
    memory_size = model.hidden_size * (2 if model.bidirectional else 1)
    if model.bridge == "copy":
        _check(model.encoder_layers == model.decoder_layers, "model.bridge",
               "'copy' needs encoder_layers == decoder_layers (use 'dense')", model.bridge)
        _check(memory_size == model.hidden_size, "model.bridge",
               "'copy' needs a unidirectional encoder (use 'dense')", model.bridge)
    if model.attention == "dot":
        _check(memory_size == model.hidden_size, "model.attention",
               "'dot' needs memory size == hidden_size (unidirectional encoder)",
               model.attention)
    if model.attention == "multihead":
        _check(model.attention_dim % model.num_heads == 0, "model.attention_dim",
               f"must be divisible by model.num_heads={model.num_heads}",
               model.attention_dim)
    dist = config.distributed
    if dist.coordinator_address not in ("", "auto"):
        _check(dist.coordinator_address.rpartition(":")[2].isdigit(),
               "distributed.coordinator_address", "must be host:port, 'auto' or empty",
               dist.coordinator_address)
        _positive(config, "distributed.num_processes")
        _check(0 <= dist.process_id < dist.num_processes, "distributed.process_id",
               f"must be in [0, distributed.num_processes={dist.num_processes})",
               dist.process_id)


def check_workdir(workdir: str) -> None:
    """Creates ``workdir`` and proves it is writable, or raises ConfigError naming it."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir):
            pass
    except OSError as error:
        raise ConfigError(f"workdir {workdir!r} is not writable: {error}") from error
