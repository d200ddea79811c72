"""``freehold export NAME --quant q4_k_m``: a quantized GGUF of any store model, as a new model."""

from __future__ import annotations

import typer

from freehold.cli import app
from freehold.cli.common import console, human_size, licence_note, open_store, progress_bar, settings


@app.command("export")
def export_cmd(
    name: str = typer.Argument(..., help="Store model to export, e.g. acme-support."),
    quant: str = typer.Option("q4_k_m", "--quant", "-q",
                              help="q4_k_m, q4_k_s, q4_0, q4_1, q5_k_m, q5_0, q6_k, q8_0, f16 or f32."),
    output: str | None = typer.Option(None, "--output", "-o", help="Name of the exported model [NAME:QUANT]."),
    license_: str | None = typer.Option(None, "--license", help="Its licence label; default: what it inherits. A "
                                        "label may add licences ('gemma AND CC-BY-4.0'), never drop one."),
) -> None:
    """Write a model as a GGUF file (quantized by llama.cpp) and add it to the store."""
    from freehold.export import export_model

    store = open_store()
    with progress_bar(transient=True, byte_units=False) as progress:
        entry = export_model(name, quant, output=output, store=store, settings=settings(), progress=progress,
                             license=license_)
    console.print(f"[green]exported[/] {entry.name} ({human_size(entry.size)}); try it: freehold run {entry.name}")
    licence_note(store, entry)
