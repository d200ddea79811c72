"""Interrupt and resume: SIGKILL at any moment, SIGTERM with a checkpoint, same bits at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from freehold.store import Store
from freehold.train.checkpoint import ADAPTER_FILE, file_digest, latest_checkpoint, run_dir
from tests.train.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
# Runs tune() in a child process, each step slowed so the parent can interrupt it mid-run.
CHILD = """
import sys, time
from freehold.train import model
step = model.StepRunner.step
def slow(self, *args, **kwargs):
    time.sleep(0.15)
    return step(self, *args, **kwargs)
model.StepRunner.step = slow
from freehold.cli import main
import freehold.cli.tune
sys.exit(main(sys.argv[1:]))
"""
ARGS = ["tune", "tiny", "--data", "colours", "-o", "{name}", "--lora-r", "4", "--lora-alpha", "8",
        "--lora-dropout", "0.05", "--lr", "3e-3", "--batch-tokens", "256", "--eval-every", "4",
        "--save-every", "5", "--threads", "1", "--quant", "f32", "--max-steps", "18"]


def _start(name: str, *extra: str) -> subprocess.Popen[bytes]:
    args = [a.format(name=name) for a in ARGS] + list(extra)
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=REPO, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_checkpoint(home: Path, name: str, step: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        latest = latest_checkpoint(run_dir(home, name))
        if latest is not None and int(latest.name.split("-")[1]) >= step:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


def _final_adapter(home: Path, name: str) -> str:
    return file_digest(run_dir(home, name) / "adapter" / ADAPTER_FILE)


def test_killed_then_terminated_then_resumed_run_ends_bit_identical(tiny_store: Store, freehold_home: Path) -> None:
    """SIGKILL (no warning), resume, SIGTERM (checkpoint + exit 130), resume: same bits as a straight run."""
    from freehold.ledger import Ledger
    from freehold.train import run_status, tune

    reference = tune(tiny_config(output="straight", max_steps=18), store=tiny_store)

    proc = _start("bumpy")
    _wait_for_checkpoint(freehold_home, "bumpy", 5, proc)
    time.sleep(0.4)  # a couple of steps past the checkpoint: those are lost and redone
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_status(freehold_home, "bumpy")["state"] == "killed"  # the process died without a word

    proc = _start("bumpy", "--resume")
    _wait_for_checkpoint(freehold_home, "bumpy", 10, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "--resume" in err.decode()
    st = run_status(freehold_home, "bumpy")
    assert st["state"] == "stopped" and st["checkpoint"] == f"step-{st['step']:06d}" and st["step"] < 18

    resumed = tune(tiny_config(output="bumpy", max_steps=18), store=tiny_store, resume=True)
    assert resumed.run != reference.run
    assert _final_adapter(freehold_home, "bumpy") == _final_adapter(freehold_home, "straight")
    # The ledger's digest after the last step matches the uninterrupted run's too.
    last = {}
    for rec in Ledger.open(freehold_home).records():
        if rec.type == "step" and rec.payload["step"] == 18:
            last[rec.payload["run"]] = rec.payload["weights"]
    assert last[resumed.run] == last[reference.run]
