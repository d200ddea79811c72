"""freehold serve."""

from __future__ import annotations

from pathlib import Path

import typer

from freehold.cli import app
from freehold.cli.common import console, settings
from freehold.config import DEFAULT_PORT


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address. Non-loopback needs an API key."),
    port: int = typer.Option(DEFAULT_PORT, "--port", "-p", help=f"Port (default {DEFAULT_PORT})."),
    api_key: list[str] = typer.Option([], "--api-key", help="Accepted API key (repeatable); also "
                                                            "FREEHOLD_API_KEY (comma-separated)."),
    api_keys_file: Path | None = typer.Option(None, "--api-keys-file", help="File with one key per line."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allowed browser origin (repeatable)."),
    slots: int = typer.Option(8, "--slots", min=1, max=64, help="Sequences decoded together per model."),
    max_queue: int = typer.Option(64, "--max-queue", min=0, help="Waiting requests per model before 503."),
    keep_alive: float = typer.Option(300, "--keep-alive", help="Seconds an idle model stays loaded."),
    max_loaded: int = typer.Option(2, "--max-loaded", min=1, help="Models kept loaded at once."),
) -> None:
    """Serve models over OpenAI- and Ollama-compatible HTTP APIs."""
    from freehold.server import ServerOptions, check_exposure, load_api_keys, serve

    options = ServerOptions(host=host, port=port, api_keys=load_api_keys(api_key, api_keys_file),
                            cors_origins=cors_origin, slots=slots, max_queue=max_queue, keep_alive=keep_alive,
                            max_loaded=max_loaded)
    check_exposure(options)
    console.print(f"freehold serving on http://{host}:{port}  (OpenAI: /v1, Ollama: /api, metrics: /metrics)"
                  + ("  [API key required]" if options.api_keys else ""), highlight=False)
    serve(options, settings())
