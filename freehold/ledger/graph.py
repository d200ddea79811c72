"""The lineage graph: which records produced which artefacts, derived from the chain.

Parents of a record are the latest earlier records whose ``outputs`` include one of its
``inputs`` (by digest), plus the ``config`` record of its training ``run``. The lineage of
a model is every ancestor of the record its manifest names (``lineage.ledger_head``), with
step records folded into one summary per run, and the notes and evals that cite it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from freehold.ledger.chain import Record


def refs(rec: Record, key: str) -> list[dict[str, Any]]:
    value = rec.payload.get(key) or []
    return [r for r in value if isinstance(r, dict) and isinstance(r.get("digest"), str)]


@dataclass
class RunSummary:
    run: str
    steps: int = 0
    first_step: int | None = None
    last_step: int | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    records: list[int] = field(default_factory=list)  # indices into LedgerIndex.records

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "steps": self.steps,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "first_loss": self.first_loss,
            "last_loss": self.last_loss,
        }


class LedgerIndex:
    """Parents, producers and runs over a list of records (one pass, linear time)."""

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = list(records)
        self.by_hash: dict[str, int] = {}
        self.parents: list[list[int]] = []
        self.producer: dict[str, int] = {}
        self.run_config: dict[str, int] = {}
        self.runs: dict[str, RunSummary] = {}
        self.run_checkpoints: dict[str, list[int]] = {}
        for i, rec in enumerate(self.records):
            self.by_hash[rec.hash] = i
            parents: list[int] = []
            for r in refs(rec, "inputs"):
                p = self.producer.get(r["digest"])
                if p is not None and p not in parents:
                    parents.append(p)
            run = rec.payload.get("run")
            if isinstance(run, str) and rec.type != "config" and run in self.run_config:
                cfg = self.run_config[run]
                if cfg not in parents:
                    parents.append(cfg)
            self.parents.append(parents)
            for r in refs(rec, "outputs"):
                self.producer[r["digest"]] = i
            if rec.type == "config" and isinstance(run, str):
                self.run_config[run] = i
            if rec.type == "checkpoint" and isinstance(run, str):
                self.run_checkpoints.setdefault(run, []).append(i)
            if rec.type == "step" and isinstance(run, str):
                s = self.runs.setdefault(run, RunSummary(run))
                s.steps += 1
                s.records.append(i)
                step, loss = rec.payload.get("step"), rec.payload.get("loss")
                if s.first_step is None:
                    s.first_step, s.first_loss = step, loss
                s.last_step, s.last_loss = step, loss

    def ancestors(self, head: int) -> list[int]:
        """``head`` and every record it descends from, in ledger order."""
        seen = {head}
        todo = [head]
        while todo:
            for p in self.parents[todo.pop()]:
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        # A run's steps and checkpoints are part of its lineage though nothing cites them by digest.
        for i in list(seen):
            rec = self.records[i]
            run = rec.payload.get("run")
            if rec.type == "config" and isinstance(run, str):
                summary = self.runs.get(run)
                if summary:
                    seen.update(j for j in summary.records if j < head)
                seen.update(j for j in self.run_checkpoints.get(run, []) if j < head)
        return sorted(seen)

    def citing(self, members: Iterable[int], types: tuple[str, ...] = ("note", "eval")) -> list[int]:
        """Later notes/evals citing any output of ``members`` or their runs."""
        member_set = set(members)
        digests = {r["digest"] for i in member_set for r in refs(self.records[i], "outputs")}
        runs = {self.records[i].payload.get("run") for i in member_set} - {None}
        out = []
        for j, rec in enumerate(self.records):
            if rec.type not in types or j in member_set:
                continue
            if any(r["digest"] in digests for r in refs(rec, "inputs")) or rec.payload.get("run") in runs:
                out.append(j)
        return out


def _num(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def describe(rec: Record) -> str:
    p = rec.payload
    if rec.type == "import":
        return f"import {p.get('name', '?')} (licence: {p.get('license') or 'unknown'})"
    if rec.type == "dataset":
        return (
            f"dataset {p.get('name', '?')} ({p.get('counts', {}).get('examples', '?')} examples, "
            f"merkle {str(p.get('merkle_root', ''))[:12]})"
        )
    if rec.type == "config":
        hp = p.get("hyperparameters", {})
        shown = ", ".join(f"{k}={v}" for k, v in list(hp.items())[:6])
        return f"run {p.get('run')} config (seed {p.get('seed')}, threads {p.get('threads')}; {shown})"
    if rec.type == "checkpoint":
        return f"checkpoint of run {p.get('run')} at step {p.get('step')}"
    if rec.type == "merge":
        return f"merge ({p.get('method')})"
    if rec.type == "export":
        return f"export {p.get('name', '')} ({p.get('method')})"
    if rec.type == "eval":
        return f"eval {p.get('suite')}: " + ", ".join(f"{k}={v}" for k, v in list(p.get("scores", {}).items())[:4])
    if rec.type == "note":
        return f"note: {p.get('text')}"
    if rec.type == "step":
        return f"step {p.get('step')} of run {p.get('run')} (loss {_num(p.get('loss'))})"
    return rec.type


@dataclass
class Lineage:
    name: str
    head: Record
    nodes: list[Record]
    edges: list[tuple[str, str]]  # (parent hash, child hash)
    runs: list[RunSummary]
    attached: list[Record]  # notes and evals citing the lineage

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "head": self.head.hash,
            "nodes": [
                {
                    "id": r.hash,
                    "record": r.number,
                    "type": r.type,
                    "time": r.time,
                    "key": r.key,
                    "label": describe(r),
                    "payload": {k: v for k, v in r.payload.items() if k != "example_ids"},
                }
                for r in self.nodes
            ],
            "edges": [{"from": a, "to": b} for a, b in self.edges],
            "runs": [s.to_dict() for s in self.runs],
            "notes": [
                {"id": r.hash, "record": r.number, "type": r.type, "time": r.time, "label": describe(r)}
                for r in self.attached
            ],
        }

    def to_text(self) -> str:
        children: dict[str, list[Record]] = {}
        parents_of: dict[str, list[str]] = {}
        for a, b in self.edges:
            parents_of.setdefault(b, []).append(a)
        by_hash = {r.hash: r for r in self.nodes}
        for a, b in self.edges:
            children.setdefault(a, []).append(by_hash[b])
        runs = {s.run: s for s in self.runs}
        lines = [f"{self.name}  (ledger head: record {self.head.number}, {self.head.hash[:19]})"]

        def walk(rec: Record, depth: int, seen: set[str]) -> None:
            # Printed head-first (the model), then what it came from, like a family tree.
            mark = "" if rec.hash not in seen else " (see above)"
            lines.append(f"{'  ' * depth}{'└─ ' if depth else ''}{describe(rec)}  [record {rec.number}]{mark}")
            if rec.hash in seen:
                return
            seen.add(rec.hash)
            if rec.type == "config" and rec.payload.get("run") in runs:
                s = runs[rec.payload["run"]]
                lines.append(
                    f"{'  ' * (depth + 1)}└─ {s.steps} steps ({s.first_step}..{s.last_step}), "
                    f"loss {_num(s.first_loss)} -> {_num(s.last_loss)}"
                )
            for p in parents_of.get(rec.hash, []):
                walk(by_hash[p], depth + 1, seen)

        walk(self.head, 0, set())
        for rec in self.attached:
            lines.append(f"  * {describe(rec)}  [record {rec.number}, {rec.time[:19]}]")
        return "\n".join(lines)

    def to_dot(self) -> str:
        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
        runs = {s.run: s for s in self.runs}
        for r in self.nodes:
            label = describe(r)
            if r.type == "config" and r.payload.get("run") in runs:
                s = runs[r.payload["run"]]
                label += f"\\n{s.steps} steps, loss {_num(s.first_loss)} -> {_num(s.last_loss)}"
            shape = {"dataset": "cylinder", "import": "folder", "note": "note"}.get(r.type, "box")
            lines.append(f"  {q(r.hash[:19])} [label={q(label)}, shape={shape}];")
        for r in self.attached:
            lines.append(f"  {q(r.hash[:19])} [label={q(describe(r))}, shape=note, style=dashed];")
        for a, b in self.edges:
            lines.append(f"  {q(a[:19])} -> {q(b[:19])};")
        lines.append("}")
        return "\n".join(lines) + "\n"


def build_lineage(index: LedgerIndex, head: int, name: str) -> Lineage:
    members = index.ancestors(head)
    shown = [i for i in members if index.records[i].type != "step"]
    shown_set = set(shown)
    edges = []
    for i in shown:
        for p in index.parents[i]:
            if p in shown_set:
                edges.append((index.records[p].hash, index.records[i].hash))
    run_names = {index.records[i].payload.get("run") for i in shown if index.records[i].type == "config"}
    runs = [index.runs[r] for r in run_names if isinstance(r, str) and r in index.runs]
    attached = [index.records[j] for j in index.citing(members)]
    return Lineage(name, index.records[head], [index.records[i] for i in shown], edges, runs, attached)
