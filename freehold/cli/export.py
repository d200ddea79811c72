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


@app.command("compress")
def compress_cmd(
    name: str = typer.Argument(..., help="Store model to shrink (the teacher), e.g. acme-support."),
    data: str = typer.Option(..., "--data", "-d", help="Dataset: its text ranks the layers and heals the student; "
                             "its held-out split measures both."),
    output: str | None = typer.Option(None, "--output", "-o", help="Name of the smaller model [NAME-small]."),
    drop_layers: int = typer.Option(0, "--drop-layers", min=0, help="Layers to remove, the least influential "
                                    "(Block Influence on the data); never the first or last."),
    mlp_width: int | None = typer.Option(None, "--mlp-width", min=64, help="Keep this many MLP channels per layer "
                                         "(a multiple of 64), the most active on the data."),
    heal_steps: int = typer.Option(200, "--heal-steps", min=0, help="Distillation steps from the unpruned model "
                                   "(one conversation each); 0: prune only."),
    lr: float = typer.Option(5e-5, "--lr", help="Learning rate of the healing."),
    loss: str = typer.Option("forward", "--loss", help="forward (KL teacher||student), reverse or jsd."),
    quant: str = typer.Option("q8_0", "--quant", "-q", help="The student's GGUF type (the teacher is measured "
                              "at the same)."),
) -> None:
    """Prune a model and heal it by distillation into a smaller, faster one, measured beside the original."""
    from freehold.train.compress import compress_model

    store = open_store()
    with progress_bar(transient=True, byte_units=False) as progress:
        entry = compress_model(name, data, output=output, drop_layers=drop_layers, mlp_width=mlp_width,
                               heal_steps=heal_steps, lr=lr, loss=loss, quant=quant, store=store,
                               settings=settings(), progress=progress)
    recipe = entry.manifest.source["recipe"]
    console.print(f"layers {recipe['layers'][0]} -> {recipe['layers'][1]} (dropped {recipe['drop_layers']})"
                  + (f", MLP width {recipe['mlp_width']}" if recipe["mlp_width"] else ""), highlight=False)
    measured = recipe.get("measured")
    if measured:
        t, s = measured["teacher"], measured["student"]
        console.print(f"teacher {human_size(t['bytes'])}, {t['tokens_per_s']:.1f} tokens/s, perplexity "
                      f"{t['perplexity']:.2f}; student {human_size(s['bytes'])}, {s['tokens_per_s']:.1f} tokens/s "
                      f"({s['tokens_per_s'] / t['tokens_per_s']:.2f}x), perplexity {s['perplexity']:.2f} "
                      f"({s['perplexity'] / t['perplexity']:.2f}x); the same next token as the teacher at "
                      f"{measured['top1_agreement']:.0%} of held-out positions", highlight=False)
    console.print(f"[green]made[/] {entry.name} ({human_size(entry.size)}); try it: freehold run {entry.name}")
    licence_note(store, entry)
