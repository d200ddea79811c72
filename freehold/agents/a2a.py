"""A2A agents (``a2a-sdk`` 1.x, A2A 1.0 with the v0.3 method names kept working): a model plus a
system prompt, tools (MCP servers), knowledge and the server's guardrails, declared in a small
TOML file, each served at ``/a2a/NAME`` (JSON-RPC) with its card at
``/a2a/NAME/.well-known/agent-card.json``; the default agent's card is also at
``/.well-known/agent-card.json``.

    # FREEHOLD_HOME/agents.toml (or freehold serve --agents FILE)
    [agents.support]
    model = "acme-support"
    description = "Answers Acme Outdoor's customers about orders, returns and repairs"
    system = "You are Maya from Acme Outdoor. Answer briefly and kindly."
    tools = ["orders"]          # MCP servers of mcp.json the agent may call
    knowledge = "acme-kb"       # ground its answers (default: the model's own)
    default = true

Without a file there is one agent, ``assistant``, on the deployed model. Each card carries the
answering model's manifest digest, ledger head and licence in an extension
(``LINEAGE_EXTENSION``) and is signed with the store's Ed25519 identity (JWS, EdDSA), so a client
can check whose weights answer before it hands over a task. Generation is the native path
(``server.native.run_native``), so an agent has the same guardrails, licence checks and tool loop
as the OpenAI and Ollama APIs. Tasks are kept in the store's catalog (``a2a_tasks``): a restart
loses none; a cancel stops the decoding at the next token.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from a2a.server.agent_execution import AgentExecutor
from a2a.server.tasks import TaskStore

from freehold import __version__
from freehold.agents.mcp_client import describe_exception
from freehold.errors import FreeholdError, UsageError
from freehold.server.native import Serving
from freehold.store import Store

LINEAGE_EXTENSION = "urn:freehold:a2a:lineage:v1"
DEFAULT_AGENT = "assistant"
CARD_PATH = "/.well-known/agent-card.json"


@dataclass(frozen=True)
class AgentSpec:
    name: str
    model: str = "default"
    description: str = ""
    system: str | None = None
    tools: tuple[str, ...] = ()  # MCP server labels (mcp.json)
    knowledge: str | None = None
    tool_choice: str | None = None  # OpenAI's, for the first round ("required": always use a tool)
    max_tokens: int = 512
    temperature: float | None = None  # None: the model's default (0: the same answer every time)
    examples: tuple[str, ...] = ()  # example requests, shown on the card's skill
    delegates: tuple[str, ...] = ()  # URLs of other A2A agents (.../a2a/NAME) it may hand a question to
    delegate_key_env: str | None = None  # the environment variable holding the key the delegates take
    default: bool = False

    @property
    def summary(self) -> str:
        return self.description or f"Chat with the model {self.model} on a Freehold server"


_KEYS: dict[str, type] = {"model": str, "description": str, "system": str, "knowledge": str, "tool_choice": str,
                          "max_tokens": int, "default": bool, "delegate_key_env": str, "temperature": float}
_LISTS = ("tools", "examples", "delegates")


def load_agents(path: Path | None, home: Path) -> dict[str, AgentSpec]:
    """The declared agents (every problem in the file at once), the default one first; without
    a file, the built-in ``assistant`` on the deployed model."""
    file = path or home / "agents.toml"
    if path is None and not file.exists():
        return {DEFAULT_AGENT: AgentSpec(DEFAULT_AGENT, default=True)}
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the agents file {file}: {exc.strerror}", "check the path") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the agents file {file} is not TOML: {exc}", "see docs/agents.md for its shape") from exc
    agents = data.get("agents")
    problems = [f"unknown top-level key {k!r}" for k in data if k != "agents"]
    if not isinstance(agents, dict) or not agents:
        raise UsageError(f"the agents file {file} declares no [agents.NAME] table", "see docs/agents.md")
    out: dict[str, AgentSpec] = {}
    for name, spec in agents.items():
        if not isinstance(spec, dict):
            problems.append(f"{name}: must be a table")
            continue
        if not name.replace("-", "").replace("_", "").isalnum():
            problems.append(f"{name}: an agent's name is letters, digits, - and _ (it is in its URL)")
        values: dict[str, Any] = {}
        for key, value in spec.items():
            if key == "temperature" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)  # TOML reads "temperature = 0" as an integer
            if key in _KEYS:
                in_range = not isinstance(value, int) or 1 <= value <= 8192
                wrong = not isinstance(value, _KEYS[key]) or (key == "max_tokens" and not in_range)
                if wrong:
                    problems.append(f"{name}.{key}: must be {_KEYS[key].__name__}"
                                    + (" from 1 to 8192" if key == "max_tokens" else ""))
                values[key] = value
            elif key in _LISTS:
                if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    problems.append(f"{name}.{key}: must be a list of strings")
                values[key] = tuple(value) if isinstance(value, list) else ()
            else:
                problems.append(f"{name}: unknown key {key!r}")
        bad_urls = [u for u in values.get("delegates", ()) if not u.startswith(("http://", "https://"))]
        if bad_urls:
            problems.append(f"{name}.delegates: {bad_urls[0]!r} is not an http(s) URL of an A2A agent")
        if values.get("tool_choice") not in (None, "auto", "required", "none"):
            problems.append(f"{name}.tool_choice: auto, required or none")
        out[name] = AgentSpec(name, **values)
    defaults = [a for a in out.values() if a.default]
    if len(defaults) > 1:
        problems.append(f"only one agent may be the default ({', '.join(a.name for a in defaults)} say so)")
    if problems:
        raise UsageError(f"the agents file {file} is not valid: " + "; ".join(problems), "see docs/agents.md")
    first = defaults[0].name if defaults else next(iter(out))
    return {first: out[first], **{k: v for k, v in out.items() if k != first}}


# the task store -------------------------------------------------------------------------------
class CatalogTaskStore(TaskStore):
    """The SDK's ``TaskStore`` over the store's catalog (``freehold.store.agent_tasks``)."""

    def __init__(self, store: Store, agent: str) -> None:
        self.store, self.agent = store, agent

    @staticmethod
    def owner(context: Any) -> str:
        user = getattr(context, "user", None)
        return str(getattr(user, "user_name", "") or "")

    async def save(self, task: Any, context: Any) -> None:
        updated = task.status.timestamp.ToNanoseconds() if task.status.HasField("timestamp") else time.time_ns()
        self.store.agent_tasks.put(self.owner(context), self.agent, task.id, task.context_id,
                                   int(task.status.state), updated, task.SerializeToString())

    async def get(self, task_id: str, context: Any) -> Any:
        from a2a.types import Task

        body = self.store.agent_tasks.get(self.owner(context), self.agent, task_id)
        return Task.FromString(body) if body is not None else None

    async def delete(self, task_id: str, context: Any) -> None:
        self.store.agent_tasks.delete(self.owner(context), self.agent, task_id)

    async def list(self, params: Any, context: Any) -> Any:
        from a2a.types import ListTasksResponse, Task

        from freehold.store.agent_tasks import TaskQuery

        size = params.page_size or 50
        offset = int(params.page_token) if params.page_token.isdigit() else 0
        after = (params.status_timestamp_after.ToNanoseconds() if params.HasField("status_timestamp_after")
                 else None)
        bodies, total = self.store.agent_tasks.list(TaskQuery(
            self.owner(context), self.agent, params.context_id or None, int(params.status) or None, after,
            offset, size))
        more = offset + len(bodies) < total
        return ListTasksResponse(tasks=[Task.FromString(b) for b in bodies], page_size=size, total_size=total,
                                 next_page_token=str(offset + len(bodies)) if more else "")

    async def history(self, context: Any, context_id: str, limit: int = 8) -> builtins.list[dict[str, str]]:
        """The earlier turns of a conversation (tasks of one context that completed), as chat messages."""
        from a2a.types import Role, Task, TaskState

        from freehold.store.agent_tasks import TaskQuery

        bodies, _ = self.store.agent_tasks.list(TaskQuery(self.owner(context), self.agent, context_id,
                                                          int(TaskState.TASK_STATE_COMPLETED), None, 0, limit))
        turns: list[dict[str, str]] = []
        for task in reversed([Task.FromString(b) for b in bodies]):
            asked = next((m for m in task.history if m.role == Role.ROLE_USER), None)
            if asked is not None and task.status.HasField("message"):
                turns += [{"role": "user", "content": _text(asked)},
                          {"role": "assistant", "content": _text(task.status.message)}]
        return turns


def _text(message: Any) -> str:
    return "".join(p.text for p in message.parts if p.HasField("text")) if message is not None else ""


# the executor ---------------------------------------------------------------------------------
class ModelAgent(AgentExecutor):
    """The SDK's ``AgentExecutor`` for one declared agent: the native path in a thread, its text
    streamed as the task's ``answer`` artifact; a cancel stops the decoding at the next token."""

    def __init__(self, serving: Serving, spec: AgentSpec, tasks: CatalogTaskStore, tool_servers: Any = None) -> None:
        self.serving, self.spec, self.tasks, self.tool_servers = serving, spec, tasks, tool_servers
        self._stops: dict[str, threading.Event] = {}

    async def execute(self, context: Any, event_queue: Any) -> None:
        from a2a.helpers import new_task_from_user_message, new_text_part
        from a2a.server.tasks import TaskUpdater

        task = context.current_task
        if not context.get_user_input().strip():
            from a2a.utils.errors import InvalidParamsError

            raise InvalidParamsError(message="the message has no text: send the question as a text part")
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        stop = self._stops[task.id] = threading.Event()
        history = await self.tasks.history(context.call_context, task.context_id)
        messages = ([{"role": "system", "content": self.spec.system}] if self.spec.system else []) + history + [
            {"role": "user", "content": context.get_user_input()}]
        queue: asyncio.Queue[Any] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        worker = threading.Thread(target=self._generate, args=(messages, stop, loop, queue), daemon=True,
                                  name=f"a2a-{self.spec.name}")
        worker.start()
        parts: list[str] = []
        pending: Any = None
        try:
            while True:
                item = pending if pending is not None else await queue.get()
                pending = None
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, dict):  # the end: what the native path said of the answer
                    break
                while not queue.empty():  # what came while the last update was written goes as one
                    more = queue.get_nowait()
                    if not isinstance(more, str):
                        pending = more
                        break
                    item += more
                await updater.add_artifact([new_text_part(item)], artifact_id="answer", name="answer",
                                           append=bool(parts))
                parts.append(item)
            meta = {k: v for k, v in item.items() if v}
            if stop.is_set():
                return  # cancelled: the SDK records it
            await updater.complete(updater.new_agent_message([new_text_part("".join(parts))],
                                                             metadata={"freehold": meta} if meta else None))
        except FreeholdError as exc:
            text = exc.message + (f" ({exc.hint})" if exc.hint else "")
            await updater.failed(updater.new_agent_message([new_text_part(text)],
                                                           metadata={"freehold": {"error": exc.to_dict()}}))
        finally:
            stop.set()  # also when the SDK cancels this coroutine: the thread stops decoding
            self._stops.pop(task.id, None)

    def _generate(self, messages: list[dict[str, Any]], stop: threading.Event, loop: asyncio.AbstractEventLoop,
                  queue: asyncio.Queue[Any]) -> None:
        from freehold.engine import SamplingParams
        from freehold.server.native import NativeRequest, outcome, run_native

        spec = self.spec
        labels = [*spec.tools, *(f"{DELEGATE}{url}" for url in spec.delegates)]
        params = SamplingParams.given(max_tokens=spec.max_tokens, temperature=spec.temperature)
        req = NativeRequest(answering_model(self.serving.store, spec.model), messages=messages, params=params,
                            tools=[{"type": "mcp", "server_label": t} for t in labels] or None,
                            tool_choice=spec.tool_choice, knowledge=spec.knowledge,
                            tool_servers=self.tool_servers.asking(messages[-1]["content"])
                            if isinstance(self.tool_servers, AgentTools) else self.tool_servers)
        put = loop.call_soon_threadsafe
        gen = None
        try:
            gen = run_native(self.serving.models, self.serving.metrics, req)
            for chunk in gen:
                if stop.is_set():
                    break
                if chunk.text:
                    put(queue.put_nowait, chunk.text)
                if chunk.finish_reason is not None:
                    put(queue.put_nowait, outcome(self.serving.models, req, chunk))
                    return
            put(queue.put_nowait, {"finish_reason": "cancelled"})
        except Exception as exc:  # handed to the task, which fails with it
            put(queue.put_nowait, exc)
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()  # frees the decoding slot at once

    async def cancel(self, context: Any, event_queue: Any) -> None:
        from a2a.server.tasks import TaskUpdater

        stop = self._stops.get(context.task_id)
        if stop is not None:
            stop.set()
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


# delegation ------------------------------------------------------------------------------------
DELEGATE = "a2a:"  # a tools label naming another agent by its URL, beside the MCP servers' labels


class AgentTools:
    """The tools an agent's tool loop may call: the MCP servers (``mcp_client.ToolServers``), and
    each delegate agent as one function, ``ask_NAME(message)``, answered over A2A. Before a
    question goes out the remote card is fetched and its signature checked (with the key its
    lineage extension names); a card whose signature fails is refused. What the card says of
    the answering model goes into the response beside the answer (``remote``)."""

    def __init__(self, mcp: Any, home: Path, timeout: float = 60.0, max_calls: int = 8,
                 key_env: str | None = None) -> None:
        self.mcp, self.home, self.timeout = mcp, home, timeout
        self.max_calls = getattr(mcp, "max_calls", max_calls)
        self.key_env = key_env
        self._cards: dict[str, tuple[Any, dict[str, Any]]] = {}
        self.question = ""  # the user's, sent on when the model's call leaves the message empty

    def asking(self, question: str) -> AgentTools:
        """These tools for one task (its question is the fallback message to a delegate)."""
        import copy

        tools = copy.copy(self)
        tools.question = question
        return tools

    def functions(self, label: str, allowed: Any = None) -> builtins.list[dict[str, Any]]:
        if not label.startswith(DELEGATE):
            if self.mcp is None:
                from freehold.errors import ToolServerError

                raise ToolServerError(f"no MCP server named {label!r} is configured", "add it to mcp.json",
                                      status=400)
            return list(self.mcp.functions(label, allowed))
        card, _ = self._card(label[len(DELEGATE):])
        skills = "; ".join(f"{s.name}: {s.description}" for s in card.skills if s.description)
        return [{"type": "function", "function": {
            "name": _tool_name(card.name), "description": f"Ask the agent {card.name!r}: {card.description}"
            + (f" ({skills})" if skills else ""),
            "parameters": {"type": "object", "properties": {"message": {"type": "string"}},
                           "required": ["message"]}}}]

    def call(self, label: str, name: str, arguments: dict[str, Any]) -> Any:
        from freehold.server.native import ToolResult

        if not label.startswith(DELEGATE):
            return self.mcp.call(label, name, arguments)
        url = label[len(DELEGATE):]
        card, checked = self._card(url)
        text = anyio.run(self._ask, url, str(arguments.get("message") or "").strip() or self.question)
        return ToolResult(text, details={"remote": {"agent": card.name, "url": url, **checked}})

    def _headers(self) -> dict[str, str]:
        import os

        key = os.environ.get(self.key_env) if self.key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _card(self, url: str) -> tuple[Any, dict[str, Any]]:
        if url not in self._cards:
            self._cards[url] = anyio.run(self._fetch_card, url)
        return self._cards[url]

    async def _fetch_card(self, url: str) -> tuple[Any, dict[str, Any]]:
        import httpx
        from a2a.client import A2ACardResolver

        from freehold.errors import ToolServerError
        from freehold.ledger.keys import trusted_keys

        try:
            async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers()) as http:
                card = await A2ACardResolver(http, url).get_agent_card()
        except Exception as exc:
            raise ToolServerError(f"cannot fetch the agent card at {url}{CARD_PATH}: {describe_exception(exc)}",
                                  "check the delegate's URL in agents.toml and that it runs") from exc
        if not any(e.uri == LINEAGE_EXTENSION for e in card.capabilities.extensions):
            return card, {"signature": "unchecked", "note": "not a Freehold agent: no lineage to check"}
        try:
            checked = verify_card(card)
        except Exception as exc:
            raise ToolServerError(f"the agent card at {url} does not verify: {describe_exception(exc)}",
                                  "it was changed after it was signed, or signed by another key: not asked") from exc
        checked["trusted"] = checked.get("key_id") in trusted_keys(self.home)
        return card, {k: v for k, v in checked.items() if k != "public_key"}

    async def _ask(self, url: str, message: str) -> str:
        import uuid

        import httpx
        from a2a.client import ClientConfig, ClientFactory
        from a2a.types import Message, Part, Role, SendMessageRequest

        from freehold.errors import ToolServerError

        try:
            async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers()) as http:
                client = await ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create_from_url(url)
                msg = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=message)])
                events = [e async for e in client.send_message(SendMessageRequest(message=msg))]
                await client.close()
        except Exception as exc:
            raise ToolServerError(f"the agent at {url} failed: {describe_exception(exc)}",
                                  "check that it runs") from exc
        last = events[-1] if events else None
        if last is not None and last.HasField("task"):
            return _text(last.task.status.message) or "".join(
                p.text for a in last.task.artifacts for p in a.parts if p.HasField("text"))
        if last is not None and last.HasField("message"):
            return _text(last.message)
        raise ToolServerError(f"the agent at {url} gave no answer", "check its log")


def _tool_name(agent: str) -> str:
    import re

    return "ask_" + (re.sub(r"[^A-Za-z0-9_]", "_", agent)[:56] or "agent")


# cards -----------------------------------------------------------------------------------------
def answering_model(store: Store, model: str) -> str:
    """The model an agent's declaration names; "default" is the deployed model, and before
    anything is deployed the bundled SmolLM2 (else the store's first model), so the built-in
    agent answers on a fresh install."""
    from freehold.errors import ModelNotFoundError
    from freehold.models import DEFAULT_ALIAS

    if model != DEFAULT_ALIAS or store.has(DEFAULT_ALIAS):
        return model
    if store.has("smollm2"):
        return "smollm2"
    first = next(iter(store.list()), None)
    if first is None:
        raise ModelNotFoundError(DEFAULT_ALIAS, hint="import a model ('freehold import --bundled smollm2'), or "
                                 "deploy one from its page in the web app")
    return first.name


def lineage_of(store: Store, model: str) -> dict[str, Any]:
    """What the card's lineage extension says of the answering model."""
    from freehold.ledger.keys import load_identity
    from freehold.models import licence_info

    entry = store.get(answering_model(store, model))
    identity = load_identity(store.home)
    return {"model": entry.name, "manifest_digest": entry.manifest_digest,
            "ledger_head": (entry.manifest.lineage or {}).get("ledger_head") or "",
            "licence": licence_info(store, entry).get("name") or "",
            "key_id": identity.key_id, "public_key": identity.public_b64,
            "verify": f"freehold audit verify {entry.name}"}


def build_card(store: Store, spec: AgentSpec, base_url: str, keyed: bool, lineage: dict[str, Any] | None = None
               ) -> Any:
    """The agent's card, signed with the store's identity (JWS EdDSA over the card's JCS form)."""
    from a2a.types import (
        AgentCapabilities,
        AgentCard,
        AgentExtension,
        AgentInterface,
        AgentProvider,
        AgentSkill,
        HTTPAuthSecurityScheme,
        SecurityRequirement,
        SecurityScheme,
        StringList,
    )
    from a2a.utils.signing import create_agent_card_signer

    from freehold.ledger.keys import load_identity

    url = f"{base_url.rstrip('/')}/a2a/{spec.name}"
    lineage = lineage or lineage_of(store, spec.model)
    card = AgentCard(
        name=spec.name, description=spec.summary, version=__version__,
        provider=AgentProvider(organization="Freehold", url=base_url.rstrip("/")),
        supported_interfaces=[AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False, extensions=[AgentExtension(
            uri=LINEAGE_EXTENSION, required=False, params=lineage,
            description="Whose weights answer: the model's manifest digest, ledger head and licence, and the "
                        "Ed25519 key that signed the ledger and this card; check with 'freehold audit verify'.")]),
        # Declared only when the server has keys: an open loopback server asks for none.
        security_schemes={"bearer": SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(
            scheme="bearer", description="the Freehold server's key (Authorization: Bearer KEY)"))} if keyed else {},
        security_requirements=[SecurityRequirement(schemes={"bearer": StringList(list=[])})] if keyed else [],
        default_input_modes=["text/plain"], default_output_modes=["text/plain"],
        skills=[AgentSkill(id="answer", name=f"Answer with {lineage['model']}", description=spec.summary,
                           tags=["chat", "freehold"], examples=list(spec.examples))])
    from cryptography.hazmat.primitives import serialization

    identity = load_identity(store.home)
    pem = identity.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
    header: Any = {"alg": "EdDSA", "kid": identity.key_id, "typ": "JOSE"}  # no jku: none is published
    return create_agent_card_signer(pem, header)(card)


def card_json(card: Any) -> dict[str, Any]:
    from a2a.server.request_handlers.response_helpers import agent_card_to_dict

    return dict(agent_card_to_dict(card))


def verify_card(card: Any, public_key_b64: str | None = None) -> dict[str, Any]:
    """Check a card's signature with ``public_key_b64`` (raw Ed25519, base64), else with the key
    its own lineage extension names; returns what the extension says, with ``signature``."""
    import base64

    from a2a.utils.signing import create_signature_verifier
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    lineage: dict[str, Any] = {}
    for ext in card.capabilities.extensions:
        if ext.uri == LINEAGE_EXTENSION:
            from google.protobuf.json_format import MessageToDict

            lineage = MessageToDict(ext.params)
    key_b64 = public_key_b64 or lineage.get("public_key")
    if not key_b64:
        raise UsageError(f"the agent card of {card.name!r} names no key to check it with",
                         "it is not a Freehold agent; give the signer's public key")
    from cryptography.hazmat.primitives import serialization

    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key_b64)).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    except ValueError as exc:
        raise UsageError(f"the key to check {card.name!r}'s card with is not an Ed25519 public key",
                         "give its base64 raw form") from exc
    create_signature_verifier(lambda kid, jku: key, algorithms=["EdDSA"])(card)
    return {**lineage, "signature": "valid"}


# the routes ------------------------------------------------------------------------------------
@dataclass
class Agents:
    """The declared agents of one server: their handlers, dispatchers and (cached) cards."""

    serving: Serving
    specs: dict[str, AgentSpec]
    keyed: bool
    tool_servers: Any = None
    handlers: dict[str, Any] = field(default_factory=dict)
    dispatchers: dict[str, Any] = field(default_factory=dict)
    _cards: dict[tuple[str, str], tuple[str, Any]] = field(default_factory=dict)

    @property
    def default(self) -> str:
        return next(iter(self.specs))

    def card(self, name: str, base_url: str) -> Any:
        """The agent's signed card for clients reaching it at ``base_url``; made again when the
        model behind it changes (a new deploy, a new tune under the name)."""
        spec = self.spec(name)
        lineage = lineage_of(self.serving.store, spec.model)
        cached = self._cards.get((name, base_url))
        if cached is None or cached[0] != lineage["manifest_digest"]:
            card = build_card(self.serving.store, spec, base_url, self.keyed, lineage)
            cached = self._cards[(name, base_url)] = (lineage["manifest_digest"], card)
        return cached[1]

    def spec(self, name: str) -> AgentSpec:
        spec = self.specs.get(name)
        if spec is None:
            from freehold.errors import ModelNotFoundError

            raise ModelNotFoundError(name, close=list(self.specs), kind="agent")
        return spec

    def dispatcher(self, name: str, base_url: str) -> Any:
        from a2a.server.request_handlers import DefaultRequestHandler
        from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher

        if name not in self.dispatchers:
            spec = self.spec(name)
            tasks = CatalogTaskStore(self.serving.store, name)
            tools = self.tool_servers or getattr(self.serving.models, "tool_servers", None)
            if spec.delegates:
                tools = AgentTools(tools, self.serving.store.home, key_env=spec.delegate_key_env)
            handler = DefaultRequestHandler(agent_executor=ModelAgent(self.serving, spec, tasks, tools),
                                            task_store=tasks, agent_card=self.card(name, base_url))
            self.handlers[name] = handler
            self.dispatchers[name] = JsonRpcDispatcher(handler, context_builder=_context_builder(),
                                                       enable_v0_3_compat=True)
        return self.dispatchers[name]

    async def aclose(self) -> None:
        for handler in self.handlers.values():
            await handler.aclose()


def _context_builder() -> Any:
    from a2a.auth.user import User
    from a2a.server.routes import DefaultServerCallContextBuilder

    class KeyUser(User):
        """Tasks belong to the API key that made them (a digest of it; "" on an open server)."""

        def __init__(self, name: str) -> None:
            self._name = name

        @property
        def is_authenticated(self) -> bool:
            return bool(self._name)

        @property
        def user_name(self) -> str:
            return self._name

    class KeyContext(DefaultServerCallContextBuilder):
        def build_user(self, request: Any) -> User:
            auth = request.headers.get("authorization", "")
            token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            return KeyUser(hashlib.sha256(token.encode()).hexdigest()[:32] if token else "")

    return KeyContext()


def is_card_path(path: str) -> bool:
    """Agent cards are public (discovery), whatever the server's keys."""
    return path == CARD_PATH or (path.startswith("/a2a/") and path.endswith(CARD_PATH))
