"""Beam size and length penalty chosen on the validation split, never on the test set.

With ``config.eval.tune_beam_sizes`` set, ``evaluate.run`` first decodes
``config.eval.train_split`` (Multi30k: ``val``) with beam search at every
(beam size, alpha) of ``tune_beam_sizes`` x ``tune_alphas``, keeps the pair that scores
best on ``config.train.best_metric`` (the metric that chose the checkpoint), and only
then scores ``config.eval.split`` with it. The grid shares one Evaluator, and alpha is
a traced argument of the compiled search, so the grid compiles one search per beam size.
"""

import copy
import itertools
import json
import os
from typing import Callable

import jax
from absl import logging

from s2s_jax.experiment import Experiment


def _with_beam(config, beam_size: int, alpha: float):
    config = copy.deepcopy(config)
    config.eval.decoder, config.eval.beam_size, config.eval.alpha = "beam", beam_size, alpha
    return config


def choose_decoding(experiment: Experiment, evaluator: Callable):
    """Decodes the validation split with the experiment's parameters at every grid
    point (``evaluator(params, eval_config=...).metrics``: an evaluate.Evaluator of
    ``config.eval.train_split``) and returns the config with the best (beam size,
    alpha). The grid's rows ``{"beam_size", "alpha", <metric>}`` go to
    ``<workdir>/eval/<train_split>/decoding_grid.json``."""
    config = experiment.config
    metric, mode = config.train.best_metric, config.train.best_mode
    split = config.eval.train_split
    rows = []
    for beam_size, alpha in itertools.product(config.eval.tune_beam_sizes,
                                              config.eval.tune_alphas):
        trial = _with_beam(config, beam_size, alpha).eval
        value = evaluator(experiment.state.params, eval_config=trial).metrics[metric]
        rows.append({"beam_size": beam_size, "alpha": alpha, metric: value})
        logging.info("%s, beam %d, alpha %.2f: %s %.2f", split, beam_size, alpha, metric,
                     value)
    pick = max if mode == "max" else min
    best = pick(rows, key=lambda row: row[metric])
    logging.info("chosen on %s: beam %d, alpha %.2f (%s %.2f)", split, best["beam_size"],
                 best["alpha"], metric, best[metric])
    if jax.process_index() == 0:
        directory = os.path.join(experiment.workdir, "eval", split)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "decoding_grid.json"), "w") as f:
            json.dump({"metric": metric, "chosen": best, "grid": rows}, f, indent=2)
    return _with_beam(config, best["beam_size"], best["alpha"])
