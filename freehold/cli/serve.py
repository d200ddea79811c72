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
    knowledge: str | None = typer.Option(
        None, "--knowledge", "-k", help="Ground every chat in this knowledge index (answers cite their sources "
        "in a 'grounding' field); a request's own 'knowledge' wins. Default: each model's own (tune --knowledge)."),
) -> None:
    """Serve models over OpenAI- and Ollama-compatible HTTP APIs."""
    from freehold.server import check_exposure, load_api_keys, serve

    env_host, env_port = settings().bind_address  # FREEHOLD_HOST; flags override each part
    host = env_host if host is None else host
    port = env_port if port is None else port
    options = ServerOptions(host=host, port=port, api_keys=load_api_keys(api_key, api_keys_file, settings()),
                            cors_origins=cors_origin, slots=slots, max_queue=max_queue, keep_alive=keep_alive,
                            max_loaded=max_loaded, knowledge=knowledge)
    check_exposure(options)
    if knowledge:
        from freehold.cli.common import open_store
        from freehold.knowledge import get_knowledge

        get_knowledge(knowledge, open_store())  # a clear error now, not on every request
    console.print(f"freehold serving on http://{host}:{port}  (OpenAI: /v1, Ollama: /api, metrics: /metrics)"
                  + ("  [API key required]" if options.api_keys else "")
                  + (f"  [answers grounded in {knowledge}]" if knowledge else ""), highlight=False)
    serve(options, settings())
