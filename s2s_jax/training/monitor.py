"""What the training loop watches: non-finite updates (``NonFiniteRun``) and the
metrics, speed and progress it logs (``Meter``)."""

import contextlib
import time

import jax
from absl import logging
from clu import periodic_actions

from s2s_jax.models import token_metrics
from s2s_jax.runtime import parallel


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
                "config.train.learning_rate or check the data."
            )


def log_train(writer, step: int, sums: dict, seconds: float, steps: int, num_steps: int) -> None:
    """Logs the metrics of the updates applied in the last ``steps`` steps (``seconds``
    of training) and warns about the skipped ones; steps/s and the ETA are clu's
    ``ReportProgress``'s."""
    metrics = {"skipped": float(sums["skipped"]), "tokens_per_sec": float(sums["tokens"]) / seconds}
    applied = float(sums["steps"])
    if applied:
        metrics.update(token_metrics.summarize(sums), grad_norm=float(sums["grad_norm"]) / applied)
    writer.write_scalars(step, {f"train/{k}": v for k, v in metrics.items()})
    if applied:
        logging.info(
            "step %d/%d: loss %.4f, ppl %.2f, %.0f tokens/s",
            step,
            num_steps,
            metrics["loss"],
            metrics["perplexity"],
            metrics["tokens_per_sec"],
        )
    if metrics["skipped"]:
        logging.warning(
            "step %d/%d: %d of the last %d updates skipped for a non-finite loss or gradient",
            step,
            num_steps,
            metrics["skipped"],
            steps,
        )


class Meter:
    """Sums the metrics of the steps since the last log line and logs them
    (``log_train``), with clu's ``ReportProgress`` for steps/s and the ETA; evaluation
    time (``paused``) is not training time. Also keeps the batch shapes trained on: the
    train step compiles once for each."""

    def __init__(self, writer, train, start: int):
        self.writer, self.num_steps = writer, train.num_steps
        self.sums, self.since, self.last_step = {}, time.time(), start
        self.shapes = set()
        self.progress = periodic_actions.ReportProgress(
            num_train_steps=train.num_steps,
            writer=writer,
            every_steps=train.log_every,
            every_secs=None,
        )

    def add(self, step: int, batch: dict, sums: dict) -> None:
        """Counts ``step``, which trained on ``batch`` and returned ``sums``."""
        self.shapes.add(batch["src"].shape + batch["tgt_out"].shape)
        self.progress(step)
        self.sums = token_metrics.add(self.sums, sums)

    def log(self, step: int) -> None:
        now = time.time()
        log_train(
            self.writer,
            step,
            parallel.fetch(self.sums),
            now - self.since,
            step - self.last_step,
            self.num_steps,
        )
        self.sums, self.since, self.last_step = {}, now, step

    @contextlib.contextmanager
    def paused(self, name: str):
        """Time spent inside is not training time (``ReportProgress`` counts it as
        ``name``)."""
        started = time.time()
        with self.progress.timed(name):
            yield
        self.since += time.time() - started
