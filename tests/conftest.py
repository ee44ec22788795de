"""Shared pytest fixtures, and for every test process one XLA compilation cache and
unoptimised (quick to compile) XLA CPU code."""

import os
import pathlib
import shutil
import tempfile

import pytest

_REPO = pathlib.Path(__file__).resolve().parent.parent

# The command-line tests start a fresh Python process per run, and most runs compile
# the same tiny programs: a persistent compilation cache for the session, shared by the
# pytest workers and every subprocess (they inherit the environment), halves such a run
# (29 s -> 15 s). Set before anything imports jax; an explicit JAX_COMPILATION_CACHE_DIR
# (or "": none) wins. The process that made the directory removes it at the end.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="s2s_jax_tests_xla_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")


# The tests compile hundreds of tiny programs and run each briefly: XLA's CPU backend
# without LLVM's optimisations compiles a tiny training run (10 steps, its evaluation) in
# 34 s of CPU against 59 s, with the same losses to the last printed digit. Every test
# process and subprocess inherits it; a level the caller's XLA_FLAGS names is kept.
_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")
if "--xla_backend_optimization_level" not in _XLA_FLAGS:
    os.environ["XLA_FLAGS"] = f"--xla_backend_optimization_level=0 {_XLA_FLAGS}".strip()


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    """The shared data directory: $S2S_DATA_DIR, by default <repo>/../shared/data.

    Tests that use it are skipped where it is missing, unless S2S_REQUIRE_DATA=1
    (as in CI), which turns the skip into a failure.
    """
    path = pathlib.Path(os.environ.get("S2S_DATA_DIR", _REPO.parent / "shared" / "data"))
    if not path.is_dir():
        reason = f"shared data directory {path} not found (set S2S_DATA_DIR)"
        if os.environ.get("S2S_REQUIRE_DATA") == "1":
            pytest.fail(f"{reason}, and S2S_REQUIRE_DATA=1")
        pytest.skip(reason)
    return path
