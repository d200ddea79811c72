"""Offline carry: a model as an OCI image layout archive (``freehold bundle NAME -o model.tar``),
taken back with ``freehold import model.tar`` under the same checks as a pull.

The archive is the image-spec's layout, as a plain tar::

    oci-layout                {"imageLayoutVersion": "1.0.0"}
    index.json                an index naming the model's manifest (``org.opencontainers.image.ref.name``
                              = its tag) and its referrers (publish signature, audits)
    blobs/sha256/<hex>        every blob: the Freehold manifest (config), the layers, the lineage
                              bundle, the OCI manifests and the signed envelopes

the format tools that read OCI layouts use. The repository of a bundled model is its name.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from freehold.errors import RegistryError, UsageError
from freehold.progress import ProgressFn, emit
from freehold.registry import oci
from freehold.registry.client import ENVELOPE_ANNOTATION, PullResult, _Bytes, model_payload, receive
from freehold.store import Store
from freehold.store.names import parse_name

LAYOUT_FILE = "oci-layout"
REF_NAME = "org.opencontainers.image.ref.name"
NAME_ANNOTATION = "dev.freehold.name"  # the model's name in the store it was bundled from
READ = 1 << 20


def write_layout(store: Store, name: str, output: Path, progress: ProgressFn | None = None) -> Path:
    """Write model ``name`` (with its lineage and signed statements) to ``output``, an OCI layout tar."""
    from freehold.audits import ENVELOPE_MEDIA_TYPE, attestations, publish_signature

    entry = store.get(name)
    repo, tag = parse_name(entry.name)
    payload = model_payload(store, entry)
    digest = oci.digest_of(payload.manifest)
    publish_signature(store, entry, digest, repo)
    index: list[dict[str, Any]] = [{"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": len(payload.manifest),
                                    "annotations": {REF_NAME: tag, NAME_ANNOTATION: entry.name}}]
    files: dict[str, bytes | Path] = {digest: payload.manifest}
    for blob_digest, _size in payload.blobs:
        files[blob_digest] = store.blob_path(blob_digest)
    subject = {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": len(payload.manifest)}
    empty = b"{}"
    for a in attestations(store, entry.manifest_digest):
        envelope = store.read_blob(a.digest)
        files[oci.digest_of(empty)] = empty
        files[a.digest] = envelope
        doc = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "artifactType": a.artifact_type,
               "config": {"mediaType": oci.EMPTY_CONFIG, "digest": oci.digest_of(empty), "size": 2},
               "layers": [{"mediaType": ENVELOPE_MEDIA_TYPE, "digest": a.digest, "size": len(envelope)}],
               "subject": subject, "annotations": {ENVELOPE_ANNOTATION: a.digest}}
        referrer = oci.canonical(doc)
        files[oci.digest_of(referrer)] = referrer
        index.append({"mediaType": oci.OCI_MANIFEST, "digest": oci.digest_of(referrer), "size": len(referrer),
                      "artifactType": a.artifact_type})
    total = sum(len(v) if isinstance(v, bytes) else v.stat().st_size for v in files.values())
    counter = _Bytes(progress, "writing", total)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".partial")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, LAYOUT_FILE, json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
            _add(tar, "index.json", oci.canonical({"schemaVersion": 2, "mediaType": oci.OCI_INDEX,
                                                   "manifests": index}))
            for blob_digest, source in sorted(files.items()):
                arcname = "blobs/sha256/" + blob_digest.removeprefix("sha256:")
                if isinstance(source, bytes):
                    _add(tar, arcname, source)
                    counter.add(len(source))
                else:
                    info = tarfile.TarInfo(arcname)
                    info.size = source.stat().st_size  # a linked blob is followed, never stored as a link
                    info.mode = 0o444
                    with source.open("rb") as f:
                        tar.addfile(info, f)
                    counter.add(info.size)
        tmp.replace(output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {output}: {exc.strerror}", "choose a writable path with room for the model "
                         f"({total} bytes)") from exc
    emit(progress, "written", total, total)
    return output


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o444
    tar.addfile(info, io.BytesIO(data))


def is_layout(path: Path) -> bool:
    if not path.is_file() or not tarfile.is_tarfile(path):
        return False
    with tarfile.open(path) as tar:
        try:
            tar.getmember(LAYOUT_FILE)
            return True
        except KeyError:
            return False


class LayoutSource:
    """An OCI layout tar read like a registry (``freehold.registry.client.Source``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.tar = tarfile.open(path)  # noqa: SIM115 (closed by close())
            self.members = {m.name: m for m in self.tar.getmembers() if m.isfile()}
            layout = json.loads(self._read(LAYOUT_FILE))
            self.index = json.loads(self._read("index.json"))
        except (OSError, tarfile.TarError, ValueError, KeyError) as exc:
            raise RegistryError(f"{path} is not an OCI image layout archive: {exc}",
                                "make one with 'freehold bundle NAME -o FILE.tar'", "MANIFEST_INVALID", 400) from exc
        if layout.get("imageLayoutVersion") != "1.0.0":
            raise RegistryError(f"{path} has image layout version {layout.get('imageLayoutVersion')!r}",
                                "this version reads layout 1.0.0", "MANIFEST_INVALID", 400)

    def close(self) -> None:
        self.tar.close()

    def _read(self, name: str) -> bytes:
        f = self.tar.extractfile(self.members[name])
        assert f is not None
        return f.read()

    def _blob_name(self, digest: str) -> str:
        name = "blobs/sha256/" + oci.check_digest(digest).removeprefix("sha256:")
        if name not in self.members:
            raise RegistryError(f"{self.path} lacks blob {digest}", "bundle the model again", "BLOB_UNKNOWN", 404)
        return name

    def tags(self) -> list[str]:
        return [str(m.get("annotations", {}).get(REF_NAME)) for m in self.index.get("manifests", [])
                if m.get("annotations", {}).get(REF_NAME)]

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        for m in self.index.get("manifests", []):
            if reference in (m.get("digest"), m.get("annotations", {}).get(REF_NAME)):
                data = self._read(self._blob_name(m["digest"]))
                if oci.digest_of(data) != m["digest"]:
                    raise RegistryError(f"the manifest {m['digest']} in {self.path} was changed",
                                        "bundle the model again", "DIGEST_INVALID", 400)
                return data, m["digest"], str(m.get("mediaType", oci.OCI_MANIFEST))
        raise RegistryError(f"{self.path} holds no manifest {reference!r}",
                            f"it holds: {', '.join(self.tags()) or 'none'}", "MANIFEST_UNKNOWN", 404)

    def download(self, repo: str, digest: str, size: int, dest: Path, counter: _Bytes) -> str:
        import hashlib

        h = hashlib.sha256()
        f = self.tar.extractfile(self.members[self._blob_name(digest)])
        assert f is not None
        with dest.open("wb") as out:
            while block := f.read(READ):
                out.write(block)
                h.update(block)
                counter.add(len(block), digest)
        return "sha256:" + h.hexdigest()

    def referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        out = []
        for m in self.index.get("manifests", []):
            if m.get("annotations", {}).get(REF_NAME):
                continue
            doc = json.loads(self._read(self._blob_name(m["digest"])))
            if (doc.get("subject") or {}).get("digest") == subject:
                out.append(m)
        return out

    def get_blob_bytes(self, repo: str, digest: str, limit: int = 4 << 20) -> bytes:
        data = self._read(self._blob_name(digest))
        if len(data) > limit or oci.digest_of(data) != digest:
            raise RegistryError(f"blob {digest} in {self.path} was changed", "bundle the model again",
                                "DIGEST_INVALID", 400)
        return data


def import_layout(store: Store, path: Path, *, name: str | None = None, tag: str | None = None,
                  allow_untrusted: bool = False, accept_licence: bool = False,
                  progress: ProgressFn | None = None) -> PullResult:
    """Take a model back from an OCI layout archive, with the checks of a pull."""
    src = LayoutSource(path)
    try:
        tags = src.tags()
        if tag is None and len(tags) != 1:
            raise UsageError(f"{path} holds {len(tags)} tagged models ({', '.join(tags)})", "say which with --tag")
        reference = tag or tags[0]
        listed = next(m for m in src.index.get("manifests", [])
                      if m.get("annotations", {}).get(REF_NAME) == reference)
        bundled_as = listed.get("annotations", {}).get(NAME_ANNOTATION)
        local = name or (bundled_as if isinstance(bundled_as, str) else None) or f"{path.stem}:{reference}"
        return receive(store, src, str(path), "", reference, local, jobs=1, allow_untrusted=allow_untrusted,
                       accept_licence=accept_licence, progress=progress)
    finally:
        src.close()
