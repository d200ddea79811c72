"""Progress events for long operations: one shape for all of them.

Ollama's ``{status, digest, total, completed}``, plus ``eta_s`` (seconds left in this stage,
when known) and ``detail`` (figures of the stage, e.g. a tune step's loss and tokens/s).
Library functions take ``progress: ProgressFn | None``; the CLI draws rich bars from the
events, the job runner stores them with the job's id (``freehold.jobs``) and the server
streams them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    status: str  # the stage: "reading", "training", "writing", ...
    total: int | None = None
    completed: int | None = None
    digest: str | None = None
    eta_s: float | None = None
    detail: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": self.status}
        for key in ("total", "completed", "digest", "eta_s"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.detail:
            d["detail"] = dict(self.detail)
        return d


ProgressFn = Callable[[Progress], None]


def emit(progress: ProgressFn | None, status: str, total: int | None = None,
         completed: int | None = None, digest: str | None = None, *, eta_s: float | None = None,
         detail: Mapping[str, Any] | None = None) -> None:
    if progress is not None:
        progress(Progress(status, total, completed, digest, eta_s, detail))
