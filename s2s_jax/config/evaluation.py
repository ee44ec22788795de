"""``config.eval``: which split is scored, how it is decoded and scored, and what is
chosen on the validation split before."""

import ml_collections

from s2s_jax.config.checks import check, get, is_int, non_negative, positive

# Metrics an evaluation reports (s2s_jax/evaluation/evaluate.py); any can select the best.
EVAL_METRICS = (
    "exact_match",
    "bleu",
    "chrf",
    "loss",
    "nll",
    "perplexity",
    "token_accuracy",
    "bleu_wmt17",
)


def defaults() -> ml_collections.ConfigDict:
    evaluation = ml_collections.ConfigDict()
    evaluation.split = "test"  # split decoded by --mode=eval and at the end of training
    evaluation.validation_split = "validation"  # split evaluated periodically while training
    evaluation.bleu_tokenize = "char"  # sacrebleu tokenizer for BLEU: char | 13a | none
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
    # these on eval.validation_split by train.best_metric (s2s_jax/evaluation/tuning.py).
    evaluation.tune_beam_sizes = ()
    evaluation.tune_alphas = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    evaluation.checkpoint = "best"  # best | latest | a step number
    evaluation.average_checkpoints = 0  # > 1: the mean parameters of the latest N instead
    # Non-empty: before the beam, keep the checkpoint's parameters or the mean of the
    # latest N for an N among these, whichever decodes eval.validation_split best,
    evaluation.tune_average_checkpoints = ()
    evaluation.tune_average_best = ()  # ... or of the best N (train.keep_best_checkpoints)
    evaluation.num_heatmaps = 2  # attention heatmaps written per evaluation
    evaluation.wmt17_bleu = False  # also BLEU as WMT17 multimodal scored it (wmt17.py)
    evaluation.max_input_chars = 10_000  # translate: longer lines are cut (with a warning)
    return evaluation


def validate(config) -> None:
    """Checks ``config.eval``, and how it fits ``config.train`` and ``config.model``."""
    evaluation = config.eval
    positive(
        config,
        "eval.batch_size",
        "eval.max_input_chars",
        "eval.beam_size",
        "eval.n_best",
        "eval.temperature",
    )
    non_negative(
        config, "eval.alpha", "eval.beta", "eval.top_k", "eval.max_len_a", "eval.max_len_b"
    )
    check(
        evaluation.max_len_a > 0 or evaluation.max_len_b > 0,
        "eval.max_len_b",
        "must be > 0 where eval.max_len_a is 0 (the output length bound a * src_len + b)",
        evaluation.max_len_b,
    )
    check(
        evaluation.n_best <= evaluation.beam_size,
        "eval.n_best",
        f"must be <= eval.beam_size={evaluation.beam_size}",
        evaluation.n_best,
    )
    if config.model.attention == "none":
        check(
            evaluation.beta == 0,
            "eval.beta",
            "must be 0 without attention (the coverage penalty needs it)",
            evaluation.beta,
        )
    if config.train.best_metric == "bleu_wmt17":
        check(
            evaluation.wmt17_bleu,
            "eval.wmt17_bleu",
            "must be True for train.best_metric='bleu_wmt17'",
            evaluation.wmt17_bleu,
        )
    _validate_tuning(config)


def _validate_tuning(config) -> None:
    """The beam-search grid and the checkpoint averages chosen on validation."""
    evaluation = config.eval
    beam_sizes, alphas = evaluation.tune_beam_sizes, evaluation.tune_alphas
    check(
        all(is_int(k) and k > 0 for k in beam_sizes),
        "eval.tune_beam_sizes",
        "must hold positive beam sizes",
        beam_sizes,
    )
    check(
        not beam_sizes or len(alphas) > 0,
        "eval.tune_alphas",
        "must not be empty when eval.tune_beam_sizes is set",
        alphas,
    )
    check(
        all(isinstance(alpha, (int, float)) and alpha >= 0 for alpha in alphas),
        "eval.tune_alphas",
        "must hold alphas >= 0",
        alphas,
    )
    check(
        evaluation.average_checkpoints <= config.train.keep_checkpoints,
        "eval.average_checkpoints",
        f"must be <= train.keep_checkpoints={config.train.keep_checkpoints} (the checkpoints kept)",
        evaluation.average_checkpoints,
    )
    for key, kept in (
        ("eval.tune_average_checkpoints", "train.keep_checkpoints"),
        ("eval.tune_average_best", "train.keep_best_checkpoints"),
    ):
        counts, most = get(config, key), get(config, kept)
        check(
            all(is_int(n) and 2 <= n <= most for n in counts),
            key,
            f"each must be in [2, {kept}={most}]",
            counts,
        )
        check(
            not (counts and evaluation.average_checkpoints > 1),
            key,
            "chooses the average itself: leave eval.average_checkpoints at 0",
            counts,
        )
