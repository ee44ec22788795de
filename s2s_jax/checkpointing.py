"""Checkpointing of training state with Orbax.

This is the only module of the package that imports Orbax. A `Checkpointer`
owns two `orbax.checkpoint.CheckpointManager`s under a work directory:

  * `<workdir>/checkpoints`: the most recent `keep` checkpoints, for resuming.
  * `<workdir>/best`: the single best checkpoint according to a metric.

Saves are asynchronous: `save` returns once the arrays have been copied to host
memory (so the state may be donated or updated right away) and the files are
written in the background. Orbax writes each step into a temporary directory
and renames it when complete, so unfinished steps are never reported.

All methods must be called on every JAX process; Orbax coordinates the
processes and decides which one writes shared files.
"""

import logging
import math
import os
from typing import Any, Literal

import jax
import orbax.checkpoint as ocp

PyTree = Any


def _not_orbax_info(record: logging.LogRecord) -> bool:
    """Orbax logs dozens of INFO lines per save through absl; keep its warnings only."""
    return record.levelno >= logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


logging.getLogger("absl").addFilter(_not_orbax_info)


class Checkpointer:
    """Saves and restores the latest and the best training state.

    Usage::

        ckpt = Checkpointer(workdir, keep=3, best_metric="bleu")
        if ckpt.latest_step() is not None:
            state = ckpt.restore(state)
        ...
        ckpt.save(step, state)
        ckpt.save_best(step, state, metric_value=bleu)
        ...
        ckpt.close()
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        keep: int = 3,
        best_metric: str = "bleu",
        best_mode: Literal["max", "min"] = "max",
    ):
        """Creates (or reopens) the checkpoint directories under `workdir`.

        Args:
            workdir: Root directory; `checkpoints/` and `best/` are created in
                it.
            keep: Number of most recent checkpoints to keep.
            best_metric: Name of the metric stored with the best checkpoint.
            best_mode: Whether a larger ("max") or smaller ("min") metric value
                is better.
        """
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}.")
        workdir = os.fspath(workdir)
        if "://" not in workdir:  # Orbax needs absolute paths; keep gs://... as is
            workdir = os.path.abspath(workdir)
        self.best_metric = best_metric
        self.best_mode = best_mode

        self._latest = ocp.CheckpointManager(
            os.path.join(workdir, "checkpoints"),
            options=ocp.CheckpointManagerOptions(
                preservation_policy=ocp.checkpoint_managers.LatestN(n=keep),
                cleanup_tmp_directories=True,
            ),
        )

        def metric_fn(metrics: dict[str, float]) -> float:
            return metrics[best_metric]

        self._best = ocp.CheckpointManager(
            os.path.join(workdir, "best"),
            options=ocp.CheckpointManagerOptions(
                # `best_fn` makes Orbax write the metrics next to each step and
                # reload them on restart; `BestN` deletes all but the best.
                best_fn=metric_fn,
                best_mode=best_mode,
                preservation_policy=ocp.checkpoint_managers.BestN(
                    get_metric_fn=metric_fn,
                    reverse=best_mode == "min",
                    n=1,
                    keep_checkpoints_without_metrics=False,
                ),
                cleanup_tmp_directories=True,
            ),
        )
        best_step = self._best.best_step()
        self._best_value: float | None = (
            None if best_step is None else metric_fn(self._best.metrics(best_step))
        )

    def save(self, step: int, state: PyTree, *, force: bool = False) -> bool:
        """Starts an asynchronous save of `state` as the latest checkpoint.

        Args:
            step: Training step; must be larger than the latest saved step.
            state: Pytree of arrays, e.g. a flax `TrainState`.
            force: Save even if Orbax's save policy would skip this step.

        Returns:
            Whether a save was started.
        """
        return self._latest.save(
            step, args=ocp.args.StandardSave(state), force=force
        )

    def save_best(self, step: int, state: PyTree, metric_value: float) -> bool:
        """Saves `state` as the best checkpoint if `metric_value` improves.

        The best value so far is read back from disk on construction, so
        improvements are judged across restarts.

        Args:
            step: Training step the metric was measured at.
            state: Pytree of arrays, e.g. a flax `TrainState`.
            metric_value: Value of `best_metric` for `state`.

        Returns:
            Whether `state` was saved (non-finite values are never saved).
        """
        metric_value = float(metric_value)
        if not math.isfinite(metric_value) or not self._improves(metric_value):
            return False
        if step in self._best.all_steps():
            # After resuming from an older checkpoint the same step can be
            # reached again; Orbax refuses to overwrite an existing step.
            self._best.wait_until_finished()
            self._best.delete(step)
        self._best.save(
            step,
            args=ocp.args.StandardSave(state),
            metrics={self.best_metric: metric_value},
            force=True,  # Bypass the policy that steps must increase.
        )
        self._best_value = metric_value
        return True

    def _improves(self, metric_value: float) -> bool:
        if self._best_value is None:
            return True
        if self.best_mode == "max":
            return metric_value > self._best_value
        return metric_value < self._best_value

    @property
    def best_value(self) -> float | None:
        """The metric value of the best checkpoint, or None if there is none."""
        return self._best_value

    def latest_step(self) -> int | None:
        """Returns the latest finished (or in-flight) step, or None."""
        return self._latest.latest_step()

    def best_step(self) -> int | None:
        """Returns the step of the best checkpoint, or None."""
        return self._best.best_step()

    def restore(
        self,
        target: PyTree,
        step: int | None = None,
        which: Literal["latest", "best"] = "latest",
    ) -> PyTree:
        """Restores a checkpoint into the structure and shardings of `target`.

        Args:
            target: Pytree with the wanted structure, shapes, dtypes and
                shardings, e.g. a freshly initialised `TrainState`. Only its
                abstract values are used.
            step: Step to restore; defaults to the latest (or best) step.
            which: "latest" restores from `checkpoints/`, "best" from `best/`.

        Returns:
            A pytree like `target` holding the restored values.

        Raises:
            FileNotFoundError: If there is no checkpoint (for `step`).
        """
        if which == "latest":
            manager, default_step = self._latest, self.latest_step()
        elif which == "best":
            manager, default_step = self._best, self.best_step()
        else:
            raise ValueError(f"which must be 'latest' or 'best', got {which!r}.")
        step = default_step if step is None else step
        if step is None:
            raise FileNotFoundError(f"No checkpoint found in {manager.directory}.")
        if step not in manager.all_steps():
            raise FileNotFoundError(
                f"No checkpoint for step {step} in {manager.directory}; "
                f"available steps: {list(manager.all_steps())}."
            )
        manager.wait_until_finished()
        abstract_target = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return manager.restore(step, args=ocp.args.StandardRestore(abstract_target))

    def wait(self) -> None:
        """Blocks until all asynchronous saves have been written."""
        self._latest.wait_until_finished()
        self._best.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases Orbax resources."""
        self._latest.close()
        self._best.close()
