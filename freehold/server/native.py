"""The one native inference path. The OpenAI and Ollama APIs translate into ``NativeRequest``
and out of the ``Chunk`` stream it yields; nothing else runs models."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool

from freehold.engine import Chunk, SamplingParams
from freehold.engine.tools import ToolCall, tool_use
from freehold.errors import EngineError, ToolServerError, UsageError
from freehold.knowledge import answer, knowledge_for, load_index
from freehold.server.metrics import Metrics
from freehold.server.models import ModelManager


@dataclass
class NativeRequest:
    model: str
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None  # raw completion (no chat template)
    params: SamplingParams = field(default_factory=SamplingParams)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None  # OpenAI's: "auto" (None), "none", "required" or {"function": {"name": ...}}
    keep_alive: float | None = None
    # A knowledge index to ground a chat in; None: the server's --knowledge, else the model's
    # own (tuned with --knowledge); "" or "none": no grounding.
    knowledge: str | None = None
    # The MCP servers (or agents) this request's {"type": "mcp"} tools name; None: the server's.
    tool_servers: Any = None


class Serving(Protocol):
    """What the agents' protocols need of a server (``freehold.server.FreeholdState`` is one)."""

    store: Any
    models: ModelManager
    metrics: Metrics


def outcome(manager: ModelManager, req: NativeRequest, last: Chunk) -> dict[str, Any]:
    """What the response says of an answer besides its text: the model that gave it, why it
    ended, its usage, and (when there were any) its citations and the tool calls the server ran."""
    out: dict[str, Any] = {"model": manager.resolve(req.model).name, "finish_reason": last.finish_reason,
                           "usage": {"prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens}}
    if last.grounding is not None:
        out["citations"] = last.grounding.get("citations", [])
    if last.tool_runs is not None:
        out["tool_runs"] = last.tool_runs
    return out


class ToolServers(Protocol):
    """The MCP servers a chat may run tools on (``freehold.agents.mcp_client.ToolServers``)."""

    max_calls: int

    def functions(self, label: str, allowed: Sequence[str] | None = None) -> list[dict[str, Any]]: ...

    def call(self, label: str, name: str, arguments: dict[str, Any]) -> ToolResult: ...


@dataclass(frozen=True)
class ToolResult:
    """What one tool call gave: its text for the model, whether the tool said it failed, and what
    the response shows beside it (an agent's checked card and lineage)."""

    text: str
    is_error: bool = False
    details: dict[str, Any] | None = None


def run_native(manager: ModelManager, metrics: Metrics, req: NativeRequest) -> Iterator[Chunk]:
    """Yield chunks for one request; the last has finish_reason and usage. Tools entries
    ``{"type": "mcp", "server_label": NAME}`` make it a tool loop over those MCP servers."""
    refs = [t for t in req.tools or [] if isinstance(t, dict) and t.get("type") == "mcp"]
    if refs and req.messages is not None:
        return _tool_loop(manager, metrics, req, refs)
    return _run_once(manager, metrics, req)


def _tool_loop(manager: ModelManager, metrics: Metrics, req: NativeRequest,
               refs: list[dict[str, Any]]) -> Iterator[Chunk]:
    """Generate; while the model calls MCP tools, run them (bounded in count and time) and
    generate again with their results. Text streams as it comes from every round; the calls
    made and their results are on the last chunk (``tool_runs``). A call of a tool the client
    gave ends the loop and goes back to the client, as without MCP."""
    servers: ToolServers | None = req.tool_servers or manager.tool_servers
    if servers is None:
        raise ToolServerError("this server has no MCP servers to run tools on",
                              "list them in FREEHOLD_HOME/mcp.json or 'freehold serve --mcp-config FILE'", status=400)
    theirs = [t for t in req.tools or [] if t not in refs]
    taken = {t.get("function", {}).get("name") for t in theirs}
    routes: dict[str, tuple[str, str]] = {}  # the name the model sees -> (server, the server's tool name)
    functions: list[dict[str, Any]] = []
    for ref in refs:
        label = ref.get("server_label")
        if not isinstance(label, str) or not label:
            raise UsageError('an MCP tools entry needs "server_label": the name of a configured server',
                             'e.g. {"type": "mcp", "server_label": "orders"}')
        allowed = ref.get("allowed_tools")
        for fn in servers.functions(label, allowed if isinstance(allowed, list) else None):
            tool = fn["function"]["name"]
            shown = tool if tool not in routes and tool not in taken else f"{label}.{tool}"
            routes[shown] = (label, tool)
            functions.append({"type": "function", "function": {**fn["function"], "name": shown}})
    messages = list(req.messages or [])
    runs: list[dict[str, Any]] = []
    choice = req.tool_choice
    used = [0, 0]  # prompt and completion tokens over every round
    while True:
        round_req = dataclasses.replace(req, messages=messages, tools=theirs + functions, tool_choice=choice)
        ours: list[ToolCall] = []
        text: list[str] = []
        last: Chunk | None = None
        for chunk in _run_once(manager, metrics, round_req):
            calls = chunk.tool_calls or []
            ours += [c for c in calls if c.name in routes]
            visible = [c for c in calls if c.name not in routes] or None
            text.append(chunk.text)
            if chunk.finish_reason is not None:
                last = dataclasses.replace(chunk, tool_calls=visible)
            elif chunk.text or visible or chunk.logprobs:
                yield dataclasses.replace(chunk, tool_calls=visible)
        if last is None:
            raise EngineError("the model produced no output", "retry the request")
        used[0] += last.prompt_tokens
        used[1] += last.completion_tokens
        if not ours or last.tool_calls or choice == "none":
            finish = last.finish_reason if last.tool_calls or last.finish_reason != "tool_calls" else "stop"
            yield dataclasses.replace(last, finish_reason=finish, prompt_tokens=used[0], completion_tokens=used[1],
                                      tool_runs=runs)
            return
        if len(runs) + len(ours) > servers.max_calls:  # the budget is spent: the model must answer now
            runs.append({"note": f"stopped: a request may make {servers.max_calls} tool calls"})
            choice = "none"
            continue
        messages.append({"role": "assistant", "content": "".join(text).strip(),
                         "tool_calls": [c.openai() for c in ours]})
        for call in ours:
            label, tool = routes[call.name]
            started = time.perf_counter()
            got = servers.call(label, tool, call.arguments)
            runs.append({"id": call.id, "server": label, "name": tool, "arguments": call.arguments,
                         "result": got.text, "is_error": got.is_error,
                         "seconds": round(time.perf_counter() - started, 3), **(got.details or {})})
            messages.append({"role": "tool", "tool_call_id": call.id, "name": tool, "content": got.text})
        choice = None  # after the first round the model chooses


def _run_once(manager: ModelManager, metrics: Metrics, req: NativeRequest) -> Iterator[Chunk]:
    with manager.use(req.model, req.keep_alive) as engine:
        guard = manager.guardrails.guard(engine.entry.name, engine.entry.aliases)
        if req.messages is not None:
            uses = tool_use(engine.template.source if engine.template else None, req.tools, req.tool_choice)
            checked = guard.check(messages=req.messages)  # before the model reads anything
            kb = knowledge_for(engine.entry, req.knowledge if req.knowledge is not None else manager.knowledge)
            messages = checked.messages or []
            params = req.params
            if uses is not None:
                messages, params = uses.messages(messages), uses.params(params)
            tools = uses.template_tools if uses else None
            if checked.blocked:
                chunks = guard.refuse(checked)
            elif kb:
                chunks = guard.stream(answer(engine, load_index(manager.store, kb), messages, params, tools=tools,
                                             placeholders=checked.placeholders), checked)
            else:
                chunks = guard.stream(engine.chat(messages, params, tools=tools,
                                                  placeholders=checked.placeholders), checked)
            if uses is not None:  # after the rails, so they read the calls' arguments too
                chunks = uses.parse(chunks)
        else:
            if req.prompt is None:
                raise UsageError("give either messages or a prompt", "e.g. {\"prompt\": \"Once upon a time\"}")
            checked = guard.check(prompt=req.prompt)
            chunks = (guard.refuse(checked) if checked.blocked else
                      guard.stream(engine.generate(checked.prompt or "", req.params), checked, raw=True))
        start = time.perf_counter()
        last = start
        first = True
        try:
            for chunk in chunks:
                now = time.perf_counter()
                if chunk.finish_reason is not None:
                    metrics.tokens.labels("in").inc(chunk.prompt_tokens)
                    metrics.tokens.labels("out").inc(chunk.completion_tokens)
                elif first:
                    metrics.ttft.observe(now - start)
                    first = False
                else:
                    metrics.itl.observe(now - last)
                last = now
                yield chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


async def stream(gen: Iterator[Chunk]) -> tuple[Chunk, AsyncIterator[Chunk]]:
    """Pull the first chunk now (so errors become HTTP errors), then stream the rest.

    Each ``next`` runs in the threadpool; when the client goes away the iterator is closed,
    which cancels the sequence and frees its decoding slot at once.
    """
    def pull() -> Chunk | None:
        return next(gen, None)

    first = await run_in_threadpool(pull)
    if first is None:
        raise UsageError("the model produced no output", "retry the request")

    async def rest() -> AsyncIterator[Chunk]:
        chunk: Chunk | None = first
        try:
            while chunk is not None:
                yield chunk
                if chunk.finish_reason is not None:
                    return
                chunk = await run_in_threadpool(pull)
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                await run_in_threadpool(close)

    return first, rest()


def drain(gen: Iterator[Chunk]) -> tuple[str, Chunk, list[dict[str, Any]] | None]:
    """Run a request to the end; returns (text, last chunk, logprob entries or None). The last
    chunk holds every tool call the reply made."""
    parts = []
    last = Chunk("")
    lps: list[dict[str, Any]] | None = None
    calls = []
    try:
        for chunk in gen:
            parts.append(chunk.text)
            if chunk.logprobs is not None:
                lps = (lps or []) + chunk.logprobs
            calls += chunk.tool_calls or []
            last = chunk
    finally:
        close = getattr(gen, "close", None)
        if close is not None:
            close()
    return "".join(parts), replace(last, tool_calls=calls or None), lps


async def collect(gen: Iterator[Chunk]) -> tuple[str, Chunk, list[dict[str, Any]] | None]:
    """``drain`` in the threadpool (a request's decoding blocks)."""
    return await run_in_threadpool(drain, gen)
