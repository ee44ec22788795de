"""What every benchmark prints: a table for people, then one JSON line for programs."""

import json


def print_report(rows: list[tuple[str, str]], figures: dict) -> None:
    """Prints ``rows`` of (name, value) as an aligned table, then ``figures`` as the
    last line, in JSON."""
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures))
