"""Where a run stands: ``freehold tune --status NAME`` and the loss-curve PNG."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from freehold.errors import UsageError
from freehold.train.checkpoint import latest_checkpoint, run_dir


def run_status(home: Path, name: str) -> dict[str, Any]:
    """The run's status.json, plus whether its process is still alive and its checkpoints."""
    root = run_dir(home, name)
    status_file = root / "status.json"
    if not status_file.is_file():
        runs = sorted(p.name for p in (home / "runs").glob("*") if (p / "status.json").is_file())
        raise UsageError(f"there is no training run named {name}",
                         f"runs here: {', '.join(runs)}" if runs else "start one with 'freehold tune'")
    status = dict(json.loads(status_file.read_text()))
    if status.get("state") in ("running", "finishing") and not _alive(status.get("pid")):
        status["state"] = "killed"  # the process died without writing a final state
    latest = latest_checkpoint(root)
    status["checkpoint"] = latest.name if latest else None
    status["checkpoints"] = sorted(p.name for p in (root / "checkpoints").glob("step-*")) if latest else []
    status["run_dir"] = str(root)
    status["age_s"] = time.time() - float(status.get("updated", time.time()))
    plot = root / "loss.png"
    status["loss_curve"] = str(plot) if plot.is_file() else None
    return status


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def plot_losses(metrics: list[dict[str, Any]], path: Path) -> Path:
    """Training loss per step and validation loss where measured, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    steps = [m["step"] for m in metrics if "loss" in m]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, [m["loss"] for m in metrics if "loss" in m], label="train", linewidth=1)
    val = [(m["step"], m["val_loss"]) for m in metrics if "val_loss" in m]
    if val:
        ax.plot([v[0] for v in val], [v[1] for v in val], "o-", label="validation", markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path
