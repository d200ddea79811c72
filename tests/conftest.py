"""Test fixtures: every test gets its own FREEHOLD_HOME in a temp dir (never ~/.freehold)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def freehold_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "freehold-home"
    monkeypatch.setenv("FREEHOLD_HOME", str(home))
    monkeypatch.setenv("FREEHOLD_NO_SERVER", "1")
    monkeypatch.delenv("FREEHOLD_DEBUG", raising=False)
    return home


@pytest.fixture
def shared_data() -> Path:
    """The real data in ../shared/data; skip with a reason when this clone has none."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (clone with ../shared beside the repo)")
    return SHARED_DATA


def pytest_configure(config: pytest.Config) -> None:
    # The same OpenMP wait policy the engine sets (freehold/engine/llama.py), applied before
    # anything imports llama_cpp.
    from freehold.engine.llama import _prepare_env

    _prepare_env()


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-dim llama GGUF with a ChatML template (written by freehold.testing)."""
    from freehold.testing import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_base_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny model without a chat template (a base model)."""
    from freehold.testing import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("tinybase") / "tiny-base.gguf", chat_template=None,
                           license=None)


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from freehold.testing import write_tiny_hf

    return write_tiny_hf(tmp_path_factory.mktemp("tinyhf") / "tiny-hf")


@pytest.fixture
def store(freehold_home: Path):  # type: ignore[no-untyped-def]
    """An empty store (bundled models not registered: fast)."""
    from freehold.config import load_settings
    from freehold.store import Store

    s = Store.open(load_settings())
    yield s
    s.close()
