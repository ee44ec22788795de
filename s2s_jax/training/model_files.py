"""What a trained model is without its training run: the resolved config and the
vocabularies, in a workdir or an export directory.

``config.json`` holds every config field after overrides, with the package version and
git commit that wrote it; ``source_vocab.*`` and ``target_vocab.*`` are the
vocabularies (``s2s_jax.data.vocab_files``). Training writes them into its workdir, and
export into its directory, so eval, translate, export and ``s2s_jax.load`` need
neither the config file, nor the command line, nor the training data.

A later command may change how a model is used (decoding, batch sizes, where data
lives), never what it is: ``check_same_model`` refuses a config whose architecture or
vocabulary fields differ from the stored ones, before any compute.
"""

import datetime
import importlib.metadata
import json
import os
import subprocess
from typing import Any

import jax
import ml_collections

from s2s_jax.config import RENAMED, ConfigError, base_config
from s2s_jax.config.checks import get
from s2s_jax.data.vocab import Vocab
from s2s_jax.data.vocab_files import load_vocab, same_vocab, save_vocab, vocab_path
from s2s_jax.runtime.atomic_files import write_atomically

CONFIG_FILE = "config.json"
VOCAB_STEMS = ("source_vocab", "target_vocab")

# Fields that make the model what it is: its parameters' shapes and meaning, and the
# vocabularies that its ids index. Every other field (decoding, batch sizes, data
# paths, training) may differ between training and a later use.
_MODEL_FIELDS_THAT_MAY_CHANGE = ("unroll", "remat", "dtype")  # speed and precision only
_VOCABULARY_FIELDS = (
    "tokenizer",
    "vocab_size",
    "spm_model_type",
    "joint_vocab",
    "src_lang",
    "tgt_lang",
)


def model_defining_fields(config: ml_collections.ConfigDict) -> list[str]:
    """The dotted names of the fields that ``check_same_model`` compares."""
    return [f"model.{key}" for key in config.model if key not in _MODEL_FIELDS_THAT_MAY_CHANGE] + [
        f"data.{key}" for key in _VOCABULARY_FIELDS
    ]


def check_same_model(
    stored: ml_collections.ConfigDict, given: ml_collections.ConfigDict, directory: str
) -> None:
    """Raises ConfigError naming the first model-defining field where ``given``
    differs from ``stored`` (the config in ``directory``), with both values."""
    for field in model_defining_fields(stored):
        was, now = get(stored, field), get(given, field)
        if _plain(was) != _plain(now):
            raise ConfigError(
                f"config.{field}={now!r} differs from the trained model's {was!r} "
                f"({os.path.join(directory, CONFIG_FILE)}); a trained model's architecture "
                "and vocabulary cannot change: drop the override, or train a new workdir"
            )


def check_same_training_state(
    stored: ml_collections.ConfigDict, given: ml_collections.ConfigDict, directory: str
) -> None:
    """Raises ConfigError if resuming ``directory`` with ``given`` would change what its
    saved training states hold: whether they keep a moving average of the parameters
    (``train.ema_decay`` 0 or not; its value may change)."""
    was, now = get(stored, "train.ema_decay"), get(given, "train.ema_decay")
    if bool(was) != bool(now):
        raise ConfigError(
            f"config.train.ema_decay={now!r} differs from the trained run's {was!r} "
            f"({os.path.join(directory, CONFIG_FILE)}): its checkpoints "
            f"{'keep' if was else 'do not keep'} a moving average of the parameters, so "
            "training cannot resume with it turned "
            f"{'off' if was else 'on'}: drop the override, or train a new workdir"
        )


def _plain(value: Any) -> Any:
    """Tuples as lists, as JSON stores them."""
    return json.loads(json.dumps(value))


def _git_commit() -> str | None:
    """The commit of the package's checkout, "+dirty" with local changes; None outside
    a git checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def provenance() -> dict:
    """The package version, git commit and time of writing."""
    try:
        version = importlib.metadata.version("s2s_jax")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {
        "s2s_jax_version": version,
        "git_commit": _git_commit(),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write(
    directory: str,
    config: ml_collections.ConfigDict,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    **extra: Any,
) -> None:
    """Writes ``config.json`` (with the ``extra`` keys) and the vocabularies into
    ``directory`` (process 0)."""
    if jax.process_index() != 0:
        return
    os.makedirs(directory, exist_ok=True)
    for vocab, stem in zip((src_vocab, tgt_vocab), VOCAB_STEMS):
        save_vocab(vocab, os.path.join(directory, stem))
    record = {**provenance(), **extra, "config": config.to_dict()}
    write_atomically(
        os.path.join(directory, CONFIG_FILE), json.dumps(record, indent=2, ensure_ascii=False)
    )


def has_config(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, CONFIG_FILE))


def read_record(directory: str) -> dict:
    """All of ``config.json``: provenance, the config as a dict, and any extra keys
    (ConfigError naming the file if it is missing or unreadable)."""
    path = os.path.join(directory, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if not isinstance(record.get("config"), dict):
            raise ValueError("no 'config' object")
        return record
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; is {directory!r} a workdir trained by "
            "s2s_jax, or an export? (a workdir trained before config.json "
            "existed needs its --config once)"
        ) from None
    except (OSError, ValueError, AttributeError) as error:
        raise ConfigError(f"{path}: unreadable ({type(error).__name__}: {error})") from None


def read_config(directory: str) -> ml_collections.ConfigDict:
    """The locked config stored in ``directory``: ``base_config()`` with every stored
    field."""
    config = base_config()
    stored = read_record(directory)["config"]
    _rename_old_fields(stored)
    _update(config, stored, os.path.join(directory, CONFIG_FILE), "config")
    return config


def _rename_old_fields(stored: dict) -> None:
    """Moves the values of fields since renamed (``config.RENAMED``) to their new keys."""
    for old, new in RENAMED.items():
        (old_section, old_key), (new_section, new_key) = old.split("."), new.split(".")
        if old_key in stored.get(old_section, {}):
            stored.setdefault(new_section, {})[new_key] = stored[old_section].pop(old_key)


def _update(config: ml_collections.ConfigDict, stored: dict, path: str, prefix: str) -> None:
    for key, value in stored.items():
        if key not in config:
            raise ConfigError(
                f"{path}: unknown field {prefix}.{key} (written by another version of s2s_jax?)"
            )
        if isinstance(config[key], ml_collections.ConfigDict):
            _update(config[key], value, path, f"{prefix}.{key}")
        else:
            config[key] = _as_tuples(value) if isinstance(config[key], tuple) else value


def _as_tuples(value: Any) -> Any:
    """JSON lists back to the (nested) tuples of the schema."""
    return tuple(map(_as_tuples, value)) if isinstance(value, list) else value


def read_vocabs(directory: str) -> tuple[Vocab, Vocab]:
    """The source and target vocabularies stored in ``directory``."""
    return tuple(load_vocab(vocab_path(os.path.join(directory, stem))) for stem in VOCAB_STEMS)


def check_same_vocabs(directory: str, src_vocab: Vocab, tgt_vocab: Vocab) -> None:
    """Raises ConfigError if ``directory`` stores vocabularies other than these (a
    resumed run whose training data or vocabulary settings changed)."""
    if not has_config(directory):
        return
    for side, stem, vocab, stored in zip(
        ("source", "target"), VOCAB_STEMS, (src_vocab, tgt_vocab), read_vocabs(directory)
    ):
        if not same_vocab(vocab, stored):
            raise ConfigError(
                f"the {side} vocabulary built from config.data differs from "
                f"{vocab_path(os.path.join(directory, stem))}, the one this workdir was "
                "trained with: the training data or vocabulary settings changed; train a "
                "new workdir"
            )
