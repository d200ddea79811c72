"""Audits and publish signatures: signed statements about a model that travel with it.

An **audit** is anyone's verdict on a model (``pass``, ``concern`` or ``flag``, severity ``low``
or ``high``, a summary, optionally a report file): an in-toto Statement v1 whose subject is the
model's Freehold manifest digest, in a DSSE envelope signed with the auditor's Ed25519 identity
(``freehold.ledger.attest``), recorded in the auditor's ledger (an ``audit`` record). A
**publish signature** is the same kind of envelope that ``freehold push`` makes for each
manifest it pushes (predicate: the OCI manifest digest, the repository, the lineage head).

Both are kept beside the model in the store (a derived artefact of its manifest, so every name
of the model shows them) and travel as OCI referrers of the pushed manifest
(``freehold.registry.client``). A model whose latest audit from some auditor is a high-severity
flag is *flagged*: every listing marks it and deploying it needs an explicit override, which
the ledger records.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freehold.errors import UsageError, VerificationError
from freehold.store import Layer, Manifest, ModelEntry, Store

VERDICTS = ("pass", "concern", "flag")
SEVERITIES = ("low", "high")
ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
AUDIT_ARTIFACT = "application/vnd.freehold.audit.v1+json"
SIGNATURE_ARTIFACT = "application/vnd.freehold.signature.v1+json"
AUDIT_PREDICATE = "https://freehold.dev/attestation/audit/v1"
PUBLISH_PREDICATE = "https://freehold.dev/attestation/publish/v1"
ARTIFACT_OF = {AUDIT_PREDICATE: AUDIT_ARTIFACT, PUBLISH_PREDICATE: SIGNATURE_ARTIFACT}
DERIVED_KIND = "attestations"
MAX_REPORT_BYTES = 1 << 20


@dataclass(frozen=True)
class Attestation:
    """One envelope kept beside a model, as read back (and checked) from the store."""

    digest: str  # the envelope blob's
    predicate_type: str
    predicate: dict[str, Any]
    signer: str  # key id
    signer_name: str | None  # the name it has in this store's trusted keys; None: not trusted
    valid: bool  # the signature checks out with the key the envelope names (trusted or not)

    @property
    def is_audit(self) -> bool:
        return self.predicate_type == AUDIT_PREDICATE

    @property
    def artifact_type(self) -> str:
        return ARTIFACT_OF.get(self.predicate_type, AUDIT_ARTIFACT)

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "kind": "audit" if self.is_audit else "signature",
                "signer": self.signer, "signer_name": self.signer_name, "trusted": self.signer_name is not None,
                "valid": self.valid, **self.predicate}


def _statement(entry: ModelEntry, predicate_type: str, predicate: dict[str, Any]) -> dict[str, Any]:
    from freehold.ledger.attest import STATEMENT_TYPE

    return {"_type": STATEMENT_TYPE, "predicateType": predicate_type, "predicate": predicate,
            "subject": [{"name": entry.name, "digest": {"sha256": entry.manifest_digest.removeprefix("sha256:")},
                         "mediaType": "application/vnd.freehold.manifest.v1+json"}]}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def attach(store: Store, name: str, verdict: str, severity: str, summary: str,
           report: Path | None = None) -> Attestation:
    """Sign and keep an audit of model ``name``; recorded in this store's ledger."""
    from freehold.ledger import Ledger, ref
    from freehold.ledger.attest import sign_envelope
    from freehold.ledger.keys import load_identity

    problems = []
    if verdict not in VERDICTS:
        problems.append(f"--verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    if severity not in SEVERITIES:
        problems.append(f"--severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    if not summary.strip():
        problems.append("--summary must say what you found, in a sentence")
    report_doc = None
    if report is not None:
        try:
            data = report.read_bytes()
        except OSError as exc:
            problems.append(f"cannot read the report {report}: {exc.strerror}")
        else:
            if len(data) > MAX_REPORT_BYTES:
                problems.append(f"the report is {len(data)} bytes; at most {MAX_REPORT_BYTES} travel with an audit")
            else:
                report_doc = {"name": report.name, "sha256": hashlib.sha256(data).hexdigest(),
                              "text": data.decode("utf-8", "replace")}
    if problems:
        raise UsageError("; ".join(problems), "e.g. freehold audit attach NAME --verdict flag --severity high "
                         "--summary \"echoes card numbers back\"")
    entry = store.get(name)
    identity = load_identity(store.home)
    predicate = {"verdict": verdict, "severity": severity, "summary": summary.strip(), "time": _now(),
                 "auditor": identity.key_id, "public_key": identity.public_b64, "report": report_doc}
    envelope = sign_envelope(_statement(entry, AUDIT_PREDICATE, predicate), store.home)
    digest = keep(store, entry.manifest_digest, json.dumps(envelope, sort_keys=True).encode())
    Ledger.open(store.home).append("audit", {
        "model": entry.name, "verdict": verdict, "severity": severity, "summary": summary.strip(),
        "envelope": digest, "inputs": [ref("model", entry.manifest_digest)], "outputs": []})
    return next(a for a in attestations(store, entry.manifest_digest) if a.digest == digest)


def publish_signature(store: Store, entry: ModelEntry, oci_digest: str, repo: str) -> bytes:
    """The envelope ``freehold push`` attaches to a pushed manifest (kept beside the model too)."""
    from freehold.ledger.attest import sign_envelope
    from freehold.ledger.keys import load_identity

    identity = load_identity(store.home)
    for a in attestations(store, entry.manifest_digest):  # pushed before: the same signature serves
        if not a.is_audit and a.signer == identity.key_id and a.predicate.get("oci_manifest") == oci_digest \
                and a.predicate.get("repository") == repo:
            return store.read_blob(a.digest)
    predicate = {"oci_manifest": oci_digest, "repository": repo, "time": _now(),
                 "publisher": identity.key_id, "public_key": identity.public_b64,
                 "lineage_head": (entry.manifest.lineage or {}).get("ledger_head")}
    data = json.dumps(sign_envelope(_statement(entry, PUBLISH_PREDICATE, predicate), store.home),
                      sort_keys=True).encode()
    keep(store, entry.manifest_digest, data)
    return data


def _kept(store: Store, manifest_digest: str) -> list[Layer]:
    manifest = store.derived(manifest_digest, DERIVED_KIND)
    return list(manifest.layers) if manifest is not None else []


def keep(store: Store, manifest_digest: str, envelope: bytes) -> str:
    """Keep an envelope beside the model (once); returns its digest. It must be a DSSE envelope
    of a statement about this model."""
    statement = _read(envelope)
    subjects = {s.get("digest", {}).get("sha256") for s in statement.get("subject", []) if isinstance(s, dict)}
    if manifest_digest.removeprefix("sha256:") not in subjects:
        raise VerificationError("the statement is about another model", "attach it to the model it names")
    layer = store.put_stream_blob(envelope, ENVELOPE_MEDIA_TYPE)
    layers = _kept(store, manifest_digest)
    if layer.digest not in {la.digest for la in layers}:
        store.put_derived(manifest_digest, DERIVED_KIND, Manifest("attestations", manifest_digest, {},
                                                                  [*layers, layer]))
    return layer.digest


def _read(envelope: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(envelope)
        statement: dict[str, Any] = json.loads(base64.b64decode(doc["payload"], validate=True))
        if not isinstance(statement, dict):
            raise ValueError("the payload is not a statement")
        return statement
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"not a DSSE envelope of an in-toto statement: {exc}",
                                "attach envelopes made by 'freehold audit attach'") from exc


def attestations(store: Store, manifest_digest: str) -> list[Attestation]:
    """Every audit and publish signature kept beside the model, each checked: valid signature by
    the key it names, and whether this store trusts that key."""
    from freehold.ledger.keys import trusted_keys

    trusted = trusted_keys(store.home)
    found = (read_attestation(store.read_blob(la.digest), la.digest, trusted) for la in _kept(store, manifest_digest))
    return sorted((a for a in found if a is not None), key=lambda a: str(a.predicate.get("time", "")))


def read_attestation(data: bytes, digest: str, trusted: dict[str, dict[str, Any]]) -> Attestation | None:
    """One envelope read and checked (None when it is not one of ours)."""
    from freehold.ledger.attest import DSSE_PAYLOAD_TYPE, pae

    try:
        statement = _read(data)
        doc = json.loads(data)
        sig = doc["signatures"][0]
        predicate = dict(statement.get("predicate") or {})
        signer = str(sig.get("keyid"))
        signed = pae(DSSE_PAYLOAD_TYPE, base64.b64decode(doc["payload"]))
    except (VerificationError, ValueError, KeyError, IndexError, TypeError):
        return None
    claimed = str(predicate.get("auditor") or predicate.get("publisher") or "")
    valid = claimed == signer and _signature_ok(signer, doc, trusted, signed, predicate)
    return Attestation(digest, str(statement.get("predicateType")), predicate, signer,
                       trusted[signer].get("name") if signer in trusted else None, valid)


def _signature_ok(signer: str, doc: dict[str, Any], trusted: dict[str, dict[str, Any]], signed: bytes,
                  predicate: dict[str, Any]) -> bool:
    """The envelope's signature by ``signer``: with the trusted key when this store has it, else
    with the public key the predicate carries (an auditor this store has not met)."""
    from freehold.ledger.keys import Verifier, key_id_of, parse_public_key

    keys = {signer: trusted[signer]} if signer in trusted else {}
    carried = predicate.get("public_key")
    if not keys and isinstance(carried, str):
        try:
            if key_id_of(parse_public_key(carried)) == signer:
                keys = {signer: {"public_key": carried}}
        except UsageError:
            return False
    if not keys:
        return False
    sig = base64.b64decode(str(doc["signatures"][0].get("sig", "")))
    return Verifier(keys).verify(signer, sig, signed)


def open_flags(items: list[Attestation]) -> list[Attestation]:
    """The high-severity flags still standing: each auditor's latest valid audit, when it is one."""
    latest: dict[str, Attestation] = {}
    for a in items:
        if a.is_audit and a.valid:
            latest[a.signer] = a
    return [a for a in latest.values()
            if a.predicate.get("verdict") == "flag" and a.predicate.get("severity") == "high"]


def summary(store: Store, manifest_digest: str) -> dict[str, Any]:
    """What a listing shows: counts, the open high flags, and each audit."""
    items = attestations(store, manifest_digest)
    audits = [a for a in items if a.is_audit]
    flags = open_flags(items)
    return {"audits": len(audits), "flagged": bool(flags),
            "flags": [f.to_dict() for f in flags], "items": [a.to_dict() for a in audits],
            "signatures": [a.to_dict() for a in items if not a.is_audit]}
