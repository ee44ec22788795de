"""Tests for s2s_jax.data.tasks."""

import datetime
import re
import time

import numpy as np
import pytest

from s2s_jax.data import tasks
from s2s_jax.data.tasks import format_numeric_date, format_text_date

SIZES = {"train": 3000, "validation": 300, "test": 300}
MONTHS = [
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
]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def parse_date(text: str) -> datetime.date:
    """An independent parser for the date sources; checks weekdays/ordinals."""
    text = text.lower()
    if m := re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)", text):
        return datetime.date(int(m[1]), int(m[2]), int(m[3]))
    if m := re.fullmatch(r"(\d\d)\.(\d\d)\.(\d{4})", text):
        return datetime.date(int(m[3]), int(m[2]), int(m[1]))
    if m := re.fullmatch(r"(\d\d?)/(\d\d?)/(\d\d|\d{4})", text):
        year = int(m[3])
        if len(m[3]) == 2:
            year += 2000 if year < 50 else 1900
        return datetime.date(year, int(m[1]), int(m[2]))
    words = text.replace(",", " ").split()
    weekday = None
    if words[0][:3] in [w[:3] for w in WEEKDAYS]:
        weekday = words.pop(0)
        assert weekday in WEEKDAYS or weekday in [w[:3] for w in WEEKDAYS]
    words = [w for w in words if w != "of"]
    assert len(words) == 3, text
    month_word = next(w for w in words if w.isalpha())
    month = [m[:3] for m in MONTHS].index(month_word[:3]) + 1
    assert month_word in (MONTHS[month - 1], MONTHS[month - 1][:3])
    day_word, year_word = [w for w in words if w != month_word]
    day = int(re.fullmatch(r"(\d\d?)(st|nd|rd|th)?", day_word)[1])
    assert len(year_word) == 4
    date = datetime.date(int(year_word), month, day)
    if not day_word.isdigit():
        assert day_word == tasks.ordinal(day), text
    if weekday is not None:
        assert WEEKDAYS[date.weekday()].startswith(weekday), text
    return date


@pytest.mark.parametrize("task_name", sorted(tasks.TASKS))
def test_determinism(task_name):
    a = tasks.make_splits(task_name, 0, SIZES)
    assert a == tasks.make_splits(task_name, 0, SIZES)
    assert a != tasks.make_splits(task_name, 1, SIZES)
    assert {k: len(v) for k, v in a.items()} == SIZES


@pytest.mark.parametrize("task_name", sorted(tasks.TASKS))
def test_eval_splits_are_disjoint_and_unique(task_name):
    splits = tasks.make_splits(task_name, 0, SIZES)
    train = {src for src, _ in splits["train"]}
    val = [src for src, _ in splits["validation"]]
    test = [src for src, _ in splits["test"]]
    assert len(set(val)) == len(val) and len(set(test)) == len(test)
    assert not set(val) & set(test)
    assert not train & (set(val) | set(test))


def test_small_space_eval_splits_are_disjoint_from_train():
    # Short reversal strings collide often, so the rejection is exercised.
    splits = tasks.make_splits("reversal", 3, {"train": 20000, "test": 500})
    train = {src for src, _ in splits["train"]}
    assert len(train) < 20000  # Duplicates inside train are allowed.
    assert not train & {src for src, _ in splits["test"]}


@pytest.mark.parametrize("task_name", sorted(tasks.TASKS))
def test_characters_within_alphabets(task_name):
    task = tasks.TASKS[task_name]
    rng = np.random.default_rng(0)
    for _ in range(3000):
        src, tgt = task.sample(rng)
        assert src and tgt
        assert set(src) <= set(task.src_chars), src
        assert set(tgt) <= set(task.tgt_chars), tgt


def test_unknown_task():
    with pytest.raises(ValueError, match="nope.*dates"):
        tasks.make_splits("nope", 0, {"train": 1})


def test_dates_are_correct():
    pairs = tasks.make_splits("dates", 0, {"train": 5000})["train"]
    for src, tgt in pairs:
        date = datetime.date.fromisoformat(tgt)
        assert tasks.FIRST_DATE <= date <= tasks.LAST_DATE
        assert parse_date(src) == date, src
    sources = [src for src, _ in pairs]
    # The format variety is actually produced.
    for pattern in [
        r"^\d\d?/\d\d?/\d\d$",
        r"^\d\d/\d\d/\d{4}$",
        r"^\d\d\.\d\d\.\d{4}$",
        r"^\d{4}-\d\d-\d\d$",
        " of ",
        r"^[a-z]{3}, ",
        r"^[A-Z][a-z]+ ",
        r"^[A-Z]+ \d",
        r"\d(st|nd|rd|th) ",
        r"\d, \d{4}$",
        r"^\d+ [a-z]+ \d{4}$",
    ]:
        assert any(re.search(pattern, s) for s in sources), pattern


def test_date_formats():
    d = datetime.date(1999, 3, 3)  # A Wednesday.
    assert format_numeric_date(d, "us", pad=False, short_year=True) == "3/3/99"
    assert format_numeric_date(d, "us") == "03/03/1999"
    assert format_numeric_date(d, "dots") == "03.03.1999"
    assert format_numeric_date(d, "iso") == "1999-03-03"
    assert (
        format_text_date(d, month_first=True, day_style="ordinal", comma=True, casing="title")
        == "March 3rd, 1999"
    )
    assert format_text_date(d, month_first=True, day_style="ordinal") == ("march 3rd 1999")
    assert format_text_date(d, month_first=True, comma=True) == "march 3, 1999"
    assert format_text_date(d, day_style="ordinal", of=True) == "3rd of march 1999"
    assert format_text_date(d, weekday="long") == "wednesday 3 march 1999"
    assert format_text_date(
        d, month_first=True, weekday="short", comma=True, weekday_comma=True, short_month=True
    ) == ("wed, mar 3, 1999")
    assert format_text_date(d, day_style="padded", casing="upper") == ("03 MARCH 1999")
    assert format_text_date(
        datetime.date(2049, 12, 31), day_style="ordinal", of=True, weekday="long", casing="title"
    ) == ("Friday 31st of December 2049")
    assert parse_date("3/3/99") == d
    assert parse_date("3/3/49") == datetime.date(2049, 3, 3)
    assert parse_date("3/3/50") == datetime.date(1950, 3, 3)


def test_ordinal():
    expected = {
        1: "1st",
        2: "2nd",
        3: "3rd",
        4: "4th",
        11: "11th",
        12: "12th",
        13: "13th",
        21: "21st",
        22: "22nd",
        23: "23rd",
        31: "31st",
    }
    assert {day: tasks.ordinal(day) for day in expected} == expected


def test_addition():
    pairs = tasks.make_splits("addition", 0, {"train": 3000})["train"]
    lengths = set()
    for src, tgt in pairs:
        a, b = src.split("+")
        assert a == str(int(a)) and b == str(int(b))  # No leading zeros.
        assert int(tgt) == int(a) + int(b)
        lengths |= {len(a), len(b)}
    assert lengths == set(range(1, tasks.MAX_ADDITION_DIGITS + 1))


def test_reversal():
    pairs = tasks.make_splits("reversal", 0, {"train": 3000})["train"]
    for src, tgt in pairs:
        assert tgt == src[::-1]
        assert re.fullmatch(r"[a-z]+", src)
    assert {len(src) for src, _ in pairs} == set(range(1, tasks.MAX_REVERSAL_LENGTH + 1))


def test_copy_has_long_inputs():
    pairs = tasks.make_splits("copy", 0, {"train": 5000})["train"]
    assert all(src == tgt and re.fullmatch(r"[a-z]+", src) for src, tgt in pairs)
    assert {len(src) for src, _ in pairs} == set(range(1, tasks.MAX_COPY_LENGTH + 1))


def test_dates_generation_is_fast():
    # 100k pairs must take well under 5 s; 20k here keeps the suite quick.
    start = time.perf_counter()
    tasks.make_splits("dates", 0, {"train": 20000, "test": 1000})
    assert time.perf_counter() - start < 1.0
