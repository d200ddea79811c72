"""freehold mcp: this store's models, lineage and jobs as an MCP server over stdio."""

from __future__ import annotations

from pathlib import Path

import typer

from freehold.cli import app


@app.command("mcp")
def mcp_cmd(
    guardrails: Path | None = typer.Option(None, "--guardrails", help="Guardrails policy for what the tools "
                                           "generate (as 'freehold serve --guardrails')."),
    no_guardrails: bool = typer.Option(False, "--no-guardrails", help="Every guardrail off."),
    knowledge: str | None = typer.Option(None, "--knowledge", "-k", help="Ground every chat in this knowledge "
                                         "index (default: each model's own)."),
    declare_use: str | None = typer.Option(None, "--declare-use", help="commercial, research or personal: a "
                                           "model whose licence forbids it is refused."),
) -> None:
    """Be an MCP server over stdio, for Claude Desktop, LM Studio or any MCP host: tools to chat with
    the models, read their cards, licences and lineage, verify them, and queue evaluations and
    (confirmed) tunes; resources for cards, lineage and ledger records. The same server answers at
    /mcp inside 'freehold serve'. Host config: {"command": "freehold", "args": ["mcp"]}."""
    import anyio

    from freehold.agents import build_mcp_server
    from freehold.cli.common import open_store, settings
    from freehold.config import ServerOptions
    from freehold.server import FreeholdState

    options = ServerOptions(knowledge=knowledge, declared_use=declare_use,
                            guardrails=str(guardrails) if guardrails else None, no_guardrails=no_guardrails)
    state = FreeholdState(settings(), options, open_store())  # stdout is the protocol's: nothing printed
    try:
        anyio.run(build_mcp_server(state).run_stdio_async)
    finally:
        state.models.close()
