"""``push`` and ``pull`` of models against any OCI registry (Freehold's own, the CNCF
distribution server, ...), over the distribution spec's HTTP API.

- Push: the model's Freehold manifest (the OCI config) and every layer, each skipped when the
  registry already has it (the bytes saved are reported), several at once, in chunks with
  ``Content-Range``; an interrupted upload resumes from the offset the registry reports. The
  OCI manifest goes last, under the tag.
- Pull: the manifest, then each layer the store lacks, several at once, into a partial file
  that a later pull resumes with ``Range``; every blob is hashed before it enters the store,
  and the model is named only once all of it arrived and checked out, so a failed or killed
  pull leaves the store as it was (``RegistryError`` names what did not check out).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from freehold.audits import ENVELOPE_MEDIA_TYPE, publish_signature
from freehold.errors import RegistryError, StoreError
from freehold.ledger import Ledger, Recorder, trusted_keys
from freehold.ledger.bundle import Bundle, forged, keep_bundle, make_bundle, mismatch, parse_bundle, untrusted
from freehold.progress import ProgressFn, emit
from freehold.registry import oci
from freehold.store import ModelEntry, Store
from freehold.store.manifest import Manifest, MediaType
from freehold.store.names import format_name, parse_name

CHUNK = 8 << 20  # bytes per PATCH of an upload
READ = 1 << 20
KEY_ENV = "FREEHOLD_REGISTRY_KEY"
ACCEPT = ", ".join(oci.MANIFEST_TYPES)
ENVELOPE_ANNOTATION = "dev.freehold.envelope.digest"  # a referrer's envelope, so a second push skips it


@dataclass(frozen=True)
class PushResult:
    remote: str
    digest: str  # the OCI manifest's
    blobs: int
    sent_bytes: int  # layer bytes that crossed the wire (an upload resumed sends only its rest)
    skipped_bytes: int  # layer bytes the registry already had
    seconds: float


@dataclass(frozen=True)
class PullResult:
    name: str
    remote: str
    digest: str  # the OCI manifest's
    manifest_digest: str  # the Freehold manifest's, the same as on the sender's store
    received_bytes: int
    reused_bytes: int  # layers the store already had
    seconds: float
    attestations: int = 0  # audits and signatures new to this store


class _Bytes:
    """A thread-safe byte count that emits one progress event per change."""

    def __init__(self, progress: ProgressFn | None, status: str, total: int) -> None:
        self.progress, self.status, self.total, self.done = progress, status, total, 0
        self._lock = threading.Lock()
        self._last = 0.0

    def add(self, n: int, digest: str | None = None, force: bool = False) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if force or now - self._last > 0.1 or self.done >= self.total:
                self._last = now
                emit(self.progress, self.status, self.total, self.done, digest)


class Registry:
    """One registry host, spoken to over HTTP (loopback: plain http; elsewhere https unless told).
    ``key`` None: the settings' FREEHOLD_REGISTRY_KEY (for every caller: the CLI, the jobs, the pages)."""

    def __init__(self, remote: oci.RemoteName, key: str | None = None, plain_http: bool | None = None,
                 timeout: float = 60.0) -> None:
        self.remote = remote
        plain = remote.plain_http if plain_http is None else plain_http
        self.base = f"{'http' if plain else 'https'}://{remote.host}"
        if key is None:
            from freehold.config import load_settings

            key = load_settings().registry_key or None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.base, headers=headers, follow_redirects=True,
                                 timeout=httpx.Timeout(timeout, connect=10.0))

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, url: str, what: str, ok: tuple[int, ...], **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryError(f"cannot reach the registry {self.base} ({what}): {exc}",
                                "check the address and that the registry is running", "UNREACHABLE", 502) from exc
        if resp.status_code not in ok:
            raise self.error(resp, what)
        return resp

    def error(self, resp: httpx.Response, what: str) -> RegistryError:
        code, message, hint = "UNKNOWN", resp.text[:300].strip() or resp.reason_phrase, None
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError, AttributeError):
            first = resp.json()["errors"][0]
            code, message = str(first.get("code", code)), str(first.get("message", message))
            detail = first.get("detail")
            hint = detail.get("hint") if isinstance(detail, dict) else None
        if resp.status_code == 401:
            hint = hint or f"pass the registry's key with --key KEY (or {KEY_ENV})"
        elif resp.status_code == 403:
            hint = hint or "this key may not do that here"
        return RegistryError(f"the registry {self.remote.host} refused {what}: {message} "
                             f"(HTTP {resp.status_code} {code})", hint or "see the registry's log", code,
                             resp.status_code if 400 <= resp.status_code < 600 else 502)

    def ping(self) -> None:
        self.request("GET", "/v2/", "the API check", (200,))

    # -- blobs ---------------------------------------------------------------------------------
    def has_blob(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", f"a check of blob {digest[:19]}", (200, 404))
        return resp.status_code == 200

    def upload(self, repo: str, path: Path, digest: str, size: int, counter: _Bytes,
               state: dict[str, str], save: Any) -> int:
        """Chunked upload of one blob; resumes the upload ``state[digest]`` names if the registry
        still has it. Returns the bytes sent (less than ``size`` when it resumed)."""
        location, offset = None, 0
        if digest in state:
            with contextlib.suppress(RegistryError):
                resp = self.request("GET", state[digest], "the upload's status", (204,))
                location = resp.headers.get("location") or state[digest]
                offset = _range_end(resp.headers.get("range"))
        if location is None:
            resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", f"the start of an upload of {digest[:19]}",
                                (202,))
            location = resp.headers["location"]
            offset = 0
        state[digest] = location
        save()
        counter.add(offset, digest)
        resumed_at = offset
        with path.open("rb") as f:
            f.seek(offset)
            while offset < size:
                chunk = f.read(CHUNK)
                end = offset + len(chunk) - 1
                resp = self.request("PATCH", location, f"a chunk of {digest[:19]}", (202,), content=chunk,
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Range": f"{offset}-{end}",
                                             "Content-Length": str(len(chunk))})
                location = resp.headers.get("location", location)
                state[digest] = location
                save()
                offset = end + 1
                counter.add(len(chunk), digest)
        url = httpx.URL(location if "://" in location else self.base + location).copy_add_param("digest", digest)
        self.request("PUT", str(url), f"the end of the upload of {digest[:19]}", (201,), content=b"",
                     headers={"Content-Length": "0", "Content-Type": "application/octet-stream"})
        state.pop(digest, None)
        save()
        return size - resumed_at

    def download(self, repo: str, digest: str, size: int, dest: Path, counter: _Bytes) -> str:
        """Fetch one blob into ``dest``, resuming what an earlier pull left there; returns the
        sha256 digest of what ``dest`` then holds (hashed as it arrives)."""
        have = dest.stat().st_size if dest.exists() else 0
        if have > size:
            dest.unlink()
            have = 0
        h = hashlib.sha256()
        if have:
            with dest.open("rb") as f:
                while block := f.read(READ):
                    h.update(block)
        counter.add(have, digest)
        if have == size:
            return "sha256:" + h.hexdigest()
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with self.http.stream("GET", f"/v2/{repo}/blobs/{digest}", headers=headers) as resp:
                if resp.status_code not in (200, 206):
                    resp.read()
                    raise self.error(resp, f"blob {digest[:19]}")
                if resp.status_code == 200 and have:  # the registry ignored the range: start over
                    counter.add(-have, digest)
                    h = hashlib.sha256()
                with dest.open("ab" if resp.status_code == 206 else "wb") as f:
                    for block in resp.iter_bytes(READ):
                        f.write(block)
                        h.update(block)
                        counter.add(len(block), digest)
        except httpx.HTTPError as exc:
            raise RegistryError(f"the download of blob {digest[:19]} from {self.remote.host} broke off: {exc}",
                                "pull again: it resumes where it stopped", "UNREACHABLE", 502) from exc
        return "sha256:" + h.hexdigest()

    # -- manifests -----------------------------------------------------------------------------
    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", f"manifest {repo}:{reference}", (200,),
                            headers={"Accept": ACCEPT})
        data = resp.content
        digest = oci.digest_of(data)
        claimed = resp.headers.get("docker-content-digest")
        if (reference.startswith("sha256:") and digest != reference) or (claimed and claimed != digest):
            raise RegistryError(f"the manifest of {repo}:{reference} arrived changed: it hashes to {digest}, "
                                f"not {reference if reference.startswith('sha256:') else claimed}",
                                "pull again; if it persists, the registry's copy is damaged", "DIGEST_INVALID", 400)
        return data, digest, resp.headers.get("content-type", oci.OCI_MANIFEST).split(";")[0]

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{reference}", f"manifest {repo}:{reference}", (201,),
                            content=data, headers={"Content-Type": media_type})
        return resp.headers.get("docker-content-digest") or oci.digest_of(data)


    def put_small_blob(self, repo: str, data: bytes) -> str:
        digest = oci.digest_of(data)
        if self.has_blob(repo, digest):
            return digest
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", "the start of an upload", (202,))
        location = resp.headers["location"]
        url = httpx.URL(location if "://" in location else self.base + location).copy_add_param("digest", digest)
        self.request("PUT", str(url), f"the upload of {digest[:19]}", (201,), content=data,
                     headers={"Content-Type": "application/octet-stream"})
        return digest

    def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        """The referrers of ``subject``: the referrers API, or the spec's tag fallback
        (an index tagged ``sha256-<hex>``) on a registry without it."""
        resp = self.request("GET", f"/v2/{repo}/referrers/{subject}", "the referrers list", (200, 404),
                            headers={"Accept": oci.OCI_INDEX})
        if resp.status_code == 404:
            resp = self.request("GET", f"/v2/{repo}/manifests/{_fallback_tag(subject)}", "the referrers tag",
                                (200, 404), headers={"Accept": oci.OCI_INDEX})
            if resp.status_code == 404:
                return []
        try:
            manifests = resp.json().get("manifests") or []
        except ValueError:
            manifests = []
        return [m for m in manifests if isinstance(m, dict) and isinstance(m.get("digest"), str)]

    def put_referrer(self, repo: str, subject: dict[str, Any], envelope: bytes, artifact_type: str,
                     annotations: dict[str, str]) -> str:
        """Attach ``envelope`` to the manifest ``subject`` (a descriptor) as an OCI referrer."""
        empty = self.put_small_blob(repo, b"{}")
        layer_digest = self.put_small_blob(repo, envelope)
        doc = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "artifactType": artifact_type,
               "config": {"mediaType": oci.EMPTY_CONFIG, "digest": empty, "size": 2},
               "layers": [{"mediaType": ENVELOPE_MEDIA_TYPE, "digest": layer_digest, "size": len(envelope)}],
               "subject": subject, "annotations": annotations}
        data = oci.canonical(doc)
        digest = oci.digest_of(data)
        resp = self.request("PUT", f"/v2/{repo}/manifests/{digest}", "a referrer", (201,), content=data,
                            headers={"Content-Type": oci.OCI_MANIFEST})
        if "oci-subject" not in resp.headers:  # no referrers API: keep the fallback index up to date
            tag = _fallback_tag(subject["digest"])
            listed = self.referrers(repo, subject["digest"])
            if digest not in {m["digest"] for m in listed}:
                index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX,
                         "manifests": [*listed, {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": len(data),
                                                 "artifactType": artifact_type, "annotations": annotations}]}
                self.put_manifest(repo, tag, oci.canonical(index), oci.OCI_INDEX)
        return digest

    def get_blob_bytes(self, repo: str, digest: str, limit: int = 4 << 20) -> bytes:
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", f"blob {digest[:19]}", (200,))
        data = resp.content[: limit + 1]
        if len(data) > limit or oci.digest_of(data) != digest:
            raise RegistryError(f"blob {digest} from {self.remote.host} arrived changed or too large",
                                "pull again; if it persists, the registry's copy is damaged", "DIGEST_INVALID", 400)
        return data


def _fallback_tag(digest: str) -> str:
    return digest.replace(":", "-")[:128]


def send_attestations(store: Store, registry: Registry, repo: str, entry: ModelEntry,
                      subject: dict[str, Any]) -> int:
    """Attach every audit and signature kept beside ``entry`` to ``subject`` that the registry
    lacks; returns how many were sent."""
    from freehold.audits import attestations

    listed = {m.get("annotations", {}).get(ENVELOPE_ANNOTATION) for m in registry.referrers(repo, subject["digest"])}
    sent = 0
    items = attestations(store, entry.manifest_digest)
    for a in items:
        if a.digest in listed:
            continue
        data = store.read_blob(a.digest)
        annotations = {ENVELOPE_ANNOTATION: a.digest, "org.opencontainers.image.created": str(a.predicate.get("time"))}
        if a.is_audit:
            annotations.update({"dev.freehold.audit.verdict": str(a.predicate.get("verdict")),
                                "dev.freehold.audit.severity": str(a.predicate.get("severity"))})
        registry.put_referrer(repo, subject, data, a.artifact_type, annotations)
        sent += 1
    return sent


def fetch_attestations(store: Store, registry: Source, repo: str, oci_digest: str, manifest_digest: str) -> int:
    """Keep every audit and signature the registry holds for the model; returns how many were new."""
    from freehold.audits import AUDIT_ARTIFACT, SIGNATURE_ARTIFACT, attestations, keep

    have = {a.digest for a in attestations(store, manifest_digest)}
    new = 0
    for m in registry.referrers(repo, oci_digest):
        if m.get("artifactType") not in (AUDIT_ARTIFACT, SIGNATURE_ARTIFACT):
            continue
        data, _digest, media_type = registry.get_manifest(repo, m["digest"])
        parsed = oci.parse_manifest(data, media_type)
        for layer in parsed.blobs:
            if layer["mediaType"] != ENVELOPE_MEDIA_TYPE or layer["digest"] in have:
                continue
            keep(store, manifest_digest, registry.get_blob_bytes(repo, layer["digest"]))
            have.add(layer["digest"])
            new += 1
    return new


def send_audits(store: Store, name: str, target: str, *, key: str | None = None,
                plain_http: bool | None = None) -> int:
    """Attach ``name``'s audits to the manifest ``target`` names on its registry (the model must be
    there: pushed or pulled)."""
    remote = oci.parse_remote(target)
    entry = store.get(name)
    registry = Registry(remote, key, plain_http)
    try:
        data, digest, media_type = registry.get_manifest(remote.repo, remote.reference)
        parsed = oci.parse_manifest(data, media_type)
        if not parsed.config or parsed.config.get("digest") != entry.manifest_digest:
            raise RegistryError(f"{remote} is another model than {entry.name}",
                                "name the registry reference it was pushed to or pulled from", "MANIFEST_INVALID", 400)
        return send_attestations(store, registry, remote.repo, entry,
                                 {"mediaType": media_type, "digest": digest, "size": len(data)})
    finally:
        registry.close()


def origin(store: Store, entry: ModelEntry) -> str | None:
    """Where the model was last pulled from (its pull record), if it was."""
    from freehold.ledger import Ledger

    found = None
    for rec in Ledger.open(store.home).records():
        if rec.type in ("pull", "publish") and any(r.get("digest") == entry.manifest_digest
                                                   for r in rec.payload.get("inputs", [])):
            found = str(rec.payload.get("from") or rec.payload.get("to"))
    return found


def browse(host: str, *, key: str | None = None, plain_http: bool | None = None,
           trusted: dict[str, dict[str, Any]] | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Every Freehold model a registry holds, as the pages list them: name, family, size,
    licence (and its text, to accept before a pull), card, audits; read over the distribution
    API only, so any OCI registry holding Freehold models can be browsed."""
    from freehold.audits import AUDIT_ARTIFACT, open_flags, read_attestation
    from freehold.models import licence_of

    remote = oci.parse_remote(f"{host.strip().rstrip('/')}/catalog")
    registry = Registry(remote, key, plain_http)
    out: list[dict[str, Any]] = []
    try:
        repos = registry.request("GET", "/v2/_catalog", "the list of repositories", (200,)).json()
        for repo in (repos.get("repositories") or [])[:limit]:
            tags = registry.request("GET", f"/v2/{repo}/tags/list", f"the tags of {repo}", (200, 404)).json()
            for tag in (tags.get("tags") or []) if isinstance(tags, dict) else []:
                if tag.startswith("sha256-"):
                    continue  # a referrers fallback index, not a model
                data, digest, media_type = registry.get_manifest(repo, tag)
                parsed = oci.parse_manifest(data, media_type)
                if not parsed.is_freehold_model or parsed.config is None:
                    continue
                manifest = Manifest.from_bytes(registry.get_blob_bytes(repo, parsed.config["digest"]))

                licence_text = _small_text(registry, repo, manifest, MediaType.LICENSE)
                items = []
                for m in registry.referrers(repo, digest):
                    if m.get("artifactType") != AUDIT_ARTIFACT:
                        continue
                    ref_data, _d, ref_type = registry.get_manifest(repo, m["digest"])
                    for layer in oci.parse_manifest(ref_data, ref_type).blobs:
                        a = read_attestation(registry.get_blob_bytes(repo, layer["digest"]), layer["digest"],
                                             trusted or {})
                        if a is not None and a.is_audit:
                            items.append(a)
                items.sort(key=lambda a: str(a.predicate.get("time", "")))
                graph, evals = _carried_lineage_view(registry, repo, parsed, manifest)
                cfg = manifest.config
                out.append({
                    "ref": f"{remote.host}/{repo}:{tag}", "repo": repo, "tag": tag, "name": manifest.name,
                    "digest": digest, "family": cfg.get("family"), "parameters": cfg.get("parameters"),
                    "quantization": cfg.get("quantization"), "size": manifest.size,
                    "licence": {**licence_of(manifest, licence_text), "text": licence_text},
                    "card": _small_text(registry, repo, manifest, MediaType.CARD),
                    "audits": {"audits": len(items), "flagged": bool(open_flags(items)),
                               "items": [a.to_dict() for a in items]},
                    "lineage": any(d["mediaType"] == MediaType.LINEAGE_BUNDLE for d in parsed.blobs),
                    "lineage_graph": graph, "evals": evals,
                })
    finally:
        registry.close()
    return out


def _carried_lineage_view(registry: Registry, repo: str, parsed: oci.OciManifest,
                          manifest: Manifest) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A remote model's lineage graph and latest eval scores, from the bundle it carries (read,
    not trusted: a pull checks it)."""
    from freehold.errors import FreeholdError
    from freehold.ledger.graph import LedgerIndex, build_lineage

    layer = next((d for d in parsed.blobs if d["mediaType"] == MediaType.LINEAGE_BUNDLE), None)
    head = (manifest.lineage or {}).get("ledger_head")
    if layer is None or layer["size"] > 4 << 20 or not head:
        return None, []
    try:
        bundle = parse_bundle(registry.get_blob_bytes(repo, layer["digest"]), repo)
    except FreeholdError:
        return None, []
    index = LedgerIndex(bundle.records)
    if head not in index.by_hash:
        return None, []
    weights = {la.digest for la in manifest.weights}
    latest: dict[str, dict[str, Any]] = {}
    for rec in bundle.records:
        if rec.type == "eval" and any(isinstance(i, dict) and i.get("digest") in weights
                                      for i in rec.payload.get("inputs") or []):
            latest[str(rec.payload.get("suite"))] = {"suite": rec.payload.get("suite"),
                                                     "scores": rec.payload.get("scores") or {}}
    return build_lineage(index, index.by_hash[head], manifest.name).to_dict(), list(latest.values())


def _small_text(registry: Registry, repo: str, manifest: Manifest, media_type: str) -> str | None:
    layer = manifest.layer(media_type)
    if layer is None or layer.size > 256 << 10:
        return None
    return registry.get_blob_bytes(repo, layer.digest).decode("utf-8", "replace")


def _range_end(header: str | None) -> int:
    """The next offset of an upload whose ``Range`` header is ``0-N`` (N+1), 0 when none."""
    if not header:
        return 0
    with contextlib.suppress(ValueError):
        start, _, end = header.replace("bytes=", "").partition("-")
        return int(end) + 1 if int(end) >= int(start) else 0
    return 0


def _state_file(store: Store, remote: oci.RemoteName) -> Path:
    root = store.home / "registry" / "push-state"
    root.mkdir(parents=True, exist_ok=True)
    return root / (hashlib.sha256(f"{remote.host}/{remote.repo}".encode()).hexdigest()[:16] + ".json")


@dataclass(frozen=True)
class Payload:
    manifest: bytes  # the OCI manifest
    blobs: list[tuple[str, int]]  # (digest, size) of the config, every layer and the lineage bundle


def model_payload(store: Store, entry: ModelEntry) -> Payload:
    """What a model travels as: its OCI manifest and the blobs it names, the lineage bundle among
    them (written to the store, pinned, so a push or a bundle can read it)."""
    config = store.read_blob(entry.manifest_digest)
    layers = dict.fromkeys((la.digest, la.size) for la in entry.manifest.layers)
    blobs = [(entry.manifest_digest, len(config)), *layers]
    extra = []
    bundle = make_bundle(store, entry)  # the lineage travels with the model (freehold.ledger.bundle)
    if bundle is not None:
        carried = store.put_stream_blob(bundle.to_bytes(), MediaType.LINEAGE_BUNDLE)
        extra.append(carried.to_dict())
        blobs.append((carried.digest, carried.size))
    return Payload(oci.model_manifest(config, entry.manifest, extra), blobs)


def push(store: Store, name: str, target: str, *, key: str | None = None, plain_http: bool | None = None,
         jobs: int = 4, progress: ProgressFn | None = None) -> PushResult:
    """Push the store's model ``name`` to ``target`` (``HOST[:PORT]/NS/MODEL[:TAG]``)."""
    start = time.perf_counter()
    remote = oci.parse_remote(target)
    if remote.reference.startswith("sha256:"):
        raise RegistryError("a push names a tag, not a digest", "e.g. HOST/acme/support:latest", "NAME_INVALID", 400)
    entry = store.get(name)
    payload = model_payload(store, entry)
    manifest_bytes, blobs = payload.manifest, payload.blobs
    registry = Registry(remote, key, plain_http)
    state_path = _state_file(store, remote)
    try:
        state: dict[str, str] = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    lock = threading.Lock()

    def save() -> None:
        with lock:
            tmp = state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state), encoding="utf-8")
            os.replace(tmp, state_path)

    try:
        registry.ping()
        emit(progress, "checking what the registry has", len(blobs), 0)
        missing = [(d, s) for d, s in blobs if not registry.has_blob(remote.repo, d)]
        skipped = sum(s for d, s in blobs if (d, s) not in missing)
        total = sum(s for _d, s in missing)
        counter = _Bytes(progress, "pushing", total)

        def one(item: tuple[str, int]) -> int:
            digest, size = item
            return registry.upload(remote.repo, store.blob_path(digest), digest, size, counter, state, save)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            sent = sum(pool.map(one, missing))
        counter.add(0, force=True)
        emit(progress, "writing the manifest")
        digest = registry.put_manifest(remote.repo, remote.reference, manifest_bytes, oci.OCI_MANIFEST)
        emit(progress, "signing")
        publish_signature(store, entry, digest, remote.repo)
        send_attestations(store, registry, remote.repo, entry,
                          {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": len(manifest_bytes)})
    finally:
        registry.close()
    with contextlib.suppress(OSError):
        if not state:
            state_path.unlink()
    Recorder(Ledger.open(store.home)).record_publish(entry.name, entry.manifest_digest, str(remote), digest)
    return PushResult(str(remote), digest, len(blobs), sent, skipped, time.perf_counter() - start)


def _partial_dir(store: Store) -> Path:
    root = store.home / "registry" / "partial"
    root.mkdir(parents=True, exist_ok=True)
    return root


class Source(Protocol):
    """Where a pull reads from: a registry (``Registry``) or an OCI image layout archive
    (``freehold.registry.layout.LayoutSource``)."""

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]: ...

    def download(self, repo: str, digest: str, size: int, dest: Path, counter: _Bytes) -> str: ...

    def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]: ...

    def get_blob_bytes(self, repo: str, digest: str, limit: int = 4 << 20) -> bytes: ...


def pull(store: Store, source: str, *, name: str | None = None, key: str | None = None,
         plain_http: bool | None = None, jobs: int = 4, allow_untrusted: bool = False, accept_licence: bool = False,
         progress: ProgressFn | None = None) -> PullResult:
    """Pull the model ``source`` (``HOST[:PORT]/NS/MODEL[:TAG|@DIGEST]``) into the store, as
    ``name`` (default ``NS/MODEL:TAG``). A lineage signed by a key this store does not trust
    stops the pull (``freehold key trust``) unless ``allow_untrusted``."""
    remote = oci.parse_remote(source)
    local = name or format_name(remote.repo, remote.reference if not remote.reference.startswith("sha256:")
                                else "latest")
    registry = Registry(remote, key, plain_http)
    try:
        return receive(store, registry, str(remote), remote.repo, remote.reference, local, jobs=jobs,
                       allow_untrusted=allow_untrusted, accept_licence=accept_licence, progress=progress)
    finally:
        registry.close()


def receive(store: Store, src: Source, label: str, repo: str, reference: str, local: str, *, jobs: int = 4,
            allow_untrusted: bool = False, accept_licence: bool = False,
            progress: ProgressFn | None = None) -> PullResult:
    """Take the model ``repo:reference`` from ``src`` into the store as ``local``: every blob
    hashed as it arrives, the lineage checked and trusted, then (only then) named."""
    start = time.perf_counter()
    parse_name(local)
    emit(progress, "reading the manifest")
    data, digest, media_type = src.get_manifest(repo, reference)
    parsed = oci.parse_manifest(data, media_type)
    if not parsed.is_freehold_model or parsed.config is None:
        raise RegistryError(f"{label} is not a Freehold model (its artifact type is "
                            f"{parsed.artifact_type or parsed.media_type})",
                            "pull a model pushed with 'freehold push'", "MANIFEST_INVALID", 400)
    wanted = [parsed.config, *parsed.blobs]
    todo = [d for d in dict((d["digest"], d) for d in wanted).values() if not store.has_blob(d["digest"])]
    reused = sum(int(d["size"]) for d in wanted if d not in todo)
    total = sum(int(d["size"]) for d in todo)
    counter = _Bytes(progress, "pulling", total)
    partial = _partial_dir(store)
    arrived: dict[str, Path] = {}

    def one(d: dict[str, Any]) -> None:
        dest = partial / d["digest"].replace(":", "-")
        actual = src.download(repo, d["digest"], int(d["size"]), dest, counter)
        _check_arrival(dest, d["digest"], int(d["size"]), actual, label)
        arrived[d["digest"]] = dest

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, todo))
    counter.add(0, force=True)
    manifest = _freehold_manifest(store, parsed, label, arrived)
    licence = _licence_to_accept(store, manifest, label, arrived, accept_licence)
    bundle = _carried_lineage(store, parsed, manifest, label, arrived)
    distrusted = [kid for kid, _ in untrusted(bundle, trusted_keys(store.home))] if bundle else []
    if distrusted and not allow_untrusted:
        assert bundle is not None
        kid, carried = untrusted(bundle, trusted_keys(store.home))[0]
        raise RegistryError(
            f"{label}'s lineage is signed by {kid} ({carried.get('name') or 'no name given'}), a key this store "
            "does not trust; nothing was added to your store",
            f"if you trust its owner: freehold key trust {carried.get('public_key', '<their public key>')} "
            f"--name \"{carried.get('name') or 'their name'}\" (check the fingerprint with them), then try again; "
            "or pass --allow-untrusted", "UNTRUSTED", 403)
    # Every blob checked out and the lineage is trusted: only now does anything enter the store.
    for digest_, path in arrived.items():
        store.adopt_blob(path, digest_, hashed=True)
    emit(progress, "naming the model", digest=parsed.config["digest"])
    bundle_layer = keep_bundle(store, bundle, label) if bundle is not None else None
    entry = store.commit_blob("model", local, parsed.config["digest"])
    if licence is not None:  # accepted now, once: later pulls (and serving) under it do not ask again
        from freehold.models import accept

        accept(store, entry, via=f"pull from {label}")
    Recorder(Ledger.open(store.home)).record_pull(
        entry.name, entry.manifest_digest, label, digest, head=bundle.head if bundle else None,
        signers=bundle.signers if bundle else [], untrusted=distrusted,
        bundle=bundle_layer.digest if bundle_layer else None)
    emit(progress, "reading audits and signatures")
    new_attestations = fetch_attestations(store, src, repo, digest, entry.manifest_digest)
    return PullResult(entry.name, label, digest, entry.manifest_digest, total, reused,
                      time.perf_counter() - start, new_attestations)


def _check_arrival(path: Path, digest: str, size: int, actual: str, label: str) -> None:
    have = path.stat().st_size if path.exists() else 0
    if have != size or actual != digest:
        path.unlink(missing_ok=True)
        what = f"{have} bytes, not {size}" if have != size else f"changed: it hashes to {actual}"
        raise RegistryError(f"blob {digest} from {label} arrived with {what}",
                            "pull again; if it persists, the registry's copy is damaged (nothing was added "
                            "to your store)", "DIGEST_INVALID" if have == size else "SIZE_INVALID", 400)


def _blob_bytes(store: Store, digest: str, arrived: dict[str, Path]) -> bytes:
    return arrived[digest].read_bytes() if digest in arrived else store.read_blob(digest)


def _freehold_manifest(store: Store, parsed: oci.OciManifest, remote: str,
                       arrived: dict[str, Path]) -> Manifest:
    """The pulled Freehold manifest, checked against the OCI manifest that carried it."""
    assert parsed.config is not None
    try:
        manifest = Manifest.from_bytes(_blob_bytes(store, parsed.config["digest"], arrived))
    except StoreError as exc:
        raise RegistryError(f"the model config from {remote} is not a Freehold manifest: {exc.message}",
                            "pull a model pushed with 'freehold push'", "MANIFEST_INVALID", 400) from exc
    carried = {(d["digest"], int(d["size"])) for d in parsed.blobs}
    named = {(la.digest, la.size) for la in manifest.layers}
    if manifest.kind != "model" or not named <= carried:
        raise RegistryError(f"the manifest of {remote} does not carry the layers its model names",
                            "pull again; the registry's copy does not hang together", "MANIFEST_INVALID", 400)
    return manifest


def _licence_to_accept(store: Store, manifest: Manifest, label: str, arrived: dict[str, Path],
                       accept: bool) -> dict[str, Any] | None:
    """A licence that restricts use must be accepted once before the model is taken: the terms
    that still need accepting (None when none do), or an error that shows them."""
    from freehold.models import licence_of, unaccepted

    layer = manifest.layer(MediaType.LICENSE)
    text = _blob_bytes(store, layer.digest, arrived).decode("utf-8", "replace") if layer else None
    licence = licence_of(manifest, text)
    if not unaccepted(store, licence["name"], link=manifest.config.get("license_link"), text=text):
        return None
    if not accept:
        first = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), licence["name"])
        raise RegistryError(
            f"{label} is under {licence['name']}, whose terms restrict how it may be used ({first[:100]}); "
            "nothing was added to your store",
            "read the terms (the pages show them; 'freehold show NAME --license' after the pull), then pull again "
            "with --accept-licence: the ledger records that you accepted them, once", "LICENCE_NOT_ACCEPTED", 403)
    return dict(licence)


def _carried_lineage(store: Store, parsed: oci.OciManifest, manifest: Manifest, remote: str,
                     arrived: dict[str, Path]) -> Bundle | None:
    """The lineage bundle that came with the model, checked to be about this model."""
    assert parsed.config is not None
    layer = next((d for d in parsed.blobs if d["mediaType"] == MediaType.LINEAGE_BUNDLE), None)
    if layer is None:
        return None
    bundle = parse_bundle(_blob_bytes(store, layer["digest"], arrived), remote)
    wrong = mismatch(bundle, parsed.config["digest"], (manifest.lineage or {}).get("ledger_head"))
    if wrong is not None:
        raise RegistryError(f"the lineage that came with {remote} is not this model's: {wrong}",
                            "pull again; if it persists, push it again from its origin", "MANIFEST_INVALID", 400)
    problem = forged(bundle)
    if problem is not None:
        raise RegistryError(f"the lineage that came with {remote} was altered after it was signed: {problem}",
                            "do not use this model; ask its publisher to push it again (nothing was added to your "
                            "store)", "SIGNATURE_INVALID", 400)
    return bundle
