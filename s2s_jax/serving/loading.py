"""A trained model from its files alone: an export directory or a trained workdir.

``load(path)`` reads the stored config and vocabularies (``s2s_jax.training.model_files``)
and the parameters only, no optimizer state: from an export, its ``params/``; from a
workdir, those that its last evaluation of ``config.eval.split`` chose and scored,
with the decoding settings chosen with them (``s2s_jax.evaluation.parameters.restore_reported``),
or else the checkpoint ``config.eval`` names. No training data is read.
"""

import copy
import dataclasses
import os
from collections.abc import Iterable

import ml_collections
from absl import logging

from s2s_jax.data.sources import load_vocabularies
from s2s_jax.decoding.translator import Translator
from s2s_jax.evaluation import evaluate, parameters
from s2s_jax.runtime import checkpointing, parallel
from s2s_jax.training import model_files

PARAMS_DIR = "params"  # an export's parameters (an Orbax checkpoint of them alone)


@dataclasses.dataclass(frozen=True)
class Model(Translator):
    """A trained translator, as ``s2s_jax.load`` returns it::

    model = s2s_jax.load("exports/en-de")          # an export, or a trained workdir
    model.translate(["A man rides a bike."])        # ["Ein Mann fährt Fahrrad."]
    model.translate(sources, beam_size=5, n_best=3, return_scores=True)
    model.score(sources, references)               # {"bleu": ..., "bleu_signature": ...}
    """

    def score(self, sources: Iterable[str], references: Iterable[str]) -> dict:
        """Translates ``sources`` and scores them against ``references`` (one each):
        loss, perplexity, exact match, BLEU and chrF with sacrebleu signatures (and
        the WMT17 convention's BLEU when ``config.eval.wmt17_bleu``), BLEU by source
        length; as ``--mode=eval`` reports them."""
        pairs = list(zip(sources, references, strict=True))
        result = evaluate.Evaluator(self, pairs, "score")(self.params)
        return {**result.metrics, "bleu_by_length": result.bleu_by_length}


def is_export(path: str) -> bool:
    return os.path.isdir(os.path.join(path, PARAMS_DIR))


def resolved_config(path: str, config: ml_collections.ConfigDict | None = None):
    """(the config stored in ``path``, the config to use): ``config`` if given, after
    checking it describes the same model, else the stored one."""
    stored = model_files.read_config(path)
    if config is None:
        return stored, stored
    model_files.check_same_model(stored, config, path)
    return stored, config


def store_model_files(workdir: str, config: ml_collections.ConfigDict) -> None:
    """A workdir trained before ``config.json`` existed, used with its ``--config``:
    its vocabularies rebuilt from ``config.data`` as training built them (from the
    vocabulary cache) and stored with the config, once; then it needs neither again."""
    if model_files.has_config(workdir) or not parameters.has_checkpoints(workdir):
        return
    model_files.write(
        workdir, config, *parallel.process_0_first(load_vocabularies, config, workdir)
    )
    logging.warning(
        "%s had no %s: wrote it and the vocabularies, from the given config",
        workdir,
        model_files.CONFIG_FILE,
    )


def load(path: str, config: ml_collections.ConfigDict | None = None) -> Model:
    """The model in ``path`` (an export or a workdir) with its parameters.

    ``config``: the stored config with changes that leave the model as it is
    (decoding, batch sizes, data paths), e.g. the command line's; a change of an
    architecture or vocabulary field raises ``ConfigError`` naming it.
    """
    return load_with_steps(path, config)[0]


def load_with_steps(
    path: str, config: ml_collections.ConfigDict | None = None
) -> tuple[Model, list[int]]:
    """``load``, and the checkpoint steps whose (mean) parameters it holds."""
    stored, config = resolved_config(path, config)
    translator = Model.build(config, *model_files.read_vocabs(path))
    abstract = translator.abstract_params()
    if is_export(path):
        params = checkpointing.restore_tree(os.path.join(path, PARAMS_DIR), abstract)
        return dataclasses.replace(translator, params=params), list(
            model_files.read_record(path).get("export", {}).get("parameters_of_steps", [])
        )
    checkpointer = parameters.open_checkpointer(config, path)
    try:
        params, steps, decoding = parameters.restore_reported(checkpointer, abstract, config, path)
    finally:
        checkpointer.close()
    config = with_decoding(config, stored, decoding)
    return dataclasses.replace(translator, config=config, params=params), steps


def with_decoding(config, stored, decoding: dict):
    """``config`` with the reported ``decoding`` settings, except those that ``config``
    changes from the ``stored`` one (a user's override wins)."""
    chosen = {key: value for key, value in decoding.items() if config.eval[key] == stored.eval[key]}
    if not chosen:
        return config
    config = copy.deepcopy(config)
    config.eval.update(chosen)
    return config
