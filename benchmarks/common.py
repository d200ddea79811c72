"""The store a benchmark keeps between runs: BENCH_HOME (or the script's default), removed
first with --fresh, and made the process's FREEHOLD_HOME so every library call uses it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def open_bench_store(default: str, fresh: bool) -> tuple[Any, Any]:
    """``(settings, store)`` over BENCH_HOME, default ``default``; ``fresh`` starts it over."""
    home = Path(os.environ.get("BENCH_HOME", default))
    if fresh:
        shutil.rmtree(home, ignore_errors=True)
    os.environ["FREEHOLD_HOME"] = str(home)
    from freehold.config import load_settings

    settings = load_settings()
    from freehold.home import open_store

    return settings, open_store(settings)
