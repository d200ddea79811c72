"""OCI shapes: a Freehold model as an OCI image manifest, names, references, digests, errors.

A model travels as one OCI image manifest (the distribution spec v1.1's artifact form)::

    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "artifactType": "application/vnd.freehold.model.v1",
     "config": {"mediaType": "application/vnd.freehold.manifest.v1+json", "digest": <the Freehold
                manifest's digest>, "size": ...},
     "layers": [<the Freehold manifest's layers, same media types, digests and annotations>],
     "annotations": {"org.opencontainers.image.title": "acme-support:latest", ...}}

The config blob *is* the Freehold manifest, byte for byte, so a pulled model has the same
manifest digest on both sides and its ledger records (which name that digest) verify there.
Any registry that stores OCI manifests (the CNCF distribution server, zot, Harbor) holds it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from freehold.errors import RegistryError
from freehold.store.manifest import Manifest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST)
FREEHOLD_ARTIFACT = "application/vnd.freehold.model.v1"
FREEHOLD_CONFIG = "application/vnd.freehold.manifest.v1+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"

# The distribution spec's grammar (lower case path components, tags up to 128 characters).
REPO_RE = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the spec's suggested minimum a registry accepts


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_repo(repo: str) -> str:
    if len(repo) > 255 or not REPO_RE.match(repo):
        raise RegistryError(f"invalid repository name {repo!r}",
                            "names are lower-case path components of a-z, 0-9 and . _ -, e.g. 'acme/support'",
                            "NAME_INVALID", 400)
    return repo


def check_digest(digest: str) -> str:
    if not DIGEST_RE.match(digest):
        raise RegistryError(f"invalid digest {digest!r}", "digests look like sha256:<64 lower-case hex digits>",
                            "DIGEST_INVALID", 400)
    return digest


def check_reference(ref: str) -> str:
    """A tag or a digest."""
    if ref.startswith("sha256:"):
        return check_digest(ref)
    if not TAG_RE.match(ref):
        raise RegistryError(f"invalid tag {ref!r}", "tags use letters, digits, '.', '_' and '-' (at most 128)",
                            "MANIFEST_INVALID", 400)
    return ref


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def model_manifest(manifest_bytes: bytes, manifest: Manifest, extra_layers: list[dict[str, Any]] | None = None,
                   annotations: dict[str, str] | None = None) -> bytes:
    """The OCI image manifest that carries a Freehold manifest (its config) and its layers."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": FREEHOLD_ARTIFACT,
        "config": {"mediaType": FREEHOLD_CONFIG, "digest": digest_of(manifest_bytes), "size": len(manifest_bytes)},
        "layers": [layer.to_dict() for layer in manifest.layers] + list(extra_layers or []),
        "annotations": {"org.opencontainers.image.title": manifest.name, **(annotations or {})},
    }
    return canonical(doc)


@dataclass(frozen=True)
class OciManifest:
    """What the registry needs to know of a manifest it stores."""

    media_type: str
    config: dict[str, Any] | None
    blobs: list[dict[str, Any]]  # layers (image manifest), or the manifests (index)
    artifact_type: str | None = None
    subject: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    is_index: bool = False

    @property
    def is_freehold_model(self) -> bool:
        return bool(self.config) and self.config.get("mediaType") == FREEHOLD_CONFIG  # type: ignore[union-attr]


def _descriptor(d: Any, where: str) -> dict[str, Any]:
    if not isinstance(d, dict) or not isinstance(d.get("digest"), str) or not isinstance(d.get("size"), int) \
            or not isinstance(d.get("mediaType"), str) or d["size"] < 0:
        raise RegistryError(f"manifest {where} is not a descriptor with mediaType, digest and size",
                            "see the OCI image spec's descriptor", "MANIFEST_INVALID", 400)
    check_digest(d["digest"])
    return d


def parse_manifest(data: bytes, content_type: str | None = None) -> OciManifest:
    """Check an uploaded manifest's shape (not yet whether its blobs exist)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise RegistryError(f"manifest is {len(data)} bytes, over the {MAX_MANIFEST_BYTES} byte limit",
                            "keep large data in blobs", "SIZE_INVALID", 413)
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RegistryError(f"manifest is not JSON: {exc}", "send the manifest's JSON bytes", "MANIFEST_INVALID",
                            400) from exc
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise RegistryError("manifest has no schemaVersion 2", "send an OCI image manifest or index",
                            "MANIFEST_INVALID", 400)
    media_type = doc.get("mediaType") or (content_type or "").split(";")[0].strip() or OCI_MANIFEST
    if content_type and content_type.split(";")[0].strip() not in ("", media_type):
        raise RegistryError(f"Content-Type {content_type} does not match the manifest's mediaType {media_type}",
                            "send the manifest's own media type as Content-Type", "MANIFEST_INVALID", 400)
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(f"unsupported manifest media type {media_type!r}",
                            f"use one of {', '.join(MANIFEST_TYPES)}", "MANIFEST_INVALID", 400)
    subject = doc.get("subject")
    subject_digest = _descriptor(subject, "subject")["digest"] if subject is not None else None
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise RegistryError("manifest annotations are not an object", "annotations map strings to strings",
                            "MANIFEST_INVALID", 400)
    if media_type == OCI_INDEX:
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise RegistryError("index has no manifests list", "an index lists its manifests", "MANIFEST_INVALID", 400)
        return OciManifest(media_type, None, [_descriptor(m, "manifests[]") for m in manifests],
                           doc.get("artifactType"), subject_digest, annotations, True)
    config = _descriptor(doc.get("config"), "config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise RegistryError("manifest has no layers list", "an image manifest lists its layers (maybe none)",
                            "MANIFEST_INVALID", 400)
    artifact = doc.get("artifactType") or (config["mediaType"] if config["mediaType"] != EMPTY_CONFIG else None)
    return OciManifest(media_type, config, [_descriptor(la, "layers[]") for la in layers], artifact,
                       subject_digest, annotations)


@dataclass(frozen=True)
class RemoteName:
    """``host[:port]/repo[:tag|@digest]`` as the CLI takes it."""

    host: str
    repo: str
    reference: str

    @property
    def plain_http(self) -> bool:
        hostname = self.host.rsplit(":", 1)[0].strip("[]") if not self.host.startswith("[") else \
            self.host[1:].split("]")[0]
        return hostname in ("localhost", "127.0.0.1", "::1") or hostname.startswith("127.")

    def __str__(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.host}/{self.repo}{sep}{self.reference}"


def parse_remote(text: str) -> RemoteName:
    original = text
    text = text.strip()
    for scheme in ("oci://", "http://", "https://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    host, sep, rest = text.partition("/")
    if not sep or not rest or ("." not in host and ":" not in host and host != "localhost"):
        raise RegistryError(f"{original!r} does not name a registry", "write HOST[:PORT]/NAMESPACE/MODEL[:TAG], "
                            "e.g. 127.0.0.1:11500/acme/support:latest", "NAME_INVALID", 400)
    if "@" in rest:
        repo, _, reference = rest.partition("@")
    else:
        last = rest.rsplit("/", 1)[-1]
        repo, reference = (rest.rsplit(":", 1) if ":" in last else (rest, "latest"))
    return RemoteName(host, check_repo(repo), check_reference(reference))
