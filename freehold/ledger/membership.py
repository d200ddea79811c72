"""Membership: was this example in a model's training data, and which steps used it?

A proof is the RFC 6962 audit path from the example's id (its leaf hash) to the Merkle root
a signed ``dataset`` record holds, so anyone can check it with the root alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.errors import LedgerError, UsageError
from freehold.ledger.graph import LedgerIndex
from freehold.ledger.merkle import example_id, merkle_proof, verify_proof


@dataclass
class MembershipProof:
    example_id: str
    found: bool
    dataset: str | None = None
    dataset_record: int | None = None
    merkle_root: str | None = None
    index: int | None = None
    size: int | None = None
    proof: list[str] = field(default_factory=list)
    verified: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "example_id": self.example_id,
            "found": self.found,
            "dataset": self.dataset,
            "dataset_record": self.dataset_record,
            "merkle_root": self.merkle_root,
            "leaf_index": self.index,
            "tree_size": self.size,
            "proof": self.proof,
            "verified": self.verified,
            "steps": self.steps,
        }


def lineage_index(store: Any, name: str, home: Path | None = None) -> tuple[LedgerIndex, int, str]:
    """(index over the ledger, position of the model's head record, full model name)."""
    from freehold.ledger.chain import Ledger

    entry = store.get(name)
    head = (entry.manifest.lineage or {}).get("ledger_head")
    if not head:
        raise LedgerError(
            f"model {entry.name} names no ledger record",
            "only models imported, trained or exported by Freehold carry a lineage",
        )
    index = LedgerIndex(Ledger(Path(home or store.home)).records())
    if head not in index.by_hash:  # a pulled model: the lineage it came with
        from freehold.ledger.bundle import stored_bundle

        bundle = stored_bundle(store, entry.manifest_digest)
        if bundle is not None and bundle.head == head:
            index = LedgerIndex(bundle.records)
    if head not in index.by_hash:
        raise LedgerError(
            f"model {entry.name} names ledger record {head[:19]}, which is not in the ledger",
            "run 'freehold audit verify' for details",
        )
    return index, index.by_hash[head], entry.name


def prove_membership(store: Any, name: str, example_ids: list[str], home: Path | None = None) -> list[MembershipProof]:
    """One proof per id, against every dataset in the model's lineage."""
    index, head, _ = lineage_index(store, name, home)
    members = index.ancestors(head)
    datasets = [index.records[i] for i in members if index.records[i].type == "dataset"]
    if not datasets:
        raise LedgerError(f"model {name}'s lineage has no dataset record", "was it fine-tuned with Freehold?")
    # Which steps used which example: one pass over the lineage's step records.
    wanted = set(example_ids)
    used: dict[str, list[dict[str, Any]]] = {}
    for i in members:
        rec = index.records[i]
        if rec.type != "step":
            continue
        for x in rec.payload.get("example_ids", []):
            if x in wanted:
                used.setdefault(x, []).append(
                    {
                        "run": rec.payload.get("run"),
                        "step": rec.payload.get("step"),
                        "record": rec.number,
                        "record_hash": rec.hash,
                    }
                )
    trees = []
    for ds in datasets:
        ids = [str(x) for x in ds.payload.get("example_ids", [])]
        trees.append((ds, ids, [bytes.fromhex(x) for x in ids], {x: n for n, x in enumerate(ids)}))
    out = []
    for eid in example_ids:
        result = MembershipProof(eid, False, steps=used.get(eid, []))
        for ds, _ids, leaves, position in trees:
            n = position.get(eid)
            if n is None:
                continue
            proof = merkle_proof(leaves, n)
            root = bytes.fromhex(str(ds.payload.get("merkle_root")))
            result = MembershipProof(
                eid,
                True,
                str(ds.payload.get("name")),
                ds.number,
                root.hex(),
                n,
                len(leaves),
                [p.hex() for p in proof],
                verify_proof(leaves[n], n, len(leaves), proof, root),
                used.get(eid, []),
            )
            break
        out.append(result)
    return out


def ids_from_file(path: Path) -> list[str]:
    """Example ids from a file: JSONL rows (id recomputed from the content, never trusted) or bare ids."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", "give a JSONL file of examples or of ids") from exc
    ids = []
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
            ids.append(text)
            continue
        try:
            row = json.loads(text)
        except ValueError as exc:
            raise UsageError(
                f"{path} line {n} is neither an example id nor a JSON example",
                'each line: {"messages": [...]} or a 64-hex example id',
            ) from exc
        if not isinstance(row, dict):
            raise UsageError(f"{path} line {n} is not a JSON object", 'each line: {"messages": [...]}')
        row.pop("id", None)
        ids.append(example_id(row))
    return ids
