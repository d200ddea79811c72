"""Verification: chain, signatures, artefact digests and dataset Merkle roots.

``verify_ledger`` checks every line of the ledger (format, sequence, hash chain, signature
by a trusted key). ``verify_model`` then follows a model's lineage from the record its
manifest names and rehashes every store blob those records cite, checks that the model's
weights are the outputs of its head record, recomputes each dataset's example ids and
Merkle root from the stored rows, checks that every step used only examples of its run's
dataset, and that every checkpoint and merged adapter the store still holds contains the
weights its step record names (the tensors are loaded and hashed, not only the file).

What could not be checked (a blob no longer in the store, a source file kept outside it, a
file in a format verify cannot read) is listed in ``VerifyReport.not_checked`` with the
reason; it never counts as passed.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.errors import FreeholdError, StoreError, VerificationError
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


@dataclass(frozen=True)
class NotChecked:
    """Something the lineage names that verify could not check, and why."""

    record: int | None  # 1-based line number of the record naming it
    kind: str  # "checkpoint", "adapter", "source" or "blob"
    what: str
    reason: str

    def __str__(self) -> str:
        where = f"record {self.record}: " if self.record else ""
        return f"{where}{self.what}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record, "kind": self.kind, "what": self.what, "reason": self.reason}


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
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def complete(self) -> bool:
        """Every check passed and nothing the lineage names was left unchecked."""
        return self.ok and not self.not_checked

    def _not_checked(self, kind: str) -> int:
        return sum(1 for n in self.not_checked if n.kind == kind)

    @property
    def checkpoints_not_checked(self) -> int:
        return self._not_checked("checkpoint")

    @property
    def adapters_not_checked(self) -> int:
        return self._not_checked("adapter")

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
        ok = self.store.verify_blob(digest, self.progress)
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
    member_set = set(members)
    report.lineage_records = len(members)
    _check_adapter_layers(entry.manifest, kind, index, member_set, head_rec, report)
    emit(progress, "checking artefacts", len(members), 0)
    run_examples: dict[str, set[str]] = {}
    dataset_ids_by_root: dict[str, set[str]] = {}
    weights = _WeightsChecker(store, blobs, report)
    absent: set[str] = set()
    for n, i in enumerate(members):
        rec = index.records[i]
        adapter_inputs = _adapter_inputs(rec)
        for direction in ("inputs", "outputs"):
            for r in refs(rec, direction):
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
                elif ok is None:
                    # Checkpoints and adapters say so in their own checks below.
                    handled = (rec.type == "checkpoint" and direction == "outputs") or r in adapter_inputs
                    if not handled and r["digest"] not in absent:
                        absent.add(r["digest"])
                        _not_in_store(store, rec, r, report)
        if rec.type == "dataset":
            ids = _check_dataset(store, rec, report)
            if ids is not None:
                dataset_ids_by_root[str(rec.payload.get("merkle_root"))] = ids
        elif rec.type == "config":
            report.runs += 1
            roots = [r["digest"].removeprefix("sha256:") for r in refs(rec, "inputs") if r.get("kind") == "merkle"]
            ids_union: set[str] = set()
            for root in roots:
                ids_union |= dataset_ids_by_root.get(root, set())
            if roots and ids_union:
                run_examples[str(rec.payload.get("run"))] = ids_union
            run = rec.payload.get("run")
            if not any(j in member_set for j in index.run_checkpoints.get(str(run), [])):
                report.not_checked.append(
                    NotChecked(
                        rec.number,
                        "checkpoint",
                        f"run {run}",
                        "the ledger holds no checkpoint record of this run, so no saved weights "
                        "could be compared with its steps",
                    )
                )
        elif rec.type == "step":
            weights.steps[(str(rec.payload.get("run")), _int(rec.payload.get("step")))] = rec
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
            weights.check_checkpoint(rec)
        for r in adapter_inputs:
            weights.check_adapter(rec, r)
        emit(progress, "checking artefacts", len(members), n + 1)
    report.seconds = time.perf_counter() - started
    return report


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _short(digest: Any) -> str:
    return f"{str(digest)[:19]}…"


def _not_in_store(store: Any, rec: Record, r: dict[str, Any], report: VerifyReport) -> None:
    """Say, in plain words, why a blob the lineage cites is not here (or check it elsewhere)."""
    role = str(r.get("role", "blob"))
    name = r.get("filename")
    what = f"{role} {name} ({_short(r['digest'])})" if name else f"{role} {_short(r['digest'])}"
    if rec.type == "dataset" and role == "source":
        reason = _check_source(store, rec, r, report)
        if reason is None:
            return
        report.not_checked.append(NotChecked(rec.number, "source", what, reason))
        return
    if rec.type == "import" or role == "base":
        reason = (
            "the base model's file is not in this store (removed with 'freehold rm', or the "
            "store was copied without it); import it again to check it"
        )
    else:
        reason = "this file is not in this store, so its bytes could not be rehashed"
    report.not_checked.append(NotChecked(rec.number, "blob", what, reason))


def _check_source(store: Any, rec: Record, r: dict[str, Any], report: VerifyReport) -> str | None:
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
    from freehold.store.manifest import MediaType

    if rec.type == "checkpoint":
        return []
    return [
        r
        for r in refs(rec, "inputs")
        if r.get("kind", "blob") == "blob" and (r.get("role") == "adapter" or r.get("media_type") == MediaType.ADAPTER)
    ]


def _check_adapter_layers(
    manifest: Any, kind: str, index: LedgerIndex, members: set[int], head: Record, report: VerifyReport
) -> None:
    """An adapter the manifest carries must be one its lineage cites (and so is checked)."""
    from freehold.store.manifest import MediaType

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


class _WeightsChecker:
    """Loads stored checkpoints and adapters and compares the weights they hold with the
    digest their run's step record names for that step.

    Step records hash the trainable tensors under the model's parameter names; PEFT adapter
    files (``MediaType.ADAPTER``) store them without the adapter name, which is put back
    (``freehold.train.checkpoint.parameter_tensors``) before hashing. Plain safetensors
    checkpoints are hashed as they are.
    """

    def __init__(self, store: Any, blobs: _BlobChecker, report: VerifyReport) -> None:
        self.store = store
        self.blobs = blobs
        self.report = report
        self.steps: dict[tuple[str, int | None], Record] = {}  # latest step record of (run, step) so far
        self.digests: dict[str, tuple[str | None, str | None]] = {}  # blob -> (weights digest, error)
        # blob -> (what it must hold, in words; that digest; media type), from checkpoint records
        self.expected: dict[str, tuple[str, str, str | None]] = {}

    def tensors_digest(self, r: dict[str, Any], media_type: str | None) -> tuple[str | None, str | None]:
        """(weights digest of the blob's tensors under parameter names, None) or (None, error)."""
        digest = r["digest"]
        if digest not in self.digests:
            from freehold.ledger.records import weights_digest
            from freehold.store.manifest import MediaType

            try:
                # torch, not numpy: numpy has no bfloat16, the usual dtype of trained weights.
                from safetensors.torch import load_file

                tensors = load_file(str(self.store.blob_path(digest)))
            except Exception as exc:  # any reader failure means an unreadable file
                self.digests[digest] = (None, f"it cannot be read as safetensors ({exc})")
            else:
                if media_type == MediaType.ADAPTER:
                    from freehold.train.checkpoint import ADAPTER_NAME, parameter_tensors

                    tensors = parameter_tensors(tensors, str(r.get("adapter_name") or ADAPTER_NAME))
                self.digests[digest] = (weights_digest(tensors), None)
        return self.digests[digest]

    def check_checkpoint(self, rec: Record) -> None:
        """A checkpoint must hold the weights its step record names for that step."""
        from freehold.store.manifest import MediaType

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
        files = [r for r in refs(rec, "outputs") if r.get("kind", "blob") == "blob"]
        readable = [r for r in files if r.get("media_type") in (MediaType.SAFETENSORS, MediaType.ADAPTER)]
        if not readable:
            kinds = ", ".join(sorted({str(r.get("media_type")) for r in files}))
            reason = f"its files are of a format verify cannot read ({kinds})" if files else "it names no stored file"
            report.not_checked.append(NotChecked(rec.number, "checkpoint", label, reason))
            return
        if not isinstance(expected, str):
            report.not_checked.append(
                NotChecked(rec.number, "checkpoint", label, "neither it nor a step record names a weights digest")
            )
            return
        for r in readable:
            self.expected[r["digest"]] = (f"the weights of {label} (record {rec.number})", expected, r["media_type"])
        checked = False
        for r in readable:
            ok = self.blobs.check(r["digest"])
            if ok is None:
                report.not_checked.append(
                    NotChecked(
                        rec.number,
                        "checkpoint",
                        f"{label} ({_short(r['digest'])})",
                        "its file is no longer in this store (an intermediate checkpoint removed by "
                        "'freehold gc' or 'freehold rm', or a store copied without it)",
                    )
                )
                continue
            checked = True
            if ok is False:
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
            against, expected, media_type = self.expected[digest]
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
                        "adapter",
                        label,
                        "no checkpoint or step record of its run names the weights it should hold",
                    )
                )
                return
            against = f"the weights after the run's last step, step {last[0]} (record {last[1].number})"
            expected, media_type = str(last[1].payload["weights"]), r.get("media_type")
        ok = self.blobs.check(digest)
        if ok is None:
            report.not_checked.append(
                NotChecked(
                    rec.number,
                    "adapter",
                    label,
                    "its file is no longer in this store (removed with 'freehold rm' or 'freehold gc')",
                )
            )
            return
        report.adapters_checked += 1
        if ok is False:
            return  # the rehash above already named this record
        self.compare_tensors(rec, r, label, media_type, expected, against,
                             "the adapter it uses is not the one training produced")

    def compare_tensors(self, rec: Record, r: dict[str, Any], label: str, media_type: Any, expected: str,
                        against: str, meaning: str) -> None:
        """Hash the tensors of the file ``r`` names; a problem on ``rec`` unless they are ``expected``."""
        actual, error = self.tensors_digest(r, media_type)
        if error is not None:
            self.report.problems.append(Problem(rec.number, f"{label}: {error}"))
        elif actual != expected:
            self.report.problems.append(Problem(
                rec.number, f"the tensors of {label} hash to {_short(actual)}, not to {against}, "
                            f"{_short(expected)}: {meaning}"))


def dataset_rows(store: Any, manifest: Any) -> list[tuple[str, dict[str, Any]]]:
    """(stored id, row without id) for each row of the dataset layers, in tree order."""
    from freehold.data.rows import read_rows

    return [(str(row.pop("id", "")), row) for row in read_rows(store, manifest)]


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


def _layer(r: dict[str, Any]) -> Any:
    from freehold.store.manifest import Layer

    return Layer(str(r.get("media_type", "")), r["digest"], int(r.get("size", 0)))
