"""The checks every config section's ``validate`` is made of; each names the key."""

from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key."""


def get(config, key: str) -> Any:
    """``config``'s value at the dotted ``key``, e.g. ``"model.hidden_size"``."""
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def check(ok: bool, key: str, message: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"config.{key} {message}, got {value!r}")


def positive(config, *keys: str) -> None:
    for key in keys:
        check(get(config, key) > 0, key, "must be > 0", get(config, key))


def non_negative(config, *keys: str) -> None:
    for key in keys:
        check(get(config, key) >= 0, key, "must be >= 0", get(config, key))


def one_of(config, key: str, choices: Iterable) -> None:
    check(get(config, key) in choices, key, f"must be one of {sorted(choices)}", get(config, key))


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
