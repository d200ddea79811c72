"""Progress events for long operations (Ollama's ``{status, digest, total, completed}`` shape).

Library functions take ``progress: ProgressFn | None``; the CLI draws rich bars from the
events and the server streams them as JSON lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    status: str
    total: int | None = None
    completed: int | None = None
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


ProgressFn = Callable[[Progress], None]


def emit(progress: ProgressFn | None, status: str, total: int | None = None,
         completed: int | None = None, digest: str | None = None) -> None:
    if progress is not None:
        progress(Progress(status, total, completed, digest))
