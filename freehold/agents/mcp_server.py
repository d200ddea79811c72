"""The MCP server: Freehold's models, their cards, licences and lineage, verification and the
jobs an assistant may start, as Model Context Protocol tools and resources (``mcp`` 2.x SDK,
``MCPServer``).

    server = build_mcp_server(serving)     # serving: the store, the ModelManager, the metrics
    await server.run_stdio_async()         # freehold mcp
    server.streamable_http_app(...)        # /mcp inside freehold serve, behind its API key

Generation goes through the native path (``freehold.server.native.run_native``), so a tool's
answer has the same guardrails, licence checks and grounding as ``/v1/chat/completions``. Work
that takes minutes (an evaluation, a tune) is queued as a job, returned by id; a tune starts
only when the call says ``confirm: true``, because it costs the machine an hour.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import BaseModel, Field

from freehold import __version__
from freehold.engine import SamplingParams
from freehold.errors import FreeholdError
from freehold.server.native import Serving

INSTRUCTIONS = (
    "Freehold serves models its owner runs on their own machine, with a signed ledger of what went "
    "into each. Use list_models to see them, chat to ask one, model_card / model_licence / "
    "model_lineage / verify_model to check what a model is and where it came from, evaluate_model to "
    "queue an evaluation, and job_status to follow it. tune_model queues a fine-tune only with "
    "confirm=true: ask the user first.")


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


def _translating(error: type[Exception]) -> Callable[[Any], Any]:
    """A tool's or resource's Freehold errors reach the caller as ``error`` (the SDK's ToolError
    or ResourceError): what is wrong, and the fix."""
    def decorate(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except FreeholdError as exc:
                raise error(f"{exc.message} ({exc.hint})" if exc.hint else exc.message) from exc

        return wrapper

    return decorate


guarded = _translating(ToolError)
resource_guarded = _translating(ResourceError)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def build_mcp_server(serving: Serving) -> Any:
    """An ``MCPServer`` over ``serving``'s store and models (tools and resources below)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    from freehold.server.native import NativeRequest, drain, outcome, run_native

    store = serving.store
    server = MCPServer("freehold", title="Freehold", version=__version__, instructions=INSTRUCTIONS,
                       website_url=None, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def answer(req: NativeRequest) -> dict[str, Any]:
        text, last, _ = drain(run_native(serving.models, serving.metrics, req))
        return {**outcome(serving.models, req, last), "text": text}

    # What a model is, for the tools and the resources alike.
    def card_of(name: str) -> str:
        from freehold.evals.card import card_text

        return card_text(store, name)

    def licence_of(name: str) -> dict[str, Any]:
        from freehold.models import licence_document

        entry = store.get(name)
        return {"model": entry.name, **licence_document(store, entry)}

    def lineage_of(name: str) -> dict[str, Any]:
        from freehold.ledger.ops import lineage

        return lineage(store, name).to_dict()

    # tools: asking a model ---------------------------------------------------------------
    @server.tool(description="Ask a model (by name; 'default' is the deployed one) and get its answer. "
                             "The server's guardrails, licence checks and knowledge apply.")
    @guarded
    def chat(model: Annotated[str, Field(description="the model's name, e.g. 'smollm2' or 'default'")],
             message: Annotated[str, Field(description="what to ask", min_length=1)],
             system: Annotated[str | None, Field(description="an optional system prompt")] = None,
             history: Annotated[list[Message] | None, Field(description="earlier turns, oldest first")] = None,
             max_tokens: Annotated[int, Field(ge=1, le=4096)] = 256,
             temperature: Annotated[float | None, Field(ge=0, le=2)] = None) -> dict[str, Any]:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            m.model_dump() for m in history or []] + [{"role": "user", "content": message}]
        return answer(NativeRequest(model, messages=messages,
                                    params=SamplingParams.given(max_tokens=max_tokens, temperature=temperature)))

    @server.tool(description="Continue a text with a model (plain completion, no chat template).")
    @guarded
    def generate(model: Annotated[str, Field(description="the model's name")],
                 prompt: Annotated[str, Field(min_length=1)],
                 max_tokens: Annotated[int, Field(ge=1, le=4096)] = 128,
                 temperature: Annotated[float | None, Field(ge=0, le=2)] = None) -> dict[str, Any]:
        return answer(NativeRequest(model, prompt=prompt,
                                    params=SamplingParams.given(max_tokens=max_tokens, temperature=temperature)))

    # tools: what a model is ----------------------------------------------------------------
    @server.tool(description="The models in this store: name, family, size, licence, origin.",
                 annotations=read_only)
    @guarded
    def list_models() -> dict[str, Any]:
        from freehold.models import deployed, describe

        return {"models": [describe(store, m) for m in store.list()], "default": deployed(store)}

    @server.tool(description="A model's card (Hugging Face README format): what it is, how it was made, "
                             "its evaluations and licence.", annotations=read_only)
    @guarded
    def model_card(name: str) -> str:
        return card_of(name)

    @server.tool(description="What licence binds a model (inherited from its base and data), its "
                             "obligations and use restrictions, and whether this store accepted it.",
                 annotations=read_only)
    @guarded
    def model_licence(name: str) -> dict[str, Any]:
        return licence_of(name)

    @server.tool(description="Where a model came from: the signed ledger records from its sources "
                             "(base model, datasets) through training to its weights.", annotations=read_only)
    @guarded
    def model_lineage(name: str) -> dict[str, Any]:
        return lineage_of(name)

    @server.tool(description="Check a model's lineage: the ledger's hash chain and signatures, and the "
                             "digests of every blob, dataset and checkpoint it names.", annotations=read_only)
    @guarded
    def verify_model(name: str) -> dict[str, Any]:
        from freehold.ledger.ops import verify

        report = verify(store, name)
        return {"ok": report.ok, **report.to_dict()}

    # tools: jobs -----------------------------------------------------------------------------
    def queued(kind: str, params: dict[str, Any]) -> dict[str, Any]:
        from freehold.jobs import submit

        job = submit(store, kind, params)
        return {"job": job.id, "kind": job.kind, "state": job.state,
                "note": "queued: it runs in 'freehold serve' on this store; follow it with job_status"}

    @server.tool(description="Queue an evaluation of a model (quality against its base on held-out data, "
                             "safety, bias); returns the job id.")
    @guarded
    def evaluate_model(model: str,
                       suites: Annotated[list[str] | None, Field(description="e.g. ['quality', 'safety']")] = None,
                       data: Annotated[str | None, Field(description="a dataset's name (held-out split)")] = None,
                       against: Annotated[str | None, Field(description="compare with this model")] = None,
                       limit: Annotated[int | None, Field(ge=1)] = None) -> dict[str, Any]:
        return queued("eval", {"model": model, "suites": suites, "data": data, "against": against,
                               "limit": limit})

    @server.tool(description="Queue a fine-tune (LoRA) of a base model on a dataset. It takes the machine "
                             "for a long time: without confirm=true nothing starts and the plan is returned; "
                             "ask the user before confirming.",
                 annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    @guarded
    def tune_model(base: str, dataset: str, output: str,
                   epochs: Annotated[float | None, Field(gt=0, le=20)] = None,
                   confirm: Annotated[bool, Field(description="true only after the user agreed")] = False,
                   ) -> dict[str, Any]:
        from freehold.jobs.base import job_kind

        options = {"epochs": epochs} if epochs is not None else {}
        params = {"base": base, "dataset": dataset, "output": output, "options": options}
        if not confirm:
            parsed = job_kind("tune").parse(params)
            check = getattr(parsed, "check", None)
            if check is not None:
                check(store)  # a plan that could not run is an error now, not after confirming
            return {"started": False, "plan": params,
                    "note": "nothing started: ask the user, then call again with confirm=true"}
        return {"started": True, **queued("tune", params)}

    @server.tool(description="A job's state and latest progress (stage, counts, ETA), or its result.",
                 annotations=read_only)
    @guarded
    def job_status(job: Annotated[str, Field(description="the job's id (or a unique part of it)")]
                   ) -> dict[str, Any]:
        return store.jobs.get(job).to_dict()

    @server.tool(description="Ask a queued or running job to stop (a tune checkpoints first).")
    @guarded
    def cancel_job(job: str) -> dict[str, Any]:
        from freehold.jobs import cancel

        return cancel(store, job).to_dict()

    # resources ---------------------------------------------------------------------------------
    @server.resource("freehold://models", name="models", description="The models in this store",
                     mime_type="application/json")
    def models_resource() -> str:
        return _json(list_models())

    @server.resource("freehold://models/{name}/card", name="model card", mime_type="text/markdown",
                     description="A model's card (Hugging Face README format)")
    @resource_guarded
    def card_resource(name: str) -> str:
        return card_of(name)

    @server.resource("freehold://models/{name}/lineage", name="model lineage", mime_type="application/json",
                     description="A model's lineage: ledger records from sources to weights, and edges")
    @resource_guarded
    def lineage_resource(name: str) -> str:
        return _json(lineage_of(name))

    @server.resource("freehold://models/{name}/ledger", name="model ledger records", mime_type="application/json",
                     description="The signed ledger records a model's lineage names, whole (hashes, "
                                 "signatures, payloads), to check offline")
    @resource_guarded
    def ledger_resource(name: str) -> str:
        from freehold.ledger.ops import lineage

        found = lineage(store, name)
        return _json({"model": found.name, "head": found.head.hash,
                      "records": [{"record": r.number, "hash": r.hash, **r.to_dict()}
                                  for r in [*found.nodes, *found.attached]]})

    @server.resource("freehold://models/{name}/licence", name="model licence", mime_type="application/json",
                     description="A model's licence expression, terms, obligations and restrictions")
    @resource_guarded
    def licence_resource(name: str) -> str:
        return _json(licence_of(name))

    return server
