"""A2A over HTTP (JSON-RPC): each declared agent at ``/a2a/NAME``, its signed card at
``/a2a/NAME/.well-known/agent-card.json``, the default agent's also at
``/.well-known/agent-card.json`` (``freehold.agents.a2a``). Cards are public (discovery); the
agents themselves are behind the server's API keys like every API."""

from __future__ import annotations

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
    return await _agents(request).dispatcher(agent, _base(request)).handle_requests(request)
