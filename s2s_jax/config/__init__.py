"""The configuration schema and its validation; it imports nothing but ml_collections.

``base_config()`` lists every field with its default and meaning, one module per
section (``data``, ``model``, ``train``, ``evaluation`` for ``config.eval``,
``distributed``), each beside its section's ``validate``. Config files in ``configs/``
start from it and change what they need. The config is locked, so a misspelt
``--config.x.y=...`` override fails naming the key. :func:`validate` checks every value
before any compute and names the offending key; the names a registry offers
(``model.cell``, ``eval.decoder``, ...) are checked by the registry (``Registry.check``).
"""

import os
import tempfile

import ml_collections

from s2s_jax.config import data, distributed, evaluation, model, train
from s2s_jax.config.checks import ConfigError

__all__ = ["ConfigError", "RENAMED", "base_config", "check_workdir", "validate"]

# Fields renamed, old -> new: named in the error for an old key.
RENAMED = {"eval.train_split": "eval.validation_split", "data.bleu_tokenize": "eval.bleu_tokenize"}

_SECTIONS = {
    "data": data,
    "model": model,
    "train": train,
    "eval": evaluation,
    "distributed": distributed,
}


def base_config() -> ml_collections.ConfigDict:
    """Every field, with defaults for a small attention model on a synthetic task."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # one seed for init, data order, dropout and sampling
    # glibc keeps freed host memory for the next step (s2s_jax/runtime/host_memory.py):
    # faster steps on CPU; the heap never shrinks and may hold a spare step's temporaries.
    config.reuse_host_memory = True
    # The command line caches the XLA programs it compiles here, across runs: a later
    # translate, eval or resumed run compiles nothing ("" = no cache; at most 2 GiB, the
    # least recently used go first; the variable JAX_COMPILATION_CACHE_DIR, if set, wins).
    config.compilation_cache_dir = "~/.cache/s2s_jax/xla"
    for name, section in _SECTIONS.items():
        config[name] = section.defaults()
    config.lock()
    return config


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the first key whose value cannot work."""
    for section in _SECTIONS.values():
        section.validate(config)


def check_workdir(workdir: str) -> None:
    """Creates ``workdir`` and proves it is writable, or raises ConfigError naming it."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir):
            pass
    except OSError as error:
        raise ConfigError(f"workdir {workdir!r} is not writable: {error}") from error
