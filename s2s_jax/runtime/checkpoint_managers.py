"""The two Orbax checkpoint managers of a `Checkpointer`, and the steps kept out of
their sight.

`latest_manager` keeps the most recent steps of a directory, `best_manager` the
best ones by a metric. Before they are opened, `remove_unfinished_saves` deletes
what saves that never finished left behind, and `set_aside_unreadable_metrics`
moves best steps whose metrics Orbax cannot parse to `<workdir>/damaged/`, where
`set_aside` moves any other damaged step (never deleted: kept for inspection).

Every function must be called on every JAX process.
"""

import json
import os
import shutil
from collections.abc import Callable
from typing import Literal

import jax
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils


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
    logging.warning("Moved the damaged checkpoint %s of %s to %s.", step, directory, target)


def set_aside(manager: ocp.CheckpointManager, step: int) -> None:
    """Moves a damaged step out of the manager's sight (see `_move_to_damaged`)."""
    directory = os.fspath(manager.directory)
    if jax.process_index() == 0:
        _move_to_damaged(directory, step)
    _sync(f"s2s_jax: set aside {directory} {step}")
    manager.reload()


def remove_unfinished_saves(directory: str) -> None:
    """Deletes the temporary folders of saves that never finished, before Orbax opens
    ``directory``: its own cleanup runs in a thread, which prints tracebacks when a
    short command (a failed eval) exits before it ends."""
    if jax.process_index() == 0 and os.path.isdir(directory):
        for unfinished in ocp.path.step.all_temporary_paths(directory):
            shutil.rmtree(unfinished.get())
    _sync(f"s2s_jax: cleaned {directory}")


def set_aside_unreadable_metrics(best_dir: str) -> None:
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
                    logging.warning("Cannot read %s (%s).", path, error)
                    _move_to_damaged(best_dir, int(name))
    _sync(f"s2s_jax: checked {best_dir}")


# Both managers hold one unnamed item per step, fixed up front: left to Orbax, the
# mode is guessed from the first step restored, and a damaged one guesses wrong.
# Each manager names its own barriers across processes: both save step N into
# "N.orbax-checkpoint-tmp" at once, and with the same barrier names their
# background threads would meet each other's and hang.
def latest_manager(directory: str, keep: int) -> ocp.CheckpointManager:
    """The manager of the ``keep`` most recent steps in ``directory``."""
    return ocp.CheckpointManager(
        directory,
        item_handlers=ocp.StandardCheckpointHandler(),
        options=ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.LatestN(n=keep),
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix="latest"
            ),
        ),
    )


def best_manager(
    directory: str,
    metric_fn: Callable[[dict[str, float]], float],
    best_mode: Literal["max", "min"],
    keep_best: int,
) -> ocp.CheckpointManager:
    """The manager of the ``keep_best`` best steps in ``directory`` by ``metric_fn``
    of their metrics."""
    return ocp.CheckpointManager(
        directory,
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
                barrier_sync_key_prefix="best"
            ),
        ),
    )
