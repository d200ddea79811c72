"""Fine-tuning: LoRA on a CPU (or a GPU when there is one), resumable, deterministic, recorded.

    from freehold.train import TuneConfig, tune
    result = tune(TuneConfig(base="smollm2", dataset="support", output="acme-support"))
    result.entry        # the tuned model in the store (merged safetensors + GGUF + adapter)

Parts: ``config`` (TuneConfig), ``data`` (chat -> tokens with an assistant-only loss mask,
length-bucketed step plan), ``model`` (LoRA, the one step function), ``trainer`` (checks
before work, the loop, checkpoints, signals, ledger records), ``checkpoint`` (run
directories, atomic checkpoints), ``finish`` (adapter, merge, GGUF, store entry),
``replay`` (the ledger's replayer), ``status`` (``tune --status``, the loss curve).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freehold.config import Settings, load_settings
from freehold.progress import ProgressFn, emit
from freehold.store import ModelEntry, Store
from freehold.train.config import TuneConfig
from freehold.train.status import plot_losses, run_status
from freehold.train.trainer import Session, StepInfo, Trainer, prepare

__all__ = ["Session", "StepInfo", "Trainer", "TuneConfig", "TuneResult", "plot_losses", "prepare", "run_status",
           "tune"]


@dataclass
class TuneResult:
    entry: ModelEntry
    run: str
    run_dir: Path
    steps: int
    final_loss: float | None
    val_loss: float | None
    seconds: float


def tune(cfg: TuneConfig, *, store: Store | None = None, settings: Settings | None = None, resume: bool = False,
         progress: ProgressFn | None = None) -> TuneResult:
    """Fine-tune ``cfg.base`` on ``cfg.dataset`` into store model ``cfg.output``.

    Every check runs before training starts. ``progress`` sees one event shape throughout:
    "prepared" (its ``detail`` is ``Session.summary()``: counts, steps, memory, notes), then a
    "training" event per step (``StepInfo.of`` reads loss, tokens/s, ETA), then the stages of
    finishing. SIGINT/SIGTERM checkpoint and raise ``TrainingInterrupted``; ``resume=True``
    continues from the latest checkpoint.
    """
    from freehold.train.finish import finish

    started = time.perf_counter()
    settings = settings or load_settings()
    from freehold.home import open_store

    store = store or open_store(settings)
    session = prepare(store, cfg, settings=settings, resume=resume, progress=progress)
    emit(progress, "prepared", detail=session.summary())
    trainer = Trainer(session, progress)
    trainer.build()
    trainer.train()
    trainer.write_status("finishing")
    entry = finish(session, progress)
    trainer.write_status("done", model=entry.name)
    last: dict[str, Any] = next((m for m in reversed(trainer.metrics) if "loss" in m), {})
    val = next((m["val_loss"] for m in reversed(trainer.metrics) if "val_loss" in m), None)
    return TuneResult(entry, session.run, session.run_dir, trainer.step, last.get("loss"), val,
                      time.perf_counter() - started)
