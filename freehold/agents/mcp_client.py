"""The MCP client: the MCP servers a chat may use for tools, from an ``mcp.json`` in the shape
Claude Desktop, Cursor and LM Studio use, run by the server's tool loop (``server.native``).

    {"mcpServers": {"orders": {"command": "python", "args": ["orders.py"], "env": {"K": "V"}},
                    "wiki":   {"url": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "Bearer X"}}}}

A request names the servers it wants as tools entries ``{"type": "mcp", "server_label": "orders"}``
(OpenAI's remote-MCP tool shape; only configured servers, never a URL from the request). Each
server is one long-lived session in a task of a background event loop (anyio's blocking
portal): connected on first use, its tool list kept, reconnected after a crash. Every call is
bounded by ``timeout`` seconds; a server that hangs is cancelled (its process ends) and the
request gets a ``ToolServerError`` that names it, never a hung request.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.errors import ToolServerError, UsageError
from freehold.server.native import ToolResult

RESULT_LIMIT = 4000  # characters of a tool's result put back into the prompt (a small model's context)


@dataclass(frozen=True)
class ServerSpec:
    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return self.url or " ".join([self.command or "", *self.args]).strip()


def load_mcp_config(path: Path) -> dict[str, ServerSpec]:
    """The servers of an mcp.json; every problem in the file is reported at once."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the MCP config {path}: {exc.strerror}", "check the path") from exc
    except ValueError as exc:
        raise UsageError(f"the MCP config {path} is not JSON: {exc}",
                         'it looks like {"mcpServers": {"NAME": {"command": "...", "args": [...]}}}') from exc
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise UsageError(f"the MCP config {path} has no \"mcpServers\" object",
                         'it looks like {"mcpServers": {"NAME": {"command": "...", "args": [...]}}}')
    problems, out = [], {}
    for name, spec in servers.items():
        if not isinstance(spec, dict):
            problems.append(f"{name}: must be an object")
            continue
        command, url = spec.get("command"), spec.get("url")
        if (command is None) == (url is None):
            problems.append(f"{name}: give either \"command\" (a program run over stdio) or \"url\" (streamable HTTP)")
            continue
        if command is not None and not isinstance(command, str):
            problems.append(f"{name}: \"command\" must be a string")
        if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            problems.append(f"{name}: \"url\" must be an http(s) URL")
        args, env, headers = spec.get("args", []), spec.get("env", {}), spec.get("headers", {})
        if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
            problems.append(f"{name}: \"args\" must be a list of strings")
        for key, value in (("env", env), ("headers", headers)):
            if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
                problems.append(f"{name}: \"{key}\" must map names to strings")
        unknown = sorted(set(spec) - {"command", "args", "env", "cwd", "url", "headers", "type", "disabled"})
        if unknown:
            problems.append(f"{name}: unknown keys {', '.join(unknown)}")
        if spec.get("disabled"):
            continue
        if not problems:
            out[name] = ServerSpec(name, command, tuple(args), dict(env), spec.get("cwd"), url, dict(headers))
    if problems:
        raise UsageError(f"the MCP config {path} is not valid: " + "; ".join(problems),
                         "fix those entries (docs/agents.md, 'The MCP client')")
    return out


def _result_text(result: Any) -> str:
    """What a CallToolResult says, as text for the model: its text parts, else its structured content."""
    parts = []
    for item in result.content or []:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(item.text)
        elif kind == "resource" and hasattr(item.resource, "text"):
            parts.append(item.resource.text)
        else:
            parts.append(f"[{kind} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    return text if len(text) <= RESULT_LIMIT else text[:RESULT_LIMIT] + " [...]"


class _Session:
    """One server's connection, living in one task of the portal's loop (an anyio task group
    must be left by the task that entered it)."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.ready: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()
        self.scope: Any = None
        self.inbox: Any = None
        self.closed = False

    async def run(self, timeout: float) -> None:
        import anyio
        from mcp import Client

        send, receive = anyio.create_memory_object_stream[tuple[str, dict[str, Any], Any]](16)
        self.inbox = send
        try:
            with anyio.CancelScope() as self.scope:
                async with contextlib.AsyncExitStack() as stack:
                    client = await stack.enter_async_context(Client(self._transport(stack),
                                                                    read_timeout_seconds=timeout))
                    self.ready.set_result(list((await client.list_tools()).tools))
                    async for name, arguments, reply in receive:
                        try:
                            reply.set_result(await client.call_tool(name, arguments))
                        except Exception as exc:  # the server went away mid-call: this session ends
                            reply.set_exception(exc)
                            raise
        except Exception as exc:  # it could not start, or the server went away: this session ends
            if not self.ready.done():
                self.ready.set_exception(exc)
        finally:
            self.closed = True
            if not self.ready.done():
                self.ready.set_exception(ToolServerError(f"the session with {self.spec.name!r} was stopped"))
            while True:  # calls still waiting get the same news, not a timeout
                try:
                    _, _, reply = receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                reply.set_exception(ToolServerError(f"the session with {self.spec.name!r} ended"))

    def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        spec = self.spec
        if spec.url:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            http = httpx2.AsyncClient(headers=spec.headers, timeout=30)
            stack.push_async_callback(http.aclose)
            return streamable_http_client(spec.url, http_client=http)
        from mcp import StdioServerParameters

        return StdioServerParameters(command=spec.command or "", args=list(spec.args), env=spec.env or None,
                                     cwd=spec.cwd)


class ToolServers:
    """The configured MCP servers, as the native path's tool loop uses them (``functions``,
    ``call``), each call bounded by ``timeout`` seconds; ``max_calls`` bounds a request."""

    def __init__(self, specs: dict[str, ServerSpec], timeout: float = 30.0, max_calls: int = 8) -> None:
        self.specs, self.timeout, self.max_calls = specs, timeout, max_calls
        self._lock = threading.Lock()
        self._portal: Any = None
        self._portal_cm: Any = None
        self._sessions: dict[str, _Session] = {}

    @classmethod
    def from_options(cls, path: str | None, home: Path, timeout: float, max_calls: int) -> ToolServers:
        file = Path(path) if path else home / "mcp.json"
        if path is None and not file.exists():
            return cls({}, timeout, max_calls)
        return cls(load_mcp_config(file), timeout, max_calls)

    @property
    def names(self) -> list[str]:
        return sorted(self.specs)

    # the native path's side ----------------------------------------------------------------
    def functions(self, label: str, allowed: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The server's tools as OpenAI function tools (connecting to it first if need be)."""
        tools = self._session(label).ready.result()
        if allowed is not None:
            missing = sorted(set(allowed) - {t.name for t in tools})
            if missing:
                raise ToolServerError(f"the MCP server {label!r} has no tool {missing[0]!r}",
                                      f"it has: {', '.join(t.name for t in tools) or 'none'}", status=400)
        return [{"type": "function", "function": {
            "name": t.name, "description": t.description or "",
            "parameters": t.input_schema or {"type": "object", "properties": {}}}}
            for t in tools if allowed is None or t.name in allowed]

    def call(self, label: str, name: str, arguments: dict[str, Any]) -> ToolResult:
        """The result as text, and whether the tool reported an error. A server that fails,
        crashes or does not answer within the timeout raises ``ToolServerError``."""
        session = self._session(label)
        reply: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            self._portal.call(session.inbox.send, (name, arguments, reply))
            result = reply.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            self._drop(label)
            raise ToolServerError(f"the MCP server {label!r} did not answer the call of {name!r} within "
                                  f"{self.timeout:g} s", f"check the server ({session.spec.where}), or raise "
                                  "the limit with 'freehold serve --tool-timeout SECONDS'") from None
        except Exception as exc:
            self._drop(label)
            raise ToolServerError(f"the MCP server {label!r} failed during the call of {name!r}: "
                                  f"{describe_exception(exc)}", f"check the server ({session.spec.where})") from exc
        return ToolResult(_result_text(result), bool(result.is_error))

    # sessions ----------------------------------------------------------------------------------
    def _session(self, label: str) -> _Session:
        spec = self.specs.get(label)
        if spec is None:
            known = ", ".join(self.names) or "none: add servers to mcp.json"
            raise ToolServerError(f"no MCP server named {label!r} is configured", f"configured: {known} "
                                  "('freehold serve --mcp-config FILE'; docs/agents.md)", status=400)
        with self._lock:
            if self._portal is None:
                from anyio.from_thread import start_blocking_portal

                self._portal_cm = start_blocking_portal()
                self._portal = self._portal_cm.__enter__()
            session = self._sessions.get(label)
            if session is None or session.closed:
                session = self._sessions[label] = _Session(spec)
                self._portal.start_task_soon(session.run, self.timeout)
        try:
            session.ready.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            self._drop(label)
            raise ToolServerError(f"the MCP server {label!r} did not start within {self.timeout:g} s",
                                  f"check that it runs: {spec.where}") from None
        except Exception as exc:
            self._drop(label)
            raise ToolServerError(f"the MCP server {label!r} could not be started: {describe_exception(exc)}",
                                  f"check that it runs: {spec.where}") from exc
        return session

    def _drop(self, label: str) -> None:
        with self._lock:
            session = self._sessions.pop(label, None)
        if session is not None and session.scope is not None and not session.closed:
            with contextlib.suppress(Exception):
                self._portal.call(session.scope.cancel)  # ends the task: its process is stopped

    def close(self) -> None:
        """End every session (their processes stop) and the background loop."""
        for label in list(self._sessions):
            self._drop(label)
        with self._lock:
            portal, portal_cm = self._portal, self._portal_cm
            self._portal = self._portal_cm = None
        if portal_cm is None:
            return
        with contextlib.suppress(Exception):
            portal.call(portal.stop, True)  # cancel what is left
        with contextlib.suppress(Exception):
            portal_cm.__exit__(None, None, None)


def describe_exception(exc: BaseException) -> str:
    """An exception (or the first of a group) in a few words."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
    return text.splitlines()[0][:300]
