"""A standing fuzz suite: generated corpora, config values and damaged checkpoints.

Properties: a corpus, however malformed, either becomes training data or ends in one
CorpusError naming its file (or a ConfigError naming the key, for one too small to
batch); any config value either validates or ends in a ConfigError naming its key;
any byte flip or cut in any file of the latest checkpoint is detected, and restore
falls back to the previous intact one. The examples are derived from a fixed seed
(``derandomize``); ``--hypothesis-profile=thorough`` runs ten times as many.
"""

import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from s2s_jax import registries
from s2s_jax.config import ConfigError, base_config
from s2s_jax.data.readers import CorpusError
from s2s_jax.runtime.checkpointing import Checkpointer

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    parent=settings.get_profile("ci"),
    max_examples=10 * settings.get_profile("default").max_examples,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Characters that break naive readers: tabs, line ends, byte-order marks, NUL, form
# feeds, Unicode line separators, combining marks, astral characters, blanks.
_NASTY = "\t\r\n\ufeff\x00\x0c\u2028\u0301\U0001f600 \u00a0"
_TEXT = st.text(st.sampled_from("abc xyz" + _NASTY) | st.characters(), max_size=30)
_FIELD = st.text(
    st.sampled_from("abc xyz" + _NASTY.replace("\t", "").replace("\n", ""))
    | st.characters(exclude_characters="\t\n"),
    max_size=30,
)


@st.composite
def corpus_bytes(draw) -> bytes:
    """A TSV file: lines of random structure, or (sometimes) random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    pair = st.tuples(_FIELD, _FIELD).map("\t".join)
    line = st.one_of(pair, st.just("a cat\tEine Katze"))
    if draw(st.booleans()):  # lines of any structure too
        line |= _TEXT
    lines = draw(st.lists(line, max_size=40))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def _data_config(**data):
    config = base_config()
    with config.unlocked():
        config.data.update(
            {
                "source": "files",
                "tokenizer": "char",
                "batch_size": 4,
                "buckets": ((64, 64),),
                **data,
            }
        )
    return config


@settings(max_examples=150)
@given(corpus_bytes(), st.booleans())
def test_any_corpus_trains_or_is_named_in_one_error(content, held_out):
    from s2s_jax.training.train import training_data  # TensorFlow, for the first example only

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "corpus.tsv")
        with open(path, "wb") as f:
            f.write(content)
        given_splits = {} if held_out else {"validation_path": path, "test_path": path}
        try:
            corpus, batches = training_data(
                _data_config(train_path=path, **given_splits), os.path.join(directory, "run")
            )
        except CorpusError as error:
            event(f"corpus error: {str(error)[len(path) : len(path) + 30]}")
            assert str(error).startswith(path), error
        except ConfigError as error:
            event("too small for a batch")
            assert str(error).startswith("config.data.batch_size=4 is too large"), error
        else:
            event("trains")
            assert len(corpus.train) >= 4
            assert batches.batch(0)["src"].shape == (4, 64)


@settings(max_examples=100)
@given(st.lists(st.binary(max_size=40), max_size=8), st.lists(st.binary(max_size=40), max_size=8))
def test_any_aligned_files_read_or_are_named_in_one_error(source, target):
    from s2s_jax.data.readers import read_aligned

    with tempfile.TemporaryDirectory() as directory:
        paths = [os.path.join(directory, f"corpus.{lang}") for lang in ("en", "de")]
        for path, lines in zip(paths, (source, target)):
            with open(path, "wb") as f:
                f.write(b"\n".join(lines))
        try:
            pairs, _ = read_aligned(*paths, drop_empty=True)
        except CorpusError as error:
            assert str(error).startswith(tuple(paths) + ("Different line counts",)), error
        else:
            assert all("\n" not in s + t and not s.startswith("\ufeff") for s, t in pairs)


def _fields(config, prefix=""):
    for key, value in config.items():
        if hasattr(value, "items"):
            yield from _fields(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


_FIELDS = sorted(_fields(base_config()), key=lambda field: field[0])


def _values_like(value):
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-(10**6), 10**7)
    if isinstance(value, float):
        return st.floats(allow_nan=True, allow_infinity=True)
    if isinstance(value, str):
        return st.text(max_size=12) | st.sampled_from(["", "best", "latest", "0", "bpe"])
    if isinstance(value, tuple):
        return st.lists(
            st.integers(-5, 300) | st.tuples(st.integers(-5, 300), st.integers(-5, 300)), max_size=4
        ).map(tuple)
    return st.nothing()


@st.composite
def overrides(draw):
    """One to three fields of the schema, each given a value of its type."""
    chosen = draw(
        st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=3, unique_by=lambda field: field[0])
    )
    return [(key, draw(_values_like(value))) for key, value in chosen]


@settings(max_examples=250)
@given(overrides())
def test_any_config_value_validates_or_is_named_in_one_error(changes):
    config = base_config()
    for key, value in changes:
        try:
            with config.unlocked():
                config.update_from_flattened_dict({key: value})
        except (TypeError, ValueError):  # the flag parser refuses it: never reaches us
            return
    try:
        registries.validate(config)
    except ConfigError as error:
        assert any(
            f"config.{key}" in str(error) or key.split(".")[-1] in str(error) for key, _ in changes
        ), (changes, error)


def _state(seed: int) -> train_state.TrainState:
    params = {"w": jax.random.normal(jax.random.key(seed), (64, 64)), "b": jnp.ones(64)}
    state = train_state.TrainState.create(apply_fn=None, params=params, tx=optax.adam(0.1))
    return state.apply_gradients(grads=jax.tree.map(jnp.ones_like, params))


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory):
    """A workdir holding the latest checkpoints of steps 1 and 2."""
    workdir = tmp_path_factory.mktemp("two_steps")
    checkpointer = Checkpointer(workdir, keep=2)
    for step in (1, 2):
        checkpointer.save(step, _state(step))
    checkpointer.close()
    step_dir = workdir / "checkpoints" / "2"
    files = sorted(
        os.path.relpath(os.path.join(root, name), step_dir)
        for root, _, names in os.walk(step_dir)
        for name in names
        if os.path.getsize(os.path.join(root, name))
    )
    return workdir, files


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
def test_any_damage_to_the_latest_checkpoint_is_caught(two_steps, data):
    template, files = two_steps
    relative = data.draw(st.sampled_from(files), label="file")
    with tempfile.TemporaryDirectory() as directory:
        workdir = os.path.join(directory, "run")
        shutil.copytree(template, workdir)
        path = os.path.join(workdir, "checkpoints", "2", relative)
        size = os.path.getsize(path)
        damage = data.draw(st.sampled_from(["1 byte", "4 KiB", "whole file", "cut"]))
        offset = data.draw(st.integers(0, size - 1), label="offset")
        with open(path, "r+b") as f:
            if damage == "cut":
                f.truncate(offset)
            else:
                start, length = {
                    "1 byte": (offset, 1),
                    "4 KiB": (offset, 4096),
                    "whole file": (0, size),
                }[damage]
                f.seek(start)
                block = f.read(length)
                f.seek(start)
                f.write(bytes(b ^ 0xFF for b in block))
        restored = Checkpointer(workdir, keep=2).restore(_state(0))
        for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(_state(1)), strict=True):
            np.testing.assert_array_equal(a, b)
        assert os.path.isdir(os.path.join(workdir, "damaged", "checkpoints-2"))
