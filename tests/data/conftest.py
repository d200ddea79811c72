"""Fixtures for the data tests: the real archives, and one shared import of r-package-devel."""

from __future__ import annotations

from pathlib import Path

import pytest

from freehold.data import import_dataset
from freehold.store import Store


@pytest.fixture
def email_dir(shared_data: Path) -> Path:
    path = shared_data / "email"
    if not path.is_dir():
        pytest.skip(f"no email archives at {path}")
    return path


@pytest.fixture(scope="module")
def rpd(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict]:
    """r-package-devel 2023q4 imported once per module into its own store (about 1 s)."""
    archive = (
        Path(__file__).resolve().parents[3] / "shared" / "data" / "email" / "r-package-devel" / "2023q4.txt"
    )
    if not archive.is_file():
        pytest.skip(f"real data not found at {archive}")
    store = Store(tmp_path_factory.mktemp("rpd-home"))
    result = import_dataset([archive], "rpd", store=store)
    return store, result.config
