"""Shared pytest fixtures."""

import os
import pathlib

import pytest

_REPO = pathlib.Path(__file__).resolve().parent.parent


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
