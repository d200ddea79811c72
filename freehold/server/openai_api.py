"""OpenAI-compatible API (/v1): a translation layer over the native path."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from freehold import __version__
from freehold.engine import SamplingParams
from freehold.engine.llama import json_grammar
from freehold.errors import UsageError
from freehold.server.native import NativeRequest, collect, run_native, stream

router = APIRouter(prefix="/v1")
FINGERPRINT = f"freehold-{__version__}"


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Base):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class _Sampling(_Base):
    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1, description="only n=1 is supported")
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    user: str | None = None

    def sampling(self, max_tokens: int | None, grammar: str | None = None,
                 logprobs: int | None = None) -> SamplingParams:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams.given(temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                                    stop=tuple(stop), max_tokens=max_tokens, grammar=grammar, logprobs=logprobs)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    knowledge: str | None = None  # Freehold extension: ground the answer in this index ("" = none)
    max_completion_tokens: int | None = Field(None, ge=0)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)

    def logprob_count(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=0)  # the OpenAI default for completions
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)  # legacy API: the number of top alternatives


class EmbeddingRequest(_Base):
    model: str = Field(min_length=1)
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"


class ResponsesRequest(_Base):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False


def _grammar(response_format: dict[str, Any] | None) -> str | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return json_grammar()
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise UsageError("response_format.json_schema.schema must be a JSON schema object",
                             'e.g. {"type": "json_schema", "json_schema": {"name": "x", "schema": {...}}}')
        return json_grammar(schema)
    raise UsageError(f"unknown response_format type {kind!r}", "use text, json_object or json_schema")


def _legacy_logprobs(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The completions API's older shape: parallel lists instead of objects."""
    if entries is None:
        return None
    offsets, pos = [], 0
    for e in entries:
        offsets.append(pos)
        pos += len(e["token"])
    return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
            "text_offset": offsets}


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        d = m.model_dump(exclude_none=True)
        if d["role"] == "developer":
            d["role"] = "system"
        d.setdefault("content", "")
        out.append(d)
    return out


def _usage(last: Any) -> dict[str, int]:
    return {"prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens,
            "total_tokens": last.prompt_tokens + last.completion_tokens}


def _extensions(last: Any) -> dict[str, Any]:
    """Freehold's extension fields: a grounded answer's {"grounding": {"knowledge", "found",
    "citations"}}, and the MCP tool calls the server ran for it, {"tool_runs": [...]}."""
    out: dict[str, Any] = {"grounding": last.grounding} if last.grounding is not None else {}
    if last.tool_runs is not None:
        out["tool_runs"] = last.tool_runs
    return out


def _sse(data: Any) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    app = request.app.state.freehold
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    native = NativeRequest(body.model, messages=_messages(body.messages),
                           params=body.sampling(max_tokens, _grammar(body.response_format), body.logprob_count()),
                           tools=body.tools or None, tool_choice=body.tool_choice, knowledge=body.knowledge)
    gen = run_native(app.models, app.metrics, native)
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    model = app.models.resolve(body.model).name
    if not body.stream:
        text, last, lps = await collect(gen)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = last.finish_reason or "stop"
        if last.tool_calls:
            message = {"role": "assistant", "content": text.strip() or None,
                       "tool_calls": [c.openai() for c in last.tool_calls]}
        return {"id": cid, "object": "chat.completion", "created": created, "model": model,
                "system_fingerprint": FINGERPRINT, "usage": _usage(last),
                "choices": [{"index": 0, "message": message, "finish_reason": finish,
                             "logprobs": {"content": lps, "refusal": None} if lps is not None else None}],
                **_extensions(last)}
    _, chunks = await stream(gen)
    include_usage = bool((body.stream_options or {}).get("include_usage"))

    async def events() -> AsyncIterator[str]:
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": FINGERPRINT}
        yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None, "logprobs": None}]})
        calls = 0
        async for chunk in chunks:
            if chunk.text or chunk.logprobs:
                lp = {"content": chunk.logprobs, "refusal": None} if chunk.logprobs is not None else None
                yield _sse({**base, "choices": [{"index": 0, "delta": {"content": chunk.text},
                                                 "finish_reason": None, "logprobs": lp}]})
            for call in chunk.tool_calls or []:  # each call whole, in one delta, as it completes
                yield _sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": [call.openai(calls)]},
                                                 "finish_reason": None, "logprobs": None}]})
                calls += 1
            if chunk.finish_reason is not None:
                yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": chunk.finish_reason,
                                                 "logprobs": None}], **_extensions(chunk)})
                if include_usage:
                    yield _sse({**base, "choices": [], "usage": _usage(chunk)})
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post("/completions")
async def completions(body: CompletionRequest, request: Request) -> Any:
    app = request.app.state.freehold
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise UsageError("exactly one prompt per request is supported", "send one string as 'prompt'")
    prompt = prompts[0]
    native = NativeRequest(body.model, prompt=prompt, params=body.sampling(body.max_tokens, None, body.logprobs))
    gen = run_native(app.models, app.metrics, native)
    cid = f"cmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    model = app.models.resolve(body.model).name
    if not body.stream:
        text, last, lps = await collect(gen)
        return {"id": cid, "object": "text_completion", "created": created, "model": model,
                "system_fingerprint": FINGERPRINT, "usage": _usage(last),
                "choices": [{"index": 0, "text": (prompt if body.echo else "") + text,
                             "finish_reason": last.finish_reason, "logprobs": _legacy_logprobs(lps)}]}
    _, chunks = await stream(gen)

    async def events() -> AsyncIterator[str]:
        base = {"id": cid, "object": "text_completion", "created": created, "model": model}
        if body.echo:
            yield _sse({**base, "choices": [{"index": 0, "text": prompt, "finish_reason": None, "logprobs": None}]})
        async for chunk in chunks:
            yield _sse({**base, "choices": [{"index": 0, "text": chunk.text, "finish_reason": chunk.finish_reason,
                                             "logprobs": _legacy_logprobs(chunk.logprobs)}]})
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> Any:
    app = request.app.state.freehold
    texts = [body.input] if isinstance(body.input, str) else body.input
    if any(not isinstance(t, str) or not t for t in texts):
        raise UsageError("'input' must be a non-empty string or a list of non-empty strings",
                         'e.g. {"input": ["first text", "second text"]}')
    vectors, n_tokens, name = await app.embed(body.model, texts)
    data: list[dict[str, Any]] = []
    for i, v in enumerate(vectors):
        item: Any = v
        if body.encoding_format == "base64":
            import base64
            import struct

            item = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
        data.append({"object": "embedding", "index": i, "embedding": item})
    return {"object": "list", "data": data, "model": name,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}


def _model_card(name: str, created: float) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(created), "owned_by": "freehold"}


@router.get("/models")
async def list_models(request: Request) -> Any:
    app = request.app.state.freehold
    data = []
    for m in app.models.store.list():
        data.append(_model_card(m.name, m.created_at))
        data.extend(_model_card(a, m.created_at) for a in m.aliases)
    for name in app.embedders:
        data.append(_model_card(name, 0))
    return {"object": "list", "data": data}


@router.get("/models/{model:path}")
async def get_model(model: str, request: Request) -> Any:
    app = request.app.state.freehold
    if model in app.embedders:
        return _model_card(model, 0)
    m = app.models.resolve(model)
    return _model_card(m.name, m.created_at)


def _response_object(rid: str, model: str, body: ResponsesRequest, created: int, text: str,
                     last: Any) -> dict[str, Any]:
    """A Responses API object: in progress (``last`` None, no output yet) or finished."""
    done = last is not None
    complete = done and last.finish_reason == "stop"
    status = "in_progress" if not done else "completed" if complete else "incomplete"
    output = [{"type": "message", "id": f"msg_{rid}", "status": "completed" if complete else "incomplete",
               "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}] if done else []
    usage = {"input_tokens": last.prompt_tokens, "output_tokens": last.completion_tokens,
             "total_tokens": last.prompt_tokens + last.completion_tokens,
             "input_tokens_details": {"cached_tokens": 0},
             "output_tokens_details": {"reasoning_tokens": 0}} if done else None
    return {"id": f"resp_{rid}", "object": "response", "created_at": created, "status": status,
            "error": None, "incomplete_details": {"reason": "max_output_tokens"} if done and not complete else None,
            "model": model, "instructions": body.instructions, "max_output_tokens": body.max_output_tokens,
            "output": output, "usage": usage, "temperature": body.temperature, "top_p": body.top_p,
            "parallel_tool_calls": False, "tool_choice": "auto", "tools": [], "store": False,
            "text": {"format": {"type": "text"}}, "metadata": {}}


@router.post("/responses")
async def responses(body: ResponsesRequest, request: Request) -> Any:
    """Stateless Responses API: text in (a string or message items), one assistant message out."""
    app = request.app.state.freehold
    messages: list[dict[str, Any]] = []
    if body.instructions:
        messages.append({"role": "system", "content": body.instructions})
    if isinstance(body.input, str):
        messages.append({"role": "user", "content": body.input})
    else:
        for item in body.input:
            content = item.get("content", "")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            role = item.get("role", "user")
            messages.append({"role": "system" if role == "developer" else role, "content": content})
    params = SamplingParams.given(temperature=body.temperature, top_p=body.top_p, max_tokens=body.max_output_tokens)
    native = NativeRequest(body.model, messages, None, params)
    gen = run_native(app.models, app.metrics, native)
    rid, created = uuid.uuid4().hex[:24], int(time.time())
    model = app.models.resolve(body.model).name
    if not body.stream:
        text, last, _ = await collect(gen)
        return _response_object(rid, model, body, created, text, last)
    first, chunks = await stream(gen)

    async def events() -> AsyncIterator[str]:
        # The event sequence OpenAI's server sends, each as `event: TYPE` + `data: {...}`.
        seq = iter(range(1 << 62))
        item_id = f"msg_{rid}"
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}

        def event(kind: str, **fields: Any) -> str:
            payload = {"type": kind, "sequence_number": next(seq), **fields}
            return f"event: {kind}\n" + _sse(payload)

        pending = _response_object(rid, model, body, created, "", None)
        yield event("response.created", response=pending)
        yield event("response.in_progress", response=pending)
        item = {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}
        yield event("response.output_item.added", output_index=0, item=item)
        yield event("response.content_part.added", **where,
                    part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
        parts: list[str] = []
        last = first
        async for chunk in chunks:
            if chunk.text:
                parts.append(chunk.text)
                yield event("response.output_text.delta", **where, delta=chunk.text, logprobs=[])
            last = chunk
        text = "".join(parts)
        final = _response_object(rid, model, body, created, text, last)
        part = final["output"][0]["content"][0]
        yield event("response.output_text.done", **where, text=text, logprobs=[])
        yield event("response.content_part.done", **where, part=part)
        yield event("response.output_item.done", output_index=0, item=final["output"][0])
        yield event("response.completed" if final["status"] == "completed" else "response.incomplete",
                    response=final)

    return StreamingResponse(events(), media_type="text/event-stream")
