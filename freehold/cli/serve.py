"""freehold serve."""

from __future__ import annotations

from pathlib import Path

import typer

from freehold.cli import app
from freehold.cli.common import console, settings
from freehold.config import DEFAULT_PORT, ServerOptions

_DEFAULTS = ServerOptions()


@app.command("serve")
def serve_cmd(
    host: str | None = typer.Option(None, "--host", help="Bind address (default: FREEHOLD_HOST's, else 127.0.0.1). "
                                                         "Non-loopback needs an API key."),
    port: int | None = typer.Option(None, "--port", "-p", min=1, max=65535,
                                    help=f"Port (default: FREEHOLD_HOST's, else {DEFAULT_PORT})."),
    api_key: list[str] = typer.Option([], "--api-key", help="Accepted API key (repeatable); also "
                                                            "FREEHOLD_API_KEY (comma-separated)."),
    api_keys_file: Path | None = typer.Option(None, "--api-keys-file", help="File with one key per line."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allowed browser origin (repeatable)."),
    slots: int = typer.Option(_DEFAULTS.slots, "--slots", min=1, max=64,
                              help="Sequences decoded together per model."),
    max_queue: int = typer.Option(_DEFAULTS.max_queue, "--max-queue", min=0,
                                  help="Waiting requests per model before 503."),
    keep_alive: float = typer.Option(_DEFAULTS.keep_alive, "--keep-alive", help="Seconds an idle model stays loaded."),
    max_loaded: int = typer.Option(_DEFAULTS.max_loaded, "--max-loaded", min=1, help="Models kept loaded at once."),
    open_browser: bool = typer.Option(False, "--open", help="Open the web app in a browser once it is up."),
    max_upload_mb: int = typer.Option(_DEFAULTS.max_upload_bytes // 1_000_000, "--max-upload", min=1,
                                      help="Largest mail archive or table the pages accept, in MB."),
    knowledge: str | None = typer.Option(
        None, "--knowledge", "-k", help="Ground every chat in this knowledge index (answers cite their sources "
        "in a 'grounding' field); a request's own 'knowledge' wins. Default: each model's own (tune --knowledge)."),
    registry: bool = typer.Option(False, "--registry", help="Also be an OCI registry at /v2/: others pull this "
                                  "store's models with 'freehold pull HOST:PORT/NAME:TAG' and push with a push key."),
    push_key: list[str] = typer.Option([], "--push-key", help="Key that may push to the registry (repeatable); "
                                       "also FREEHOLD_PUSH_KEY (comma-separated). Without one it takes no pushes."),
    open_pull: bool = typer.Option(False, "--registry-open-pull", help="Let anyone pull from the registry even "
                                   "when the server has API keys."),
    guardrails: Path | None = typer.Option(None, "--guardrails", help="Guardrails policy (TOML: \\[default] and "
                                           "\\[models.NAME]; docs/guardrails.md). Default: personal data replaced "
                                           "before the model sees it, new personal data in answers redacted."),
    no_guardrails: bool = typer.Option(False, "--no-guardrails", help="Serve with every guardrail off."),
    declare_use: str | None = typer.Option(None, "--declare-use", help="What the models are served for: commercial, "
                                           "research or personal. A model whose licence forbids it is refused."),
    mcp_config: Path | None = typer.Option(None, "--mcp-config", help="MCP servers a chat may use for tools "
                                           "(mcp.json: {\"mcpServers\": {...}}). Default: FREEHOLD_HOME/mcp.json "
                                           "when it exists."),
    tool_timeout: float = typer.Option(_DEFAULTS.tool_timeout, "--tool-timeout", min=0.1,
                                       help="Seconds one MCP tool call may take."),
    max_tool_calls: int = typer.Option(_DEFAULTS.max_tool_calls, "--max-tool-calls", min=0,
                                       help="MCP tool calls one request may make."),
    agents: Path | None = typer.Option(None, "--agents", help="A2A agents to serve at /a2a/NAME (TOML: "
                                       "\\[agents.NAME] with model, system, tools, ...; docs/agents.md). Default: "
                                       "FREEHOLD_HOME/agents.toml when it exists, else 'assistant' on the deployed "
                                       "model."),
) -> None:
    """Serve the web app and models over OpenAI- and Ollama-compatible HTTP APIs."""
    from freehold.server import check_exposure, load_api_keys, serve

    env_host, env_port = settings().bind_address  # FREEHOLD_HOST; flags override each part
    host = env_host if host is None else host
    port = env_port if port is None else port
    options = ServerOptions(host=host, port=port, api_keys=load_api_keys(api_key, api_keys_file, settings()),
                            cors_origins=cors_origin, slots=slots, max_queue=max_queue, keep_alive=keep_alive,
                            max_loaded=max_loaded, knowledge=knowledge,
                            max_upload_bytes=max_upload_mb * 1_000_000, registry=registry,
                            push_keys=[*push_key, *settings().push_keys], registry_open_pull=open_pull,
                            declared_use=declare_use, guardrails=str(guardrails) if guardrails else None,
                            no_guardrails=no_guardrails, mcp_config=str(mcp_config) if mcp_config else None,
                            tool_timeout=tool_timeout, max_tool_calls=max_tool_calls,
                            agents=str(agents) if agents else None)
    check_exposure(options)
    if mcp_config:
        from freehold.agents.mcp_client import load_mcp_config

        load_mcp_config(mcp_config)  # every problem in the file now, before listening
    if agents:
        from freehold.agents.a2a import load_agents

        load_agents(agents, settings().home)
    if guardrails:
        from freehold.guardrails import load_policy

        load_policy(guardrails)  # every problem in the file now, before listening
    _check_uses(options)
    if knowledge:
        from freehold.cli.common import open_store
        from freehold.knowledge import get_knowledge

        get_knowledge(knowledge, open_store())  # a clear error now, not on every request
    console.print(f"freehold serving on http://{host}:{port}  (web app: /, OpenAI: /v1, Ollama: /api, MCP: /mcp, "
                  "A2A: /a2a/NAME, metrics: /metrics)"
                  + ("  [API key required]" if options.api_keys else "")
                  + (f"  [answers grounded in {knowledge}]" if knowledge else "")
                  + (f"  [declared use: {declare_use}]" if declare_use else "")
                  + (f"  [registry: /v2/, {'pushes with a push key' if options.push_keys else 'pull only'}]"
                     if registry else ""), highlight=False)
    if open_browser:
        _open_when_up(f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}/")
    serve(options, settings())


def _check_uses(options: ServerOptions) -> None:
    """Before listening: the declared use is one Freehold knows, and the deployed model may be
    served for it (a refusal quotes the clause); the models it will refuse are listed."""
    from freehold.cli.common import open_store
    from freehold.errors import FreeholdError, UsageError
    from freehold.licences import USES
    from freehold.models import accepted_licences, check_servable, deployed

    if options.declared_use is not None and options.declared_use not in USES:
        raise UsageError(f"--declare-use {options.declared_use} is not one of {', '.join(USES)}",
                         "declare what the models are served for, e.g. --declare-use commercial")
    store = open_store()
    default = deployed(store)
    refused = []
    accepted = accepted_licences(store)  # the ledger read once, not once per model
    for entry in store.list():
        try:
            check_servable(store, entry, options.declared_use, accepted)
        except FreeholdError as exc:
            if entry.name == default:
                raise
            refused.append(f"{entry.name} ({exc.code.replace('_', ' ')})")
    if refused:
        console.print("not served until their licence allows it: " + ", ".join(refused), highlight=False)


def _open_when_up(url: str) -> None:
    """Open ``url`` in the default browser as soon as the server answers (a background thread)."""
    import threading
    import time
    import webbrowser

    import httpx

    def wait_and_open() -> None:
        for _ in range(100):
            try:
                httpx.get(url + "health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        if not webbrowser.open(url):
            console.print(f"open {url} in your browser", highlight=False)

    threading.Thread(target=wait_and_open, daemon=True).start()
