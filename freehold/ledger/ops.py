"""Operations on a named model or dataset: one function per CLI command, usable by the server.

Each takes an open ``Store`` (its home is where the ledger and keys live) and a name. They
read the store; writing an artefact together with its record is ``freehold.home``'s job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from freehold.errors import LedgerError
from freehold.ledger.chain import Ledger, Record
from freehold.ledger.graph import Lineage, build_lineage
from freehold.ledger.membership import MembershipProof, lineage_index, prove_membership
from freehold.ledger.records import Recorder, layer_refs
from freehold.ledger.replay import ReplayReport, load_trainer, replay_run, select_steps
from freehold.ledger.verify import VerifyReport, verify_model
from freehold.progress import ProgressFn
from freehold.store import Store


def verify(store: Store, name: str, *, kind: str = "model", trusted: dict[str, dict[str, Any]] | None = None,
           progress: ProgressFn | None = None) -> VerifyReport:
    """Check the chain, signatures, digests and dataset roots behind ``name`` (a model, or a
    dataset / knowledge index by ``kind``); ``trusted``: only these keys, not the store's list."""
    return verify_model(store, name, store.home, kind=kind, progress=progress, trusted=trusted)


def attest(store: Store, name: str, *, signed: bool = True) -> list[dict[str, Any]]:
    """The in-toto statements for ``name`` (SLSA provenance, then Freehold lineage), each in a
    DSSE envelope signed by this store's identity unless ``signed`` is False."""
    from freehold.ledger.attest import lineage_statement, provenance_statement, sign_envelope

    statements = [provenance_statement(store, name), lineage_statement(store, name)]
    return [sign_envelope(s, store.home) for s in statements] if signed else statements


def sign_directory(store: Store, directory: Path, signature: Path | None = None) -> tuple[Path, Path]:
    """An OpenSSF model-signing signature over an exported model directory, by this store's
    identity; returns (signature path, public key path)."""
    from freehold.ledger.attest import sign_model_directory

    return sign_model_directory(directory, store.home, signature)


def run_history(store: Store, run: str) -> dict[str, Any]:
    """A training run as the ledger holds it: its config record's payload, every step's
    (step, loss, lr) and its checkpoints' steps."""
    from freehold.errors import ModelNotFoundError
    from freehold.ledger.graph import LedgerIndex

    index = LedgerIndex(Ledger.open(store.home).records())
    cfg = index.run_config.get(run)
    if cfg is None:
        raise ModelNotFoundError(run, sorted(r for r in index.run_config if run in r)[:5], kind="run",
                                 hint="a run is named by its model's lineage (freehold lineage MODEL)")
    summary = index.runs.get(run)
    steps = [index.records[i].payload for i in (summary.records if summary else [])]
    return {"run": run, "config": index.records[cfg].payload, "record": index.records[cfg].number,
            "steps": [{"step": s.get("step"), "loss": s.get("loss"), "lr": s.get("lr")} for s in steps],
            "checkpoints": [index.records[i].payload.get("step") for i in index.run_checkpoints.get(run, [])],
            "summary": summary.to_dict() if summary else None}


def recent(store: Store, limit: int) -> list[Record]:
    """The latest ``limit`` ledger records, oldest first."""
    return Ledger.open(store.home).records()[-limit:] if limit > 0 else []


def repair(store: Store) -> Record | None:
    """Set a torn last record (an interrupted append) aside; the note recording it, or None
    when the ledger ends cleanly."""
    return Ledger.open(store.home).repair()


def lineage(store: Store, name: str) -> Lineage:
    index, head, full = lineage_index(store, name)
    return build_lineage(index, head, full)


def prove(store: Store, name: str, example_ids: list[str]) -> list[MembershipProof]:
    return prove_membership(store, name, example_ids)


def note(store: Store, name: str, text: str, kind: str = "model") -> Record:
    """A decision note about ``name``, citing its layers so it joins the lineage."""
    entry = store.get(name, kind)
    return Recorder(Ledger.open(store.home)).record_note(
        text, about=layer_refs(entry.manifest, "subject"), subject=entry.name
    )


def replay(
    store: Store,
    name: str,
    span: tuple[int, int] | None = None,
    sample: float | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> list[ReplayReport]:
    """Replay sampled steps of every training run in ``name``'s lineage."""
    index, head, _ = lineage_index(store, name)
    members = index.ancestors(head)
    runs = [index.records[i] for i in members if index.records[i].type == "config"]
    if not runs:
        raise LedgerError(
            f"{name}'s lineage holds no training run to replay",
            "replay applies to models fine-tuned with 'freehold tune'",
        )
    reports = []
    for config in runs:
        run = str(config.payload.get("run"))
        summary = index.runs.get(run)
        steps = [int(index.records[i].payload["step"]) for i in summary.records] if summary else []
        targets = select_steps(steps, span, sample, seed)
        if not targets:
            from freehold.errors import UsageError

            where = f"in {span[0]}:{span[1]}" if span else "at all"
            raise UsageError(
                f"run {run} has no step {where}",
                f"its steps are {min(steps)}..{max(steps)}" if steps else "it recorded no steps",
            )
        trainer = load_trainer(store, config, index)
        reports.append(replay_run(index, run, trainer, targets, progress))
    return reports


def parse_span(text: str) -> tuple[int, int]:
    from freehold.errors import UsageError

    a, sep, b = text.partition(":")
    try:
        lo, hi = int(a), int(b) if sep else int(a)
    except ValueError as exc:
        raise UsageError(f"bad step span {text!r}", "write it as A:B, e.g. --steps 100:120") from exc
    if lo > hi:
        raise UsageError(f"step span {text!r} is empty", "the first step must not exceed the last")
    return lo, hi


def parse_fraction(text: str) -> float:
    from freehold.errors import UsageError

    try:
        value = float(text.removesuffix("%")) / (100 if text.endswith("%") else 1)
    except ValueError as exc:
        raise UsageError(f"bad sample {text!r}", "write a percentage such as 1% or a fraction such as 0.01") from exc
    if not 0 < value <= 1:
        raise UsageError(f"sample {text!r} is out of range", "between 0 (exclusive) and 100%")
    return value
