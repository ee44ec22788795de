"""data.curriculum_steps: short pairs first (s2s_jax/data/curriculum.py)."""

import math

import numpy as np
import pytest

from s2s_jax.config import ConfigError, base_config
from s2s_jax.data.batching import Examples, TrainBatches
from s2s_jax.data.curriculum import CurriculumBatches, competence
from s2s_jax.registries import validate

BUCKETS = ((8, 8), (16, 16), (32, 32))
SIZES = [8, 4, 2]


def _examples(n: int = 400, seed: int = 0) -> Examples:
    """Pairs whose ids name the pair (id = index + 4) and whose lengths vary 1..30."""
    rng = np.random.default_rng(seed)
    src, tgt = [], []
    for i in range(n):
        src_len, tgt_len = rng.integers(1, 31, size=2)
        src.append(np.array([i + 4] * (src_len - 1) + [2], np.int32))  # ... then EOS
        tgt.append(np.array([i + 4] * tgt_len, np.int32))
    return Examples(src, tgt)


def _pairs(batch) -> list[int]:
    """The indices of the pairs in a batch (valid rows)."""
    return [int(row[0]) - 4 for row in batch["tgt_out"][batch["valid"]]]


def _curriculum(examples, steps=100, start=0.05, **kwargs):
    return CurriculumBatches(examples, SIZES, BUCKETS, 3, steps=steps, start=start, **kwargs)


def test_competence_is_the_square_root_schedule():
    for step in (0, 1, 10, 50, 99, 100, 150):
        expected = min(1.0, math.sqrt(0.01**2 + (1 - 0.01**2) * step / 100))
        assert competence(step, 100, 0.01) == pytest.approx(expected, rel=1e-12)
    assert competence(0, 100, 0.3) == pytest.approx(0.3)
    assert competence(100, 100, 0.3) == 1.0


def test_each_step_draws_only_from_the_easiest_pairs():
    examples = _examples()
    batches = _curriculum(examples)
    # The fitting pairs, easiest (shortest source, then target) first, as an order.
    lengths = examples.lengths
    fitting = [i for i in range(len(examples)) if lengths[i, 0] <= 32 and lengths[i, 1] + 1 <= 32]
    ranked = sorted(fitting, key=lambda i: (lengths[i, 0], lengths[i, 1], i))
    seen_hardest = []
    for step in range(100):
        eligible = batches.eligible_pairs(step)
        assert eligible >= math.ceil(competence(step, 100, 0.05) * len(fitting))
        allowed = set(ranked[:eligible])
        pairs = _pairs(batches.batch(step))
        assert set(pairs) <= allowed and len(set(pairs)) == len(pairs)
        seen_hardest.append(max(ranked.index(p) for p in pairs))
    assert batches.eligible_pairs(0) < len(fitting) / 4  # starts on a small share
    assert max(seen_hardest[:10]) < len(fitting) / 2  # ... of short pairs
    assert max(seen_hardest[50:]) > len(fitting) / 2  # and reaches the long ones


def test_after_the_curriculum_it_is_the_epoch_stream_from_its_start():
    examples = _examples()
    plain = TrainBatches(examples, SIZES, BUCKETS, 3)
    batches = _curriculum(examples, steps=20)
    assert batches.steps_per_epoch == plain.steps_per_epoch and batches.shapes == plain.shapes
    for step in range(0, 2 * plain.steps_per_epoch, 7):
        np.testing.assert_equal(batches.batch(20 + step), plain.batch(step))


def test_the_stream_is_deterministic_and_resumes_at_any_step():
    examples = _examples()
    first = [_pairs(b) for b, _ in zip(_curriculum(examples).iterate(), range(30))]
    again = _curriculum(examples)
    assert [_pairs(again.batch(step)) for step in range(30)] == first
    resumed = _curriculum(examples).iterate(17)
    assert [_pairs(next(resumed)) for _ in range(13)] == first[17:]
    other_seed = CurriculumBatches(examples, SIZES, BUCKETS, 4, steps=100, start=0.05)
    assert [_pairs(other_seed.batch(step)) for step in range(30)] != first


def test_processes_split_each_global_batch():
    examples = _examples()
    whole = _curriculum(examples)
    parts = [_curriculum(examples, process_index=p, process_count=2) for p in range(2)]
    for step in (0, 5, 60, 120):
        assert _pairs(parts[0].batch(step)) + _pairs(parts[1].batch(step)) == _pairs(
            whole.batch(step)
        )


def test_a_tiny_start_still_fills_a_batch():
    batches = _curriculum(_examples(), start=1e-6)
    assert len(_pairs(batches.batch(0))) in SIZES
    with pytest.raises(ValueError, match="start"):
        _curriculum(_examples(), start=0.0)


@pytest.mark.parametrize(
    "key, value", [("curriculum_steps", -1), ("curriculum_start", 0.0), ("curriculum_start", 1.5)]
)
def test_curriculum_settings_are_validated(key, value):
    config = base_config()
    config.data[key] = value
    with pytest.raises(ConfigError, match=f"data.{key}"):
        validate(config)
