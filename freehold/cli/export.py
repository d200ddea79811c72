"""``freehold export NAME --quant q4_k_m``: a quantized GGUF of any store model, as a new model."""

from __future__ import annotations

import typer

from freehold.cli import app
from freehold.cli.common import console, human_size, licence_note, open_store, progress_bar, settings


@app.command("export")
def export_cmd(
    name: str = typer.Argument(..., help="Store model to export, e.g. acme-support."),
    quant: str = typer.Option("q4_k_m", "--quant", "-q",
                              help="q4_k_m, q4_k_s, q4_0, q4_1, q5_k_m, q5_0, q6_k, q8_0, f16, f32, or auto: each "
                                   "type measured here (speed, held-out perplexity of --data), the fastest within "
                                   "--ppl-budget kept."),
    data: str | None = typer.Option(None, "--data", "-d", help="With --quant auto: the dataset whose held-out "
                                    "split the perplexity is measured on."),
    budget: float = typer.Option(1.05, "--ppl-budget", help="With --quant auto: the most perplexity a type may "
                                 "add, as a multiple of the full-precision export's."),
    output: str | None = typer.Option(None, "--output", "-o", help="Name of the exported model [NAME:QUANT]."),
    license_: str | None = typer.Option(None, "--license", help="Its licence label; default: what it inherits. A "
                                        "label may add licences ('gemma AND CC-BY-4.0'), never drop one."),
) -> None:
    """Write a model as a GGUF file (quantized by llama.cpp) and add it to the store."""
    from freehold.export import export_model

    store = open_store()
    with progress_bar(transient=True, byte_units=False) as progress:
        entry = export_model(name, quant, output=output, store=store, settings=settings(), progress=progress,
                             license=license_, data=data, budget=budget)
    choice = entry.manifest.source.get("quant_choice")
    if choice:
        from rich.table import Table

        table = Table("type", "size", "tokens/s", "perplexity", title=f"measured on {choice['held_out_tokens']} "
                      f"held-out tokens of {choice['data']}, {choice['threads']} threads")
        ref = choice["reference"]
        table.add_row(ref["quant"], human_size(ref["bytes"]), f"{ref['tokens_per_s']:.1f}", f"{ref['perplexity']:.3f}")
        for m in choice["candidates"]:
            mark = " <" if m["quant"] == choice["chose"] else ""
            table.add_row(m["quant"] + mark, human_size(m["bytes"]), f"{m['tokens_per_s']:.1f}",
                          f"{m['perplexity']:.3f}")
        console.print(table)
        console.print(f"chose {choice['why']}", highlight=False)
    console.print(f"[green]exported[/] {entry.name} ({human_size(entry.size)}); try it: freehold run {entry.name}")
    licence_note(store, entry)
