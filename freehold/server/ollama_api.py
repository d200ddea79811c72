"""Ollama-compatible API (/api): a translation layer over the native path."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from freehold import __version__
from freehold.engine import Chunk, SamplingParams, model_params
from freehold.engine.llama import json_grammar
from freehold.errors import UsageError
from freehold.licences import licence_terms
from freehold.server.native import NativeRequest, collect, run_native, stream
from freehold.store import MediaType, ModelEntry

router = APIRouter(prefix="/api")


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow")


class Options(_Base):
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    seed: int | None = None
    stop: list[str] | None = None
    num_predict: int | None = None
    num_ctx: int | None = Field(None, ge=1)


class _Request(_Base):
    model: str = Field(min_length=1)
    stream: bool = True
    format: str | dict[str, Any] | None = None
    options: Options | None = None
    keep_alive: str | float | int | None = None

    def sampling(self) -> SamplingParams:
        o = self.options or Options.model_validate({})
        grammar = None
        if self.format == "json":
            grammar = json_grammar()
        elif isinstance(self.format, dict):
            grammar = json_grammar(self.format)
        elif self.format not in (None, ""):
            raise UsageError(f"unknown format {self.format!r}", "use \"json\" or a JSON schema object")
        max_tokens = None if o.num_predict is None or o.num_predict < 0 else o.num_predict
        return SamplingParams.given(temperature=o.temperature, top_p=o.top_p, top_k=o.top_k, min_p=o.min_p,
                                    repeat_penalty=o.repeat_penalty, seed=o.seed, stop=tuple(o.stop or ()),
                                    max_tokens=max_tokens, grammar=grammar)

    def keep_alive_seconds(self) -> float | None:
        return parse_duration(self.keep_alive)


class ChatRequest(_Request):
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None  # Freehold extension: OpenAI's tool_choice
    knowledge: str | None = None  # Freehold extension: ground the answer in this index ("" = none)


class GenerateRequest(_Request):
    prompt: str = ""
    system: str | None = None
    raw: bool = False
    suffix: str | None = None


class EmbedRequest(_Base):
    model: str = Field(min_length=1)
    input: str | list[str]
    truncate: bool = True
    keep_alive: str | float | int | None = None


class ShowRequest(_Base):
    model: str | None = None
    name: str | None = None
    verbose: bool = False


def parse_duration(value: str | float | int | None) -> float | None:
    """Ollama keep_alive: seconds as a number, or '5m', '1h30m', '0'; negative = forever."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float("inf") if value < 0 else float(value)
    text = value.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return parse_duration(float(text))
    parts = re.findall(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise UsageError(f"invalid keep_alive {value!r}", "use seconds or a duration such as '5m' or '1h'")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = sum(float(n) * scale[u] for n, u in parts)
    return float("inf") if total < 0 else total


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _final(model: str, last: Chunk, started: float, extra: dict[str, Any]) -> dict[str, Any]:
    total = int((time.perf_counter() - started) * 1e9)
    grounding: dict[str, Any] = {"grounding": last.grounding} if last.grounding is not None else {}
    if last.tool_runs is not None:
        grounding["tool_runs"] = last.tool_runs  # the MCP tool calls the server ran for this answer
    reason = "stop" if last.finish_reason == "tool_calls" else last.finish_reason  # Ollama says stop
    return {"model": model, "created_at": _now(), **extra, "done": True, "done_reason": reason,
            "total_duration": total, "load_duration": 0, "prompt_eval_count": last.prompt_tokens,
            "prompt_eval_duration": 0, "eval_count": last.completion_tokens, "eval_duration": total, **grounding}


def _ndjson(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False) + "\n"


@router.post("/chat")
async def chat(body: ChatRequest, request: Request) -> Any:
    app = request.app.state.freehold
    name = app.models.resolve(body.model).name
    if not body.messages:  # Ollama: an empty chat loads (or with keep_alive 0, unloads) the model
        return await _load_only(app, body, name, {"message": {"role": "assistant", "content": ""}})
    started = time.perf_counter()
    messages = [{**m, "content": m.get("content") or ""} for m in body.messages]
    native = NativeRequest(body.model, messages=messages, params=body.sampling(), tools=body.tools or None,
                           tool_choice=body.tool_choice, keep_alive=body.keep_alive_seconds(),
                           knowledge=body.knowledge)
    gen = run_native(app.models, app.metrics, native)
    if not body.stream:
        text, last, _ = await collect(gen)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if last.tool_calls:
            message = {"role": "assistant", "content": text.strip(),
                       "tool_calls": [c.ollama() for c in last.tool_calls]}
        return _final(name, last, started, {"message": message})
    _, chunks = await stream(gen)

    async def lines() -> AsyncIterator[str]:
        async for chunk in chunks:
            if chunk.finish_reason is None or chunk.text or chunk.tool_calls:
                message: dict[str, Any] = {"role": "assistant", "content": chunk.text}
                if chunk.tool_calls:
                    message["tool_calls"] = [c.ollama() for c in chunk.tool_calls]
                yield _ndjson({"model": name, "created_at": _now(), "message": message, "done": False})
            if chunk.finish_reason is not None:
                yield _ndjson(_final(name, chunk, started, {"message": {"role": "assistant", "content": ""}}))

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def _load_only(app: Any, body: _Request, name: str, extra: dict[str, Any]) -> dict[str, Any]:
    keep = body.keep_alive_seconds()
    if keep == 0:
        app.models.unload(name)
        return {"model": name, "created_at": _now(), **extra, "done": True, "done_reason": "unload"}
    from starlette.concurrency import run_in_threadpool

    def load() -> None:
        with app.models.use(name, keep):
            pass

    await run_in_threadpool(load)
    return {"model": name, "created_at": _now(), **extra, "done": True, "done_reason": "load"}


@router.post("/generate")
async def generate(body: GenerateRequest, request: Request) -> Any:
    app = request.app.state.freehold
    name = app.models.resolve(body.model).name
    if not body.prompt:
        return await _load_only(app, body, name, {"response": ""})
    started = time.perf_counter()
    if body.raw:
        native = NativeRequest(body.model, prompt=body.prompt, params=body.sampling(),
                               keep_alive=body.keep_alive_seconds())
    else:
        messages = ([{"role": "system", "content": body.system}] if body.system else []) + [
            {"role": "user", "content": body.prompt}]
        entry = app.models.resolve(body.model)
        has_template = entry.manifest.layer(MediaType.TEMPLATE) is not None
        native = (NativeRequest(body.model, messages=messages, params=body.sampling(),
                                keep_alive=body.keep_alive_seconds()) if has_template else
                  NativeRequest(body.model, prompt=body.prompt, params=body.sampling(),
                                keep_alive=body.keep_alive_seconds()))
    gen = run_native(app.models, app.metrics, native)
    if not body.stream:
        text, last, _ = await collect(gen)
        return _final(name, last, started, {"response": text})
    _, chunks = await stream(gen)

    async def lines() -> AsyncIterator[str]:
        async for chunk in chunks:
            if chunk.text:
                yield _ndjson({"model": name, "created_at": _now(), "response": chunk.text, "done": False})
            if chunk.finish_reason is not None:
                yield _ndjson(_final(name, chunk, started, {"response": ""}))

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/embed")
async def embed(body: EmbedRequest, request: Request) -> Any:
    app = request.app.state.freehold
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or any(not isinstance(t, str) or not t for t in texts):
        raise UsageError("'input' must be a non-empty string or list of non-empty strings",
                         'e.g. {"input": ["first", "second"]}')
    started = time.perf_counter()
    vectors, n_tokens, name = await app.embed(body.model, texts)
    return {"model": name, "embeddings": vectors, "total_duration": int((time.perf_counter() - started) * 1e9),
            "load_duration": 0, "prompt_eval_count": n_tokens}


def _details(m: ModelEntry) -> dict[str, Any]:
    info = m.info
    params = info.get("parameters") or 0
    size = f"{params / 1e9:.1f}B" if params >= 1e9 else f"{params / 1e6:.0f}M"
    return {"parent_model": "", "format": info.get("format", "gguf"), "family": info.get("family", ""),
            "families": [info.get("architecture", "")], "parameter_size": size,
            "quantization_level": info.get("quantization", "")}


def _modified(m: ModelEntry) -> str:
    return dt.datetime.fromtimestamp(m.created_at, dt.UTC).isoformat().replace("+00:00", "Z")


@router.get("/tags")
async def tags(request: Request) -> Any:
    app = request.app.state.freehold
    return {"models": [{"name": m.name, "model": m.name, "modified_at": _modified(m), "size": m.size,
                        "digest": m.manifest_digest.removeprefix("sha256:"), "details": _details(m)}
                       for m in app.models.store.list()]}


@router.post("/show")
async def show(body: ShowRequest, request: Request) -> Any:
    app = request.app.state.freehold
    name = body.model or body.name
    if not name:
        raise UsageError("'model' is required", 'e.g. {"model": "smollm2"}')
    m = app.models.resolve(name)
    store = app.models.store
    template = store.text_layer(m.manifest, MediaType.TEMPLATE) or ""
    licence = licence_terms(m.manifest, store.text_layer(m.manifest, MediaType.LICENSE)) or ""
    arch = m.info.get("architecture", "")
    model_info = {"general.architecture": arch, "general.parameter_count": m.info.get("parameters"),
                  f"{arch}.context_length": m.info.get("context_length"),
                  f"{arch}.embedding_length": m.info.get("embedding_length"),
                  f"{arch}.block_count": m.info.get("block_count")}
    capabilities = ["completion"] + (["chat", "tools"] if template else [])  # tools: engine.tools
    parameters = "\n".join(f"{k} {v}" for k, v in model_params(store, m).items())  # Ollama's "key value" lines
    return {"license": licence, "modelfile": f"# Modelfile generated by freehold\nFROM {m.name}\n",
            "parameters": parameters, "template": template, "details": _details(m), "model_info": model_info,
            "capabilities": capabilities, "modified_at": _modified(m)}


@router.get("/ps")
async def ps(request: Request) -> Any:
    app = request.app.state.freehold
    out = []
    for name, loaded in app.models.loaded():
        m = loaded.engine.entry
        expires = ("0001-01-01T00:00:00Z" if loaded.expires_at == float("inf") else
                   dt.datetime.fromtimestamp(loaded.expires_at, dt.UTC).isoformat().replace("+00:00", "Z"))
        out.append({"name": name, "model": name, "size": m.size, "digest": m.manifest_digest.removeprefix("sha256:"),
                    "details": _details(m), "expires_at": expires, "size_vram": 0,
                    "context_length": loaded.engine.n_ctx})
    return {"models": out}


@router.get("/version")
async def version() -> Any:
    return {"version": __version__}
