"""The one native inference path. The OpenAI and Ollama APIs translate into ``NativeRequest``
and out of the ``Chunk`` stream it yields; nothing else runs models."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.concurrency import run_in_threadpool

from freehold.engine import Chunk, SamplingParams
from freehold.engine.tools import tool_use
from freehold.errors import UsageError
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


def run_native(manager: ModelManager, metrics: Metrics, req: NativeRequest) -> Iterator[Chunk]:
    """Yield chunks for one request; the last has finish_reason and usage."""
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
