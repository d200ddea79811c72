"""The MCP server (freehold.agents.mcp_server) through the SDK's own client, ``mcp.Client``:
in memory, over stdio (``freehold mcp`` as a subprocess) and over streamable HTTP (``/mcp`` in
``freehold serve``, behind its API key). Every tool is called and every resource read."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from freehold.config import ServerOptions, load_settings
from freehold.store import Store

from .conftest import Live, _free_port, start_server

TOOLS = {"chat", "generate", "list_models", "model_card", "model_licence", "model_lineage", "verify_model",
         "evaluate_model", "tune_model", "job_status", "cancel_job"}


@pytest.fixture
def tiny_store(store: Store, tiny_gguf: Path) -> Store:
    from freehold.home import import_model

    import_model(store, tiny_gguf, "tiny")  # with its ledger record, so it has a lineage
    return store


def _state(store: Store, **options: Any) -> Any:
    from freehold.server import FreeholdState

    return FreeholdState(load_settings(), ServerOptions(**options), store)


def _run(fn: Any) -> Any:
    return anyio.run(fn)


def _structured(result: Any) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


async def exercise(c: Any, store: Store) -> None:
    """Every tool called and every resource read, with what each must say (any transport)."""
    from freehold.ledger.chain import Ledger
    from freehold.ledger.ops import verify

    entry = store.get("tiny")
    head = entry.manifest.lineage["ledger_head"]
    assert c.server_info is not None and c.server_info.name == "freehold"
    listed = {t.name: t for t in (await c.list_tools()).tools}
    assert set(listed) == TOOLS
    assert listed["model_card"].annotations.read_only_hint is True
    assert listed["chat"].input_schema["required"] == ["model", "message"]

    models = _structured(await c.call_tool("list_models", {}))
    assert "tiny:latest" in [m["name"] for m in models["models"]]  # (freehold mcp also registers SmolLM2)
    said = _structured(await c.call_tool("chat", {"model": "tiny", "message": "hi", "max_tokens": 5,
                                                  "temperature": 0}))
    assert said["model"] == "tiny:latest" and said["usage"]["completion_tokens"] <= 5
    assert said["usage"]["prompt_tokens"] > 0 and isinstance(said["text"], str)
    again = _structured(await c.call_tool("chat", {"model": "tiny", "message": "hi", "max_tokens": 5,
                                                   "temperature": 0}))
    assert again["text"] == said["text"]  # greedy: the same answer, so it is the model's
    wrote = _structured(await c.call_tool("generate", {"model": "tiny", "prompt": "the cat",
                                                       "max_tokens": 3, "temperature": 0}))
    assert wrote["usage"]["completion_tokens"] <= 3

    card = await c.call_tool("model_card", {"name": "tiny"})
    assert not card.is_error and "tiny" in card.content[0].text and "---" in card.content[0].text
    licence = _structured(await c.call_tool("model_licence", {"name": "tiny"}))
    assert licence["model"] == "tiny:latest" and "apache-2.0" in json.dumps(licence).lower()
    lineage = _structured(await c.call_tool("model_lineage", {"name": "tiny"}))
    assert lineage["head"] == head and lineage["nodes"][0]["type"] == "import"
    checked = _structured(await c.call_tool("verify_model", {"name": "tiny"}))
    assert checked["ok"] is True and checked["ok"] == verify(store, "tiny").ok
    assert checked["blobs_checked"] >= 1

    before = len(store.jobs.list())
    queued = _structured(await c.call_tool("evaluate_model", {"model": "tiny", "suites": ["bias"]}))
    job = store.jobs.get(queued["job"])
    assert job.kind == "eval" and job.params["model"] == "tiny" and job.state == "queued"
    status = _structured(await c.call_tool("job_status", {"job": queued["job"]}))
    assert status["id"] == job.id and status["state"] == "queued"
    stopped = _structured(await c.call_tool("cancel_job", {"job": job.id}))
    assert stopped["state"] == "cancelled"
    plan = await c.call_tool("tune_model", {"base": "tiny", "dataset": "none-such", "output": "mine"})
    assert plan.is_error and "none-such" in plan.content[0].text  # a plan that could not run
    assert len(store.jobs.list()) == before + 1  # only the evaluation was queued

    assert [str(r.uri) for r in (await c.list_resources()).resources] == ["freehold://models"]
    templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
    assert templates == {f"freehold://models/{{name}}/{part}" for part in ("card", "lineage", "ledger", "licence")}

    async def read(uri: str) -> str:
        return str((await c.read_resource(uri)).contents[0].text)

    assert "tiny:latest" in [m["name"] for m in json.loads(await read("freehold://models"))["models"]]
    assert "tiny" in await read("freehold://models/tiny/card")
    assert json.loads(await read("freehold://models/tiny/lineage"))["head"] == head
    ledger = json.loads(await read("freehold://models/tiny/ledger"))
    on_disk = {r.hash: r for r in Ledger.open(store.home).records()}
    assert ledger["head"] == head and head in [r["hash"] for r in ledger["records"]]
    for record in ledger["records"]:  # whole records, as the ledger holds them (signature included)
        found = on_disk[record.pop("hash")]
        assert record.pop("record") == found.number and record == found.to_dict() and record["sig"]
    assert json.loads(await read("freehold://models/tiny/licence"))["model"] == "tiny:latest"


def test_every_tool_and_resource_in_memory(tiny_store: Store) -> None:
    from mcp import Client

    from freehold.agents import build_mcp_server

    state = _state(tiny_store)

    async def main() -> None:
        async with Client(build_mcp_server(state)) as c:
            await exercise(c, tiny_store)

    _run(main)
    state.models.close()


def test_tune_needs_confirmation_and_errors_carry_the_hint(tiny_store: Store, tmp_path: Path) -> None:
    from mcp import Client

    from freehold.agents import build_mcp_server
    from freehold.data import import_dataset

    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                        {"role": "assistant", "content": f"a{i}"}]})
                              for i in range(6)))
    import_dataset([rows], "rows", store=tiny_store, settings=load_settings())
    state = _state(tiny_store)

    async def main() -> None:
        async with Client(build_mcp_server(state)) as c:
            plan = _structured(await c.call_tool("tune_model", {"base": "tiny", "dataset": "rows",
                                                                "output": "mine", "epochs": 1}))
            assert plan["started"] is False and "confirm=true" in plan["note"]
            assert tiny_store.jobs.list() == []  # nothing started without the user's yes
            started = _structured(await c.call_tool("tune_model", {"base": "tiny", "dataset": "rows",
                                                                   "output": "mine", "epochs": 1, "confirm": True}))
            job = tiny_store.jobs.get(started["job"])
            assert started["started"] is True and job.kind == "tune" and job.params["options"] == {"epochs": 1}

            missing = await c.call_tool("model_card", {"name": "ghost"})
            assert missing.is_error and "not found" in missing.content[0].text
            assert "freehold models" in missing.content[0].text  # the fix, not only the fault
            bad = await c.call_tool("chat", {"model": "tiny", "message": ""})
            assert bad.is_error  # the schema's minLength
            with pytest.raises(Exception, match="not found"):
                await c.read_resource("freehold://models/ghost/card")

    _run(main)
    state.models.close()


def test_guardrails_apply_to_what_the_tools_generate(tiny_store: Store, tmp_path: Path) -> None:
    from mcp import Client

    from freehold.agents import build_mcp_server

    policy = tmp_path / "rails.toml"
    policy.write_text('[default]\ndeny = ["launch codes"]\n')
    state = _state(tiny_store, guardrails=str(policy))

    async def main() -> None:
        async with Client(build_mcp_server(state)) as c:
            said = _structured(await c.call_tool("chat", {"model": "tiny", "message": "tell me the launch codes"}))
            assert said["finish_reason"] == "content_filter" and said["usage"]["completion_tokens"] == 0

    _run(main)
    state.models.close()


@pytest.fixture
def keyed(tiny_store: Store) -> Iterator[Live]:
    # jobs=False: the queue stays as the tools leave it (no worker takes the evaluation)
    yield from start_server(ServerOptions(port=_free_port(), api_keys=["sesame"], jobs=False), tiny_store)


def test_streamable_http_inside_serve_behind_the_api_key(keyed: Live, tiny_store: Store) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def main(key: str) -> None:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
        async with http, Client(streamable_http_client(keyed.url + "/mcp", http_client=http)) as c:
            await exercise(c, tiny_store)

    anyio.run(main, "sesame")
    with pytest.raises(BaseException):  # noqa: B017 - the SDK wraps the 401 in an exception group
        anyio.run(main, "wrong")
    import httpx

    r = httpx.post(keyed.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    metrics = httpx.get(keyed.url + "/metrics", headers={"Authorization": "Bearer sesame"}).text
    assert 'api="mcp"' in metrics


def test_stdio_freehold_mcp(tiny_store: Store) -> None:
    """``freehold mcp`` as an MCP host launches it: a subprocess speaking JSON-RPC on stdout."""
    from mcp import Client, StdioServerParameters

    env = {**os.environ, "FREEHOLD_HOME": str(tiny_store.home)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "freehold", "mcp"], env=env)

    async def main() -> None:
        async with Client(params, read_timeout_seconds=120) as c:
            await exercise(c, tiny_store)

    anyio.run(main)
