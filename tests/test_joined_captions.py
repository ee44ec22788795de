"""data.join_captions: long pairs made of Multi30k captions (s2s_jax/data/joined_captions.py)."""

import importlib.util
import os
import pathlib

import pytest

from s2s_jax.config import ConfigError, base_config
from s2s_jax.data import joined_captions, sources
from s2s_jax.data.sources import PairStream, load_splits
from s2s_jax.registries import validate

_CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"


def _captions(n: int) -> list[tuple[str, str]]:
    """Synthetic captions whose source and target name the same index: ("s7", "t7")."""
    return [(f"s{i}", f"t{i}") for i in range(n)]


def _indices(text: str, prefix: str) -> list[int]:
    words = text.split(" ")
    assert all(word.startswith(prefix) for word in words), text
    return [int(word[len(prefix) :]) for word in words]


def test_training_pairs_are_deterministic_for_a_seed():
    captions = _captions(500)
    first = joined_captions.join_training(captions, 4, seed=3)
    assert joined_captions.join_training(captions, 4, seed=3) == first
    assert joined_captions.join_training(captions, 4, seed=4) != first


def test_each_training_caption_is_used_once_per_size_in_aligned_pairs():
    captions = _captions(1_000)
    joined = joined_captions.join_training(captions, 4, seed=0)
    counts = [1_000, 500, 334, 250]  # the last of the 334 runs of 3 holds one caption
    assert len(joined) == sum(counts)
    start, orders = 0, []
    for size, count in zip(range(1, 5), counts):
        order = []
        for source, target in joined[start : start + count]:
            indices = _indices(source, "s")
            assert _indices(target, "t") == indices  # the same captions, in the same order
            assert len(indices) == size or (size, len(indices)) == (3, 1)
            order += indices
        assert sorted(order) == list(range(1_000))  # every caption once in this size
        orders.append(order)
        start += count
    assert orders[0] != list(range(1_000))  # shuffled, not in the file's order
    assert orders[1] != orders[3]  # each size shuffled anew


def test_training_join_drops_blank_captions_and_k1_keeps_the_split():
    captions = [("a", "b"), ("", "x"), ("c", "  "), ("d", "e")]
    joined = joined_captions.join_training(captions, 3, seed=0)
    words = sorted(w for source, _ in joined for w in source.split())
    assert words == ["a", "a", "a", "d", "d", "d"]  # once per size 1..3
    assert joined_captions.join_training(captions, 1, seed=0) == captions
    with pytest.raises(ValueError, match=">= 1"):
        joined_captions.join_training(captions, 0, seed=0)


@pytest.mark.parametrize("n", [0, 1, 7, 12])
def test_evaluation_split_holds_floor_n_over_j_runs_for_each_j(n):
    captions = _captions(n)
    joined = joined_captions.join_evaluation(captions, 4)
    assert len(joined) == sum(n // j for j in range(1, 5))
    assert joined[:n] == captions  # j = 1 first: the original split
    start = 0
    for j in range(1, 5):
        for run in range(n // j):
            source, target = joined[start + run]
            assert (
                _indices(source, "s")
                == _indices(target, "t")
                == list(range(run * j, (run + 1) * j))
            )
        start += n // j


def test_evaluation_join_keeps_empty_lines_and_k1_is_the_split():
    captions = [("a", "b"), ("", ""), ("c", "d")]
    assert joined_captions.join_evaluation(captions, 1) == captions
    assert joined_captions.join_evaluation(captions, 2)[3:] == [("a ", "b ")]


def test_the_training_stream_is_keyed_by_the_join_settings():
    splits = {"train": _captions(300), "test": _captions(10)}
    plain = sources._join_captions(dict(splits), 1, 0, "M")
    before = PairStream.of("M train", splits["train"])
    assert (plain["train"].name, plain["train"].fingerprint) == (before.name, before.fingerprint)
    assert list(plain["train"].read()) == splits["train"]
    assert plain["test"] == splits["test"]
    streams = [sources._join_captions(dict(splits), 4, seed, "M") for seed in (0, 0, 1)]
    fingerprints = [joined["train"].fingerprint for joined in streams]
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]
    assert plain["train"].fingerprint not in fingerprints
    assert "captions joined 1..4, each caption in one pair of each size" in fingerprints[0]
    assert list(streams[0]["train"].read()) == joined_captions.join_training(splits["train"], 4, 0)
    assert len(streams[0]["test"]) == 10 + 5 + 3 + 2


def test_join_captions_is_validated():
    config = base_config()
    validate(config)
    for bad in (0, -1):
        config.data.join_captions = bad
        with pytest.raises(ConfigError, match="data.join_captions"):
            validate(config)


def _multi30k_config(arg: str):
    spec = importlib.util.spec_from_file_location("multi30k_config", _CONFIGS / "multi30k.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def test_long_multi30k_config():
    base, long = _multi30k_config("en-de"), _multi30k_config("en-de,long")
    validate(long)
    assert (base.data.join_captions, long.data.join_captions) == (1, 4)
    assert max(long.data.buckets)[0] >= 2 * max(base.data.buckets)[0]
    assert long.model == base.model and long.eval.max_len_a == base.eval.max_len_a


def test_real_multi30k_with_four_captions_joined(shared_data_dir, tmp_path):
    manual_dir = shared_data_dir / "multi30k"
    if not (manual_dir / "train.en").is_file():
        reason = f"Multi30k files not found in {manual_dir}"
        if os.environ.get("S2S_REQUIRE_DATA") == "1":
            pytest.fail(f"{reason}, and S2S_REQUIRE_DATA=1")
        pytest.skip(reason)
    config = _multi30k_config("en-de,long")
    config.data.manual_dir = str(manual_dir)
    splits = load_splits(config, str(tmp_path), ["train", "test"])
    train, test = splits["train"], splits["test"]
    original = (manual_dir / "train.en").read_text(encoding="utf-8").split()
    # each caption once in a pair of each size 1..4
    assert sum(len(source.split()) for source, _ in train) == 4 * len(original)
    assert len(train) == sum(-(-29_000 // size) for size in range(1, 5))
    assert sum(len(source.split()) > 40 for source, _ in train) > 300
    assert sum(len(target.split()) > 40 for _, target in train) > 300
    assert len(test) == 1_000 + 500 + 333 + 250
    first_lines = [
        (manual_dir / f"test_2016_flickr.{lang}").read_text(encoding="utf-8").split("\n")[:2]
        for lang in ("en", "de")
    ]
    assert test[0] == (first_lines[0][0], first_lines[1][0])
    assert test[1_000] == (" ".join(first_lines[0]), " ".join(first_lines[1]))
