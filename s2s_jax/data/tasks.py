"""Deterministic synthetic seq2seq tasks, generated on the fly (no download)."""

import dataclasses
import datetime
import string
import zlib
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from s2s_jax.config.registry import Registry

T = TypeVar("T")
Pair = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class Task:
    """A synthetic task.

    Attributes:
      name: registry key.
      src_chars: every character `sample` can put in a source.
      tgt_chars: every character `sample` can put in a target.
      sample: draws one (source, target) pair from a numpy Generator.
    """

    name: str
    src_chars: str
    tgt_chars: str
    sample: Callable[[np.random.Generator], Pair]


def _choice(rng: np.random.Generator, options: Sequence[T]) -> T:
    # Much faster than rng.choice, which first converts `options` to an array.
    return options[rng.integers(len(options))]


def _flip(rng: np.random.Generator) -> bool:
    return rng.random() < 0.5


# ----------------------------------------------------------------------------
# dates: human-written dates -> ISO "YYYY-MM-DD"
# ----------------------------------------------------------------------------

FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)  # Two-digit years are unambiguous.
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def ordinal(day: int) -> str:
    """Returns "1st", "2nd", "3rd", "4th", ..., "11th", "12th", "13th", "21st"."""
    if day % 100 in (11, 12, 13):
        return f"{day}th"
    return f"{day}" + {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def format_numeric_date(
    date: datetime.date, style: str, pad: bool = True, short_year: bool = False
) -> str:
    """Formats `date` numerically.

    Args:
      date: the date.
      style: "us" ("3/3/99", "03/03/1999"), "dots" ("03.03.1999") or "iso".
      pad: zero-pad day and month of the "us" style (the others always are).
      short_year: two-digit year in the "us" style.
    """
    if style == "iso":
        return date.isoformat()
    if style == "dots":
        return f"{date.day:02d}.{date.month:02d}.{date.year}"
    if style == "us":
        year = f"{date.year % 100:02d}" if short_year else str(date.year)
        width = 2 if pad else 1
        return f"{date.month:0{width}d}/{date.day:0{width}d}/{year}"
    raise ValueError(f"unknown numeric date style {style!r}")


def format_text_date(
    date: datetime.date,
    *,
    month_first: bool = False,
    day_style: str = "plain",
    short_month: bool = False,
    weekday: str | None = None,
    weekday_comma: bool = False,
    of: bool = False,
    comma: bool = False,
    casing: str = "lower",
) -> str:
    """Formats `date` with a month name, e.g. "sat, march 3rd, 1999".

    Args:
      date: the date.
      month_first: "march 3 1999" instead of "3 march 1999".
      day_style: "plain" ("3"), "padded" ("03") or "ordinal" ("3rd").
      short_month: "mar" instead of "march".
      weekday: None, "long" ("saturday ...") or "short" ("sat ...").
      weekday_comma: a comma after the weekday.
      of: "3rd of march" (day-month order only).
      comma: a comma before the year.
      casing: "lower", "title" (capitalized names) or "upper".
    """
    day = {"plain": str(date.day), "padded": f"{date.day:02d}", "ordinal": ordinal(date.day)}[
        day_style
    ]
    month = MONTHS[date.month - 1]
    month = month[:3] if short_month else month
    if month_first:
        text = f"{month} {day}"
    else:
        text = f"{day} of {month}" if of else f"{day} {month}"
    text += f"{',' if comma else ''} {date.year}"
    if weekday is not None:
        name = WEEKDAYS[date.weekday()]
        name = name[:3] if weekday == "short" else name
        text = f"{name}{',' if weekday_comma else ''} {text}"
    if casing == "title":
        return " ".join(
            w.capitalize() if w[0].isalpha() and w != "of" else w for w in text.split(" ")
        )
    return text.upper() if casing == "upper" else text


def _random_date_text(rng: np.random.Generator, date: datetime.date) -> str:
    kind = rng.random()
    if kind < 0.15:
        return format_numeric_date(date, "us", pad=_flip(rng), short_year=_flip(rng))
    if kind < 0.25:
        return format_numeric_date(date, _choice(rng, ("dots", "iso")))
    day_style = _choice(rng, ("plain", "padded", "ordinal"))
    month_first = _flip(rng)
    return format_text_date(
        date,
        month_first=month_first,
        day_style=day_style,
        short_month=_flip(rng),
        weekday=_choice(rng, (None, None, "long", "short")),
        weekday_comma=_flip(rng),
        of=not month_first and day_style == "ordinal" and _flip(rng),
        comma=_flip(rng),
        casing=_choice(rng, ("lower", "title", "upper")),
    )


def _sample_date(rng: np.random.Generator) -> Pair:
    num_days = (LAST_DATE - FIRST_DATE).days + 1
    date = FIRST_DATE + datetime.timedelta(days=int(rng.integers(num_days)))
    return _random_date_text(rng, date), date.isoformat()


def _date_src_chars() -> str:
    words = " ".join(MONTHS + WEEKDAYS + ("of", "st nd rd th"))
    return "".join(sorted(set(words + words.upper() + string.digits + ",/.-")))


# ----------------------------------------------------------------------------
# addition and reversal
# ----------------------------------------------------------------------------

MAX_ADDITION_DIGITS = 5
MAX_REVERSAL_LENGTH = 20
MAX_COPY_LENGTH = 60


def _sample_addition(rng: np.random.Generator) -> Pair:
    numbers = []
    for _ in range(2):
        digits = int(rng.integers(1, MAX_ADDITION_DIGITS + 1))
        low = 0 if digits == 1 else 10 ** (digits - 1)
        numbers.append(int(rng.integers(low, 10**digits)))
    return f"{numbers[0]}+{numbers[1]}", str(sum(numbers))


def _letters(rng: np.random.Generator, max_length: int) -> str:
    length = int(rng.integers(1, max_length + 1))
    return "".join(string.ascii_lowercase[i] for i in rng.integers(26, size=length))


def _sample_reversal(rng: np.random.Generator) -> Pair:
    text = _letters(rng, MAX_REVERSAL_LENGTH)
    return text, text[::-1]


def _sample_copy(rng: np.random.Generator) -> Pair:
    """Long inputs for the bottleneck study: a fixed-size context vector must hold
    up to MAX_COPY_LENGTH letters."""
    text = _letters(rng, MAX_COPY_LENGTH)
    return text, text


TASKS: Registry[Task] = Registry(
    "data.task",
    {
        task.name: task
        for task in (
            Task("dates", _date_src_chars(), string.digits + "-", _sample_date),
            Task("addition", string.digits + "+", string.digits, _sample_addition),
            Task("reversal", string.ascii_lowercase, string.ascii_lowercase, _sample_reversal),
            Task("copy", string.ascii_lowercase, string.ascii_lowercase, _sample_copy),
        )
    },
    applies=lambda config: config.data.source == "synthetic",
)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name]


def _draw(
    task: Task, rng: np.random.Generator, size: int, used: set[str], unique: bool
) -> list[Pair]:
    """Samples `size` pairs whose sources are not in `used`."""
    pairs = []
    max_tries = 100 * size + 1000  # Guards against a task with too few sources.
    for _ in range(max_tries):
        if len(pairs) == size:
            break
        src, tgt = task.sample(rng)
        if src not in used:
            pairs.append((src, tgt))
            if unique:
                used.add(src)
    if len(pairs) < size:
        raise ValueError(f"task {task.name!r} cannot produce {size} new sources")
    return pairs


def make_splits(task_name: str, seed: int, sizes: dict[str, int]) -> dict[str, list[Pair]]:
    """Generates the splits of a task, e.g. sizes={"train": 50000, "test": 1000}.

    Every split other than "train" is an evaluation split: its sources are
    unique and disjoint from the sources of all other splits. Duplicates inside
    "train" are allowed. Each split has its own random stream derived from
    (seed, split name), so the result only depends on the arguments.
    """
    task = get_task(task_name)
    used: set[str] = set()
    splits = {}
    # Evaluation splits first (in a fixed order), then train rejects their sources.
    for name in sorted(sizes, key=lambda n: (n == "train", n)):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        splits[name] = _draw(task, rng, sizes[name], used, unique=name != "train")
    return {name: splits[name] for name in sizes}
