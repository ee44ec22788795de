"""Named implementations of one family (cells, attentions, decoders, ...), chosen by
one config field: a lookup instead of an if-chain, as in big_vision."""

from collections.abc import Callable, Mapping
from typing import TypeVar

from s2s_jax.config.checks import get, one_of

T = TypeVar("T")


class Registry(dict[str, T]):
    """A dict of name -> implementation that knows the config field choosing among them.

    The config layer knows no registry: ``main`` calls ``check`` on each, so the names
    valid for a family are checked where the family lives.
    """

    def __init__(
        self, key: str, entries: Mapping[str, T], applies: Callable[..., bool] = lambda config: True
    ):
        """``key``: the dotted config field naming an entry; ``applies(config)``: whether
        the field is read at all for this config (e.g. a synthetic task, only for
        synthetic data)."""
        super().__init__(entries)
        self.key = key
        self.applies = applies

    def check(self, config) -> None:
        """Raises ConfigError naming ``config.<key>`` unless it names an entry."""
        if self.applies(config):
            one_of(config, self.key, self)

    def chosen(self, config) -> T:
        """The entry ``config.<key>`` names (after ``check``)."""
        self.check(config)
        return self[get(config, self.key)]
