"""``freehold data``: import, ls, show, export, rerender, rm. Each command calls one function in ``freehold.data``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.table import Table

from freehold.cli.common import console, err_console, open_store, print_json, progress_bar
from freehold.data import (
    export_dataset,
    import_dataset,
    list_datasets,
    remove_dataset,
    rerender_dataset,
    show_dataset,
)
from freehold.data.read import FORMATS

app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})


@app.command("import")
def import_cmd(
    paths: list[Path] = typer.Argument(..., help="mbox files, Maildir or .eml folders, or CSV/JSONL tables."),
    output: str = typer.Option(..., "--output", "-o", help="Dataset name in the store, e.g. 'support'."),
    fmt: str = typer.Option("auto", "--format", "-f", help=f"Input format: {'|'.join(FORMATS)}."),
    ours: list[str] | None = typer.Option(
        None,
        "--ours",
        help="Your side's address or domain (repeatable); inferred from who answers when absent.",
    ),
    pii: str = typer.Option(
        "surrogates", "--pii",
        help="surrogates: replace personal data with realistic fictional stand-ins, the same within a "
        "conversation (your side's names kept when --ours is given); placeholders: [NAME_1], [EMAIL_2] ...; "
        "keep: leave it.",
    ),
    others: str = typer.Option(
        "auto", "--others",
        help="Mail from people on neither side: user (speaks for the customer), drop (mailing lists), "
        "or auto: user with --ours, drop when your side is inferred.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for the train/validation/test split and the stand-ins."),
    license_: str | None = typer.Option(None, "--license", help="The licence the data comes under (a public "
                                        "set's, e.g. CC-BY-NC-4.0); models tuned on it inherit it. Default: "
                                        "your own data, no licence."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest config as JSON."),
) -> None:
    """Turn a mail archive or a Q/A table into a clean, threaded, PII-scrubbed chat dataset."""
    store = open_store(bundled=False)
    with progress_bar(transient=True, byte_units=False) as progress:
        result = import_dataset(
            paths, output, fmt=fmt, ours=ours or None, pii=pii, others=others, seed=seed, store=store,
            progress=progress, license=license_)
    if as_json:
        print_json({"name": result.name, **result.config})
        return
    c = result.counts
    console.print(
        f"imported [bold]{result.name}[/]: {c['examples']} conversations "
        f"({c['train']} train / {c['validation']} validation / {c['test']} test), "
        f"{c['turns']} turns from {c['messages_read']} messages in {c['threads']} threads"
    )
    if result.config["ours"] and result.config["ours_inferred"]:
        console.print("[yellow]your side was inferred[/] as the most frequent responders (assistant turns):")
        names = result.config.get("ours_names") or {}
        for address in result.config["ours"]:
            label = f"{names[address]} <{address}>" if address in names else address
            console.print(f"  {label}", markup=False, highlight=False)
        console.print("  if that is wrong, re-run with --ours ADDRESS_OR_DOMAIN (repeatable)")
        if result.config.get("others") == "drop":
            console.print("  other people's messages were dropped, as on a mailing list (--others user keeps them "
                          "as the asker's side)")
    _print_counts(result.config)


def _print_counts(config: dict[str, object]) -> None:
    for title, key in (
        ("skipped while reading", "skipped"),
        ("repaired while reading", "repaired"),
        ("filtered", "filters"),
    ):
        items = config.get(key) or {}
        assert isinstance(items, dict)
        if items:
            console.print(f"{title}: " + ", ".join(f"{k} {v}" for k, v in items.items()), highlight=False)
    pii = config.get("pii") or {}
    assert isinstance(pii, dict)
    if pii.get("replaced"):
        how = {"surrogates": " with realistic stand-ins", "placeholders": " with placeholders"}.get(
            str(pii.get("mode")), ""
        )
        console.print(
            f"pii replaced{how}: " + ", ".join(f"{k} {v}" for k, v in pii["replaced"].items()), highlight=False
        )
    if pii.get("kept"):
        console.print(
            "kept as your side's: " + ", ".join(f"{k} {v}" for k, v in pii["kept"].items()), highlight=False
        )


@app.command("ls")
def ls_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the datasets in the store."""
    rows = []
    for e in list_datasets(open_store(bundled=False)):
        counts = e.manifest.config.get("counts", {})
        rows.append(
            {
                "name": e.name,
                "digest": e.manifest_digest,
                "examples": counts.get("examples"),
                "train": counts.get("train"),
                "validation": counts.get("validation"),
                "test": counts.get("test"),
                "merkle_root": e.manifest.config.get("merkle_root"),
                "modified": dt.datetime.fromtimestamp(e.created_at).isoformat(timespec="seconds"),
            }
        )
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No datasets yet. Make one with 'freehold data import ARCHIVE.mbox -o NAME'.")
        return
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "ID", "EXAMPLES", "TRAIN/VAL/TEST", "MERKLE ROOT", "MODIFIED"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["name"]),
            str(r["digest"])[7:19],
            str(r["examples"]),
            f"{r['train']}/{r['validation']}/{r['test']}",
            str(r["merkle_root"])[:12],
            str(r["modified"]).replace("T", " "),
        )
    console.print(table)


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Dataset name."),
    examples: int = typer.Option(5, "--examples", "-n", help="How many random examples to print."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed for picking the examples (random when absent)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Counts, filters with their counts, and a few random examples."""
    doc = show_dataset(name, examples=examples, seed=seed, store=open_store(bundled=False))
    if as_json:
        print_json(doc)
        return
    c = doc["counts"]
    console.print(f"[bold]{doc['name']}[/]  {doc['digest'][:19]}…", highlight=False)
    console.print(", ".join(f"{k} {v}" for k, v in c.items()), highlight=False)
    console.print(
        f"your side ({'inferred' if doc.get('ours_inferred') else 'given'}): "
        f"{', '.join(doc.get('ours') or []) or '-'}",
        markup=False,
        highlight=False,
    )
    _print_counts(doc)
    console.print(f"merkle root {doc['merkle_root']}  seed {doc['seed']}", highlight=False)
    for src in doc.get("sources", []):
        console.print(
            f"source {src['path']} ({src['format']}, {src['size']} bytes) {src['digest']}",
            markup=False,
            highlight=False,
        )
    for i, ex in enumerate(doc["examples"], 1):
        console.print(f"\n[bold]── example {i}[/] [dim]{ex['id'][:16]}[/]")
        for turn in ex["messages"]:
            style = "cyan" if turn["role"] == "user" else "green"
            console.print(f"[{style}]{turn['role']}:[/]")
            console.print(turn["content"], markup=False, highlight=False)


@app.command("export")
def export_cmd(
    name: str = typer.Argument(..., help="Dataset name."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write (chat JSONL)."),
    split: str = typer.Option("all", "--split", help="all, train, validation or test."),
) -> None:
    """Write a dataset as chat JSONL ({"id", "messages"} per line)."""
    n = export_dataset(name, output, split=split, store=open_store(bundled=False))
    err_console.print(f"wrote {n} examples to {output}", highlight=False)


@app.command("rerender")
def rerender_cmd(
    name: str = typer.Argument(..., help="A dataset with placeholders ([NAME_1] ...)."),
    output: str = typer.Option(..., "--output", "-o", help="Name of the new dataset."),
    pii: str = typer.Option("surrogates", "--pii", help="What to put in: surrogates (realistic stand-ins)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for the stand-ins (default: the dataset's)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest config as JSON."),
) -> None:
    """Replace a dataset's placeholders with consistent realistic stand-ins, without re-importing."""
    with progress_bar(transient=True, byte_units=False) as progress:
        result = rerender_dataset(name, output, pii=pii, seed=seed, store=open_store(bundled=False),
                                  progress=progress)
    if as_json:
        print_json({"name": result.name, **result.config})
        return
    source = result.config["rerendered_from"]["name"]
    console.print(f"re-rendered [bold]{source}[/] as [bold]{result.name}[/]: {result.counts['examples']} "
                  "conversations", highlight=False)
    _print_counts({"pii": result.config["pii"]})


@app.command("rm")
def rm_cmd(name: str = typer.Argument(..., help="Dataset name.")) -> None:
    """Delete a dataset (its blobs are collected when nothing else uses them)."""
    removed = remove_dataset(name, store=open_store(bundled=False))
    console.print(f"deleted {removed}", highlight=False)
