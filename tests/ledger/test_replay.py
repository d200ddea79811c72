"""Replay: recorded steps re-run bit for bit; a different computation is caught with a distance."""

from __future__ import annotations

import pytest

from freehold.errors import LedgerError, UsageError
from freehold.ledger import LedgerIndex, replay, replay_run
from freehold.ledger.ops import parse_fraction, parse_span
from freehold.ledger.replay import select_steps
from tests.ledger.conftest import TinyTrainer, World


def _index(world: World) -> LedgerIndex:
    return LedgerIndex(world.ledger.records())


def test_replaying_every_step_is_bit_exact(world: World) -> None:
    trainer = TinyTrainer(world.store, {}, world.seed)
    report = replay_run(_index(world), world.run, trainer)
    assert report.bit_exact, report.summary()
    assert len(report.checks) == world.steps
    assert report.restores == 1  # one pass from the start covers every step


def test_sampled_steps_restore_from_the_nearest_checkpoint(world: World) -> None:
    calls: list[object] = []

    class Counting(TinyTrainer):
        def restore(self, checkpoint):  # type: ignore[no-untyped-def]
            calls.append(checkpoint.payload["step"] if checkpoint else 0)
            return super().restore(checkpoint)

    trainer = Counting(world.store, {}, world.seed)
    calls.clear()
    report = replay_run(_index(world), world.run, trainer, targets=[3, 12, 20])
    assert report.bit_exact, report.summary()
    assert calls == [0, 8, 16]
    assert [c.step for c in report.checks] == [1, 2, 3, 9, 10, 11, 12, 17, 18, 19, 20]


def test_a_different_computation_is_reported_with_its_distance(world: World) -> None:
    trainer = TinyTrainer(world.store, {}, world.seed, lr_scale=1.0001)
    report = replay_run(_index(world), world.run, trainer, targets=[8])
    assert not report.bit_exact
    first = report.mismatches[0]
    assert first.step == 1  # caught at the first step that diverges
    assert first.recorded_loss is not None and first.replayed_loss is not None
    assert first.max_abs_diff is None  # no checkpoint at step 1: the loss distance is what we have
    assert "differ" in report.summary() and "loss" in report.summary()


def test_distance_against_checkpoint(world: World) -> None:
    class FromStep7(TinyTrainer):
        """Replays correctly except the eighth step, which lands on a checkpoint."""

        def run_step(self, step):  # type: ignore[no-untyped-def]
            self.lr_scale = 1.01 if step.payload["step"] == 8 else 1.0
            return super().run_step(step)

    report = replay_run(_index(world), world.run, FromStep7(world.store, {}, world.seed), [8])
    (c,) = report.mismatches
    assert c.step == 8 and c.max_abs_diff is not None and 0 < c.max_abs_diff < 0.1
    assert c.rel_l2 is not None and c.rel_l2 > 0
    assert "max |Δw|" in report.summary()


def test_replay_through_the_model_uses_the_registered_replayer(world: World) -> None:
    (report,) = replay(world.store, "tuned", sample=0.25, seed=1)
    assert report.bit_exact and len(report.targets) == 6


def test_selection_and_parsing() -> None:
    assert select_steps(range(1, 101), span=(10, 12)) == [10, 11, 12]
    assert len(select_steps(range(1, 1001), sample=0.01)) == 10
    assert len(select_steps(range(1, 11), sample=0.01)) == 1
    assert parse_span("3:9") == (3, 9) and parse_fraction("1%") == 0.01 and parse_fraction("0.5") == 0.5
    for bad in ("x", "9:3"):
        with pytest.raises(UsageError):
            parse_span(bad)
    with pytest.raises(UsageError):
        parse_fraction("150%")


def test_unknown_replayer_is_a_clear_error(world: World) -> None:
    from freehold.ledger import Recorder
    from freehold.ledger.replay import load_trainer

    cfg = Recorder(world.ledger).record_config(
        "r2", base=[], dataset=[], architecture={}, hyperparameters={}, seed=1, threads=1, replayer="os:system"
    )
    with pytest.raises(LedgerError, match="not a Freehold module"):
        load_trainer(world.store, cfg, _index(world))
