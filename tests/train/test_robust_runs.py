"""Runs on real-world data and failures: overlong threads are cut (and said so, and recorded); a
run that fails mid-way leaves a checkpoint of the last sane step, one line naming --resume, and
a resume that ends where an uninterrupted run would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from freehold.errors import TrainingError
from freehold.store import Store
from freehold.train import model
from freehold.train.checkpoint import ADAPTER_FILE, file_digest, latest_checkpoint, run_dir
from tests.train.conftest import tiny_config

ARGS = ["tune", "tiny", "--data", "colours", "-o", "{name}", "--lora-r", "4", "--lora-alpha", "8",
        "--lora-dropout", "0.05", "--lr", "3e-3", "--batch-tokens", "256", "--eval-every", "4",
        "--save-every", "5", "--threads", "1", "--quant", "f32", "--max-steps", "6"]


def _fail_in_step(monkeypatch: pytest.MonkeyPatch, at: int, how: str) -> None:
    """Make optimizer step ``at`` fail: ``forward`` after its first forward pass (dropout has drawn
    from the RNG, the weights are untouched), ``nan`` with a NaN loss (the update has run)."""
    calls = {"step": 0}
    real_step, real_loss = model.StepRunner.step, model.StepRunner.loss_sum

    def step(self: Any, batches: Any, lr: float) -> Any:
        calls["step"] += 1
        return real_step(self, batches, lr)

    def loss_sum(self: Any, examples: Any) -> Any:
        loss = real_loss(self, examples)
        if calls["step"] == at and how == "forward":
            raise RuntimeError("simulated failure in the forward pass\nwith a second line")
        return loss * float("nan") if calls["step"] == at else loss

    monkeypatch.setattr(model.StepRunner, "step", step)
    monkeypatch.setattr(model.StepRunner, "loss_sum", loss_sum)


def test_a_crash_mid_step_checkpoints_says_resume_and_the_resume_ends_bit_identical(
        tiny_store: Store, freehold_home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import freehold.cli.tune  # noqa: F401 - registers the command
    from freehold.cli import main
    from freehold.train import run_status, tune

    tune(tiny_config(output="straight", max_steps=6), store=tiny_store)
    args = [a.format(name="crashy") for a in ARGS]
    with monkeypatch.context() as patch:
        _fail_in_step(patch, at=3, how="forward")
        assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "training failed at step 3 of 6: RuntimeError: simulated failure in the forward pass;" in err
    assert "second line" not in err and "checkpoint step-000002 saved" in err
    assert "resume with: freehold tune tiny --data colours -o crashy --resume" in err
    assert latest_checkpoint(run_dir(freehold_home, "crashy")).name == "step-000002"  # type: ignore[union-attr]
    st = run_status(freehold_home, "crashy")
    assert st["state"] == "failed" and st["step"] == 2 and "RuntimeError" in st["error"]

    assert main([*args, "--resume"]) == 0
    assert "tuned crashy:latest" in capsys.readouterr().out
    # The checkpoint holds the RNG as it was before the failed attempt's dropout: same bits.
    final = {name: file_digest(run_dir(freehold_home, name) / "adapter" / ADAPTER_FILE)
             for name in ("straight", "crashy")}
    assert final["crashy"] == final["straight"]


def test_a_failure_after_the_update_keeps_no_checkpoint_of_the_unrecorded_step(
        tiny_store: Store, freehold_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from freehold.train import run_status, tune

    _fail_in_step(monkeypatch, at=7, how="nan")
    with pytest.raises(TrainingError) as err:
        tune(tiny_config(output="diverged", max_steps=9), store=tiny_store)
    # The step's own error, with where it happened and what a resume starts from.
    assert err.value.message.startswith("the loss became nan (at step 7 of 9;")
    assert "no checkpoint was saved; a resume starts from step-000005" in err.value.message
    assert "--resume" in (err.value.hint or "")
    assert latest_checkpoint(run_dir(freehold_home, "diverged")).name == "step-000005"  # type: ignore[union-attr]
    assert run_status(freehold_home, "diverged")["state"] == "failed"


def test_overlong_threads_are_cut_by_default_said_so_and_recorded(
        tiny_store: Store, freehold_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import freehold.cli.tune  # noqa: F401 - registers the command
    from freehold.cli import main
    from freehold.ledger import Ledger

    # 16 of the 48 conversations have two replies (134-141 tokens); at 120 only the first fits.
    args = [a.format(name="cut") for a in ARGS] + ["--max-seq-len", "120", "--max-steps", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "16 examples over the 120-token limit (--overlong turns): 16 cut after their last assistant turn" in err
    saved = json.loads((run_dir(freehold_home, "cut") / "config.json").read_text())
    assert saved["config"]["overlong"] == "turns" and saved["max_seq_len"] == 120
    assert (saved["examples"]["overlong"], saved["examples"]["cut_at_turn"], saved["examples"]["dropped_overlong"]) \
        == (16, 16, 0)
    (config,) = [r for r in Ledger.open(freehold_home).records() if r.type == "config"
                 and r.payload["run"] == saved["run"]]
    assert config.payload["hyperparameters"]["overlong"] == "turns"
    assert config.payload["examples"] == saved["examples"]
    assert config.payload["epoch_steps"] == saved["epoch_steps"] and sum(saved["epoch_steps"]) >= 2
