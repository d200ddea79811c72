"""``freehold lineage NAME``: the graph of what a model came from (text, JSON or Graphviz dot)."""

from __future__ import annotations

import typer

from freehold.cli import app
from freehold.cli.common import console, open_store, print_json
from freehold.errors import UsageError


@app.command("lineage")
def lineage_cmd(
    name: str = typer.Argument(..., help="Model name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    dot: bool = typer.Option(False, "--dot", help="Print Graphviz dot (pipe into 'dot -Tsvg')."),
) -> None:
    """Show where a model came from: base, datasets, training runs, merges, exports, notes."""
    from freehold.ledger.ops import lineage

    if as_json and dot:
        raise UsageError("--json and --dot are exclusive", "pick one output format")
    graph = lineage(open_store(bundled=False), name)
    if as_json:
        print_json(graph.to_dict())
    elif dot:
        print(graph.to_dot(), end="")
    else:
        console.print(graph.to_text(), highlight=False, markup=False)
