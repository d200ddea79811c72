"""A model's lineage as it travels: the signed ledger records of its lineage, byte for byte,
with the public keys of their signers (not the data: a dataset travels as its record, i.e.
its example ids and Merkle root).

A push carries the bundle as one more layer of the OCI manifest (``MediaType.LINEAGE_BUNDLE``);
a pull keeps it beside the model (a derived artefact of the model's manifest) and records the
pull in the receiver's own ledger. ``freehold audit verify`` on the receiver then checks the
model against these records exactly as the sender's store would, less what only the sender
holds (the rows, the checkpoints), which it lists as not checked::

    {"schema": "freehold.lineage-bundle/v1", "model": "acme-support:latest",
     "manifest": "sha256:...", "head": "sha256:<the head record's hash>",
     "records": [{"number": 12, "line": "<the record's canonical JSON line>"}, ...],
     "keys": {"ed25519:<id>": {"public_key": "<base64>", "name": "..."}}}
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from freehold.errors import VerificationError
from freehold.ledger.chain import Ledger, Record, parse_line
from freehold.ledger.graph import LedgerIndex
from freehold.ledger.keys import load_identity, trusted_keys
from freehold.store import Layer, Manifest, MediaType, ModelEntry, Store

SCHEMA = "freehold.lineage-bundle/v1"
DERIVED_KIND = "lineage-bundle"


@dataclass(frozen=True)
class Bundle:
    model: str
    manifest_digest: str
    head: str
    records: list[Record]
    keys: dict[str, dict[str, Any]]
    origin: str | None = None  # where it was pulled from (kept beside it on the receiver)

    @property
    def signers(self) -> list[str]:
        return sorted({r.key for r in self.records})

    def to_bytes(self) -> bytes:
        doc = {"schema": SCHEMA, "model": self.model, "manifest": self.manifest_digest, "head": self.head,
               "records": [{"number": r.number, "line": r.line.decode("utf-8")} for r in self.records],
               "keys": self.keys}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def make_bundle(store: Store, entry: ModelEntry) -> Bundle | None:
    """The bundle of ``entry``'s lineage (None when its manifest names no ledger record). A model
    pulled from elsewhere passes on the bundle it came with."""
    head = (entry.manifest.lineage or {}).get("ledger_head")
    if not head:
        return None
    records = Ledger.open(store.home).records()
    index = LedgerIndex(records)
    if head not in index.by_hash:
        carried = stored_bundle(store, entry.manifest_digest)
        return carried if carried is not None and carried.head == head else None
    members = index.ancestors(index.by_hash[head])
    members = sorted(set(members) | set(index.citing(members)))
    chosen = [records[i] for i in members]
    known = trusted_keys(store.home)
    own = load_identity(store.home).key_id
    keys = {kid: {"public_key": known[kid]["public_key"],
                  "name": publisher_name() if kid == own else known[kid].get("name", "")}
            for kid in sorted({r.key for r in chosen}) if kid in known}
    return Bundle(entry.name, entry.manifest_digest, head, chosen, keys)


def publisher_name() -> str:
    """How this machine's key is named to others (its own trusted list calls it "this machine")."""
    import getpass
    import socket

    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (OSError, KeyError):
        return socket.gethostname()


def parse_bundle(data: bytes, origin: str | None = None) -> Bundle:
    """Read a bundle; every record must be a well-formed ledger line (its hash is its line's)."""
    try:
        doc = json.loads(data)
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"schema {doc.get('schema')!r}")
        records = []
        for item in doc["records"]:
            entry = parse_line(int(item["number"]), str(item["line"]).encode("utf-8"))
            if not isinstance(entry, Record):
                raise ValueError(f"record {item['number']} {entry.problem}")
            records.append(entry)
        keys = {str(k): {"public_key": str(v["public_key"]), "name": str(v.get("name", ""))}
                for k, v in dict(doc["keys"]).items()}
        return Bundle(str(doc["model"]), str(doc["manifest"]), str(doc["head"]), records, keys, origin)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VerificationError(f"the model's lineage bundle is unreadable: {exc}",
                                "pull the model again; if it persists, push it again from its origin") from exc


def keep_bundle(store: Store, bundle: Bundle, origin: str) -> Layer:
    """Store the bundle beside its model (kept as long as the model's manifest is)."""
    doc = json.loads(bundle.to_bytes())
    doc["origin"] = origin
    layer = store.put_stream_blob(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8"),
                                  MediaType.LINEAGE_BUNDLE)
    store.put_derived(bundle.manifest_digest, DERIVED_KIND,
                      Manifest("lineage", bundle.model, {"origin": origin}, [layer]))
    return layer


def stored_bundle(store: Store, manifest_digest: str) -> Bundle | None:
    """The bundle a pulled model came with, if any."""
    manifest = store.derived(manifest_digest, DERIVED_KIND)
    if manifest is None or not manifest.layers:
        return None
    return parse_bundle(store.read_blob(manifest.layers[0].digest), manifest.config.get("origin"))


def forged(bundle: Bundle) -> str | None:
    """Why the bundle does not hang together by its own keys (a record whose signature is not its
    signer's, a key whose id is not its own), or None. Whether to trust the signers is ``untrusted``."""
    from freehold.ledger.keys import Verifier, key_id_of, parse_public_key

    for kid, entry in bundle.keys.items():
        if key_id_of(parse_public_key(entry["public_key"])) != kid:
            return f"the key listed as {kid} is another key"
    verifier = Verifier(bundle.keys)
    for rec in bundle.records:
        try:
            sig = base64.b64decode(rec.sig, validate=True)
        except (binascii.Error, ValueError):
            sig = b""
        if not verifier.verify(rec.key, sig, rec.signed_bytes()):
            return f"record {rec.number} ({rec.type}) has no valid signature by {rec.key}"
    return None


def mismatch(bundle: Bundle, manifest_digest: str, head: str | None) -> str | None:
    """Why the bundle is not the lineage of the model ``manifest_digest`` whose manifest names
    ``head`` (None: it is), for a pull and for a registry receiving a push alike."""
    if bundle.manifest_digest != manifest_digest:
        return "it is about another model"
    if bundle.head != head or head not in {r.hash for r in bundle.records}:
        return "it lacks the model's head record"
    return None


def untrusted(bundle: Bundle, trusted: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The bundle's signers the receiver does not trust, with the key the bundle carries."""
    return [(kid, bundle.keys.get(kid, {})) for kid in bundle.signers if kid not in trusted]
