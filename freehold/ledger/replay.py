"""Replay: re-run recorded optimizer steps and compare the weights they produce.

The ledger owns the bookkeeping (which steps, from which checkpoint, what to compare);
the trainer owns the arithmetic, behind the ``ReplayTrainer`` protocol. A run's ``config``
record names a factory ``"module:function"`` (``replayer``) called as
``factory(store, config_record, index) -> ReplayTrainer``.

Training is deterministic for a fixed seed and thread count, so on the same machine the
digests match bit for bit. Where they do not (another CPU, library or thread count), the
report says so, gives the environment differences and the numeric distance: against a
stored checkpoint when one exists at that step, else between the recorded and replayed loss.
It never passes silently.
"""

from __future__ import annotations

import importlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from freehold.errors import LedgerError, UsageError
from freehold.ledger.chain import Record
from freehold.ledger.graph import LedgerIndex
from freehold.ledger.records import environment, weights_digest
from freehold.progress import ProgressFn, emit


class ReplayTrainer(Protocol):
    """What the trainer provides so the ledger can replay its steps."""

    def restore(self, checkpoint: Record | None) -> Mapping[str, Any]:
        """Load trainable weights, optimizer and RNG state as of ``checkpoint`` (``None``: the run's
        start, before step 1); return the trainable state dict now loaded."""
        ...

    def run_step(self, step: Record) -> tuple[Mapping[str, Any], float]:
        """Run optimizer step ``step.payload['step']`` on exactly ``step.payload['example_ids']`` at
        ``step.payload['lr']``; return (trainable state dict after it, loss)."""
        ...

    def checkpoint_state(self, checkpoint: Record) -> Mapping[str, Any] | None:
        """The trainable tensors stored by ``checkpoint``, for a numeric distance (None if gone)."""
        ...


@dataclass
class StepCheck:
    step: int
    record: int
    match: bool
    recorded: str
    replayed: str
    recorded_loss: float | None = None
    replayed_loss: float | None = None
    max_abs_diff: float | None = None
    rel_l2: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class ReplayReport:
    run: str
    targets: list[int]
    checks: list[StepCheck] = field(default_factory=list)
    restores: int = 0
    environment_differences: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> list[StepCheck]:
        return [c for c in self.checks if not c.match]

    @property
    def bit_exact(self) -> bool:
        return bool(self.checks) and not self.mismatches and not self.problems

    def summary(self) -> str:
        if self.bit_exact:
            return (
                f"run {self.run}: {len(self.checks)} step(s) replayed from {self.restores} restore(s), "
                f"all {len(self.targets)} sampled step digest(s) match bit for bit"
            )
        lines = [f"run {self.run}: {len(self.mismatches)} of {len(self.checks)} replayed step(s) differ"]
        lines += self.problems
        for c in self.mismatches[:5]:
            dist = []
            if c.max_abs_diff is not None:
                dist.append(f"max |Δw| {c.max_abs_diff:.3g}, relative L2 {c.rel_l2:.3g}")
            if c.recorded_loss is not None and c.replayed_loss is not None:
                dist.append(
                    f"loss {c.recorded_loss:.6g} recorded vs {c.replayed_loss:.6g} replayed "
                    f"(Δ {abs(c.recorded_loss - c.replayed_loss):.3g})"
                )
            lines.append(f"  step {c.step} (record {c.record}): weights digest differs; " + "; ".join(dist))
        if self.environment_differences:
            lines.append(
                "  the run was recorded in a different environment, which can explain small "
                "numeric differences: " + "; ".join(self.environment_differences)
            )
        elif self.mismatches:
            lines.append("  same environment as recorded: a difference here means the steps or data differ")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "bit_exact": self.bit_exact,
            "targets": self.targets,
            "restores": self.restores,
            "checked": len(self.checks),
            "mismatches": [c.to_dict() for c in self.mismatches],
            "environment_differences": self.environment_differences,
            "problems": self.problems,
        }


def select_steps(
    steps: Sequence[int], span: tuple[int, int] | None = None, sample: float | None = None, seed: int = 0
) -> list[int]:
    """Steps to check: an inclusive span A:B, a random fraction (at least one), or all."""
    chosen = sorted(steps)
    if span is not None:
        a, b = span
        chosen = [s for s in chosen if a <= s <= b]
    if sample is not None:
        if not 0 < sample <= 1:
            raise UsageError(f"sample fraction {sample} is out of range", "use e.g. --sample 1% or --sample 0.05")
        k = max(1, math.ceil(len(chosen) * sample)) if chosen else 0
        chosen = sorted(random.Random(seed).sample(chosen, k))
    return chosen


def _distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[float, float]:
    import numpy as np

    def arr(t: Any) -> Any:
        if type(t).__module__.startswith("torch"):
            return t.detach().float().cpu().numpy()
        return np.asarray(t, dtype=np.float64)

    max_abs = 0.0
    diff_sq = ref_sq = 0.0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            return math.inf, math.inf
        x, y = arr(a[name]).astype(np.float64), arr(b[name]).astype(np.float64)
        if x.shape != y.shape:
            return math.inf, math.inf
        d = x - y
        if d.size:
            max_abs = max(max_abs, float(np.abs(d).max()))
        diff_sq += float((d * d).sum())
        ref_sq += float((y * y).sum())
    return max_abs, math.sqrt(diff_sq) / (math.sqrt(ref_sq) or 1.0)


def environment_differences(config: Record) -> list[str]:
    recorded = config.payload.get("environment") or {}
    now = environment()
    diffs = []
    for key, value in (recorded.get("versions") or {}).items():
        if now["versions"].get(key) not in (None, value):
            diffs.append(f"{key} {value} recorded, {now['versions'].get(key)} now")
    for key in ("platform", "machine", "processor", "cpu_bf16"):
        if recorded.get(key) not in ("", None) and recorded.get(key) != now.get(key):
            diffs.append(f"{key} {recorded.get(key)!r} recorded, {now.get(key)!r} now")
    return diffs


def replay_run(
    index: LedgerIndex,
    run: str,
    trainer: ReplayTrainer,
    targets: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
) -> ReplayReport:
    """Replay ``targets`` (step numbers; default all) of ``run``, each from its nearest checkpoint."""
    if run not in index.run_config:
        raise LedgerError(f"run {run!r} has no config record in the ledger", "check the run id with 'freehold lineage'")
    config = index.records[index.run_config[run]]
    steps: dict[int, Record] = {}
    for i in index.runs[run].records if run in index.runs else []:
        steps[int(index.records[i].payload["step"])] = index.records[i]
    checkpoints: dict[int, Record] = {
        int(r.payload["step"]): r for r in index.records if r.type == "checkpoint" and r.payload.get("run") == run
    }
    chosen = sorted(targets) if targets is not None else sorted(steps)
    report = ReplayReport(run, list(chosen), environment_differences=environment_differences(config))
    unknown = [t for t in chosen if t not in steps]
    if unknown:
        raise UsageError(
            f"run {run} has no step {unknown[0]}",
            f"its steps are {min(steps)}..{max(steps)}" if steps else "the run recorded no steps",
        )
    position: int | None = None  # step whose state the trainer holds, None when it must restore
    done = 0
    for target in chosen:
        base = max((s for s in checkpoints if s < target), default=0)
        if position is None or not base <= position < target:
            ckpt = checkpoints.get(base)
            state = trainer.restore(ckpt)
            report.restores += 1
            expected = ckpt.payload.get("weights") if ckpt else config.payload.get("initial_weights")
            if expected and weights_digest(state) != expected:
                report.problems.append(
                    f"  restoring {'checkpoint at step ' + str(base) if ckpt else 'the start'} "
                    "gave weights that differ from the recorded digest"
                )
                position = None
                continue
            position = base
        while position < target:
            position += 1
            rec = steps.get(position)
            if rec is None:
                report.problems.append(f"  step {position} is missing from the ledger")
                position = None
                break
            state, loss = trainer.run_step(rec)
            digest = weights_digest(state)
            check = StepCheck(
                position,
                rec.number,
                digest == rec.payload.get("weights"),
                str(rec.payload.get("weights")),
                digest,
                rec.payload.get("loss"),
                float(loss),
            )
            report.checks.append(check)
            if not check.match:
                stored = checkpoints.get(position)
                tensors = trainer.checkpoint_state(stored) if stored is not None else None
                if tensors is not None:
                    check.max_abs_diff, check.rel_l2 = _distance(state, tensors)
                position = None  # later steps of this span would only repeat the divergence
                break
        done += 1
        emit(progress, "replaying", len(chosen), done)
    return report


ReplayFactory = Callable[[Any, Record, LedgerIndex], ReplayTrainer]
_REPLAYERS: dict[str, ReplayFactory] = {}


def register_replayer(spec: str, factory: ReplayFactory) -> None:
    """Register a replay factory under the name config records give as ``replayer``."""
    _REPLAYERS[spec] = factory


def load_trainer(store: Any, config: Record, index: LedgerIndex) -> ReplayTrainer:
    """The run's replay factory: registered under its config record's ``replayer`` name, else
    imported as ``module:function`` from a ``freehold.`` module."""
    spec = config.payload.get("replayer")
    if spec in _REPLAYERS:
        return _REPLAYERS[str(spec)](store, config, index)
    if not spec:
        raise LedgerError(
            f"run {config.payload.get('run')} names no replayer in its config record",
            "replay needs a run trained by 'freehold tune', which records how to re-run its steps",
        )
    module_name, _, func = str(spec).partition(":")
    # Only our own code is imported by name from a ledger someone else may have written.
    if not module_name.startswith("freehold.") or not func:
        raise LedgerError(
            f"run {config.payload.get('run')} names replayer {spec!r}, which is not a Freehold module",
            "replay only runs Freehold's own trainers",
        )
    try:
        factory = getattr(importlib.import_module(module_name), func)
    except (ImportError, AttributeError) as exc:
        raise LedgerError(
            f"the replayer {spec} is not available in this installation ({exc})",
            "install the Freehold version that trained the model",
        ) from exc
    trainer: ReplayTrainer = factory(store, config, index)
    return trainer
