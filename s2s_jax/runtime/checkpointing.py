"""Checkpointing of training state with Orbax.

`save_tree` and `restore_tree` write and read one pytree (an export's parameters).
A `Checkpointer` owns two `orbax.checkpoint.CheckpointManager`s under a work
directory, opened by `checkpoint_managers` (the only other module of the package
that imports Orbax):

  * `<workdir>/checkpoints`: the most recent `keep` checkpoints, for resuming.
  * `<workdir>/best`: the single best checkpoint according to a metric.

Saves are asynchronous: `save` returns once the arrays have been copied to host
memory (so the state may be donated or updated right away) and the files are
written in the background. Orbax writes each step into a temporary directory
and renames it when complete, so unfinished steps are never reported. Once a
step is written, `<step>/checksums.json` records the CRC32C of each of its files
(`s2s_jax.runtime.checksums`, at the next save or `wait`); restore verifies them
first, so a step whose files were garbled or cut later is skipped, with one
warning naming the step and the file, for the one before it (the latest ones,
then the best).

All methods must be called on every JAX process; Orbax coordinates the
processes and decides which one writes shared files.
"""

import logging as std_logging
import math
import os
from typing import Any, Literal

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from s2s_jax.runtime import checkpoint_managers, checksums

PyTree = Any


def _not_orbax_info(record: std_logging.LogRecord) -> bool:
    """Orbax logs dozens of INFO lines per save through absl; keep its warnings only."""
    return record.levelno >= std_logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


std_logging.getLogger("absl").addFilter(_not_orbax_info)
# The directory of a step's one unnamed item, as Orbax names it.
_ITEM = "default"


def _on_every_process(ok: bool) -> bool:
    """Whether `ok` holds on every JAX process, so that all restore the same step."""
    if jax.process_count() == 1:
        return ok
    return bool(multihost_utils.process_allgather(np.array(ok)).all())


class Checkpointer:
    """Saves and restores the latest and the best training state.

    Usage::

        ckpt = Checkpointer(workdir, keep=3, best_metric="bleu", keep_best=1)
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
        keep_best: int = 1,
        params_field: str = "params",
    ):
        """Creates (or reopens) the checkpoint directories under `workdir`.

        Args:
            workdir: Root directory; `checkpoints/` and `best/` are created in
                it.
            keep: Number of most recent checkpoints to keep.
            best_metric: Name of the metric stored with the best checkpoint.
            best_mode: Whether a larger ("max") or smaller ("min") metric value
                is better.
            keep_best: Number of best checkpoints to keep in `best/`.
            params_field: The field of the saved state that `restore_params`
                reads ("ema_params" for a moving average of the parameters).
        """
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}.")
        workdir = os.fspath(workdir)
        if "://" not in workdir:  # Orbax needs absolute paths; keep gs://... as is
            workdir = os.path.abspath(workdir)
        self.best_metric = best_metric
        self.best_mode = best_mode
        self.keep_best = keep_best
        self.params_field = params_field

        for kind in ("checkpoints", "best"):
            checkpoint_managers.remove_unfinished_saves(os.path.join(workdir, kind))
        self._latest = checkpoint_managers.latest_manager(
            os.path.join(workdir, "checkpoints"), keep
        )

        def metric_fn(metrics: dict[str, float]) -> float:
            return metrics[best_metric]

        checkpoint_managers.set_aside_unreadable_metrics(os.path.join(workdir, "best"))
        self._best = checkpoint_managers.best_manager(
            os.path.join(workdir, "best"), metric_fn, best_mode, keep_best
        )
        # The metric of each kept best checkpoint by step, read back from disk once.
        self._best_values: dict[int, float] = {
            step: metric_fn(self._best.metrics(step)) for step in self._best.all_steps()
        }
        # Steps saved whose checksums are still to be written, once their files are.
        self._unsealed: list[tuple[ocp.CheckpointManager, int]] = []

    def _seal_written(self) -> None:
        """Writes the checksums of the steps saved since the last call (waiting for
        their files: a save waits for the one before anyway)."""
        for manager, step in self._unsealed:
            manager.wait_until_finished()
            step_dir = os.path.join(os.fspath(manager.directory), str(step))
            if jax.process_index() == 0 and os.path.isdir(step_dir):
                checksums.seal(step_dir)
        self._unsealed = []

    def save(self, step: int, state: PyTree, *, force: bool = False) -> bool:
        """Starts an asynchronous save of `state` as the latest checkpoint.

        Args:
            step: Training step; must be larger than the latest saved step.
            state: Pytree of arrays, e.g. a flax `TrainState`.
            force: Save even if Orbax's save policy would skip this step.

        Returns:
            Whether a save was started.
        """
        self._seal_written()
        started = self._latest.save(step, args=ocp.args.StandardSave(state), force=force)
        if started:
            self._unsealed.append((self._latest, step))
        return started

    def save_best(self, step: int, state: PyTree, metric_value: float) -> bool:
        """Saves `state` among the best checkpoints if `metric_value` is better
        than the worst of the `keep_best` kept (or fewer are kept).

        The kept values are read back from disk, so they are judged across
        restarts.

        Args:
            step: Training step the metric was measured at.
            state: Pytree of arrays, e.g. a flax `TrainState`.
            metric_value: Value of `best_metric` for `state`.

        Returns:
            Whether `state` was saved (non-finite values are never saved).
        """
        metric_value = float(metric_value)
        values = list(self.best_values().values())
        if not math.isfinite(metric_value) or (
            len(values) >= self.keep_best and not self._better(metric_value, values[-1])
        ):
            return False
        self._seal_written()
        self._best_values.pop(step, None)
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
        self._unsealed.append((self._best, step))
        self._best_values[step] = metric_value
        self._best_values = dict(list(self.best_values().items())[: self.keep_best])
        return True

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.best_mode == "max" else value < than

    def best_values(self) -> dict[int, float]:
        """The metric value of each kept best checkpoint by step, the best first
        (among equals the later step first: the one Orbax's `BestN` keeps)."""
        sign = -1 if self.best_mode == "max" else 1
        return dict(sorted(self._best_values.items(), key=lambda item: (sign * item[1], -item[0])))

    def latest_step(self) -> int | None:
        """Returns the latest finished (or in-flight) step, or None."""
        return self._latest.latest_step()

    def steps(self) -> list[int]:
        """The steps of the kept latest checkpoints, oldest first."""
        return sorted(self._latest.all_steps())

    def best_step(self) -> int | None:
        """Returns the step of the best checkpoint, or None."""
        return next(iter(self.best_values()), None)

    def restore(
        self,
        target: PyTree,
        step: int | None = None,
        which: Literal["latest", "best"] = "latest",
    ) -> PyTree:
        """Restores a checkpoint into the structure and shardings of `target`.

        Without `step`, restores the newest checkpoint that can be read: one
        whose files are damaged (checksum mismatch, cut or unreadable) is passed
        over with a warning for the next: of `which` newest first, then of the
        other kind (each holds whole training states). Once one is restored, the
        damaged ones are moved to `<workdir>/damaged/` (never deleted), so that
        training can save their steps again.

        Args:
            target: Pytree with the wanted structure, shapes, dtypes and
                shardings, e.g. a freshly initialised `TrainState`. Only its
                abstract values are used.
            step: Step to restore (of `which`); defaults to the newest readable.
            which: "latest" restores from `checkpoints/` first, "best" from `best/`.

        Returns:
            A pytree like `target` holding the restored values.

        Raises:
            FileNotFoundError: If there is no checkpoint (for `step`).
            RuntimeError: If no checkpoint can be read (e.g. `target` has another
                structure); the first candidate's error is its cause.
        """
        if which not in ("latest", "best"):
            raise ValueError(f"which must be 'latest' or 'best', got {which!r}.")
        manager = self._latest if which == "latest" else self._best
        if step is not None:
            if step not in manager.all_steps():
                raise FileNotFoundError(
                    f"No checkpoint for step {step} in {manager.directory}; "
                    f"available steps: {list(manager.all_steps())}."
                )
            return self._restore(manager, step, target)
        latest = [(self._latest, s) for s in sorted(self._latest.all_steps(), reverse=True)]
        best = [(self._best, s) for s in self.best_values()]
        candidates = latest + best if which == "latest" else best + latest
        if not candidates:
            raise FileNotFoundError(f"No checkpoint found in {manager.directory}.")
        return self._restore_first_readable(candidates, target)

    def _restore_first_readable(
        self, candidates: list[tuple[ocp.CheckpointManager, int]], target: PyTree
    ) -> PyTree:
        """Restores the first of ``candidates`` (manager, step) that every process can
        read, then sets aside the damaged ones before it (see `restore`)."""
        errors: dict[tuple[ocp.CheckpointManager, int], Exception] = {}
        for candidate in candidates:
            try:
                restored, error = self._restore(*candidate, target), None
            except Exception as e:  # noqa: BLE001 - bad files raise many error types
                restored, error = None, e
            if _on_every_process(error is None):
                for damaged in errors:
                    self._set_aside(*damaged)
                return restored
            logging.warning(
                "Cannot restore checkpoint %s of %s (%s: %s).",
                candidate[1],
                candidate[0].directory,
                type(error).__name__,
                error,
            )
            errors[candidate] = error
        raise RuntimeError(
            f"No checkpoint in {self._latest.directory} or {self._best.directory} can be "
            f"restored (steps {[step for _, step in errors]}); the first one's error is "
            "above."
        ) from errors[candidates[0]]

    def _set_aside(self, manager: ocp.CheckpointManager, step: int) -> None:
        """Moves a damaged step out of the manager's sight (`checkpoint_managers.set_aside`)
        and forgets its metric."""
        checkpoint_managers.set_aside(manager, step)
        if manager is self._best:
            self._best_values.pop(step, None)

    def restore_params(
        self, abstract_params: PyTree, step: int, which: Literal["latest", "best"] = "latest"
    ) -> PyTree:
        """Reads only the parameters of checkpoint `step` of `which`: no optimizer
        state is read or allocated (what eval, translate and export need).

        Args:
            abstract_params: `jax.ShapeDtypeStruct`s (with shardings) of the
                parameters, the `params_field` field of the saved state.
            step: A step of `steps()` (latest) or of `best_values()` (best).
            which: "latest" or "best".

        Raises:
            FileNotFoundError: If there is no such checkpoint.
        """
        manager = self._latest if which == "latest" else self._best
        if step not in manager.all_steps():
            raise FileNotFoundError(f"No checkpoint for step {step} in {manager.directory}.")
        manager.wait_until_finished()
        checksums.verify(os.path.join(os.fspath(manager.directory), str(step)))
        target = {self.params_field: abstract_params}
        restored = ocp.PyTreeCheckpointer().restore(
            os.path.join(manager.directory, str(step), _ITEM),
            args=ocp.args.PyTreeRestore(
                item=target,
                restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                partial_restore=True,
            ),
        )
        return restored[self.params_field]

    @staticmethod
    def _restore(manager: ocp.CheckpointManager, step: int, target: PyTree) -> PyTree:
        manager.wait_until_finished()
        checksums.verify(os.path.join(os.fspath(manager.directory), str(step)))
        abstract_target = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return manager.restore(step, args=ocp.args.StandardRestore(abstract_target))

    def wait(self) -> None:
        """Blocks until all asynchronous saves, and their checksums, have been written."""
        self._latest.wait_until_finished()
        self._best.wait_until_finished()
        self._seal_written()

    def close(self) -> None:
        """Waits for pending saves and releases Orbax resources."""
        self._seal_written()
        self._latest.close()
        self._best.close()


def save_tree(directory: str | os.PathLike, tree: PyTree) -> None:
    """Writes a pytree of arrays (e.g. an export's parameters) to a new `directory`,
    whole or not at all, and waits until it is written."""
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.abspath(directory), tree)
    checkpointer.wait_until_finished()


def restore_tree(directory: str | os.PathLike, abstract_tree: PyTree) -> PyTree:
    """Reads what `save_tree` wrote into the structure, dtypes and shardings of
    `abstract_tree` (e.g. float32 parameters from a bfloat16 export)."""
    return ocp.StandardCheckpointer().restore(os.path.abspath(directory), abstract_tree)
