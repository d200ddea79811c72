"""The OCI distribution API (v1.1) over the store: ``/v2/`` in ``freehold serve --registry``.

Blobs are the store's blobs; manifests pushed here are blobs named by the catalog's registry
tables (``freehold.store.registry``); every model in the store is also a repository of its
name (``smollm2:135m-instruct`` is ``smollm2`` tag ``135m-instruct``), its OCI manifest made
from the Freehold manifest (``oci.model_manifest``). Only the blobs of what is exposed so are
readable: a dataset (your mail) is never served. A Freehold model pushed here is committed to
the store under its repository and tag, so the registry serves it to the APIs too.

Pull is open on an open server and keyed on a keyed one (``--registry-open-pull`` opens it);
push needs a push key (``--push-key``). Every push and pull is one line of
``$FREEHOLD_HOME/registry/access.log``. Errors use the spec's body ``{"errors": [{code,
message, detail}]}`` (``freehold.server._error``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from freehold.audits import AUDIT_ARTIFACT, ENVELOPE_MEDIA_TYPE, SIGNATURE_ARTIFACT, keep
from freehold.errors import FreeholdError, RegistryError, StoreError
from freehold.ledger.bundle import Bundle, forged, keep_bundle, mismatch, parse_bundle
from freehold.registry import oci
from freehold.store import MediaType, Store
from freehold.store.names import format_name, parse_name
from freehold.store.registry import RegistryManifest

router = APIRouter(include_in_schema=False)

_ROUTE = re.compile(r"^(?P<repo>.+?)/(?:(?P<uploads>blobs/uploads/(?P<upload>[^/]*))|blobs/(?P<blob>[^/]+)|"
                    r"manifests/(?P<ref>[^/]+)|(?P<tags>tags/list)|referrers/(?P<subject>[^/]+))$")
_UPLOAD_ID = re.compile(r"^[a-f0-9]{32}$")
API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}


def _store(request: Request) -> Store:
    state = request.app.state.freehold
    if not state.options.registry:
        raise RegistryError("this server has no registry", "start it with 'freehold serve --registry'",
                            "UNSUPPORTED", 404)
    store: Store = state.store
    return store


def _dir(store: Store, *parts: str) -> Path:
    path = store.home.joinpath("registry", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def log(request: Request, action: str, repo: str, **fields: Any) -> None:
    """One JSON line per push or pull: when, who (the key's fingerprint), from where, what."""
    store = request.app.state.freehold.store
    key = request.state.registry_key if hasattr(request.state, "registry_key") else None
    line = {"time": round(time.time(), 3), "action": action, "repo": repo,
            "key": hashlib.sha256(key.encode()).hexdigest()[:12] if key else None,
            "client": request.client.host if request.client else None, **fields}
    with contextlib.suppress(OSError), (_dir(store) / "access.log").open("a", encoding="utf-8") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")


# -- what is exposed -----------------------------------------------------------------------------


def store_model_manifest(store: Store, repo: str, tag: str) -> bytes | None:
    """The OCI manifest of the store's model ``repo:tag``, if there is one."""
    try:
        name, _ = parse_name(format_name(repo, tag))
    except FreeholdError:
        return None
    ref = next((r for r in store.refs("model") if r.name == name and r.tag == tag.lower()), None)
    if ref is None:
        return None
    data = store.read_blob(ref.manifest_digest)
    return oci.model_manifest(data, store.manifest(ref.manifest_digest))


def _manifest_blobs(data: bytes) -> set[str]:
    with contextlib.suppress(FreeholdError):
        m = oci.parse_manifest(data)
        return {d["digest"] for d in ([m.config] if m.config else []) + m.blobs}
    return set()


def readable_blobs(store: Store) -> set[str]:
    """Every blob a pull may read: those of the store's models and of the registry's manifests,
    and blobs pushed here (before their manifest arrives). Never a dataset's."""
    out: set[str] = set(store.registry.pushed_blobs())
    for ref in store.refs("model"):
        out.add(ref.manifest_digest)
        with contextlib.suppress(StoreError):
            out.update(layer.digest for layer in store.manifest(ref.manifest_digest).layers)
    for digest in store.registry.digests():
        out.add(digest)
        with contextlib.suppress(StoreError, OSError):
            out.update(_manifest_blobs(store.read_blob(digest)))
    return out


def repo_exists(store: Store, repo: str) -> bool:
    return store.registry.has_repo(repo) or any(r.name == repo for r in store.refs("model"))


def resolve_manifest(store: Store, repo: str, ref: str) -> tuple[bytes, str, str]:
    """(bytes, digest, media type) of ``repo``'s manifest ``ref`` (a tag or a digest)."""
    digest = store.registry.tag(repo, ref) if not ref.startswith("sha256:") else ref
    if digest is not None and store.registry.get(repo, digest) is not None and store.has_blob(digest):
        row = store.registry.get(repo, digest)
        assert row is not None
        return store.read_blob(digest), digest, row.media_type
    if ref.startswith("sha256:"):
        for tag in {r.tag for r in store.refs("model") if r.name == repo}:
            data = store_model_manifest(store, repo, tag)
            if data is not None and oci.digest_of(data) == ref:
                return data, ref, oci.OCI_MANIFEST
    else:
        data = store_model_manifest(store, repo, ref)
        if data is not None:
            return data, oci.digest_of(data), oci.OCI_MANIFEST
    if not repo_exists(store, repo):
        raise RegistryError(f"repository {repo} is not in this registry", "check the name ('freehold models' "
                            "on the registry's machine lists what it serves)", "NAME_UNKNOWN", 404)
    raise RegistryError(f"manifest {ref} is not in {repo}", "check the tag or digest", "MANIFEST_UNKNOWN", 404)


# -- the one route -------------------------------------------------------------------------------


@router.api_route("/v2/", methods=["GET", "HEAD"])
async def base(request: Request) -> Response:
    _store(request)
    return JSONResponse({}, headers=API_VERSION)


@router.get("/v2/_catalog")
async def catalog(request: Request, n: int | None = None, last: str | None = None) -> Response:
    store = _store(request)
    repos = sorted(set(store.registry.repos()) | {r.name for r in store.refs("model")})
    return _paged(request, "repositories", repos, n, last, {})


def _paged(request: Request, key: str, items: list[str], n: int | None, last: str | None,
           extra: dict[str, Any]) -> Response:
    if last:
        items = [i for i in items if i > last]
    headers = dict(API_VERSION)
    if n is not None and n >= 0 and len(items) > n:
        items = items[:n]
        headers["Link"] = f'<{request.url.path}?n={n}&last={items[-1] if items else ""}>; rel="next"'
    return JSONResponse({**extra, key: items}, headers=headers)


@router.api_route("/v2/{rest:path}", methods=["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"])
async def dispatch(request: Request, rest: str) -> Response:
    store = _store(request)
    m = _ROUTE.match(rest)
    if m is None:
        raise RegistryError(f"no such registry endpoint: {request.method} /v2/{rest}",
                            "see the OCI distribution spec's endpoints", "UNSUPPORTED", 404)
    repo = oci.check_repo(m["repo"])
    method = request.method
    if m["uploads"] is not None:
        upload = m["upload"]
        if upload == "" and method == "POST":
            return await _start_upload(request, store, repo)
        if not _UPLOAD_ID.match(upload or ""):
            raise RegistryError(f"unknown upload {upload!r}", "start an upload with POST /v2/<name>/blobs/uploads/",
                                "BLOB_UPLOAD_UNKNOWN", 404)
        if method == "PATCH":
            return await _patch_upload(request, store, repo, upload)
        if method == "PUT":
            return await _finish_upload(request, store, repo, upload)
        if method == "GET":
            return _upload_status(store, repo, upload, 204)
        if method == "DELETE":
            _upload_files(store, repo, upload, must_exist=True)[0].unlink(missing_ok=True)
            return Response(status_code=204, headers=API_VERSION)
    elif m["blob"] is not None:
        digest = oci.check_digest(m["blob"])
        if method in ("GET", "HEAD"):
            return await _get_blob(request, store, repo, digest)
        if method == "DELETE":
            raise RegistryError("this registry does not delete blobs", "delete the manifests that name them; "
                                "'freehold gc' on the registry's machine frees what nothing names", "UNSUPPORTED", 405)
    elif m["ref"] is not None:
        ref = oci.check_reference(m["ref"])
        if method in ("GET", "HEAD"):
            return await _get_manifest(request, store, repo, ref)
        if method == "PUT":
            return await _put_manifest(request, store, repo, ref)
        if method == "DELETE":
            return _delete_manifest(request, store, repo, ref)
    elif m["tags"] is not None and method == "GET":
        if not repo_exists(store, repo):
            raise RegistryError(f"repository {repo} is not in this registry", "check the name", "NAME_UNKNOWN", 404)
        tags = sorted(set(store.registry.tags(repo)) | {r.tag for r in store.refs("model") if r.name == repo})
        n = request.query_params.get("n")
        return _paged(request, "tags", tags, int(n) if n and n.isdigit() else None,
                      request.query_params.get("last"), {"name": repo})
    elif m["subject"] is not None and method == "GET":
        return _referrers(request, store, repo, oci.check_digest(m["subject"]))
    raise RegistryError(f"method {method} is not allowed on /v2/{rest}", "see the OCI distribution spec",
                        "UNSUPPORTED", 405)


# -- blobs ---------------------------------------------------------------------------------------


async def _get_blob(request: Request, store: Store, repo: str, digest: str) -> Response:
    readable = await run_in_threadpool(readable_blobs, store)
    if digest not in readable or not store.has_blob(digest):
        raise RegistryError(f"blob {digest} is not in {repo}", "push it first, or check the digest",
                            "BLOB_UNKNOWN", 404)
    if request.method == "GET":
        log(request, "pull-blob", repo, digest=digest, range=request.headers.get("range"))
    path = store.blob_path(digest)
    headers = {**API_VERSION, "Docker-Content-Digest": digest, "Accept-Ranges": "bytes"}
    return FileResponse(path, media_type="application/octet-stream", headers=headers)


def _upload_files(store: Store, repo: str, upload: str, must_exist: bool) -> tuple[Path, Path]:
    root = _dir(store, "uploads")
    data, meta = root / upload, root / f"{upload}.json"
    if must_exist:
        try:
            owner = json.loads(meta.read_text(encoding="utf-8")).get("repo")
        except (OSError, ValueError):
            owner = None
        if owner != repo or not data.exists():
            raise RegistryError(f"upload {upload} is not in progress for {repo}",
                                "start a new upload with POST /v2/<name>/blobs/uploads/", "BLOB_UPLOAD_UNKNOWN", 404)
    return data, meta


def _upload_headers(repo: str, upload: str, size: int) -> dict[str, str]:
    return {**API_VERSION, "Location": f"/v2/{repo}/blobs/uploads/{upload}", "Docker-Upload-UUID": upload,
            "Range": f"0-{max(size - 1, 0)}", "OCI-Chunk-Min-Length": "0"}


def _upload_status(store: Store, repo: str, upload: str, status: int) -> Response:
    data, _ = _upload_files(store, repo, upload, must_exist=True)
    return Response(status_code=status, headers=_upload_headers(repo, upload, data.stat().st_size))


async def _append(request: Request, path: Path) -> int:
    """Stream the request body onto the end of ``path``; the bytes written."""
    written = 0
    with path.open("ab") as f:
        async for chunk in request.stream():
            if chunk:
                f.write(chunk)
                written += len(chunk)
    return written


async def _start_upload(request: Request, store: Store, repo: str) -> Response:
    q = request.query_params
    mount = q.get("mount")
    if mount:
        digest = oci.check_digest(mount)
        if digest in await run_in_threadpool(readable_blobs, store) and store.has_blob(digest):
            store.registry.add_blob(repo, digest)
            log(request, "push-blob", repo, digest=digest, mounted_from=q.get("from"), bytes=0)
            return Response(status_code=201, headers={**API_VERSION, "Location": f"/v2/{repo}/blobs/{digest}",
                                                      "Docker-Content-Digest": digest})
    upload = uuid.uuid4().hex
    data, meta = _upload_files(store, repo, upload, must_exist=False)
    meta.write_text(json.dumps({"repo": repo, "started": time.time()}), encoding="utf-8")
    data.touch()
    if q.get("digest"):  # monolithic: POST ?digest= with the whole blob
        await _append(request, data)
        return await _complete(request, store, repo, upload, oci.check_digest(q["digest"]))
    return Response(status_code=202, headers=_upload_headers(repo, upload, 0))


def _content_range(header: str) -> tuple[int, int] | None:
    m = re.match(r"^(?:bytes[ =])?(\d+)-(\d+)$", header.strip())
    return (int(m[1]), int(m[2])) if m else None


async def _patch_upload(request: Request, store: Store, repo: str, upload: str) -> Response:
    data, _ = _upload_files(store, repo, upload, must_exist=True)
    size = data.stat().st_size
    header = request.headers.get("content-range")
    if header:
        rng = _content_range(header)
        if rng is None or rng[0] != size or rng[1] < rng[0]:
            return Response(status_code=416, headers=_upload_headers(repo, upload, size),
                            content=json.dumps({"errors": [{
                                "code": "BLOB_UPLOAD_INVALID",
                                "message": f"chunk {header} does not start at the upload's offset {size}",
                                "detail": {"offset": size}}]}), media_type="application/json")
    written = await _append(request, data)
    if header and rng is not None and written != rng[1] - rng[0] + 1:
        with data.open("r+b") as f:  # a chunk shorter than it said: drop it, the client resends
            f.truncate(size)
        raise RegistryError(f"chunk {header} carried {written} bytes", "send exactly the bytes of the range",
                            "BLOB_UPLOAD_INVALID", 400)
    return Response(status_code=202, headers=_upload_headers(repo, upload, size + written))


async def _finish_upload(request: Request, store: Store, repo: str, upload: str) -> Response:
    data, _ = _upload_files(store, repo, upload, must_exist=True)
    digest = request.query_params.get("digest")
    if not digest:
        raise RegistryError("the upload's final PUT has no ?digest=", "PUT <location>?digest=sha256:...",
                            "DIGEST_INVALID", 400)
    oci.check_digest(digest)
    await _append(request, data)
    return await _complete(request, store, repo, upload, digest)


async def _complete(request: Request, store: Store, repo: str, upload: str, digest: str) -> Response:
    data, meta = _upload_files(store, repo, upload, must_exist=True)
    size = data.stat().st_size
    try:
        await run_in_threadpool(store.adopt_blob, data, digest)
    except ValueError as exc:
        data.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        raise RegistryError(f"the upload's {size} bytes hash to {exc}, not {digest}",
                            "the data changed on the way: push again", "DIGEST_INVALID", 400) from None
    meta.unlink(missing_ok=True)
    store.registry.add_blob(repo, digest)
    log(request, "push-blob", repo, digest=digest, bytes=size)
    return Response(status_code=201, headers={**API_VERSION, "Location": f"/v2/{repo}/blobs/{digest}",
                                              "Docker-Content-Digest": digest})


# -- manifests -----------------------------------------------------------------------------------


async def _get_manifest(request: Request, store: Store, repo: str, ref: str) -> Response:
    data, digest, media_type = await run_in_threadpool(resolve_manifest, store, repo, ref)
    if request.method == "GET":
        log(request, "pull", repo, reference=ref, digest=digest)
    headers = {**API_VERSION, "Docker-Content-Digest": digest, "Content-Length": str(len(data))}
    return Response(content=data if request.method == "GET" else b"", media_type=media_type, headers=headers)


async def _put_manifest(request: Request, store: Store, repo: str, ref: str) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > oci.MAX_MANIFEST_BYTES:
            break
    parsed = oci.parse_manifest(body, request.headers.get("content-type"))
    digest = oci.digest_of(body)
    if ref.startswith("sha256:") and ref != digest:
        raise RegistryError(f"the manifest hashes to {digest}, not {ref}", "PUT it under its own digest",
                            "DIGEST_INVALID", 400)
    readable = await run_in_threadpool(readable_blobs, store)
    for d in ([parsed.config] if parsed.config else []) + ([] if parsed.is_index else parsed.blobs):
        if d["digest"] not in readable or not store.has_blob(d["digest"]):
            raise RegistryError(f"blob {d['digest']} named by the manifest is not in {repo}",
                                "push the blobs before the manifest", "MANIFEST_BLOB_UNKNOWN", 400)
    if parsed.is_index:
        for d in parsed.blobs:
            if store.registry.get(repo, d["digest"]) is None:
                raise RegistryError(f"manifest {d['digest']} named by the index is not in {repo}",
                                    "push the manifests before the index", "MANIFEST_UNKNOWN", 400)
    bundle = None
    if parsed.is_freehold_model:
        _check_freehold_model(store, parsed)
        _check_not_shadowing(store, repo, ref, parsed)
        bundle = _carried_lineage(store, parsed, f"pushed to {repo}:{ref}")
    envelopes = _attestation_envelopes(store, repo, parsed)
    layer = store.put_stream_blob(body, parsed.media_type)
    assert layer.digest == digest
    tag = None if ref.startswith("sha256:") else ref
    store.registry.put(RegistryManifest(repo, digest, parsed.media_type, parsed.artifact_type, parsed.subject,
                                        len(body), {str(k): str(v) for k, v in parsed.annotations.items()}), tag)
    named = None
    if parsed.is_freehold_model and tag is not None:
        with contextlib.suppress(FreeholdError):  # a tag the store's names cannot hold stays registry-only
            assert parsed.config is not None
            if bundle is not None:  # its pages, lineage and verify use it
                keep_bundle(store, bundle, f"pushed to {repo}:{tag}")
            named = store.commit_blob("model", format_name(repo, tag), parsed.config["digest"]).name
    for model_digest, envelope in envelopes:  # the registry's own pages show the audits too
        keep(store, model_digest, envelope)
    log(request, "push", repo, reference=ref, digest=digest, model=named, subject=parsed.subject)
    headers = {**API_VERSION, "Location": f"/v2/{repo}/manifests/{digest}", "Docker-Content-Digest": digest}
    if parsed.subject:
        headers["OCI-Subject"] = parsed.subject
    return Response(status_code=201, headers=headers)


def _attestation_envelopes(store: Store, repo: str, parsed: oci.OciManifest) -> list[tuple[str, bytes]]:
    """For a referrer carrying an audit or a publish signature of a Freehold model in ``repo``:
    (the model's Freehold manifest digest, each envelope), checked to be about that model."""
    if not parsed.subject or parsed.artifact_type not in (AUDIT_ARTIFACT, SIGNATURE_ARTIFACT):
        return []
    try:
        subject = oci.parse_manifest(resolve_manifest(store, repo, parsed.subject)[0])
    except RegistryError:
        return []  # a referrer may arrive before its subject (the spec allows it): kept, not shown
    if not subject.is_freehold_model or subject.config is None:
        return []
    out = []
    for d in parsed.blobs:
        if d["mediaType"] != ENVELOPE_MEDIA_TYPE:
            continue
        data = store.read_blob(d["digest"])
        statement_subjects = _statement_subjects(data)
        if subject.config["digest"].removeprefix("sha256:") not in statement_subjects:
            raise RegistryError(f"the {parsed.artifact_type} is about another model than its subject",
                                "attach a statement about the model it refers to", "MANIFEST_INVALID", 400)
        out.append((subject.config["digest"], data))
    return out


def _statement_subjects(envelope: bytes) -> set[str]:
    import base64

    try:
        statement = json.loads(base64.b64decode(json.loads(envelope)["payload"], validate=True))
        return {s["digest"]["sha256"] for s in statement.get("subject", [])}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RegistryError("an envelope of the referrer is not a DSSE envelope of an in-toto statement",
                            "attach envelopes made by 'freehold audit attach'", "MANIFEST_INVALID", 400) from None


def _carried_lineage(store: Store, parsed: oci.OciManifest, origin: str) -> Bundle | None:
    """The lineage bundle a pushed model carries, checked to be about it and intact."""
    layer = next((d for d in parsed.blobs if d["mediaType"] == MediaType.LINEAGE_BUNDLE), None)
    if layer is None or parsed.config is None:
        return None
    try:
        bundle = parse_bundle(store.read_blob(layer["digest"]), origin)
    except FreeholdError as exc:
        raise RegistryError(exc.message, "push it again from its origin", "MANIFEST_INVALID", 400) from exc
    head = (store.manifest(parsed.config["digest"]).lineage or {}).get("ledger_head")
    problem = mismatch(bundle, parsed.config["digest"], head) or forged(bundle)
    if problem:
        raise RegistryError(f"the model's lineage bundle does not hold together: {problem}",
                            "push it again from its origin", "MANIFEST_INVALID", 400)
    return bundle


def _check_not_shadowing(store: Store, repo: str, ref: str, parsed: oci.OciManifest) -> None:
    """A push may move a tag it pushed before, never replace a model this store made or imported."""
    if ref.startswith("sha256:") or store.registry.tag(repo, ref) is not None:
        return
    try:
        base, tag = parse_name(format_name(repo, ref))
    except FreeholdError:
        return
    name = format_name(base, tag or ref)
    if store.has(name) and parsed.config is not None and store.get(name).manifest_digest != parsed.config["digest"]:
        raise RegistryError(f"{name} is a model of the registry's own store, not one pushed to it",
                            "push under another name or tag (e.g. acme/support:v2)", "DENIED", 409)


def _check_freehold_model(store: Store, parsed: oci.OciManifest) -> None:
    """A Freehold model's config is its Freehold manifest, and the layers are that manifest's."""
    assert parsed.config is not None
    try:
        manifest = store.manifest(parsed.config["digest"])
    except StoreError as exc:
        raise RegistryError(f"the model's config {parsed.config['digest']} is not a Freehold manifest",
                            "push the config blob the model's manifest names", "MANIFEST_INVALID", 400) from exc
    named = {la.digest for la in manifest.layers}
    missing = named - {d["digest"] for d in parsed.blobs}
    if missing:
        raise RegistryError(f"the OCI manifest leaves out {len(missing)} layer(s) of its Freehold manifest",
                            "list every layer of the Freehold manifest", "MANIFEST_INVALID", 400)


def _delete_manifest(request: Request, store: Store, repo: str, ref: str) -> Response:
    found = store.registry.delete(repo, ref) if ref.startswith("sha256:") else store.registry.untag(repo, ref)
    if not found:
        raise RegistryError(f"manifest {ref} is not in {repo}", "check the tag or digest", "MANIFEST_UNKNOWN", 404)
    log(request, "delete", repo, reference=ref)
    return Response(status_code=202, headers=API_VERSION)


def _referrers(request: Request, store: Store, repo: str, subject: str) -> Response:
    wanted = request.query_params.get("artifactType")
    rows = store.registry.referrers(repo, subject)
    headers = dict(API_VERSION)
    if wanted:
        rows = [r for r in rows if r.artifact_type == wanted]
        headers["OCI-Filters-Applied"] = "artifactType"
    doc = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [r.descriptor() for r in rows]}
    return Response(content=oci.canonical(doc), media_type=oci.OCI_INDEX, headers=headers)
