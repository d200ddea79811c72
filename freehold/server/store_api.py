"""The native API over the store (/freehold): what the pages show and do, for any script too.

    GET  /freehold/models                    every model, described (licence, origin, fit)
    GET  /freehold/models/{name}             one model: its card, licence text, lineage, evals
    POST /freehold/models/{name}/deploy      make it the model the APIs serve as "default"
    GET  /freehold/datasets                  the datasets and their counts
    GET  /freehold/datasets/{name}/preview   counts, what was left out in plain words, examples
    POST /freehold/uploads?filename=F        a mail archive or table (the raw body), for an import job
    POST /freehold/reply?model=NAME          a drafted reply to an .eml (the raw body), with its sources
    GET  /freehold/settings                  threads, storage used, API keys set, identity key
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from freehold.errors import UsageError
from freehold.models import DEFAULT_ALIAS, deploy, deployed, document
from freehold.store import Store

router = APIRouter(prefix="/freehold", tags=["store"])

UPLOAD_TYPES = {".mbox": "mbox", ".mbx": "mbox", ".eml": "eml", ".zip": "zip", ".csv": "csv", ".tsv": "csv",
                ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def _store(request: Request) -> Store:
    store: Store = request.app.state.freehold.store
    return store


@router.get("/models")
async def list_models(request: Request) -> Any:
    from freehold.models import describe

    store = _store(request)

    def rows() -> dict[str, Any]:
        return {"models": [describe(store, m) for m in store.list()], "default": deployed(store)}

    return await run_in_threadpool(rows)


@router.get("/models/{name:path}")
async def get_model(name: str, request: Request) -> Any:
    return await run_in_threadpool(document, _store(request), name)


@router.post("/models/{name:path}/deploy")
async def deploy_model(name: str, request: Request,
                       override: bool = Query(False, description="deploy a flagged model anyway (recorded)")) -> Any:
    """The model answers as "default" on every API (and is what the pages' chat opens with). A
    model with an open high-severity audit flag is refused (409, code model_flagged) unless
    ``override=true``, which the ledger records."""
    store = _store(request)
    return {"default": await run_in_threadpool(deploy, store, name, override)}


@router.post("/models/{name:path}/accept-licence")
async def accept_licence(name: str, request: Request) -> Any:
    """Accept the model's restrictive licence(s) (the Gemma terms, the Llama licence, a RAIL, NC
    data) once, as this store's owner: a ``licence`` ledger record each; then it may be served."""
    from freehold.models import accept

    store = _store(request)
    return {"accepted": await run_in_threadpool(lambda: accept(store, store.get(name), via="web"))}


@router.get("/registry")
async def browse_registry(request: Request, at: str = Query(..., description="the registry, HOST[:PORT]")) -> Any:
    """The Freehold models another registry holds (licence, card, audits), read over its /v2/ API
    with this server's FREEHOLD_REGISTRY_KEY; pull one with a pull job."""
    from freehold.ledger.keys import trusted_keys
    from freehold.registry.client import browse

    store = _store(request)
    return {"models": await run_in_threadpool(browse, at, trusted=trusted_keys(store.home))}


@router.get("/datasets")
async def list_datasets(request: Request) -> Any:
    store = _store(request)

    def rows() -> dict[str, Any]:
        return {"datasets": [{"name": d.name, "digest": d.manifest_digest, "size": d.size,
                              "counts": d.manifest.config.get("counts", {}),
                              "created_at": d.created_at} for d in store.list("dataset")]}

    return await run_in_threadpool(rows)


@router.get("/datasets/{name:path}/preview")
async def preview_dataset(name: str, request: Request, examples: int = Query(8, ge=0, le=100)) -> Any:
    from freehold.data.dataset import explain_filters, show_dataset

    store = _store(request)

    def preview() -> dict[str, Any]:
        shown = show_dataset(name, examples=examples, seed=0, store=store)
        shown["left_out"] = explain_filters(shown)
        return shown

    return await run_in_threadpool(preview)


@router.post("/uploads", status_code=201)
async def upload(request: Request, filename: str = Query(..., description="the file's name (its type only)"),
                 purpose: str = Query("data", description="data (mail or a table) or document (for knowledge)")
                 ) -> Any:
    """The raw request body, streamed to the store's uploads folder. The name's suffix says the
    type; the file is stored in a random folder under a cleaned last part of its name
    (``safe_name``), never at a path the name gives."""
    from freehold.knowledge.documents import FORMATS as DOCUMENT_TYPES

    state = request.app.state.freehold
    suffix = Path(filename).suffix.lower()
    if purpose not in ("data", "document"):
        raise UsageError(f"unknown upload purpose {purpose!r}", "use purpose=data or purpose=document")
    if purpose == "document" and suffix not in DOCUMENT_TYPES:
        raise UsageError(f"{filename!r} is not a document Freehold can answer from",
                         f"drop a {', '.join(sorted(DOCUMENT_TYPES))} file")
    if purpose == "data" and suffix not in UPLOAD_TYPES:
        raise UsageError(f"{filename!r} is not a file Freehold can learn from",
                         "drop an mbox, a .eml, a zip of a Maildir or of .eml files, a CSV or a JSONL file")
    limit = state.options.max_upload_bytes
    folder = state.store.home / "uploads" / os.urandom(8).hex()
    folder.mkdir(parents=True)
    target = folder / safe_name(filename, suffix)
    size = 0
    try:
        with target.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise UsageError(f"the upload is over the {limit // 1_000_000} MB limit",
                                     "split the archive, or start the server with a higher --max-upload")
                out.write(chunk)
        if size == 0:
            raise UsageError(f"{filename!r} is empty", "drop the file again")
        if purpose == "document":
            path, fmt = target, DOCUMENT_TYPES[suffix]
        else:
            path = await run_in_threadpool(_unpack, target) if suffix == ".zip" else target
            fmt = await run_in_threadpool(_check_readable, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-written stays behind
        raise
    return {"upload": folder.name, "path": str(path), "format": fmt, "size": size}


def safe_name(filename: str, suffix: str) -> str:
    """A file name to store an upload under (in its own random folder): the last part of what the
    browser sent, with every character but letters, digits, '.', '-' and '_' replaced, never
    starting with a dot; so it can neither climb out nor hide, and citations keep a name people know."""
    base = re.split(r"[/\\]", filename)[-1]
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[:100]
    return base if base.lower().endswith(suffix) and len(base) > len(suffix) else f"upload{suffix}"


def _unpack(archive: Path, limit_files: int = 200_000) -> Path:
    """A zip's files under ``archive``'s folder; member names that climb out are refused."""
    out = archive.parent / "files"
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            if len(members) > limit_files:
                raise UsageError(f"the zip holds {len(members)} files", f"at most {limit_files} per upload")
            for m in members:
                parts = Path(m.filename).parts
                if Path(m.filename).is_absolute() or ".." in parts or not parts:
                    raise UsageError(f"the zip names a file outside itself ({m.filename!r})",
                                     "zip the Maildir or .eml folder itself")
                dest = out.joinpath(*parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(m) as src, dest.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
    except zipfile.BadZipFile as exc:
        raise UsageError(f"the upload is not a readable zip: {exc}", "zip the folder again") from exc
    archive.unlink()
    inner = [p for p in out.iterdir()]
    return inner[0] if len(inner) == 1 and inner[0].is_dir() else out


def _check_readable(path: Path) -> str:
    from freehold.data.read import resolve_sources

    sources = resolve_sources([path])  # a clear error now ("cannot tell what kind of file"), not in the job
    return sources[0].format


@router.post("/reply")
async def reply(request: Request, model: str = Query(DEFAULT_ALIAS, description="the model that drafts it"),
                knowledge: str | None = Query(None, description="an index to answer from; 'none': without")) -> Any:
    """The support workflow: an incoming mail (.eml bytes) in, a draft in the model's voice out,
    grounded in the model's own knowledge index (or ``knowledge``) with the sources it cites."""
    from freehold.config import REPLY_MAX_TOKENS
    from freehold.engine import SamplingParams
    from freehold.knowledge import knowledge_for, load_index
    from freehold.knowledge.reply import draft_reply, parse_mail

    state = request.app.state.freehold
    mail = parse_mail(await request.body(), "the dropped mail")

    def draft() -> dict[str, Any]:
        with state.models.use(model) as engine:
            kb = knowledge_for(engine.entry, knowledge if knowledge is not None else state.options.knowledge)
            index = load_index(state.store, kb) if kb else None
            guard = state.models.guardrails.guard(engine.entry.name, engine.entry.aliases)
            out = draft_reply(engine, mail, index, SamplingParams.given(max_tokens=REPLY_MAX_TOKENS), guard=guard)
            return {"model": engine.name, **out.to_dict()}

    return await run_in_threadpool(draft)


def _guardrails(state: Any) -> dict[str, Any]:
    """The serving policy as the settings page shows it: its file, the default and per-model rails."""
    import dataclasses

    policies = state.models.guardrails.policies

    def rails(p: Any) -> dict[str, Any]:
        return {"pii": p.pii, "pii_types": list(p.pii_types), "redact_answers": p.redact_answers,
                "deny": len(p.deny), "topics": list(p.topics), "safety": p.safety,
                **{k: v for k, v in dataclasses.asdict(p).items() if k in ("safety_threshold", "topic_threshold")}}

    return {"file": policies.source, "off": state.options.no_guardrails, "default": rails(policies.default),
            "models": {name: rails(p) for name, p in policies.models.items()}}


@router.get("/settings")
async def settings_info(request: Request) -> Any:
    state = request.app.state.freehold
    store = state.store

    def info() -> dict[str, Any]:
        from freehold.ledger.keys import load_identity

        used = sum(p.stat().st_size for p in (store.home / "blobs").glob("sha256-*"))
        return {"home": str(store.home), "threads": state.settings.threads, "context": state.settings.context,
                "storage_bytes": used, "api_keys": len(state.options.api_keys),
                "identity": load_identity(store.home).key_id,
                "free_disk_bytes": shutil.disk_usage(store.home).free,
                "declared_use": state.options.declared_use, "guardrails": _guardrails(state),
                "agents": [{"name": a.name, "model": a.model, "description": a.summary, "tools": list(a.tools),
                            "delegates": list(a.delegates), "default": a.name == state.agents.default,
                            "url": f"/a2a/{a.name}", "card": f"/a2a/{a.name}/.well-known/agent-card.json"}
                           for a in state.agents.specs.values()],
                "mcp_servers": state.tool_servers.names}

    return await run_in_threadpool(info)
