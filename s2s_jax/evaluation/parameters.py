"""Which parameters a workdir stands for: one checkpoint, the mean of several, or
what its last evaluation chose on validation; read without any optimizer state.

``restore_configured`` follows ``config.eval`` (``checkpoint``: best, latest or a step;
``average_checkpoints``), as ``--mode=eval`` does before any tuning.
``restore_reported`` takes the parameters and decoding settings that the last
evaluation of ``config.eval.split`` chose and scored (its ``metrics.json``), as
translate, export and ``s2s_jax.load`` do, so that they use the model the report
describes.
"""

import json
import os
from typing import Any

import jax
from absl import logging

from s2s_jax.runtime.checkpointing import Checkpointer

# The eval config fields that a report's "decoding" records.
DECODING_FIELDS = ("decoder", "beam_size", "alpha", "beta", "max_len_a", "max_len_b")


class NoCheckpointError(Exception):
    """The workdir holds no checkpoint that the config asks for."""


def make_checkpointer(config, workdir: str) -> Checkpointer:
    train = config.train
    return Checkpointer(
        workdir,
        keep=train.keep_checkpoints,
        best_metric=train.best_metric,
        best_mode=train.best_mode,
        keep_best=train.keep_best_checkpoints,
        params_field="ema_params" if train.ema_decay else "params",
    )


def has_checkpoints(workdir: str) -> bool:
    """Whether ``workdir`` has checkpoint folders (a Checkpointer would create them)."""
    return any(os.path.isdir(os.path.join(workdir, kind)) for kind in ("checkpoints", "best"))


def kept_steps(checkpointer: Checkpointer) -> list[int]:
    """The steps of every kept checkpoint, latest and best."""
    return sorted(set(checkpointer.steps()) | set(checkpointer.best_values()))


def open_checkpointer(config, workdir: str) -> Checkpointer:
    """The checkpointer of a trained workdir (NoCheckpointError, and nothing created,
    where it has none)."""
    if not has_checkpoints(workdir):
        raise NoCheckpointError(f"no checkpoint in {workdir!r}: train it first (--mode=train)")
    return make_checkpointer(config, workdir)


def mean_params(params: list[Any]) -> Any:
    """The element-wise mean of parameter trees of one structure."""
    return jax.tree.map(lambda *leaves: sum(leaves) / len(leaves), *params)


def restore_step(
    checkpointer: Checkpointer, abstract: Any, step: int, which: str | None = None
) -> Any:
    """The parameters of checkpoint ``step``: of ``which`` ("latest" or "best"), or of
    whichever holds it (the best first; both hold a step's same state)."""
    if which is None:
        which = "best" if step in checkpointer.best_values() else "latest"
    return checkpointer.restore_params(abstract, step, which)


def restore_steps(checkpointer: Checkpointer, abstract: Any, steps: list[int]) -> Any:
    """The mean parameters of these checkpoints."""
    return mean_params([restore_step(checkpointer, abstract, step) for step in steps])


def restore_configured(
    checkpointer: Checkpointer, abstract: Any, eval_config, workdir: str
) -> tuple[Any, list[int]]:
    """The parameters ``eval_config`` names and the steps they come from: the mean of
    the latest ``average_checkpoints``; a step number; or ``checkpoint`` "best" or
    "latest", where a checkpoint that cannot be read (damaged files) is passed over,
    with a warning, for the next: the best, then the latest ones, newest first."""
    if eval_config.average_checkpoints > 1:
        steps = checkpointer.steps()[-eval_config.average_checkpoints :]
        if not steps:
            raise NoCheckpointError(f"no checkpoint to average in {workdir!r}")
        logging.info("averaging the parameters of checkpoints %s", steps)
        return restore_steps(checkpointer, abstract, steps), steps
    which = eval_config.checkpoint
    if which.isdigit():
        step = int(which)
        if step not in kept_steps(checkpointer):
            raise NoCheckpointError(
                f"no checkpoint of step {step} in {workdir!r} (kept: {kept_steps(checkpointer)})"
            )
        return restore_step(checkpointer, abstract, step), [step]
    best = checkpointer.best_step() if which == "best" else None
    candidates = ([] if best is None else [(best, "best")]) + [
        (step, "latest") for step in reversed(checkpointer.steps())
    ]
    if not candidates:
        raise NoCheckpointError(f"no checkpoint in {workdir!r}: train it first (--mode=train)")
    for step, kind in candidates:  # the first that can be read
        try:
            params = checkpointer.restore_params(abstract, step, kind)
        except Exception as error:  # noqa: BLE001 - damaged files raise many error types
            logging.warning(
                "cannot read the %s checkpoint of step %d (%s: %s); trying the next",
                kind,
                step,
                type(error).__name__,
                error,
            )
            continue
        logging.info("restored the parameters of the %s checkpoint, step %d", kind, step)
        return params, [step]
    raise NoCheckpointError(
        f"no checkpoint in {workdir!r} can be read (tried "
        f"{[f'{kind} {step}' for step, kind in candidates]}; see the "
        "warnings above)"
    )


def read_report(workdir: str, split: str) -> tuple[str, dict]:
    """The path of the last evaluation report of ``split`` and its contents ({} where
    there is none)."""
    path = os.path.join(workdir, "eval", split, "metrics.json")
    if not os.path.exists(path):
        return path, {}
    with open(path, encoding="utf-8") as f:
        return path, json.load(f)


def restore_reported(
    checkpointer: Checkpointer, abstract: Any, config, workdir: str
) -> tuple[Any, list[int], dict]:
    """The parameters that the last evaluation of ``config.eval.split`` scored, their
    steps, and its decoding settings ({} where it recorded none). Without a report, or
    where its checkpoints are gone or cannot be read, those that ``config.eval`` names
    (with a warning for the latter)."""
    path, report = read_report(workdir, config.eval.split)
    steps = report.get("parameters_of_steps")
    if steps:
        kept = set(kept_steps(checkpointer))
        if set(steps) <= kept:
            try:
                params = restore_steps(checkpointer, abstract, steps)
            except Exception as error:  # noqa: BLE001 - damaged files raise many error types
                logging.warning(
                    "%s scored the parameters of steps %s, which cannot be read "
                    "(%s: %s); using config.eval.checkpoint=%r",
                    path,
                    steps,
                    type(error).__name__,
                    error,
                    config.eval.checkpoint,
                )
            else:
                logging.info("parameters of steps %s, as scored in %s", steps, path)
                return params, steps, report.get("decoding") or {}
        else:
            logging.warning(
                "%s scored the parameters of steps %s, but checkpoints %s are gone; using "
                "config.eval.checkpoint=%r (run --mode=eval to choose again)",
                path,
                steps,
                sorted(set(steps) - kept),
                config.eval.checkpoint,
            )
    params, steps = restore_configured(checkpointer, abstract, config.eval, workdir)
    return params, steps, {}
