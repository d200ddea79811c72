"""Run directories and atomic checkpoints.

    $FREEHOLD_HOME/runs/<name>/
      config.json             the resolved TuneConfig + run id, base and dataset digests
      status.json             where the run stands (read by 'freehold tune --status')
      metrics.jsonl           one line per step and per validation
      loss.png                the loss curve
      checkpoints/step-000050/  adapter_model.safetensors + adapter_config.json (PEFT),
                              optimizer.pt, rng.pt, state.json
      checkpoints/latest      name of the newest complete checkpoint
      adapter/                the final PEFT adapter

A checkpoint is written into a temporary directory, fsynced and renamed into place, and only
then named in ``latest``; a kill at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from freehold.errors import TrainingError
from freehold.store.blobs import sha256_file as file_digest  # noqa: F401 - part of this module's API

ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_NAME = "default"  # PEFT's name for the one adapter a run trains


def parameter_tensors(tensors: dict[str, Any], adapter_name: str = ADAPTER_NAME) -> dict[str, Any]:
    """An adapter file's tensors under the model's parameter names, the names the ledger's
    weight digests cover (``trainable_state``).

    PEFT drops the adapter name when it writes a file (the parameter
    ``...q_proj.lora_A.default.weight`` is saved as ``...q_proj.lora_A.weight``) and puts it
    back after the last ``lora_*`` part when it loads one; this does the same (as PEFT's
    ``_insert_adapter_name_into_state_dict``).
    """
    out: dict[str, Any] = {}
    for key, value in tensors.items():
        prefix, marker, suffix = key.rpartition("lora_")
        if not marker:
            out[key] = value
            continue
        part, _, rest = suffix.partition(".")
        out[f"{prefix}lora_{part}.{adapter_name}" + (f".{rest}" if rest else "")] = value
    return out


def run_dir(home: Path, output: str) -> Path:
    from freehold.store.names import parse_name

    name, tag = parse_name(output)
    safe = name.replace("/", "_")
    return home / "runs" / (safe if tag in (None, "latest") else f"{safe}-{tag}")


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{path} is missing or unreadable ({exc})",
                            "the run directory was changed by hand; start the run again without --resume") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_adapter(directory: Path, tensors: dict[str, Any], adapter_config: dict[str, Any]) -> Path:
    """A PEFT adapter directory (what ``PeftModel.from_pretrained`` loads)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / ADAPTER_FILE), metadata={"format": "pt"})
    (directory / ADAPTER_CONFIG).write_text(json.dumps(adapter_config, indent=2, sort_keys=True, default=str))
    return directory / ADAPTER_FILE


def save_checkpoint(root: Path, step: int, *, adapter: dict[str, Any], adapter_config: dict[str, Any],
                    optimizer: dict[str, Any], rng: dict[str, Any], state: dict[str, Any]) -> Path:
    import torch

    checkpoints = root / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    final = checkpoints / f"step-{step:06d}"
    tmp = checkpoints / f".tmp-step-{step:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_adapter(tmp, adapter, adapter_config)
    torch.save(optimizer, tmp / "optimizer.pt")
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True))
    for f in tmp.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    if final.exists():  # a step re-run after a resume: replace the older copy
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(checkpoints)
    latest = checkpoints / ".latest.tmp"
    latest.write_text(final.name)
    os.replace(latest, checkpoints / "latest")
    _fsync_dir(checkpoints)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / "checkpoints" / "latest"
    with contextlib.suppress(OSError):
        path = root / "checkpoints" / pointer.read_text().strip()
        if (path / "state.json").is_file():
            return path
    return None


def checkpoint_at(root: Path, step: int) -> Path | None:
    path = root / "checkpoints" / f"step-{step:06d}"
    return path if (path / "state.json").is_file() else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """{"adapter", "optimizer", "rng", "state"} of a checkpoint directory."""
    import torch
    from safetensors.torch import load_file

    try:
        return {
            "adapter": load_file(str(path / ADAPTER_FILE)),
            # weights_only=False: our own optimizer and RNG state (byte tensors, ints, dicts).
            "optimizer": torch.load(path / "optimizer.pt", weights_only=False),
            "rng": torch.load(path / "rng.pt", weights_only=False),
            "state": json.loads((path / "state.json").read_text()),
        }
    except (OSError, ValueError, RuntimeError) as exc:
        raise TrainingError(f"checkpoint {path} cannot be read ({exc})",
                            "delete that checkpoint directory and resume from the previous one") from exc
