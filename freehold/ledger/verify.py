"""Verification: chain, signatures, artefact digests and dataset Merkle roots.

``verify_ledger`` checks every line of the ledger (format, sequence, hash chain, signature
by a trusted key). ``verify_model`` then follows a model's lineage from the record its
manifest names and rehashes every store blob those records cite, checks that the model's
weights are the outputs of its head record, recomputes each dataset's example ids and
Merkle root from the stored rows, checks that every step used only examples of its run's
dataset, and that checkpoints hold the weights their step records name.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.errors import FreeholdError, LedgerError, VerificationError
from freehold.ledger.chain import BadLine, Record, TornTail, read_entries
from freehold.ledger.graph import LedgerIndex, refs
from freehold.ledger.keys import Verifier, trusted_keys
from freehold.ledger.merkle import example_id, merkle_root
from freehold.progress import ProgressFn, emit


@dataclass(frozen=True)
class Problem:
    record: int | None  # 1-based line number of the record, None when not tied to one
    what: str

    def __str__(self) -> str:
        return f"record {self.record}: {self.what}" if self.record else self.what


@dataclass
class VerifyReport:
    name: str | None = None
    head: str | None = None
    records: int = 0
    lineage_records: int = 0
    signers: dict[str, int] = field(default_factory=dict)
    blobs_checked: int = 0
    bytes_hashed: int = 0
    datasets_checked: int = 0
    examples_checked: int = 0
    checkpoints_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return min(self.problems, key=lambda p: (p.record is None, p.record or 0)) if self.problems else None

    def raise_for_problems(self) -> None:
        p = self.first_problem
        if p is not None:
            more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
            raise VerificationError(
                f"verification failed at {p}{more}",
                "the ledger, a blob or a dataset was altered after it was recorded; "
                "restore it from a backup (or trust the signer with 'freehold key trust')",
                record=p.record,
            )

    def to_dict(self) -> dict[str, Any]:
        first = self.first_problem
        return {
            "ok": self.ok,
            "name": self.name,
            "head": self.head,
            "records": self.records,
            "lineage_records": self.lineage_records,
            "signers": self.signers,
            "blobs_checked": self.blobs_checked,
            "bytes_hashed": self.bytes_hashed,
            "datasets_checked": self.datasets_checked,
            "examples_checked": self.examples_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "first_problem": {"record": first.record, "what": first.what} if first else None,
            "problems": [{"record": p.record, "what": p.what} for p in self.problems],
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


def check_chain(
    entries: list[Record | BadLine], torn: TornTail | None, verifier: Verifier, report: VerifyReport
) -> list[Record]:
    """Check format, sequence, links and signatures; returns the well-formed records."""
    good: list[Record] = []
    prev_hash: str | None = None
    prev_seq = 0
    for e in entries:
        if isinstance(e, BadLine):
            report.problems.append(Problem(e.number, f"is malformed: the line {e.problem}"))
            prev_hash = "sha256:" + _sha(e.line)
            prev_seq += 1
            continue
        if e.prev != prev_hash:
            what = (
                "is the first record but names a previous one"
                if prev_hash is None
                else "does not link to the record before it (prev hash mismatch): "
                "a record was changed, removed or inserted"
            )
            report.problems.append(Problem(e.number, what))
        if e.seq != prev_seq + 1:
            report.problems.append(Problem(e.number, f"has sequence number {e.seq}, expected {prev_seq + 1}"))
        try:
            sig = base64.b64decode(e.sig, validate=True)
        except (binascii.Error, ValueError):
            sig = b""
        if not verifier.knows(e.key):
            report.problems.append(Problem(e.number, f"is signed by {e.key}, which is not a trusted key"))
        elif not verifier.verify(e.key, sig, e.signed_bytes()):
            report.problems.append(
                Problem(
                    e.number,
                    f"has an invalid signature (key {e.key}): its contents were changed after signing",
                )
            )
        else:
            report.signers[e.key] = report.signers.get(e.key, 0) + 1
        prev_hash, prev_seq = e.hash, e.seq
        good.append(e)
    if torn is not None:
        report.problems.append(
            Problem(
                torn.number,
                f"is torn: the ledger ends in {len(torn.data)} bytes without "
                "a newline (an append was interrupted; "
                "'freehold audit repair' sets them aside)",
            )
        )
    report.records = len(entries)
    return good


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def verify_ledger(home: Path, progress: ProgressFn | None = None) -> VerifyReport:
    """Check the whole chain (every record, every signature) without reference to a model."""
    started = time.perf_counter()
    report = VerifyReport()
    emit(progress, "reading ledger")
    entries, torn = read_entries(Path(home) / "ledger" / "ledger.jsonl")
    check_chain(entries, torn, Verifier(trusted_keys(home)), report)
    report.seconds = time.perf_counter() - started
    return report


class _BlobChecker:
    """Rehashes each store blob once and remembers the answer."""

    def __init__(self, store: Any, report: VerifyReport, progress: ProgressFn | None) -> None:
        self.store = store
        self.report = report
        self.progress = progress
        self.results: dict[str, bool | None] = {}

    def check(self, digest: str) -> bool | None:
        """True if present and intact, False if altered, None if not in this store."""
        if digest in self.results:
            return self.results[digest]
        try:
            path = self.store.blob_path(digest)
        except FreeholdError:
            self.results[digest] = False
            return False
        if not path.exists():
            self.results[digest] = None
            return None
        ok = bool(self.store.blobs.verify(digest, self.progress))
        self.report.blobs_checked += 1
        self.report.bytes_hashed += path.stat().st_size
        self.results[digest] = ok
        return ok


def verify_model(
    store: Any,
    name: str,
    home: Path | None = None,
    kind: str = "model",
    progress: ProgressFn | None = None,
    trusted: dict[str, dict[str, Any]] | None = None,
) -> VerifyReport:
    """Verify the ledger and everything ``name``'s lineage cites. Never raises on a failed check:
    problems are listed in the report (call ``raise_for_problems`` to turn them into an error)."""
    started = time.perf_counter()
    home = Path(home or store.home)
    entry = store.get(name, kind)
    report = VerifyReport(name=entry.name)
    head_hash = (entry.manifest.lineage or {}).get("ledger_head")
    emit(progress, "checking chain and signatures")
    entries, torn = read_entries(home / "ledger" / "ledger.jsonl")
    # A third party passes the keys it trusts itself (``trusted``): a trusted list shipped
    # inside the store it was handed could have been edited along with the ledger.
    verifier = Verifier(trusted if trusted is not None else trusted_keys(home))
    records = check_chain(entries, torn, verifier, report)
    report.head = head_hash
    blobs = _BlobChecker(store, report, progress)
    # The model's own layers must be intact whatever the ledger says.
    for layer in entry.manifest.layers:
        ok = blobs.check(layer.digest)
        if ok is None:
            report.problems.append(
                Problem(None, f"{kind} layer {layer.digest} ({layer.media_type}) is missing from the store")
            )
        elif not ok:
            report.problems.append(
                Problem(
                    None,
                    f"{kind} layer {layer.digest} ({layer.media_type}) does not "
                    "match its digest: the file was modified",
                )
            )
    if not head_hash:
        report.problems.append(
            Problem(None, f"{kind} {entry.name} names no ledger record (manifest lineage.ledger_head is empty)")
        )
        report.seconds = time.perf_counter() - started
        return report
    index = LedgerIndex(records)
    head = index.by_hash.get(head_hash)
    if head is None:
        report.problems.append(
            Problem(None, f"{kind} {entry.name} names ledger record {head_hash[:19]}, which is not in the ledger")
        )
        report.seconds = time.perf_counter() - started
        return report
    head_rec = index.records[head]
    head_outputs = {r["digest"] for r in refs(head_rec, "outputs")}
    from freehold.store.manifest import MediaType

    for layer in entry.manifest.layers:
        if layer.media_type in (*MediaType.WEIGHTS, MediaType.DATASET) and layer.digest not in head_outputs:
            report.problems.append(
                Problem(
                    head_rec.number,
                    f"does not list {kind} layer {layer.digest} among "
                    "its outputs: the manifest's weights are not "
                    "the ones this record produced",
                )
            )
    members = index.ancestors(head)
    report.lineage_records = len(members)
    emit(progress, "checking artefacts", len(members), 0)
    run_examples: dict[str, set[str]] = {}
    dataset_ids_by_root: dict[str, set[str]] = {}
    for n, i in enumerate(members):
        rec = index.records[i]
        for r in [*refs(rec, "inputs"), *refs(rec, "outputs")]:
            if r.get("kind", "blob") != "blob":
                continue
            ok = blobs.check(r["digest"])
            if ok is False:
                report.problems.append(
                    Problem(
                        rec.number,
                        f"cites {r.get('role', 'blob')} {r['digest']}, whose "
                        "bytes in the store no longer match: the file was "
                        "modified",
                    )
                )
            elif ok is None and f"missing:{r['digest']}" not in report.warnings:
                report.warnings.append(f"missing:{r['digest']}")
        if rec.type == "dataset":
            ids = _check_dataset(store, rec, report)
            if ids is not None:
                dataset_ids_by_root[str(rec.payload.get("merkle_root"))] = ids
        elif rec.type == "config":
            roots = [r["digest"].removeprefix("sha256:") for r in refs(rec, "inputs") if r.get("kind") == "merkle"]
            ids_union: set[str] = set()
            for root in roots:
                ids_union |= dataset_ids_by_root.get(root, set())
            if roots and ids_union:
                run_examples[str(rec.payload.get("run"))] = ids_union
        elif rec.type == "step":
            allowed = run_examples.get(str(rec.payload.get("run")))
            if allowed is not None:
                bad = [x for x in rec.payload.get("example_ids", []) if x not in allowed]
                if bad:
                    report.problems.append(
                        Problem(
                            rec.number,
                            f"step {rec.payload.get('step')} used example "
                            f"{str(bad[0])[:16]}… which is not in the run's "
                            "dataset",
                        )
                    )
        elif rec.type == "checkpoint":
            _check_checkpoint(store, rec, blobs, report)
        emit(progress, "checking artefacts", len(members), n + 1)
    missing = [w for w in report.warnings if w.startswith("missing:")]
    report.warnings = [w for w in report.warnings if not w.startswith("missing:")]
    if missing:
        report.warnings.append(
            f"{len(missing)} blob(s) cited by the lineage are not in this store and could not "
            "be rehashed (e.g. intermediate checkpoints removed by gc)"
        )
    report.seconds = time.perf_counter() - started
    return report


def dataset_rows(store: Any, manifest: Any) -> list[tuple[str, dict[str, Any]]]:
    """(stored id, row without id) for each row of the dataset layers, in tree order."""
    from freehold.store.manifest import MediaType

    rows = []
    for layer in manifest.layers_of(MediaType.DATASET):
        for line_no, line in enumerate(store.read_blob(layer.digest).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise LedgerError(
                    f"dataset layer {layer.digest[:19]} line {line_no} is not JSON",
                    "the dataset file is damaged; rebuild it with 'freehold data import'",
                ) from exc
            rows.append((str(row.pop("id", "")), row))
    return rows


def _check_dataset(store: Any, rec: Record, report: VerifyReport) -> set[str] | None:
    """Recompute the dataset's ids and root from the stored rows; returns its ids."""
    from freehold.store.manifest import Manifest, MediaType

    dataset_layers = [r for r in refs(rec, "outputs") if r.get("media_type") == MediaType.DATASET]
    recorded_root = str(rec.payload.get("merkle_root", ""))
    recorded_ids = [str(x) for x in rec.payload.get("example_ids", [])]
    if recorded_ids and merkle_root([bytes.fromhex(x) for x in recorded_ids if _is_hex(x)]).hex() != recorded_root:
        report.problems.append(Problem(rec.number, "lists example ids whose Merkle root is not the root it records"))
    if not dataset_layers:
        report.warnings.append(
            f"record {rec.number}: dataset {rec.payload.get('name')} names no stored rows; "
            "Merkle root checked against its id list only"
        )
        return set(recorded_ids)
    present = [r for r in dataset_layers if store.blob_path(r["digest"]).exists()]
    if len(present) != len(dataset_layers):
        report.warnings.append(
            f"record {rec.number}: dataset {rec.payload.get('name')} rows are not in this "
            "store; Merkle root checked against its id list only"
        )
        return set(recorded_ids)
    fake = Manifest("dataset", str(rec.payload.get("name")), {}, [_layer(r) for r in dataset_layers])
    try:
        rows = dataset_rows(store, fake)
    except LedgerError as exc:
        report.problems.append(Problem(rec.number, exc.message))
        return None
    ids = []
    for n, (stored_id, row) in enumerate(rows, 1):
        actual = example_id(row)
        if stored_id != actual:
            report.problems.append(
                Problem(
                    rec.number,
                    f"dataset row {n} has id {stored_id[:16]}… but its "
                    f"content hashes to {actual[:16]}…: the example was "
                    "changed",
                )
            )
            return None
        ids.append(actual)
    root = merkle_root([bytes.fromhex(x) for x in ids]).hex()
    report.datasets_checked += 1
    report.examples_checked += len(ids)
    if root != recorded_root:
        report.problems.append(
            Problem(
                rec.number,
                f"records Merkle root {recorded_root[:16]}… but the stored dataset's root is {root[:16]}…",
            )
        )
    try:
        ds = store.get(str(rec.payload.get("name")), "dataset")
        cfg_root = ds.manifest.config.get("merkle_root")
        if (
            cfg_root
            and {layer.digest for layer in ds.manifest.layers_of(MediaType.DATASET)}
            == {r["digest"] for r in dataset_layers}
            and cfg_root != root
        ):
            report.problems.append(
                Problem(rec.number, "the stored dataset manifest's merkle_root disagrees with its rows")
            )
    except FreeholdError:
        pass
    return set(ids)


def _is_hex(s: str) -> bool:
    try:
        bytes.fromhex(s)
        return True
    except ValueError:
        return False


def _layer(r: dict[str, Any]) -> Any:
    from freehold.store.manifest import Layer

    return Layer(str(r.get("media_type", "")), r["digest"], int(r.get("size", 0)))


def _check_checkpoint(store: Any, rec: Record, blobs: _BlobChecker, report: VerifyReport) -> None:
    """A safetensors checkpoint must hold exactly the weights its record names."""
    from freehold.store.manifest import MediaType

    for r in refs(rec, "outputs"):
        if r.get("media_type") != MediaType.SAFETENSORS or blobs.check(r["digest"]) is not True:
            continue
        try:
            # torch, not numpy: numpy has no bfloat16, the usual dtype of trained weights.
            from safetensors.torch import load_file

            tensors = load_file(str(store.blob_path(r["digest"])))
        except Exception as exc:  # any reader failure means an unreadable checkpoint
            report.problems.append(Problem(rec.number, f"checkpoint {r['digest'][:19]} is unreadable: {exc}"))
            continue
        from freehold.ledger.records import weights_digest

        report.checkpoints_checked += 1
        if weights_digest(tensors) != rec.payload.get("weights"):
            report.problems.append(
                Problem(rec.number, "the checkpoint's tensors do not hash to the weights digest the record names")
            )
