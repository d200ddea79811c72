"""A2A over HTTP (JSON-RPC): each declared agent at ``/a2a/NAME``, its signed card at
``/a2a/NAME/.well-known/agent-card.json``, the default agent's also at
``/.well-known/agent-card.json`` (``freehold.agents.a2a``). Cards are public (discovery); the
agents themselves are behind the server's API keys like every API."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from freehold.agents.a2a import CARD_PATH, card_json

router = APIRouter()


def _agents(request: Request) -> Any:
    return request.app.state.freehold.agents


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get(CARD_PATH, include_in_schema=False)
async def default_card(request: Request) -> JSONResponse:
    agents = _agents(request)
    return JSONResponse(card_json(agents.card(agents.default, _base(request))))


@router.get("/a2a/{agent}" + CARD_PATH, include_in_schema=False)
async def agent_card(agent: str, request: Request) -> JSONResponse:
    return JSONResponse(card_json(_agents(request).card(agent, _base(request))))


@router.post("/a2a/{agent}", include_in_schema=False)
async def agent_rpc(agent: str, request: Request) -> Any:
    """A2A JSON-RPC: SendMessage, SendStreamingMessage, GetTask, ListTasks, CancelTask (with the
    ``A2A-Version: 1.0`` header), and the v0.3 names message/send, message/stream, tasks/get,
    tasks/cancel."""
    return await _agents(request).dispatcher(agent, _base(request)).handle_requests(await _versioned(request))


async def _versioned(request: Request) -> Request:
    """A request naming an A2A 1.0 method (SendMessage, GetTask: the 1.0 names are PascalCase, the
    v0.3 ones are paths like message/send) but no ``A2A-Version`` header is taken as 1.0: the SDK
    would take it as 0.3 and refuse it, and some clients (the A2A TCK) send no header."""
    if "a2a-version" in request.headers:
        return request
    body = await request.body()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    first = data[0] if isinstance(data, list) and data else data
    method = first.get("method") if isinstance(first, dict) else None
    if not (isinstance(method, str) and method[:1].isupper()):
        return Request(request.scope, receive=_replay(body))
    scope = {**request.scope, "headers": [*request.scope["headers"], (b"a2a-version", b"1.0")]}
    return Request(scope, receive=_replay(body))


def _replay(body: bytes) -> Any:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
