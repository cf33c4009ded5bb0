"""Shared fixtures. Server fixtures (app, client, runner, participant) live here too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("REALISM_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data beside the project (``../shared/data``); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
