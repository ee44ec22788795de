"""``config.train``: the optimizer, its schedules, and when to log, evaluate, save, stop."""

import ml_collections

from s2s_jax.config.checks import check, get, non_negative, one_of, positive
from s2s_jax.config.evaluation import EVAL_METRICS


def defaults() -> ml_collections.ConfigDict:
    train = ml_collections.ConfigDict()
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
    # Rate at which training replaces real source tokens (EOS kept) by UNK, as word
    # dropout (Sennrich et al. 2016; Marian's --dropout-src): 0 disables.
    train.source_word_dropout = 0.0
    # > 0: also keep an exponential moving average of the parameters with this decay,
    # min(decay, (1 + t) / (10 + t)) at step t, and evaluate, select, export and translate
    # with it (Polyak averaging; Marian's --exponential-smoothing). 0 disables.
    train.ema_decay = 0.0
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
    return train


def validate(config) -> None:
    positive(
        config,
        "train.num_steps",
        "train.learning_rate",
        "train.log_every",
        "train.eval_every",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.keep_best_checkpoints",
        "train.teacher_forcing_steps",
        "train.max_consecutive_nonfinite",
    )
    non_negative(
        config, "train.time_budget_minutes", "train.loss_chunk_tokens", "train.early_stopping_evals"
    )
    for key in ("train.label_smoothing", "train.source_word_dropout", "train.ema_decay"):
        check(0.0 <= get(config, key) < 1.0, key, "must be in [0, 1)", get(config, key))
    for key in ("train.teacher_forcing_start", "train.teacher_forcing_end"):
        check(0.0 <= get(config, key) <= 1.0, key, "must be in [0, 1]", get(config, key))
    one_of(config, "train.prng_impl", ("rbg", "threefry2x32"))
    one_of(config, "train.best_mode", ("max", "min"))
    one_of(config, "train.best_metric", EVAL_METRICS)
