"""Verification: chain, signatures, artefact digests and dataset Merkle roots.

``verify_ledger`` checks every line of the ledger (format, sequence, hash chain, signature
by a trusted key). ``verify_model`` then follows a model's lineage from the record its
manifest names and rehashes every store blob those records cite, checks that the model's
weights are the outputs of its head record, recomputes each dataset's example ids and
Merkle root from the stored rows, checks that every step used only examples of its run's
dataset, and that every checkpoint and merged adapter the store still holds contains the
weights its step record names (the tensors are loaded and hashed, not only the file).

Each record type's own checks are one ``RecordChecker`` in ``CHECKERS``; a new record type
is checked by registering one (``register_checker``), not by editing ``verify_model``.

What could not be checked (a blob no longer in the store, a source file kept outside it, a
file in a format verify cannot read) is listed in ``VerifyReport.not_checked`` with the
reason; it never counts as passed.
"""

from __future__ import annotations

import base64
import binascii
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.errors import FreeholdError, StoreError, VerificationError
from freehold.ledger.chain import BadLine, Record, TornTail, read_entries
from freehold.ledger.graph import LedgerIndex, refs
from freehold.ledger.keys import Verifier, trusted_keys
from freehold.ledger.merkle import example_id, merkle_root
from freehold.ledger.records import BLOB, MERKLE, weights_digest
from freehold.progress import ProgressFn, emit
from freehold.store import Layer, Manifest, MediaType, ModelEntry, Store


@dataclass(frozen=True)
class _Finding:
    record: int | None  # 1-based line number of the record, None when not tied to one
    what: str

    def __str__(self) -> str:
        return f"record {self.record}: {self.what}" if self.record else self.what


@dataclass(frozen=True)
class Problem(_Finding):
    """A check that failed: the ledger, a blob or a dataset is not what was recorded."""


@dataclass(frozen=True)
class VerifyWarning(_Finding):
    """A check that ran in a weaker form than usual (the message says which); not a failure."""


class NotCheckedKind(enum.StrEnum):
    """What sort of thing the lineage names could not be checked."""

    CHECKPOINT = "checkpoint"
    ADAPTER = "adapter"
    SOURCE = "source"
    BLOB = "blob"


@dataclass(frozen=True)
class NotChecked:
    """Something the lineage names that verify could not check, and why."""

    record: int | None  # 1-based line number of the record naming it
    kind: NotCheckedKind
    what: str
    reason: str

    def __str__(self) -> str:
        where = f"record {self.record}: " if self.record else ""
        return f"{where}{self.what}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "kind": str(self.kind), "what": self.what, "reason": self.reason}


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
    adapters_checked: int = 0
    sources_checked: int = 0
    runs: int = 0  # training runs in the lineage
    problems: list[Problem] = field(default_factory=list)
    not_checked: list[NotChecked] = field(default_factory=list)
    warnings: list[VerifyWarning] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def complete(self) -> bool:
        """Every check passed and nothing the lineage names was left unchecked."""
        return self.ok and not self.not_checked

    def _not_checked(self, kind: NotCheckedKind) -> int:
        return sum(1 for n in self.not_checked if n.kind == kind)

    @property
    def checkpoints_not_checked(self) -> int:
        return self._not_checked(NotCheckedKind.CHECKPOINT)

    @property
    def adapters_not_checked(self) -> int:
        return self._not_checked(NotCheckedKind.ADAPTER)

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
            "checkpoints_not_checked": self.checkpoints_not_checked,
            "adapters_checked": self.adapters_checked,
            "adapters_not_checked": self.adapters_not_checked,
            "sources_checked": self.sources_checked,
            "runs": self.runs,
            "complete": self.complete,
            "not_checked": [n.to_dict() for n in self.not_checked],
            "first_problem": {"record": first.record, "what": first.what} if first else None,
            "problems": [{"record": p.record, "what": p.what} for p in self.problems],
            "warnings": [str(w) for w in self.warnings],
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
        _check_signature(e, verifier, report)
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


def _check_signature(rec: Record, verifier: Verifier, report: VerifyReport, where: str = "") -> None:
    """The record is signed by a trusted key and its signature is valid (a problem if not)."""
    try:
        sig = base64.b64decode(rec.sig, validate=True)
    except (binascii.Error, ValueError):
        sig = b""
    if not verifier.knows(rec.key):
        hint = " ('freehold key trust' it, if you trust its owner)" if where else ""
        report.problems.append(Problem(rec.number, f"{where}is signed by {rec.key}, which is not a trusted key{hint}"))
    elif not verifier.verify(rec.key, sig, rec.signed_bytes()):
        report.problems.append(Problem(rec.number, f"{where}has an invalid signature (key {rec.key}): "
                                                   "its contents were changed after signing"))
    else:
        report.signers[rec.key] = report.signers.get(rec.key, 0) + 1


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


class BlobState(enum.Enum):
    """What rehashing one store blob found."""

    INTACT = "intact"
    ALTERED = "altered"  # its bytes no longer match its digest (or the digest is not one)
    ABSENT = "absent"  # not in this store


class _BlobChecker:
    """Rehashes each store blob once and remembers the answer."""

    def __init__(self, store: Store, report: VerifyReport, progress: ProgressFn | None) -> None:
        self.store = store
        self.report = report
        self.progress = progress
        self.results: dict[str, BlobState] = {}

    def check(self, digest: str) -> BlobState:
        if digest not in self.results:
            self.results[digest] = self._rehash(digest)
        return self.results[digest]

    def _rehash(self, digest: str) -> BlobState:
        try:
            path = self.store.blob_path(digest)
        except FreeholdError:
            return BlobState.ALTERED
        if not path.exists():
            return BlobState.ABSENT
        ok = self.store.verify_blob(digest, self.progress)
        self.report.blobs_checked += 1
        self.report.bytes_hashed += path.stat().st_size
        return BlobState.INTACT if ok else BlobState.ALTERED


def verify_model(
    store: Store,
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
    report = VerifyReport(name=entry.name, head=(entry.manifest.lineage or {}).get("ledger_head"))
    emit(progress, "checking chain and signatures")
    entries, torn = read_entries(home / "ledger" / "ledger.jsonl")
    # A third party passes the keys it trusts itself (``trusted``): a trusted list shipped
    # inside the store it was handed could have been edited along with the ledger.
    verifier = Verifier(trusted if trusted is not None else trusted_keys(home))
    records = check_chain(entries, torn, verifier, report)
    blobs = _BlobChecker(store, report, progress)
    _check_layers_intact(entry.manifest, kind, blobs, report)
    found = _find_head(entry, kind, report.head, records, report, store, verifier)
    if found is not None:
        index, head = found
        _check_head_outputs(entry.manifest, kind, index.records[head], report)
        lineage = LineageCheck(store, report, blobs, index, index.ancestors(head))
        report.lineage_records = len(lineage.members)
        _check_adapter_layers(entry.manifest, kind, index, lineage.in_lineage, index.records[head], report)
        lineage.run(progress)
    report.seconds = time.perf_counter() - started
    return report


def _check_layers_intact(manifest: Manifest, kind: str, blobs: _BlobChecker, report: VerifyReport) -> None:
    """The model's own layers must be intact whatever the ledger says."""
    for layer in manifest.layers:
        state = blobs.check(layer.digest)
        if state is BlobState.ABSENT:
            report.problems.append(
                Problem(None, f"{kind} layer {layer.digest} ({layer.media_type}) is missing from the store")
            )
        elif state is BlobState.ALTERED:
            report.problems.append(
                Problem(
                    None,
                    f"{kind} layer {layer.digest} ({layer.media_type}) does not "
                    "match its digest: the file was modified",
                )
            )


def _find_head(
    entry: ModelEntry, kind: str, head_hash: str | None, records: list[Record], report: VerifyReport,
    store: Store, verifier: Verifier,
) -> tuple[LedgerIndex, int] | None:
    """The ledger index and the position in it of the record the manifest names (``head_hash``);
    None, with a problem, when it names none or one the ledger does not hold. A model pulled
    from another store is checked against the lineage it came with (``freehold.ledger.bundle``)."""
    if not head_hash:
        report.problems.append(
            Problem(None, f"{kind} {entry.name} names no ledger record (manifest lineage.ledger_head is empty)")
        )
        return None
    index = LedgerIndex(records)
    head = index.by_hash.get(head_hash)
    if head is None and kind == "model":
        from freehold.ledger.bundle import stored_bundle

        bundle = stored_bundle(store, entry.manifest_digest)
        if bundle is not None and bundle.head == head_hash:
            for rec in bundle.records:
                _check_signature(rec, verifier, report, f"in the lineage pulled from {bundle.origin} ")
            index = LedgerIndex(bundle.records)
            head = index.by_hash.get(head_hash)
            report.warnings.append(VerifyWarning(
                None, f"the lineage came with the model from {bundle.origin}: its {len(bundle.records)} records "
                "were checked by their signatures (the rest of the sender's chain is not here)"))
    if head is None:
        report.problems.append(
            Problem(None, f"{kind} {entry.name} names ledger record {head_hash[:19]}, which is not in the ledger")
        )
        return None
    return index, head


def _check_head_outputs(manifest: Manifest, kind: str, head: Record, report: VerifyReport) -> None:
    """The manifest's weights and rows must be outputs of the record it names."""
    outputs = {r["digest"] for r in refs(head, "outputs")}
    for layer in manifest.layers:
        if layer.media_type in (*MediaType.WEIGHTS, MediaType.DATASET) and layer.digest not in outputs:
            report.problems.append(
                Problem(
                    head.number,
                    f"does not list {kind} layer {layer.digest} among "
                    "its outputs: the manifest's weights are not "
                    "the ones this record produced",
                )
            )


@dataclass
class LineageCheck:
    """What the checks of one lineage share. Its records are visited in ledger order, so a
    dataset is seen before the runs that use it and a step before the checkpoints of it."""

    store: Store
    report: VerifyReport
    blobs: _BlobChecker
    index: LedgerIndex
    members: list[int]  # positions in ``index.records`` of the lineage's records, in ledger order
    in_lineage: set[int] = field(init=False)  # the same, for membership tests
    weights: _WeightsChecker = field(init=False)
    dataset_ids: dict[str, set[str]] = field(default_factory=dict)  # Merkle root (hex) -> its example ids
    run_examples: dict[str, set[str]] = field(default_factory=dict)  # run -> ids of the datasets it names
    listed_absent: set[str] = field(default_factory=set)  # blobs already listed as not in the store

    def __post_init__(self) -> None:
        self.in_lineage = set(self.members)
        self.weights = _WeightsChecker(self.store, self.blobs, self.report)

    def run(self, progress: ProgressFn | None) -> None:
        emit(progress, "checking artefacts", len(self.members), 0)
        for n, i in enumerate(self.members):
            self.visit(self.index.records[i])
            emit(progress, "checking artefacts", len(self.members), n + 1)

    def visit(self, rec: Record) -> None:
        """Rehash what ``rec`` cites, run its type's checks, then compare the adapters it merges."""
        checker = CHECKERS.get(rec.type, _BLOBS_ONLY)
        adapters = _adapter_inputs(rec) if checker.checks_adapter_inputs else []
        self.rehash_cited(rec, checker, adapters)
        checker.check(self, rec)
        for r in adapters:
            self.weights.check_adapter(rec, r)

    def rehash_cited(self, rec: Record, checker: RecordChecker, adapters: list[dict[str, Any]]) -> None:
        """Rehash every store blob ``rec`` cites; a problem if altered, listed once if absent."""
        for direction in ("inputs", "outputs"):
            for r in refs(rec, direction):
                if r.get("kind", BLOB) != BLOB:
                    continue
                state = self.blobs.check(r["digest"])
                if state is BlobState.ALTERED:
                    self.report.problems.append(
                        Problem(
                            rec.number,
                            f"cites {r.get('role', 'blob')} {r['digest']}, whose "
                            "bytes in the store no longer match: the file was "
                            "modified",
                        )
                    )
                elif state is BlobState.ABSENT:
                    # A checkpoint's files and merged adapters are listed by their own checks.
                    listed_elsewhere = (checker.lists_absent_outputs and direction == "outputs") or r in adapters
                    if not listed_elsewhere and r["digest"] not in self.listed_absent:
                        self.listed_absent.add(r["digest"])
                        _not_in_store(self.store, rec, r, self.report)


@dataclass(frozen=True)
class RecordChecker:
    """How verify checks records of one type, beyond rehashing every blob they cite."""

    check: Callable[[LineageCheck, Record], None]
    # Its check lists a missing output file itself (with a better reason than "not in this store").
    lists_absent_outputs: bool = False
    # Adapters among the record's inputs are loaded and compared with the weights of its run.
    checks_adapter_inputs: bool = True


def _check_dataset_record(check: LineageCheck, rec: Record) -> None:
    ids = _check_dataset(check.store, rec, check.report)
    if ids is not None:
        check.dataset_ids[str(rec.payload.get("merkle_root"))] = ids


def _check_config_record(check: LineageCheck, rec: Record) -> None:
    """A run: the examples its steps may use, and whether any checkpoint of it can be checked."""
    check.report.runs += 1
    run = str(rec.payload.get("run"))
    roots = [r["digest"].removeprefix("sha256:") for r in refs(rec, "inputs") if r.get("kind") == MERKLE]
    examples: set[str] = set()
    for root in roots:
        examples |= check.dataset_ids.get(root, set())
    if roots and examples:
        check.run_examples[run] = examples
    if not any(j in check.in_lineage for j in check.index.run_checkpoints.get(run, [])):
        check.report.not_checked.append(
            NotChecked(
                rec.number,
                NotCheckedKind.CHECKPOINT,
                f"run {run}",
                "the ledger holds no checkpoint record of this run, so no saved weights "
                "could be compared with its steps",
            )
        )


def _check_step_record(check: LineageCheck, rec: Record) -> None:
    """A step may use only examples of its run's datasets; its weights are what checkpoints hold."""
    run = str(rec.payload.get("run"))
    check.weights.steps[(run, _int(rec.payload.get("step")))] = rec
    allowed = check.run_examples.get(run)
    if allowed is None:
        return
    bad = [x for x in rec.payload.get("example_ids", []) if x not in allowed]
    if bad:
        check.report.problems.append(
            Problem(
                rec.number,
                f"step {rec.payload.get('step')} used example {str(bad[0])[:16]}… which is not in the run's dataset",
            )
        )


def _check_checkpoint_record(check: LineageCheck, rec: Record) -> None:
    check.weights.check_checkpoint(rec)


def _no_checks(check: LineageCheck, rec: Record) -> None:
    """Records of other types (import, merge, note, ...): rehashing what they cite is the check."""


_BLOBS_ONLY = RecordChecker(_no_checks)

CHECKERS: dict[str, RecordChecker] = {
    "dataset": RecordChecker(_check_dataset_record),
    "config": RecordChecker(_check_config_record),
    "step": RecordChecker(_check_step_record),
    # A checkpoint's inputs are never a merged adapter; its outputs are the files it checks.
    "checkpoint": RecordChecker(_check_checkpoint_record, lists_absent_outputs=True, checks_adapter_inputs=False),
}


def register_checker(record_type: str, checker: RecordChecker) -> None:
    """Check records of ``record_type`` with ``checker`` (replacing any checker registered before)."""
    CHECKERS[record_type] = checker


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _short(digest: Any) -> str:
    return f"{str(digest)[:19]}…"


def _not_in_store(store: Store, rec: Record, r: dict[str, Any], report: VerifyReport) -> None:
    """Say, in plain words, why a blob the lineage cites is not here (or check it elsewhere)."""
    role = str(r.get("role", "blob"))
    name = r.get("filename")
    what = f"{role} {name} ({_short(r['digest'])})" if name else f"{role} {_short(r['digest'])}"
    if rec.type == "dataset" and role == "source":
        reason = _check_source(store, rec, r, report)
        if reason is None:
            return
        report.not_checked.append(NotChecked(rec.number, NotCheckedKind.SOURCE, what, reason))
        return
    if rec.type == "import" or role == "base":
        reason = (
            "the base model's file is not in this store (removed with 'freehold rm', or the "
            "store was copied without it); import it again to check it"
        )
    else:
        reason = "this file is not in this store, so its bytes could not be rehashed"
    report.not_checked.append(NotChecked(rec.number, NotCheckedKind.BLOB, what, reason))


def _check_source(store: Store, rec: Record, r: dict[str, Any], report: VerifyReport) -> str | None:
    """Rehash a dataset's raw source file where its import found it; the reason when not possible.

    Sources (a mailbox, a CSV) are read, never copied into the store, so only the path the
    dataset's manifest remembers can be tried. A file changed since is the user's own
    business, not a change to the dataset: its rows and Merkle root are what the run used.
    """
    from freehold.store.blobs import sha256_file

    paths: list[Path] = []
    try:
        ds = store.get(str(rec.payload.get("name")), "dataset")
        sources = ds.manifest.config.get("sources") or []
        paths = [Path(str(x["path"])) for x in sources if isinstance(x, dict) and x.get("digest") == r["digest"]]
    except (FreeholdError, KeyError, TypeError):
        pass
    kept = "source files are read at import and never copied into the store"
    for path in paths:
        if not path.is_file():
            continue
        if sha256_file(path) == r["digest"]:
            report.sources_checked += 1
            report.bytes_hashed += path.stat().st_size
            return None
        return (
            f"{kept}, and {path} has changed since the import; the dataset's own rows were "
            "checked against its Merkle root instead"
        )
    where = ""
    if paths:
        relative = "" if paths[0].is_absolute() else " (a path relative to where the import ran)"
        where = f", and it was not found at {paths[0]}{relative}"
    return f"{kept}{where}; the dataset's own rows were checked against its Merkle root instead"


def _adapter_inputs(rec: Record) -> list[dict[str, Any]]:
    """The adapter files a record (a merge) consumes."""
    return [
        r
        for r in refs(rec, "inputs")
        if r.get("kind", BLOB) == BLOB and (r.get("role") == "adapter" or r.get("media_type") == MediaType.ADAPTER)
    ]


def _check_adapter_layers(
    manifest: Manifest, kind: str, index: LedgerIndex, members: set[int], head: Record, report: VerifyReport
) -> None:
    """An adapter the manifest carries must be one its lineage cites (and so is checked)."""
    cited = {r["digest"] for i in members for key in ("inputs", "outputs") for r in refs(index.records[i], key)}
    for layer in manifest.layers_of(MediaType.ADAPTER):
        if layer.digest not in cited:
            report.problems.append(
                Problem(
                    head.number,
                    f"{kind} layer {layer.digest} (adapter) is cited by no record of this lineage: "
                    "the adapter in the store is not the one the run produced",
                )
            )


@dataclass(frozen=True)
class _ExpectedWeights:
    """The weights a checkpoint record says one of its files holds."""

    against: str  # in words, for a problem: "the weights of checkpoint at step 8 (record 13)"
    digest: str
    media_type: str | None


@dataclass(frozen=True)
class _Unreadable:
    """A weights file verify could not load."""

    reason: str


class _WeightsChecker:
    """Loads stored checkpoints and adapters and compares the weights they hold with the
    digest their run's step record names for that step.

    Step records hash the trainable tensors under the model's parameter names; PEFT adapter
    files (``MediaType.ADAPTER``) store them without the adapter name, which is put back
    (``freehold.train.checkpoint.parameter_tensors``) before hashing. Plain safetensors
    checkpoints are hashed as they are.
    """

    def __init__(self, store: Store, blobs: _BlobChecker, report: VerifyReport) -> None:
        self.store = store
        self.blobs = blobs
        self.report = report
        self.steps: dict[tuple[str, int | None], Record] = {}  # latest step record of (run, step) so far
        self.digests: dict[str, str | _Unreadable] = {}  # blob -> weights digest of its tensors
        self.expected: dict[str, _ExpectedWeights] = {}  # blob -> what a checkpoint record says it holds

    def tensors_digest(self, r: dict[str, Any], media_type: str | None) -> str | _Unreadable:
        """The weights digest of the blob's tensors under parameter names."""
        digest = r["digest"]
        if digest not in self.digests:
            try:
                # torch, not numpy: numpy has no bfloat16, the usual dtype of trained weights.
                from safetensors.torch import load_file

                tensors = load_file(str(self.store.blob_path(digest)))
            except Exception as exc:  # any reader failure means an unreadable file
                self.digests[digest] = _Unreadable(f"it cannot be read as safetensors ({exc})")
            else:
                if media_type == MediaType.ADAPTER:
                    from freehold.train.checkpoint import ADAPTER_NAME, parameter_tensors

                    tensors = parameter_tensors(tensors, str(r.get("adapter_name") or ADAPTER_NAME))
                self.digests[digest] = weights_digest(tensors)
        return self.digests[digest]

    def check_checkpoint(self, rec: Record) -> None:
        """A checkpoint must hold the weights its step record names for that step."""
        report = self.report
        run, step = str(rec.payload.get("run")), _int(rec.payload.get("step"))
        label = f"checkpoint at step {rec.payload.get('step')}"
        recorded = rec.payload.get("weights")
        step_rec = self.steps.get((run, step))
        if step_rec is not None:
            expected = step_rec.payload.get("weights")
            against = f"the weights step {step} recorded (record {step_rec.number})"
            if recorded is not None and recorded != expected:
                report.problems.append(
                    Problem(
                        rec.number,
                        f"names weights {_short(recorded)} but step {step} recorded {_short(expected)} "
                        f"(record {step_rec.number}): the checkpoint is not of that step",
                    )
                )
        else:
            expected, against = recorded, "the weights this record names (its step record is not in the ledger)"
        files = [r for r in refs(rec, "outputs") if r.get("kind", BLOB) == BLOB]
        readable = [r for r in files if r.get("media_type") in (MediaType.SAFETENSORS, MediaType.ADAPTER)]
        if not readable:
            kinds = ", ".join(sorted({str(r.get("media_type")) for r in files}))
            reason = f"its files are of a format verify cannot read ({kinds})" if files else "it names no stored file"
            report.not_checked.append(NotChecked(rec.number, NotCheckedKind.CHECKPOINT, label, reason))
            return
        if not isinstance(expected, str):
            report.not_checked.append(
                NotChecked(
                    rec.number, NotCheckedKind.CHECKPOINT, label, "neither it nor a step record names a weights digest"
                )
            )
            return
        for r in readable:
            self.expected[r["digest"]] = _ExpectedWeights(
                f"the weights of {label} (record {rec.number})", expected, r["media_type"]
            )
        checked = False
        for r in readable:
            state = self.blobs.check(r["digest"])
            if state is BlobState.ABSENT:
                report.not_checked.append(
                    NotChecked(
                        rec.number,
                        NotCheckedKind.CHECKPOINT,
                        f"{label} ({_short(r['digest'])})",
                        "its file is no longer in this store (an intermediate checkpoint removed by "
                        "'freehold gc' or 'freehold rm', or a store copied without it)",
                    )
                )
                continue
            checked = True
            if state is BlobState.ALTERED:
                continue  # the rehash above already named this record
            self.compare_tensors(rec, r, f"{label} ({_short(r['digest'])})", r.get("media_type"), expected,
                                 against, "the checkpoint does not hold that step's weights")
        if checked:
            report.checkpoints_checked += 1

    def check_adapter(self, rec: Record, r: dict[str, Any]) -> None:
        """An adapter a record merges must hold a checkpoint's weights (the one that saved the
        same file), else the weights after the last step of the record's run."""
        report = self.report
        digest = r["digest"]
        label = f"adapter {_short(digest)}"
        if digest in self.expected:
            saved = self.expected[digest]
            against, expected, media_type = saved.against, saved.digest, saved.media_type
        else:
            run = str(rec.payload.get("run"))
            last = max(
                ((s, sr) for (rn, s), sr in self.steps.items() if rn == run and s is not None),
                key=lambda x: x[0],
                default=None,
            )
            if last is None or not isinstance(last[1].payload.get("weights"), str):
                report.not_checked.append(
                    NotChecked(
                        rec.number,
                        NotCheckedKind.ADAPTER,
                        label,
                        "no checkpoint or step record of its run names the weights it should hold",
                    )
                )
                return
            against = f"the weights after the run's last step, step {last[0]} (record {last[1].number})"
            expected, media_type = str(last[1].payload["weights"]), r.get("media_type")
        state = self.blobs.check(digest)
        if state is BlobState.ABSENT:
            report.not_checked.append(
                NotChecked(
                    rec.number,
                    NotCheckedKind.ADAPTER,
                    label,
                    "its file is no longer in this store (removed with 'freehold rm' or 'freehold gc')",
                )
            )
            return
        report.adapters_checked += 1
        if state is BlobState.ALTERED:
            return  # the rehash above already named this record
        self.compare_tensors(rec, r, label, media_type, expected, against,
                             "the adapter it uses is not the one training produced")

    def compare_tensors(self, rec: Record, r: dict[str, Any], label: str, media_type: Any, expected: str,
                        against: str, meaning: str) -> None:
        """Hash the tensors of the file ``r`` names; a problem on ``rec`` unless they are ``expected``."""
        actual = self.tensors_digest(r, media_type)
        if isinstance(actual, _Unreadable):
            self.report.problems.append(Problem(rec.number, f"{label}: {actual.reason}"))
        elif actual != expected:
            self.report.problems.append(Problem(
                rec.number, f"the tensors of {label} hash to {_short(actual)}, not to {against}, "
                            f"{_short(expected)}: {meaning}"))


def dataset_rows(store: Store, manifest: Manifest) -> list[tuple[str, dict[str, Any]]]:
    """(stored id, row without id) for each row of the dataset layers, in tree order."""
    from freehold.data.rows import read_rows

    return [(str(row.pop("id", "")), row) for row in read_rows(store, manifest)]


def _check_dataset(store: Store, rec: Record, report: VerifyReport) -> set[str] | None:
    """Recompute the dataset's ids and root from the stored rows; returns its ids."""
    dataset_layers = [r for r in refs(rec, "outputs") if r.get("media_type") == MediaType.DATASET]
    recorded_root = str(rec.payload.get("merkle_root", ""))
    recorded_ids = [str(x) for x in rec.payload.get("example_ids", [])]
    if recorded_ids and merkle_root([bytes.fromhex(x) for x in recorded_ids if _is_hex(x)]).hex() != recorded_root:
        report.problems.append(Problem(rec.number, "lists example ids whose Merkle root is not the root it records"))
    if not dataset_layers:
        report.warnings.append(
            VerifyWarning(
                rec.number,
                f"dataset {rec.payload.get('name')} names no stored rows; Merkle root checked against its id list only",
            )
        )
        return set(recorded_ids)
    present = [r for r in dataset_layers if store.blob_path(r["digest"]).exists()]
    if len(present) != len(dataset_layers):
        report.warnings.append(
            VerifyWarning(
                rec.number,
                f"dataset {rec.payload.get('name')} rows are not in this store; "
                "Merkle root checked against its id list only",
            )
        )
        return set(recorded_ids)
    fake = Manifest("dataset", str(rec.payload.get("name")), {}, [_layer(r) for r in dataset_layers])
    try:
        rows = dataset_rows(store, fake)
    except StoreError as exc:  # a layer that is not JSONL
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


def _layer(r: dict[str, Any]) -> Layer:
    return Layer(str(r.get("media_type", "")), r["digest"], int(r.get("size", 0)))
