"""Several trained models (workdirs or exports) decoding as one ensemble.

  python -m s2s_jax.main --mode=eval --workdir=runs/a --ensemble=runs/b
  python -m s2s_jax.main --mode=translate --workdir=runs/a --ensemble=runs/b,exports/c
  s2s_jax.load(["runs/a", "runs/b"]).translate(["A man rides a bike."])

At every decoding step the ensemble takes the mean of its models' log-probabilities
(``s2s_jax.models.ensemble``), in greedy and beam search alike. The first model's config
sets decoding, batch sizes and buckets; the models may differ in architecture but must
share the source and target vocabularies. ``--mode=eval`` with an ensemble writes into
``<first model>/ensemble/``: ``members.json`` (the models' paths), then, as for one
model, the beam size and length penalty chosen on the validation split for the ensemble
(when the config's tuning grid asks: ``eval/<validation_split>/decoding_grid.json``) and
the report of the split (``eval/<split>/``). Loading the same models again (translate,
``s2s_jax.load``) decodes with the settings that report chose, unless the command line
sets them.
"""

import dataclasses
import json
import os
from collections.abc import Sequence

import jax
import ml_collections

from s2s_jax.config import ConfigError
from s2s_jax.data.vocab_files import same_vocab
from s2s_jax.evaluation import evaluate, parameters
from s2s_jax.models.ensemble import Ensemble
from s2s_jax.runtime.atomic_files import write_atomically
from s2s_jax.serving import loading

ENSEMBLE_DIR = "ensemble"  # in the first model's directory
MEMBERS_FILE = "members.json"


def report_dir(paths: Sequence[str]) -> str:
    """Where an ensemble's reports go: ``<first model>/ensemble``."""
    return os.path.join(paths[0], ENSEMBLE_DIR)


def _members(paths: Sequence[str]) -> list[str]:
    return [os.path.abspath(path) for path in paths]


def load(paths: Sequence[str], config: ml_collections.ConfigDict | None = None) -> loading.Model:
    """The models in ``paths`` as one ``Model`` whose parameters are
    ``{"members_<i>": ...}``. ``config``: the first model's config with changes that
    leave its model as it is, as for ``loading.load``. Raises ConfigError naming the
    path whose source or target vocabulary differs from the first model's."""
    stored, config = loading.resolved_config(paths[0], config)
    loaded = [loading.load(path, config if i == 0 else None) for i, path in enumerate(paths)]
    first = loaded[0]
    for path, model in zip(paths[1:], loaded[1:]):
        for side, theirs, ours in (
            ("source", model.src_vocab, first.src_vocab),
            ("target", model.tgt_vocab, first.tgt_vocab),
        ):
            if not same_vocab(theirs, ours):
                raise ConfigError(
                    f"{path}: its {side} vocabulary differs from that of {paths[0]}; the "
                    "models of an ensemble must share their vocabularies"
                )
    chosen = _reported_decoding(paths, config)
    return dataclasses.replace(
        first,
        config=loading.with_decoding(config, stored, chosen) if chosen else first.config,
        model=Ensemble(tuple(model.model for model in loaded)),
        params={f"members_{i}": model.params for i, model in enumerate(loaded)},
    )


def _reported_decoding(paths: Sequence[str], config) -> dict:
    """The decoding settings of the last ensemble report of ``config.eval.split`` for
    these same models ({} where there is none)."""
    directory = report_dir(paths)
    try:
        with open(os.path.join(directory, MEMBERS_FILE), encoding="utf-8") as f:
            members = json.load(f)["members"]
    except (OSError, ValueError, KeyError):
        return {}
    if members != _members(paths):
        return {}
    return parameters.read_report(directory, config.eval.split)[1].get("decoding") or {}


def run_eval(
    paths: Sequence[str],
    config: ml_collections.ConfigDict,
    pairs: list[tuple[str, str]] | None = None,
    name: str | None = None,
) -> dict[str, float]:
    """``--mode=eval`` of an ensemble: ``pairs`` (named ``name``) if given, else
    ``config.eval.split`` with the decoding chosen on the validation split where the
    config asks; the report goes into ``report_dir(paths)/eval/<name or split>``."""
    model = load(paths, config)
    directory = report_dir(paths)
    if jax.process_index() == 0:
        os.makedirs(directory, exist_ok=True)
        write_atomically(
            os.path.join(directory, MEMBERS_FILE),
            json.dumps({"members": _members(paths)}, indent=2),
        )
    split = None
    if pairs is None:
        model = evaluate.choose_decoding(
            model, directory, lambda: evaluate.validation_evaluator(model, paths[0])
        )
        name = split = model.config.eval.split
        pairs = evaluate.split_pairs(model.config, paths[0], None, split)
    return evaluate.report(
        model, pairs, name, os.path.join(directory, "eval", name), wmt17_split=split
    )
