"""Checkpointing of training state with Orbax.

This is the only module of the package that imports Orbax. `save_tree` and
`restore_tree` write and read one pytree (an export's parameters). A `Checkpointer`
owns two `orbax.checkpoint.CheckpointManager`s under a work directory:

  * `<workdir>/checkpoints`: the most recent `keep` checkpoints, for resuming.
  * `<workdir>/best`: the single best checkpoint according to a metric.

Saves are asynchronous: `save` returns once the arrays have been copied to host
memory (so the state may be donated or updated right away) and the files are
written in the background. Orbax writes each step into a temporary directory
and renames it when complete, so unfinished steps are never reported. Once a
step is written, `<step>/checksums.json` records the CRC32C of each of its files
(written atomically, at the next save or `wait`); restore verifies them first, so
a step whose files were garbled or cut later is skipped, with one warning naming
the step and the file, for the one before it (the latest ones, then the best).

All methods must be called on every JAX process; Orbax coordinates the
processes and decides which one writes shared files.
"""

import json
import logging
import math
import mmap
import os
import shutil
import zlib
from typing import Any, Literal

import google_crc32c
import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from s2s_jax.runtime.atomic_files import write_atomically

PyTree = Any


def _not_orbax_info(record: logging.LogRecord) -> bool:
    """Orbax logs dozens of INFO lines per save through absl; keep its warnings only."""
    return record.levelno >= logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


logging.getLogger("absl").addFilter(_not_orbax_info)
_logger = logging.getLogger(__name__)
# The directory of a step's one unnamed item, as Orbax names it.
_ITEM = "default"


# Per step: {"crc32c": {path relative to the step: CRC32C of the file, hex}}.
CHECKSUMS = "checksums.json"


class DamagedCheckpointError(Exception):
    """A checkpoint's files do not match their checksums."""


def _crc(path: str, algorithm: str) -> int:
    """The file's checksum, read through a memory map: no copies (reading it into
    bytes objects took longer than the checksum; benchmarks/checkpoint_verify.py).
    CRC32C is SSE4.2/ARMv8 hardware in google-crc32c, 3x zlib's CRC32 here; "crc32"
    checks the steps saved before CRC32C was used."""
    with open(path, "rb") as f:
        if not os.fstat(f.fileno()).st_size:
            return 0
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            if algorithm == "crc32":
                return zlib.crc32(mapped)
            # google_crc32c takes only buffers that need no release, as numpy's are.
            return google_crc32c.value(np.frombuffer(mapped, np.uint8))


def _file_checksums(step_dir: str, algorithm: str = "crc32c") -> dict[str, str]:
    """The checksum (hex) of every file under ``step_dir`` but CHECKSUMS, by relative path."""
    checksums = {}
    for root, _, names in os.walk(step_dir):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, step_dir)
            if relative != CHECKSUMS:
                checksums[relative] = f"{_crc(path, algorithm):08x}"
    return dict(sorted(checksums.items()))


def seal(step_dir: str) -> None:
    """Writes ``step_dir``'s CHECKSUMS (atomically: complete or absent)."""
    write_atomically(os.path.join(step_dir, CHECKSUMS),
                     json.dumps({"crc32c": _file_checksums(step_dir)}, indent=0))


def verify(step_dir: str) -> None:
    """Raises DamagedCheckpointError naming the first file of ``step_dir`` that is
    missing or differs from its checksum; a step without CHECKSUMS (saved before
    checksums existed, or killed before they were written) passes unchecked."""
    path = os.path.join(step_dir, CHECKSUMS)
    if not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError) as error:
        raise DamagedCheckpointError(f"{path}: unreadable ({error})") from None
    # Steps saved before CRC32C hold a flat {path: CRC32} mapping.
    expected = saved.get("crc32c", saved) if isinstance(saved, dict) else None
    algorithm = "crc32c" if expected is not saved else "crc32"
    if not isinstance(expected, dict):
        raise DamagedCheckpointError(f"{path}: not a mapping of files to checksums")
    actual = _file_checksums(step_dir, algorithm)
    for relative, crc in expected.items():
        if actual.get(relative) != crc:
            problem = "is missing" if relative not in actual else "does not match its checksum"
            raise DamagedCheckpointError(f"{os.path.join(step_dir, relative)} {problem}")


def _sync(name: str) -> None:
    """Waits for every JAX process to get here."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def _move_to_damaged(directory: str, step: int) -> None:
    """Moves step ``step`` of ``directory`` (a manager's) to
    ``<workdir>/damaged/<checkpoints or best>-<step>``: kept for inspection, never
    deleted, and out of Orbax's sight. Called on process 0."""
    damaged = os.path.join(os.path.dirname(directory), "damaged")
    target = os.path.join(damaged, f"{os.path.basename(directory)}-{step}")
    os.makedirs(damaged, exist_ok=True)
    suffix = 0
    while os.path.exists(target + (f".{suffix}" if suffix else "")):
        suffix += 1
    target += f".{suffix}" if suffix else ""
    os.replace(os.path.join(directory, str(step)), target)
    _logger.warning("Moved the damaged checkpoint %s of %s to %s.", step, directory, target)


def _remove_unfinished_saves(directory: str) -> None:
    """Deletes the temporary folders of saves that never finished, before Orbax opens
    ``directory``: its own cleanup runs in a thread, which prints tracebacks when a
    short command (a failed eval) exits before it ends."""
    if jax.process_index() == 0 and os.path.isdir(directory):
        for unfinished in ocp.path.step.all_temporary_paths(directory):
            shutil.rmtree(unfinished.get())
    _sync(f"s2s_jax: cleaned {directory}")


def _set_aside_unreadable_metrics(best_dir: str) -> None:
    """Orbax reads the metrics of every best step when it opens ``best_dir`` and fails
    on one it cannot parse: such steps are moved to ``damaged/`` first."""
    if jax.process_index() == 0 and os.path.isdir(best_dir):
        for name in sorted(os.listdir(best_dir)):
            path = os.path.join(best_dir, name, "metrics", "metrics")
            if name.isdigit() and os.path.exists(path):
                try:
                    with open(path, encoding="utf-8") as f:
                        json.load(f)
                except (OSError, ValueError) as error:
                    _logger.warning("Cannot read %s (%s).", path, error)
                    _move_to_damaged(best_dir, int(name))
    _sync(f"s2s_jax: checked {best_dir}")


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
        """
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}.")
        workdir = os.fspath(workdir)
        if "://" not in workdir:  # Orbax needs absolute paths; keep gs://... as is
            workdir = os.path.abspath(workdir)
        self.best_metric = best_metric
        self.best_mode = best_mode
        self.keep_best = keep_best

        # One unnamed item per step, fixed up front: left to Orbax, the mode is
        # guessed from the first step restored, and a damaged one guesses wrong.
        # Each manager names its own barriers across processes: both save step N
        # into "N.orbax-checkpoint-tmp" at once, and with the same barrier names
        # their background threads would meet each other's and hang.
        for kind in ("checkpoints", "best"):
            _remove_unfinished_saves(os.path.join(workdir, kind))
        self._latest = ocp.CheckpointManager(
            os.path.join(workdir, "checkpoints"),
            item_handlers=ocp.StandardCheckpointHandler(),
            options=ocp.CheckpointManagerOptions(
                preservation_policy=ocp.checkpoint_managers.LatestN(n=keep),
                multiprocessing_options=ocp.options.MultiprocessingOptions(
                    barrier_sync_key_prefix="latest"),
            ),
        )

        def metric_fn(metrics: dict[str, float]) -> float:
            return metrics[best_metric]

        _set_aside_unreadable_metrics(os.path.join(workdir, "best"))
        self._best = ocp.CheckpointManager(
            os.path.join(workdir, "best"),
            item_handlers=ocp.StandardCheckpointHandler(),
            options=ocp.CheckpointManagerOptions(
                # `best_fn` makes Orbax write the metrics next to each step and
                # reload them on restart; `BestN` deletes all but the best n.
                best_fn=metric_fn,
                best_mode=best_mode,
                preservation_policy=ocp.checkpoint_managers.BestN(
                    get_metric_fn=metric_fn,
                    reverse=best_mode == "min",
                    n=keep_best,
                    keep_checkpoints_without_metrics=False,
                ),
                multiprocessing_options=ocp.options.MultiprocessingOptions(
                    barrier_sync_key_prefix="best"),
            ),
        )
        # The metric of each kept best checkpoint by step, read back from disk once.
        self._best_values: dict[int, float] = {
            step: metric_fn(self._best.metrics(step)) for step in self._best.all_steps()}
        # Steps saved whose checksums are still to be written, once their files are.
        self._unsealed: list[tuple[ocp.CheckpointManager, int]] = []

    def _seal_written(self) -> None:
        """Writes the checksums of the steps saved since the last call (waiting for
        their files: a save waits for the one before anyway)."""
        for manager, step in self._unsealed:
            manager.wait_until_finished()
            step_dir = os.path.join(os.fspath(manager.directory), str(step))
            if jax.process_index() == 0 and os.path.isdir(step_dir):
                seal(step_dir)
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
                len(values) >= self.keep_best and not self._better(metric_value, values[-1])):
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
        self._best_values = dict(list(self.best_values().items())[:self.keep_best])
        return True

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.best_mode == "max" else value < than

    def best_values(self) -> dict[int, float]:
        """The metric value of each kept best checkpoint by step, the best first
        (among equals the later step first: the one Orbax's `BestN` keeps)."""
        sign = -1 if self.best_mode == "max" else 1
        return dict(sorted(self._best_values.items(),
                           key=lambda item: (sign * item[1], -item[0])))

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
            _logger.warning("Cannot restore checkpoint %s of %s (%s: %s).", candidate[1],
                            candidate[0].directory, type(error).__name__, error)
            errors[candidate] = error
        raise RuntimeError(
            f"No checkpoint in {self._latest.directory} or {self._best.directory} can be "
            f"restored (steps {[step for _, step in errors]}); the first one's error is "
            "above.") from errors[candidates[0]]

    def _set_aside(self, manager: ocp.CheckpointManager, step: int) -> None:
        """Moves a damaged step out of the manager's sight (see `_move_to_damaged`)."""
        directory = os.fspath(manager.directory)
        if jax.process_index() == 0:
            _move_to_damaged(directory, step)
        _sync(f"s2s_jax: set aside {directory} {step}")
        manager.reload()
        if manager is self._best:
            self._best_values.pop(step, None)

    def restore_params(self, abstract_params: PyTree, step: int,
                       which: Literal["latest", "best"] = "latest") -> PyTree:
        """Reads only the parameters of checkpoint `step` of `which`: no optimizer
        state is read or allocated (what eval, translate and export need).

        Args:
            abstract_params: `jax.ShapeDtypeStruct`s (with shardings) of the
                parameters, the `params` field of the saved state.
            step: A step of `steps()` (latest) or of `best_values()` (best).
            which: "latest" or "best".

        Raises:
            FileNotFoundError: If there is no such checkpoint.
        """
        manager = self._latest if which == "latest" else self._best
        if step not in manager.all_steps():
            raise FileNotFoundError(f"No checkpoint for step {step} in {manager.directory}.")
        manager.wait_until_finished()
        verify(os.path.join(os.fspath(manager.directory), str(step)))
        target = {"params": abstract_params}
        restored = ocp.PyTreeCheckpointer().restore(
            os.path.join(manager.directory, str(step), _ITEM),
            args=ocp.args.PyTreeRestore(
                item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                partial_restore=True))
        return restored["params"]

    @staticmethod
    def _restore(manager: ocp.CheckpointManager, step: int, target: PyTree) -> PyTree:
        manager.wait_until_finished()
        verify(os.path.join(os.fspath(manager.directory), str(step)))
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
