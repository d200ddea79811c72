"""Typed configuration in one place: every environment variable, its help text and default.

Precedence: dataclass defaults, then ``$FREEHOLD_HOME/config.toml``, then environment
variables, then command-line flags (applied by the caller with ``dataclasses.replace``).
Unknown keys and wrong types are reported together, each with what to change.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.errors import UsageError

DEFAULT_PORT = 11500
"""Freehold's default port: distinct from Ollama (11434), LM Studio (1234),
llama-server (8080) and vLLM (8000)."""


REPLY_MAX_TOKENS = 400
"""The default limit of a drafted reply ('freehold reply'): a support reply is a few short
paragraphs, and the limit bounds a model that does not stop."""


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matmul instructions (Linux: avx512_bf16 or AMX in /proc/cpuinfo)."""
    from freehold.engine.cpu import cpu_flags  # here, not at the top: the engine package imports config

    return bool((cpu_flags() or frozenset()) & {"avx512_bf16", "amx_bf16"})


def _default_threads() -> int:
    # Measured on a 2-core machine (docs/benchmarks.md): llama.cpp decode scales to the
    # physical core count; more threads than cores only adds contention.
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass(frozen=True)
class EnvVar:
    name: str
    key: str  # the Settings field it sets
    help: str


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("FREEHOLD_HOME", "home", "Where models, datasets and the catalog live (default ~/.freehold)."),
    EnvVar("FREEHOLD_THREADS", "threads", "CPU threads for prompts and batches (default: cores, at most 8); "
           "one-token decode uses half."),
    EnvVar("FREEHOLD_CONTEXT", "context", "Context window in tokens (default 4096, capped at the model's)."),
    EnvVar("FREEHOLD_HOST", "host", f"Server bind address and client target, HOST[:PORT] "
           f"(default 127.0.0.1:{DEFAULT_PORT}); 'serve --host/--port' override it."),
    EnvVar("FREEHOLD_API_KEY", "api_key", "API keys the server accepts, comma-separated; 'run'/'chat' send the "
           "first to a running server."),
    EnvVar("FREEHOLD_PUSH_KEY", "push_key", "Keys that may push to 'serve --registry', comma-separated."),
    EnvVar("FREEHOLD_REGISTRY_KEY", "registry_key", "The key 'push' and 'pull' send to a registry."),
    EnvVar("FREEHOLD_NO_SERVER", "no_server", "Set to 1 to make 'run'/'chat' never use a running server."),
    EnvVar("FREEHOLD_DEBUG", "debug", "Set to 1 to print tracebacks for errors."),
)


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path.home() / ".freehold")
    threads: int = field(default_factory=_default_threads)
    # 4096 like Ollama's default: enough for chat, small KV cache (SmolLM2: ~95 MB at f16).
    context: int = 4096
    host: str = f"127.0.0.1:{DEFAULT_PORT}"
    api_key: str = ""  # comma-separated keys; a secret, so 'freehold env' shows only how many
    push_key: str = ""  # comma-separated keys that may push to this server's registry (a secret)
    registry_key: str = ""  # what 'push'/'pull' send to a registry (a secret)
    no_server: bool = False
    debug: bool = False

    @property
    def server_url(self) -> str:
        if "://" in self.host:
            return self.host.rstrip("/")
        host, port = split_host(self.host)  # "0.0.0.0" alone means port 11500, not 80
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def bind_address(self) -> tuple[str, int]:
        """(host, port) for the server to listen on, from ``host``."""
        return split_host(self.host)

    @property
    def api_keys(self) -> list[str]:
        return [k.strip() for k in self.api_key.split(",") if k.strip()]

    @property
    def push_keys(self) -> list[str]:
        return [k.strip() for k in self.push_key.split(",") if k.strip()]


@dataclass
class ServerOptions:
    """How ``freehold serve`` runs (its flags; ``Settings`` holds what the environment sets)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_keys: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=list)
    # Sequences decoded together per model: on 2 cores, 8 reach most of the batched throughput
    # (docs/benchmarks.md, bench_serve) with a KV cache SmolLM2 can afford.
    slots: int = 8
    max_queue: int = 64  # waiting requests per model before 503 (Retry-After)
    keep_alive: float = 300.0  # seconds an idle model stays loaded (Ollama's default is 5 minutes)
    max_loaded: int = 2  # models kept in memory at once
    max_body_bytes: int = 8 << 20  # API requests (chat, jobs); uploads have their own limit
    max_upload_bytes: int = 4 << 30  # one dropped mail archive or table (years of a small shop's mail)
    knowledge: str | None = None  # ground every chat in this index unless a request says otherwise
    jobs: bool = True  # run queued jobs (freehold.jobs) in this server, one at a time
    # The OCI registry at /v2/ (freehold.registry): pulls follow api_keys (open without keys,
    # or with registry_open_pull), pushes need one of push_keys (none: the registry takes no pushes).
    registry: bool = False
    push_keys: list[str] = field(default_factory=list)
    registry_open_pull: bool = False
    # What the models are served for (commercial, research, personal; freehold.licences.USES):
    # a model whose licence forbids it is refused, quoting the clause. None: not declared.
    declared_use: str | None = None
    # The guardrails policy file (freehold.guardrails.policy); None: the default policy.
    guardrails: str | None = None
    no_guardrails: bool = False  # every rail off (for a trusted local tool); the default policy otherwise
    # MCP servers whose tools a chat may use (mcp.json, the shape Claude Desktop and LM Studio
    # use); None: FREEHOLD_HOME/mcp.json when it exists. The loop over them is bounded:
    mcp_config: str | None = None
    tool_timeout: float = 30.0  # seconds one tool call (or a server's start) may take before it fails
    max_tool_calls: int = 8  # tool calls one request may make before the model must answer
    # A2A agents (freehold.agents.a2a): their declarations; None: FREEHOLD_HOME/agents.toml when it
    # exists, else one agent, "assistant", on the deployed model.
    agents: str | None = None


def split_host(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (also ``[IPv6]:PORT``, ``:PORT``, ``http://HOST:PORT``) as (host, port), like
    Ollama's OLLAMA_HOST: a missing host is 127.0.0.1, a missing port the default port."""
    rest = text.strip().split("://", 1)[-1].split("/", 1)[0]
    if rest.startswith("["):  # [::1]:11500
        host, _, after = rest[1:].partition("]")
        port_text = after.removeprefix(":")
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:  # a bare name, or a bare IPv6 address
        host, port_text = rest, ""
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise UsageError(f"'{text}' is not HOST[:PORT]: the port must be a number from 1 to 65535",
                         f"e.g. FREEHOLD_HOST=127.0.0.1:{DEFAULT_PORT} or FREEHOLD_HOST=0.0.0.0")
    return host or "127.0.0.1", port


SECRETS = ("api_key", "push_key", "registry_key")


def env_report(settings: Settings, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every variable in ENV_VARS with its raw and effective value (secrets masked), for 'freehold env'."""
    env = dict(os.environ if env is None else env)
    rows = []
    for v in ENV_VARS:
        raw, effective = env.get(v.name), str(getattr(settings, v.key))
        if v.key in SECRETS:  # a secret: say how many keys are set, never the keys
            n = len([k for k in effective.split(",") if k.strip()])
            raw = None if raw is None else "***"
            effective = f"{n} key{'s' if n != 1 else ''} set" if n else "not set"
        rows.append({"name": v.name, "value": raw, "effective": effective, "help": v.help})
    return rows


def _coerce(name: str, raw: Any, target: type, problems: list[str], source: str) -> Any:
    try:
        if target is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if target is int:
            if isinstance(raw, bool):
                raise ValueError(raw)
            value = int(raw)
            if value <= 0:
                raise ValueError(raw)
            return value
        if target is Path:
            return Path(str(raw)).expanduser()
        return str(raw)
    except (TypeError, ValueError):
        kind = {bool: "true/false", int: "a positive integer", Path: "a path", str: "text"}[target]
        problems.append(f"{source}: '{name}' must be {kind}, got {raw!r}")
        return None


_TYPES: dict[str, type] = {"home": Path, "threads": int, "context": int, "host": str, "api_key": str,
                           "push_key": str, "registry_key": str, "no_server": bool, "debug": bool}


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Resolve settings from defaults, the config file and the environment."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    values: dict[str, Any] = {}
    home_raw = env.get("FREEHOLD_HOME")
    home = Path(home_raw).expanduser() if home_raw else Settings().home
    config_file = home / "config.toml"
    if config_file.is_file():
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{config_file} is not valid TOML: {exc}", "fix or delete the file") from exc
        for key, raw in data.items():
            if key not in _TYPES or key == "home":
                problems.append(f"{config_file}: unknown key '{key}' (known: "
                                f"{', '.join(k for k in _TYPES if k != 'home')})")
                continue
            values[key] = _coerce(key, raw, _TYPES[key], problems, str(config_file))
    for var in ENV_VARS:
        if var.name in env and env[var.name] != "":
            values[var.key] = _coerce(var.name, env[var.name], _TYPES[var.key], problems, "environment")
    if values.get("host"):
        try:
            split_host(values["host"])
        except UsageError as exc:
            problems.append(f"'host' (FREEHOLD_HOST or config.toml): {exc.message}")
    if problems:
        raise UsageError("invalid configuration:\n  " + "\n  ".join(problems),
                         "fix the values above (see 'freehold env' for every setting)")
    values["home"] = home
    return dataclasses.replace(Settings(), **values)
