"""Parameters, beam size and length penalty chosen on the validation split, never on
the test set.

With ``config.eval.tune_average_checkpoints`` or ``tune_average_best`` set,
``evaluate.run`` first decodes ``config.eval.validation_split`` greedily with the evaluated
checkpoint's parameters and with the mean parameters of the latest N (or the best N
by ``config.train.best_metric``) checkpoints for each N given, and keeps what scores
best on that metric (the checkpoint itself on a tie).
With ``config.eval.tune_beam_sizes`` set, it then decodes
``config.eval.validation_split`` (Multi30k: ``val``) with beam search at every
(beam size, alpha) of ``tune_beam_sizes`` x ``tune_alphas``, keeps the pair that scores
best on ``config.train.best_metric`` (the metric that chose the checkpoint), and only
then scores ``config.eval.split`` with it. The grid shares one Evaluator, and alpha is
a traced argument of the compiled search, so the grid compiles one search per beam size.
"""

import copy
import itertools
import json
import os
from collections.abc import Callable
from typing import Any

import jax
from absl import logging

from s2s_jax.evaluation.parameters import mean_params, restore_step
from s2s_jax.runtime.checkpointing import Checkpointer


def _with_beam(config, beam_size: int, alpha: float):
    config = copy.deepcopy(config)
    config.eval.decoder, config.eval.beam_size, config.eval.alpha = "beam", beam_size, alpha
    return config


def choose_parameters(
    config,
    workdir: str,
    checkpointer: Checkpointer,
    abstract: Any,
    params: Any,
    steps: list[int],
    evaluator: Callable,
) -> tuple[Any, list[int]]:
    """The parameters that decode the validation split best (``evaluator(params)
    .metrics``, greedy or as ``config.eval`` says) among ``params`` (of checkpoints
    ``steps``), the means of the latest N checkpoints (N in
    ``eval.tune_average_checkpoints``) and those of the best N (N in
    ``eval.tune_average_best``); and the steps whose parameters they are. The rows
    ``{"steps", <metric>}`` go to ``<workdir>/eval/<validation_split>/parameters.json``."""
    metric = config.train.best_metric
    candidates = {tuple(sorted(steps)): params}
    for means_steps, means in _means(
        checkpointer,
        abstract,
        checkpointer.steps()[::-1],
        "latest",
        config.eval.tune_average_checkpoints,
    ) + _means(
        checkpointer,
        abstract,
        list(checkpointer.best_values()),
        "best",
        config.eval.tune_average_best,
    ):
        candidates.setdefault(means_steps, means)  # the same steps: the same parameters
    rows = []
    for candidate_steps, candidate in candidates.items():
        rows.append({"steps": list(candidate_steps), metric: evaluator(candidate).metrics[metric]})
        logging.info(
            "%s, parameters of steps %s: %s %.2f",
            config.eval.validation_split,
            rows[-1]["steps"],
            metric,
            rows[-1][metric],
        )
    # On a tie the checkpoint itself, which is scored first.
    chosen = _best(rows, metric, config.train.best_mode)
    logging.info(
        "chosen on %s: parameters of steps %s", config.eval.validation_split, rows[chosen]["steps"]
    )
    _write(
        config,
        workdir,
        "parameters.json",
        {"metric": metric, "chosen": rows[chosen], "candidates": rows},
    )
    return list(candidates.values())[chosen], rows[chosen]["steps"]


def _means(
    checkpointer: Checkpointer, abstract: Any, steps: list[int], which: str, counts: tuple[int, ...]
) -> list[tuple[tuple[int, ...], Any]]:
    """(steps, mean parameters) of the first N of ``steps`` (checkpoints of
    ``which``), for each N of ``counts`` that there are checkpoints for."""
    counts = [n for n in sorted(set(counts)) if n <= len(steps)]
    if not counts:
        return []
    params = [restore_step(checkpointer, abstract, step, which) for step in steps[: counts[-1]]]
    return [(tuple(sorted(steps[:n])), mean_params(params[:n])) for n in counts]


def choose_decoding(config, workdir: str, params: Any, evaluator: Callable):
    """Decodes the validation split with ``params`` at every grid point
    (``evaluator(params, eval_config=...).metrics``: an evaluate.Evaluator of
    ``config.eval.validation_split``) and returns the config with the best (beam size,
    alpha). The grid's rows ``{"beam_size", "alpha", <metric>}`` go to
    ``<workdir>/eval/<validation_split>/decoding_grid.json``."""
    metric, mode = config.train.best_metric, config.train.best_mode
    split = config.eval.validation_split
    rows = []
    for beam_size, alpha in itertools.product(config.eval.tune_beam_sizes, config.eval.tune_alphas):
        trial = _with_beam(config, beam_size, alpha).eval
        value = evaluator(params, eval_config=trial).metrics[metric]
        rows.append({"beam_size": beam_size, "alpha": alpha, metric: value})
        logging.info("%s, beam %d, alpha %.2f: %s %.2f", split, beam_size, alpha, metric, value)
    best = rows[_best(rows, metric, mode)]
    logging.info(
        "chosen on %s: beam %d, alpha %.2f (%s %.2f)",
        split,
        best["beam_size"],
        best["alpha"],
        metric,
        best[metric],
    )
    _write(config, workdir, "decoding_grid.json", {"metric": metric, "chosen": best, "grid": rows})
    return _with_beam(config, best["beam_size"], best["alpha"])


def _best(rows: list[dict], metric: str, mode: str) -> int:
    """The index of the row with the best ``metric`` (``mode`` max or min), the first
    of equals."""
    pick = max if mode == "max" else min
    return pick(range(len(rows)), key=lambda i: rows[i][metric])


def _write(config, workdir: str, name: str, report: dict) -> None:
    """``report`` as ``<workdir>/eval/<validation_split>/<name>``, from process 0."""
    if jax.process_index() == 0:
        directory = os.path.join(workdir, "eval", config.eval.validation_split)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, name), "w") as f:
            json.dump(report, f, indent=2)
