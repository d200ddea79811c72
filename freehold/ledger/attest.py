"""Interoperable exports: in-toto / SLSA attestations in DSSE envelopes, and OpenSSF model-signing.

- ``provenance_statement``: an in-toto Statement v1 whose subjects are the model's weight
  files and whose predicate is SLSA Provenance v1 (base model and datasets as resolved
  dependencies, the run's config as external parameters, the ledger head as a byproduct).
- ``lineage_statement``: the same subjects with Freehold's lineage graph as predicate.
- ``sign_envelope`` / ``verify_envelope``: DSSE v1 (PAE over payload type and body) with the
  ledger's Ed25519 identity, so any DSSE verifier holding the public key can check it.
- ``sign_model_directory``: an OpenSSF model-signing signature (a Sigstore bundle) over a
  directory, made by that project's library with an EC P-256 key, so its own
  ``model_signing verify key DIR --signature … --public_key …`` accepts it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from freehold.errors import DependencyError, LedgerError, VerificationError
from freehold.ledger.graph import build_lineage, refs
from freehold.ledger.keys import Verifier, load_identity, model_signing_key, trusted_keys

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
FREEHOLD_LINEAGE = "https://freehold.dev/attestation/lineage/v1"
BUILD_TYPE = "https://freehold.dev/buildtypes/ledger/v1"
BUILDER_ID = "https://freehold.dev/builder/local"
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def _subjects(entry: Any) -> list[dict[str, Any]]:
    from freehold.store.manifest import MediaType

    layers = entry.manifest.weights or entry.manifest.layers_of(MediaType.DATASET) or entry.manifest.layers
    return [
        {
            "name": layer.annotations.get("filename") or f"{entry.name}/{layer.digest[7:19]}",
            "digest": {"sha256": layer.digest.removeprefix("sha256:")},
            "mediaType": layer.media_type,
        }
        for layer in layers
    ]


def _descriptor(r: dict[str, Any]) -> dict[str, Any]:
    d: dict[str, Any] = {"digest": {"sha256": r["digest"].removeprefix("sha256:")}}
    name = r.get("filename") or r.get("role")
    if name:
        d["name"] = str(name)
    if r.get("media_type"):
        d["mediaType"] = str(r["media_type"])
    if r.get("kind") and r["kind"] != "blob":
        d["annotations"] = {"freehold.kind": str(r["kind"])}
    return d


def provenance_statement(store: Any, name: str, home: Path | None = None) -> dict[str, Any]:
    """SLSA Provenance v1 for model ``name``, built from its ledger lineage."""
    from freehold.ledger.membership import lineage_index

    index, head, full = lineage_index(store, name, home)
    entry = store.get(name)
    lineage = build_lineage(index, head, full)
    configs = [r for r in lineage.nodes if r.type == "config"]
    deps: list[dict[str, Any]] = []
    seen: set[str] = set()
    produced = {
        r["digest"] for rec in lineage.nodes for r in refs(rec, "outputs") if rec.type not in ("import", "dataset")
    }
    for rec in lineage.nodes:
        for r in refs(rec, "inputs") + (refs(rec, "outputs") if rec.type in ("import", "dataset") else []):
            if r["digest"] in seen or r["digest"] in produced:
                continue
            seen.add(r["digest"])
            deps.append(_descriptor(r))
    from freehold.licences import model_licence
    from freehold.store import MediaType

    # The licence the model is under (every licence it inherited, as one expression).
    external: dict[str, Any] = {"model": full,
                                "license": model_licence(entry.manifest, store.text_layer(entry.manifest,
                                                                                          MediaType.LICENSE))}
    if configs:
        p = configs[-1].payload
        external.update(
            {
                "run": p.get("run"),
                "architecture": p.get("architecture"),
                "hyperparameters": p.get("hyperparameters"),
                "seed": p.get("seed"),
                "threads": p.get("threads"),
            }
        )
    times = [r.time for r in lineage.nodes]
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {"environment": configs[-1].payload.get("environment")} if configs else {},
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID},
            "metadata": {
                "invocationId": str(configs[-1].payload.get("run")) if configs else lineage.head.hash,
                "startedOn": min(times),
                "finishedOn": max(times),
            },
            "byproducts": [
                {
                    "name": "freehold-ledger-head",
                    "digest": {"sha256": lineage.head.hash[7:]},
                    "annotations": {"record": lineage.head.number, "signer": lineage.head.key},
                }
            ],
        },
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": _subjects(entry),
        "predicateType": SLSA_PROVENANCE,
        "predicate": predicate,
    }


def lineage_statement(store: Any, name: str, home: Path | None = None) -> dict[str, Any]:
    from freehold.ledger.membership import lineage_index

    index, head, full = lineage_index(store, name, home)
    return {
        "_type": STATEMENT_TYPE,
        "subject": _subjects(store.get(name)),
        "predicateType": FREEHOLD_LINEAGE,
        "predicate": build_lineage(index, head, full).to_dict(),
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_envelope(statement: dict[str, Any], home: Path) -> dict[str, Any]:
    identity = load_identity(home)
    body = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    sig = identity.sign(pae(DSSE_PAYLOAD_TYPE, body))
    return {
        "payloadType": DSSE_PAYLOAD_TYPE,
        "payload": base64.b64encode(body).decode(),
        "signatures": [{"keyid": identity.key_id, "sig": base64.b64encode(sig).decode()}],
    }


def verify_envelope(envelope: dict[str, Any], home: Path) -> dict[str, Any]:
    """Check a DSSE envelope against the trusted keys; returns the statement."""
    try:
        body = base64.b64decode(envelope["payload"], validate=True)
        ptype = str(envelope["payloadType"])
        sigs = envelope["signatures"]
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError(
            f"not a DSSE envelope: {exc}", "pass a file written by 'freehold audit attest'"
        ) from exc
    verifier = Verifier(trusted_keys(home))
    for s in sigs:
        if verifier.verify(str(s.get("keyid")), base64.b64decode(str(s.get("sig", ""))), pae(ptype, body)):
            statement: dict[str, Any] = json.loads(body)
            return statement
    raise VerificationError(
        "no signature on the envelope verifies with a trusted key",
        "trust the signer's key with 'freehold key trust', or the envelope was altered",
    )


def sign_model_directory(directory: Path, home: Path, signature: Path | None = None) -> tuple[Path, Path]:
    """OpenSSF model-signing signature over ``directory``; returns (signature path, public key path).

    The signature goes beside the directory by default (a file inside would be signed too).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LedgerError(f"{directory} is not a directory", "give the exported model's directory")
    try:
        import model_signing
    except ImportError as exc:
        raise DependencyError(
            "model signing needs the 'model-signing' package", "pip install model-signing pyopenssl"
        ) from exc
    priv, pub = model_signing_key(home)
    signature = Path(signature) if signature else directory.parent / f"{directory.name}.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=priv).sign(directory, signature)
    return signature, pub


def verify_model_directory(directory: Path, signature: Path, public_key: Path) -> None:
    """Check a model-signing signature with that project's own verifier."""
    import model_signing

    try:
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(directory, signature)
    except Exception as exc:  # model_signing raises ValueError and others
        raise VerificationError(
            f"model-signing rejects {directory}: {exc}",
            "the directory changed since it was signed, or the key is wrong",
        ) from exc
