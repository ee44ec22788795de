"""Training: the pure ``train_step`` and the ``train_and_evaluate`` loop."""

import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from absl import logging
from clu import metric_writers

from s2s_jax.config import ConfigError
from s2s_jax.data.batching import (
    TooFewExamplesError,
    TrainBatches,
    prefetch,
    token_budget_batch_sizes,
)
from s2s_jax.data.curriculum import CurriculumBatches
from s2s_jax.data.sources import Corpus, load_corpus
from s2s_jax.data.vocab import EOS_ID, PAD_ID, UNK_ID
from s2s_jax.decoding.translator import Translator
from s2s_jax.evaluation import evaluate, parameters, plots
from s2s_jax.models import output_layer, token_metrics
from s2s_jax.runtime import parallel
from s2s_jax.runtime.checkpointing import Checkpointer
from s2s_jax.runtime.preemption import Preemption
from s2s_jax.training import model_files, schedules
from s2s_jax.training.monitor import Meter, NonFiniteRun
from s2s_jax.training.train_state import TrainState, initial_state


def train_step(
    state: TrainState, batch: dict, rng: jax.Array, *, config
) -> tuple[TrainState, dict]:
    """One optimizer step on a (sharded) batch; pure: randomness comes from ``rng``
    folded with the step, so a resumed run repeats the same updates.

    Returns the new state and metric sums (see ``token_metrics.sequence_metrics``).
    """
    train = config.train
    step_rng = jax.random.fold_in(rng, state.step)
    dropout_rng, forcing_rng, sample_rng = jax.random.split(step_rng, 3)
    forced = _forced_inputs(train, state.step, forcing_rng, batch["tgt_in"].shape)

    mask = batch["tgt_mask"] & batch["valid"][:, None]
    rngs = {"dropout": dropout_rng, "sample": sample_rng}
    src = drop_source_words(
        batch["src"], train.source_word_dropout, jax.random.fold_in(step_rng, 3)
    )
    inputs = (src, batch["src_mask"], batch["tgt_in"])

    def loss_fn(params):
        variables = {"params": params}
        if forced is None:  # the output layer and the loss fused, outside the recurrence
            features, kernel, bias = state.apply_fn(
                variables,
                *inputs,
                deterministic=False,
                rngs=rngs,
                method="teacher_forced_pre_logits",
            )
            sums = output_layer.projected_metrics(
                features,
                kernel,
                bias,
                batch["tgt_out"],
                mask,
                train.label_smoothing,
                train.loss_chunk_tokens,
                jnp.dtype(config.model.dtype),
                shards=parallel.data_shards(len(batch["tgt_out"])),
            )
        else:
            logits, _ = state.apply_fn(
                variables,
                *inputs,
                forced=forced,
                sample=train.sample_own_inputs,
                deterministic=False,
                rngs=rngs,
            )
            sums = token_metrics.sequence_metrics(
                logits, batch["tgt_out"], mask, train.label_smoothing
            )
        return sums["loss"] / jnp.maximum(sums["tokens"], 1.0), sums

    grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
    sums["grad_norm"] = optax.tree.norm(grads)
    sums["steps"] = jnp.ones(())
    return apply_if_finite(state, grads, sums, train.ema_decay)


def _forced_inputs(train, step: jax.Array, rng: jax.Array, shape) -> jax.Array | None:
    """``shape`` bool: where the decoder reads the gold token (scheduled sampling, at
    the step's teacher-forcing ratio); None when it reads gold tokens everywhere."""
    if not schedules.uses_scheduled_sampling(train):
        return None
    return jax.random.uniform(rng, shape) < schedules.teacher_forcing_ratio(train, step)


def drop_source_words(src: jax.Array, rate: float, rng: jax.Array) -> jax.Array:
    """``src [B, S]`` with each real token but EOS replaced by UNK at ``rate``
    (``train.source_word_dropout``); ``src`` itself when the rate is 0."""
    if not rate:
        return src
    dropped = jax.random.bernoulli(rng, rate, src.shape) & (src != PAD_ID) & (src != EOS_ID)
    return jnp.where(dropped, UNK_ID, src)


def jit_train_step(config) -> tuple[Callable, jax.Array]:
    """``train_step`` jitted for ``config`` (the state donated), and the run's PRNG key
    (``config.train.prng_impl``): what training and the benchmarks run."""
    step = jax.jit(functools.partial(train_step, config=config), donate_argnums=(0,))
    return step, jax.random.key(config.seed, impl=config.train.prng_impl)


def apply_if_finite(
    state: TrainState, grads, sums: dict, ema_decay: float = 0.0
) -> tuple[TrainState, dict]:
    """``state.apply_gradients(grads)`` (and the parameters' average), unless the loss
    or gradient norm in ``sums`` is not finite: then params, their average and the
    optimizer state stay, ``step`` and ``skipped`` advance, and the step's metric sums
    are zero but for ``sums["skipped"]`` = 1."""
    finite = jnp.isfinite(sums["loss"]) & jnp.isfinite(sums["grad_norm"])
    # A conditional, not a select: the skipped branch costs no pass over the state.
    state = jax.lax.cond(
        finite,
        lambda: state.apply_gradients(grads=grads, ema_decay=ema_decay),
        lambda: state.replace(step=state.step + 1, skipped=state.skipped + 1),
    )
    sums = {key: jnp.where(finite, value, 0.0) for key, value in sums.items()}
    sums["skipped"] = jnp.where(finite, 0.0, 1.0)
    return state, sums


def batch_sizes(data) -> int | list[int]:
    """The global batch size, or one per bucket from the token budget; each a
    multiple of the device count (checked here, before any compute)."""
    devices = jax.device_count()
    if data.tokens_per_batch:
        return token_budget_batch_sizes(data.buckets, data.tokens_per_batch, devices)
    if data.batch_size % devices:
        raise ConfigError(
            f"config.data.batch_size={data.batch_size} is not divisible by the {devices} devices"
        )
    return data.batch_size


def _evaluate(
    evaluator: evaluate.Evaluator, writer, checkpointer, step: int, state: TrainState, config
) -> None:
    """Scores the validation split, logs it with attention heatmaps, and keeps the
    state if it is the best so far."""
    result = evaluator(state.eval_params, config.eval.num_heatmaps)
    metrics = result.metrics
    writer.write_scalars(
        step,
        {f"{evaluator.split}/{k}": v for k, v in metrics.items() if not k.endswith("signature")},
    )
    writer.write_images(
        step,
        {
            f"{evaluator.split}/attention_{i}": plots.attention_heatmap(*heatmap)[None]
            for i, heatmap in enumerate(result.heatmaps)
        },
    )
    logging.info(
        "eval %s at step %d: exact match %.2f, BLEU %.2f, chrF %.2f",
        evaluator.split,
        step,
        metrics["exact_match"],
        metrics["bleu"],
        metrics["chrf"],
    )
    checkpointer.save_best(step, state, metrics[config.train.best_metric])


def training_data(config, workdir: str) -> tuple[Corpus, TrainBatches]:
    """The corpus (its vocabularies and encoded pairs built on a first start, by process
    0 first; opened on later ones) and this process's stream of training batches."""
    corpus = parallel.process_0_first(load_corpus, config, workdir)
    data = config.data
    stream = TrainBatches
    if data.curriculum_steps:
        stream = functools.partial(
            CurriculumBatches, steps=data.curriculum_steps, start=data.curriculum_start
        )
    try:
        return corpus, stream(
            corpus.train,
            batch_sizes(data),
            data.buckets,
            config.seed,
            jax.process_index(),
            jax.process_count(),
        )
    except TooFewExamplesError as error:
        size = "tokens_per_batch" if config.data.tokens_per_batch else "batch_size"
        raise ConfigError(
            f"config.data.{size}={config.data[size]} is too large for the "
            f"training data: {error}; lower it, or widen config.data.buckets"
        ) from None


def train_and_evaluate(config, workdir: str) -> dict[str, float] | None:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint, then
    evaluates the best checkpoint on ``config.eval.split`` and returns its metrics.

    Returns None if SIGTERM stopped training (after saving a checkpoint of the step it
    stopped at, see ``s2s_jax.runtime.preemption``). Raises DivergenceError after
    ``config.train.max_consecutive_nonfinite`` skipped updates in a row.
    """
    deadline = time.monotonic() + 60 * config.train.time_budget_minutes
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    corpus, batches = training_data(config, workdir)
    logging.info(
        "train pairs: %d (dropped for an empty side: %d), filtered (fit no "
        "bucket): %d, skipped: %d; batch shapes (src_len, tgt_len, sentences) %s; "
        "%d steps per epoch; vocabularies %d / %d",
        len(corpus.train),
        corpus.num_dropped,
        batches.num_filtered,
        batches.num_skipped,
        batches.shapes,
        batches.steps_per_epoch,
        corpus.src_vocab.size,
        corpus.tgt_vocab.size,
    )
    model_files.check_same_vocabs(workdir, corpus.src_vocab, corpus.tgt_vocab)
    translator = Translator.build(config, corpus.src_vocab, corpus.tgt_vocab)
    model_files.write(workdir, config, corpus.src_vocab, corpus.tgt_vocab)
    state = initial_state(
        config,
        translator.model,
        schedules.create_optimizer(config.train, batches.steps_per_epoch),
        translator.mesh,
    )
    checkpointer = parameters.make_checkpointer(config, workdir)
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(state)
        logging.info("resuming at step %d", int(state.step))
    try:
        finished = _train(translator, corpus, state, checkpointer, batches, writer, deadline)
    finally:  # a stopped run still completes the checkpoints it started
        checkpointer.wait()
        writer.flush()
    if not finished:
        return None
    return evaluate.run(config, workdir, translator, checkpointer, corpus.splits)


def _no_progress(checkpointer, step: int, train) -> bool:
    """Early stopping: ``train.early_stopping_evals`` evaluations since the best one
    (logged). Derived from the best checkpoint's step, so a resumed run counts the same."""
    best = checkpointer.best_step()
    stop = (
        bool(train.early_stopping_evals)
        and best is not None
        and step - best >= train.early_stopping_evals * train.eval_every
    )
    if stop:
        logging.info(
            "early stopping at step %d: no better %s in %d evaluations (best at step %d)",
            step,
            train.best_metric,
            train.early_stopping_evals,
            best,
        )
    return stop


def _out_of_time(train, deadline: float, step: int) -> bool:
    """Whether ``train.time_budget_minutes`` (if any) ran out, on process 0's clock
    (logged)."""
    out = bool(train.time_budget_minutes) and parallel.process_0_decides(
        time.monotonic() >= deadline
    )
    if out:
        logging.info(
            "time budget of %g minutes spent: training stops at step %d",
            train.time_budget_minutes,
            step,
        )
    return out


def _train(
    translator: Translator,
    corpus: Corpus,
    state: TrainState,
    checkpointer: Checkpointer,
    batches: TrainBatches,
    writer,
    deadline: float,
) -> bool:
    """Trains ``state`` up to ``config.train.num_steps`` or the ``deadline``
    (``time.monotonic()``, with a time budget), evaluating and saving checkpoints on
    the way; returns False if SIGTERM stopped it."""
    config = translator.config
    train = config.train
    step_fn, rng = jit_train_step(config)
    split = config.eval.validation_split
    evaluator = evaluate.Evaluator(translator, corpus.splits[split], split, wmt17_split=split)
    start = int(state.step)
    meter, nonfinite = Meter(writer, train, start), NonFiniteRun(train.max_consecutive_nonfinite)
    stream = prefetch(batches.iterate(start), config.data.prefetch)
    with Preemption() as preemption:
        for step in range(start + 1, train.num_steps + 1):
            batch = parallel.shard_batch(next(stream), translator.mesh)
            state, step_sums = step_fn(state, batch, rng)
            meter.add(step, batch, step_sums)
            nonfinite.push(step, step_sums["skipped"])
            last = step == train.num_steps or (
                step % train.log_every == 0 and _out_of_time(train, deadline, step)
            )
            if step % train.log_every == 0 or last:
                meter.log(step)
            if preemption.reached(step):
                checkpointer.save(step, state)
                logging.warning(
                    "SIGTERM: stopped after saving the checkpoint of step %d; "
                    "the same command resumes",
                    step,
                )
                return False
            if step % train.eval_every == 0 or last:
                with meter.paused("eval"):
                    _evaluate(evaluator, writer, checkpointer, step, state, config)
                if _no_progress(checkpointer, step, train):
                    checkpointer.save(step, state)
                    break
            if step % train.checkpoint_every == 0 or last:
                checkpointer.save(step, state)
            if last:
                break
    nonfinite.flush()
    logging.info(
        "train step batch shapes, each compiled once: %d (buckets: %d)",
        len(meter.shapes),
        len(config.data.buckets),
    )
    return True
