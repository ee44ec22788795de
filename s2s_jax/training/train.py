"""Training: the pure ``train_step`` and the ``train_and_evaluate`` loop."""

import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from absl import logging
from clu import metric_writers, periodic_actions

from s2s_jax.evaluation import evaluate, parameters, plots
from s2s_jax.models import output_layer, token_metrics
from s2s_jax.runtime import parallel
from s2s_jax.training import model_files, schedules
from s2s_jax.runtime.checkpointing import Checkpointer
from s2s_jax.config import ConfigError
from s2s_jax.data.batching import (TooFewExamplesError, TrainBatches, prefetch,
                                   token_budget_batch_sizes)
from s2s_jax.data.sources import Corpus, load_corpus
from s2s_jax.runtime.preemption import Preemption
from s2s_jax.training.train_state import TrainState, initial_state
from s2s_jax.decoding.translator import Translator


def train_step(state: TrainState, batch: dict, rng: jax.Array, *,
               config) -> tuple[TrainState, dict]:
    """One optimizer step on a (sharded) batch; pure: randomness comes from ``rng``
    folded with the step, so a resumed run repeats the same updates.

    Returns the new state and metric sums (see ``token_metrics.sequence_metrics``).
    """
    train = config.train
    dropout_rng, forcing_rng, sample_rng = jax.random.split(
        jax.random.fold_in(rng, state.step), 3)
    forced = None
    if schedules.uses_scheduled_sampling(train):
        ratio = schedules.teacher_forcing_ratio(train, state.step)
        forced = jax.random.uniform(forcing_rng, batch["tgt_in"].shape) < ratio

    mask = batch["tgt_mask"] & batch["valid"][:, None]
    rngs = {"dropout": dropout_rng, "sample": sample_rng}

    def loss_fn(params):
        variables = {"params": params}
        if forced is None:  # the output layer and the loss fused, outside the recurrence
            features, kernel, bias = state.apply_fn(
                variables, batch["src"], batch["src_mask"], batch["tgt_in"],
                deterministic=False, rngs=rngs, method="teacher_forced_pre_logits")
            sums = output_layer.projected_metrics(
                features, kernel, bias, batch["tgt_out"], mask, train.label_smoothing,
                train.loss_chunk_tokens, jnp.dtype(config.model.dtype),
                shards=parallel.data_shards(len(batch["tgt_out"])))
        else:
            logits, _ = state.apply_fn(
                variables, batch["src"], batch["src_mask"], batch["tgt_in"], forced=forced,
                sample=train.sample_own_inputs, deterministic=False, rngs=rngs)
            sums = token_metrics.sequence_metrics(logits, batch["tgt_out"], mask,
                                           train.label_smoothing)
        return sums["loss"] / jnp.maximum(sums["tokens"], 1.0), sums

    grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
    sums["grad_norm"] = optax.tree.norm(grads)
    sums["steps"] = jnp.ones(())
    return apply_if_finite(state, grads, sums)


def jit_train_step(config) -> tuple[Callable, jax.Array]:
    """``train_step`` jitted for ``config`` (the state donated), and the run's PRNG key
    (``config.train.prng_impl``): what training and the benchmarks run."""
    step = jax.jit(functools.partial(train_step, config=config), donate_argnums=(0,))
    return step, jax.random.key(config.seed, impl=config.train.prng_impl)


def apply_if_finite(state: TrainState, grads, sums: dict) -> tuple[TrainState, dict]:
    """``state.apply_gradients(grads)``, unless the loss or gradient norm in ``sums`` is
    not finite: then params and optimizer state stay, ``step`` and ``skipped`` advance,
    and the step's metric sums are zero but for ``sums["skipped"]`` = 1."""
    finite = jnp.isfinite(sums["loss"]) & jnp.isfinite(sums["grad_norm"])
    # A conditional, not a select: the skipped branch costs no pass over the state.
    state = jax.lax.cond(
        finite, lambda: state.apply_gradients(grads=grads),
        lambda: state.replace(step=state.step + 1, skipped=state.skipped + 1))
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
        raise ConfigError(f"config.data.batch_size={data.batch_size} is not divisible by "
                          f"the {devices} devices")
    return data.batch_size


class DivergenceError(RuntimeError):
    """Too many updates in a row were skipped for a non-finite loss or gradient."""


class NonFiniteRun:
    """Counts consecutive skipped updates, one step late: ``push`` checks the previous
    step's flag, which is ready by then, and never waits for the step just dispatched."""

    def __init__(self, limit: int):
        self.limit = limit  # config.train.max_consecutive_nonfinite
        self.count = 0
        self._pending: tuple[int, jax.Array] | None = None

    def push(self, step: int, skipped: jax.Array) -> None:
        """Records ``step``'s ``sums["skipped"]``; raises DivergenceError once ``limit``
        steps in a row (up to the previous one) were skipped."""
        previous, self._pending = self._pending, (step, skipped)
        if previous is not None:
            self._check(*previous)

    def flush(self) -> None:
        """Checks the last pushed step."""
        if self._pending is not None:
            self._check(*self._pending)
            self._pending = None

    def _check(self, step: int, skipped: jax.Array) -> None:
        self.count = self.count + 1 if float(parallel.fetch(skipped)) else 0
        if self.count >= self.limit:
            raise DivergenceError(
                f"training stopped at step {step}: the loss or gradient was not finite "
                f"at {self.count} steps in a row (config.train.max_consecutive_nonfinite="
                f"{self.limit}); the checkpoints keep the last finite parameters. Lower "
                "config.train.learning_rate or check the data.")


def _log_train(writer, step: int, sums: dict, seconds: float, steps: int,
               num_steps: int) -> None:
    """Logs the metrics of the updates applied in the last ``steps`` steps (``seconds``
    of training) and warns about the skipped ones; steps/s and the ETA are clu's
    ``ReportProgress``'s."""
    metrics = {"skipped": float(sums["skipped"]),
               "tokens_per_sec": float(sums["tokens"]) / seconds}
    applied = float(sums["steps"])
    if applied:
        metrics.update(token_metrics.summarize(sums), grad_norm=float(sums["grad_norm"]) / applied)
    writer.write_scalars(step, {f"train/{k}": v for k, v in metrics.items()})
    if applied:
        logging.info("step %d/%d: loss %.4f, ppl %.2f, %.0f tokens/s", step, num_steps,
                     metrics["loss"], metrics["perplexity"], metrics["tokens_per_sec"])
    if metrics["skipped"]:
        logging.warning("step %d/%d: %d of the last %d updates skipped for a non-finite "
                        "loss or gradient", step, num_steps, metrics["skipped"], steps)


def _evaluate(evaluator: evaluate.Evaluator, writer, checkpointer, step: int,
              state: TrainState, config) -> None:
    """Scores the validation split, logs it with attention heatmaps, and keeps the
    state if it is the best so far."""
    result = evaluator(state.params, config.eval.num_heatmaps)
    metrics = result.metrics
    writer.write_scalars(step, {f"{evaluator.split}/{k}": v for k, v in metrics.items()
                                if not k.endswith("signature")})
    writer.write_images(step, {
        f"{evaluator.split}/attention_{i}": plots.attention_heatmap(*heatmap)[None]
        for i, heatmap in enumerate(result.heatmaps)})
    logging.info("eval %s at step %d: exact match %.2f, BLEU %.2f, chrF %.2f",
                 evaluator.split, step, metrics["exact_match"], metrics["bleu"],
                 metrics["chrf"])
    checkpointer.save_best(step, state, metrics[config.train.best_metric])


def training_data(config, workdir: str) -> tuple[Corpus, TrainBatches]:
    """The corpus (its vocabularies and encoded pairs built on a first start, by process
    0 first; opened on later ones) and this process's stream of training batches."""
    corpus = parallel.process_0_first(load_corpus, config, workdir)
    try:
        return corpus, TrainBatches(corpus.train, batch_sizes(config.data), config.data.buckets,
                                    config.seed, jax.process_index(), jax.process_count())
    except TooFewExamplesError as error:
        size = "tokens_per_batch" if config.data.tokens_per_batch else "batch_size"
        raise ConfigError(f"config.data.{size}={config.data[size]} is too large for the "
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
    writer = metric_writers.create_default_writer(
        workdir, just_logging=jax.process_index() > 0)
    corpus, batches = training_data(config, workdir)
    logging.info("train pairs: %d (dropped for an empty side: %d), filtered (fit no "
                 "bucket): %d, skipped: %d; batch shapes (src_len, tgt_len, sentences) %s; "
                 "%d steps per epoch; vocabularies %d / %d", len(corpus.train),
                 corpus.num_dropped, batches.num_filtered, batches.num_skipped,
                 batches.shapes, batches.steps_per_epoch, corpus.src_vocab.size,
                 corpus.tgt_vocab.size)
    model_files.check_same_vocabs(workdir, corpus.src_vocab, corpus.tgt_vocab)
    translator = Translator.build(config, corpus.src_vocab, corpus.tgt_vocab)
    model_files.write(workdir, config, corpus.src_vocab, corpus.tgt_vocab)
    state = initial_state(config, translator.model,
                          schedules.create_optimizer(config.train, batches.steps_per_epoch),
                          translator.mesh)
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
    """Early stopping: ``train.early_stopping_evals`` evaluations since the best one.
    Derived from the best checkpoint's step, so a resumed run counts the same."""
    best = checkpointer.best_step()
    return bool(train.early_stopping_evals) and best is not None and (
        step - best >= train.early_stopping_evals * train.eval_every)


def _out_of_time(train, deadline: float) -> bool:
    """Whether ``train.time_budget_minutes`` (if any) ran out, on process 0's clock."""
    return bool(train.time_budget_minutes) and parallel.process_0_decides(
        time.monotonic() >= deadline)


def _train(translator: Translator, corpus: Corpus, state: TrainState,
           checkpointer: Checkpointer, batches: TrainBatches, writer, deadline: float) -> bool:
    """Trains ``state`` up to ``config.train.num_steps`` or the ``deadline``
    (``time.monotonic()``, with a time budget), evaluating and saving checkpoints on
    the way; returns False if SIGTERM stopped it."""
    config = translator.config
    train = config.train
    step_fn, rng = jit_train_step(config)
    split = config.eval.validation_split
    evaluator = evaluate.Evaluator(translator, corpus.splits[split], split, wmt17_split=split)
    start = int(state.step)
    sums, last_time, last_step = {}, time.time(), start
    nonfinite = NonFiniteRun(train.max_consecutive_nonfinite)
    progress = periodic_actions.ReportProgress(num_train_steps=train.num_steps, writer=writer,
                                               every_steps=train.log_every, every_secs=None)
    shapes = set()  # of the batches trained on: the train step compiles once for each
    stream = prefetch(batches.iterate(start), config.data.prefetch)
    with Preemption() as preemption:
        for step in range(start + 1, train.num_steps + 1):
            batch = parallel.shard_batch(next(stream), translator.mesh)
            shapes.add(batch["src"].shape + batch["tgt_out"].shape)
            state, step_sums = step_fn(state, batch, rng)
            progress(step)
            nonfinite.push(step, step_sums["skipped"])
            sums = token_metrics.add(sums, step_sums)
            last = step == train.num_steps
            if step % train.log_every == 0 and not last and _out_of_time(train, deadline):
                logging.info("time budget of %g minutes spent: training stops at step %d",
                             train.time_budget_minutes, step)
                last = True
            if step % train.log_every == 0 or last:
                now = time.time()
                _log_train(writer, step, parallel.fetch(sums), now - last_time,
                           step - last_step, train.num_steps)
                sums, last_time, last_step = {}, now, step
            if preemption.reached(step):
                checkpointer.save(step, state)
                logging.warning("SIGTERM: stopped after saving the checkpoint of step %d; "
                                "the same command resumes", step)
                return False
            if step % train.eval_every == 0 or last:
                started = time.time()
                with progress.timed("eval"):
                    _evaluate(evaluator, writer, checkpointer, step, state, config)
                last_time += time.time() - started  # tokens/s counts training time only
                if _no_progress(checkpointer, step, train):
                    checkpointer.save(step, state)
                    logging.info("early stopping at step %d: no better %s in %d evaluations "
                                 "(best at step %d)", step, train.best_metric,
                                 train.early_stopping_evals, checkpointer.best_step())
                    break
            if step % train.checkpoint_every == 0 or last:
                checkpointer.save(step, state)
            if last:
                break
    nonfinite.flush()
    logging.info("train step batch shapes, each compiled once: %d (buckets: %d)",
                 len(shapes), len(config.data.buckets))
    return True
