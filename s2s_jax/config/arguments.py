"""The argument of a config file, ``--config=configs/FILE.py:ARG``, parsed one way."""

import types


def parse_arg(arg: str, **defaults: str) -> types.SimpleNamespace:
    """``ARG`` as comma-separated values, each ``key=value`` or, by position, a value of
    the next of ``defaults``' keys (``"en-de,large"`` = ``"pair=en-de,size=large"`` for
    ``pair=..., size=...``); unnamed keys keep their default.

    Raises:
      ValueError: naming a key the config does not take.
    """
    values, keys = dict(defaults), iter(defaults)
    for part in filter(None, (part.strip() for part in arg.split(","))):
        key, named, value = part.partition("=")
        if not named:
            key, value = next(keys, None), part
            if key is None:
                raise ValueError(
                    f"config argument {arg!r}: too many values; it takes {', '.join(defaults)}"
                )
        elif key not in defaults:
            raise ValueError(
                f"config argument {arg!r}: no key {key!r}; it takes {', '.join(defaults)}"
            )
        values[key] = value
    return types.SimpleNamespace(**values)
