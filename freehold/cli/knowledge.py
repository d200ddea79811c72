"""``freehold knowledge``: build, add, ls, show, search, rm; each calls one function in ``freehold.knowledge``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.table import Table

from freehold.cli.common import console, human_size, open_store, print_json, progress_bar
from freehold.knowledge import (
    KnowledgeResult,
    add_knowledge,
    build_knowledge,
    list_knowledge,
    remove_knowledge,
    search,
    show_knowledge,
)
from freehold.knowledge.index import SPLIT_CHOICES

app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})

_DATA_HELP = "A dataset (from 'freehold data import') whose answered threads to index; repeatable."
_DOCS_HELP = "A document (.md, .html, .txt, .pdf, .docx) or a folder of them; repeatable."


def _report(result: KnowledgeResult, as_json: bool) -> None:
    if as_json:
        print_json({"name": result.name, "digest": result.entry.manifest_digest, "committed": result.committed,
                    "embedded": result.embedded, "reused": result.reused,
                    "changes": [c.__dict__ for c in result.changes], **result.config})
        return
    for c in result.changes:
        console.print(f"  {c.status:<9} {c.kind} {c.name} ({c.passages} passages)", markup=False, highlight=False)
    if not result.committed:
        console.print(f"{result.name} is up to date (no source changed)", highlight=False)
        return
    cfg = result.config
    console.print(
        f"indexed [bold]{result.name}[/] (version {cfg['version']}): {cfg['passages']} passages "
        f"({cfg['counts']['thread']} from threads, {cfg['counts']['document']} from documents); "
        f"{result.embedded} embedded, {result.reused} reused",
        highlight=False,
    )


@app.command("build")
def build_cmd(
    name: str = typer.Argument(..., help="Name of the knowledge base, e.g. 'acme-kb'."),
    data: list[str] | None = typer.Option(None, "--data", "-d", help=_DATA_HELP),
    docs: list[Path] | None = typer.Option(None, "--docs", help=_DOCS_HELP),
    split: str = typer.Option(
        "train", "--split",
        help=f"Dataset threads to index: {'|'.join(SPLIT_CHOICES)} (train keeps held-out threads out, so an "
        "evaluation with knowledge stays honest).",
    ),
    pii: str = typer.Option(
        "surrogates", "--pii",
        help="Personal data in documents: surrogates (realistic stand-ins), placeholders ([EMAIL_1]) or keep "
        "(pages holding only your own contact details).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Index a dataset's answered threads and your documents for retrieval (replaces NAME's sources)."""
    store = open_store(bundled=False)
    with progress_bar(transient=True, byte_units=False) as progress:
        result = build_knowledge(name, datasets=data or [], documents=docs or [], split=split, pii=pii,
                                 store=store, progress=progress)
    _report(result, as_json)


@app.command("add")
def add_cmd(
    name: str = typer.Argument(..., help="Knowledge base name."),
    data: list[str] | None = typer.Option(None, "--data", "-d", help=_DATA_HELP),
    docs: list[Path] | None = typer.Option(None, "--docs", help=_DOCS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Add sources, and re-index those that changed since (with no sources: just refresh)."""
    store = open_store(bundled=False)
    with progress_bar(transient=True, byte_units=False) as progress:
        result = add_knowledge(name, datasets=data or [], documents=docs or [], store=store, progress=progress)
    _report(result, as_json)


@app.command("ls")
def ls_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the knowledge bases in the store."""
    rows = [
        {
            "name": e.name,
            "digest": e.manifest_digest,
            "version": e.manifest.config.get("version"),
            "passages": e.manifest.config.get("passages"),
            "sources": len(e.manifest.config.get("sources", [])),
            "size": e.size,
            "modified": dt.datetime.fromtimestamp(e.created_at).isoformat(timespec="seconds"),
        }
        for e in list_knowledge(open_store(bundled=False))
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No knowledge bases yet. Make one with "
                      "'freehold knowledge build NAME --data DATASET --docs FILE'.")
        return
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "ID", "VERSION", "PASSAGES", "SOURCES", "SIZE", "MODIFIED"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["name"]), str(r["digest"])[7:19], str(r["version"]), str(r["passages"]),
                      str(r["sources"]), human_size(int(r["size"] or 0)), str(r["modified"]).replace("T", " "))
    console.print(table)


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Knowledge base name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Sources with their digests and whether each changed since it was indexed."""
    doc = show_knowledge(name, store=open_store(bundled=False))
    if as_json:
        print_json(doc)
        return
    console.print(f"[bold]{doc['name']}[/]  {doc['digest'][:19]}…  version {doc['version']}", highlight=False)
    console.print(
        f"{doc['passages']} passages ({doc['counts']['thread']} threads, {doc['counts']['document']} documents), "
        f"{human_size(doc['size'])}; embedder {doc['embedder']['name']}, lexical {doc['lexical']['engine']}; "
        f"split {doc['split']}, pii {doc['pii']}",
        highlight=False,
    )
    stale = 0
    for s in doc["sources"]:
        digest = s["merkle_root"][:12] if s["kind"] == "dataset" else s["digest"][7:19]
        state = s["state"]
        stale += state != "current"
        console.print(f"  {s['kind']:<8} {s['name']}  {digest}  {s['passages']} passages  [{state}]",
                      markup=False, highlight=False)
    if stale:
        console.print(f"{stale} source(s) changed or missing: 'freehold knowledge add {doc['name']}' re-indexes "
                      "the changed ones", highlight=False)


@app.command("search")
def search_cmd(
    name: str = typer.Argument(..., help="Knowledge base name."),
    query: str = typer.Argument(..., help="The question, in quotes."),
    k: int = typer.Option(4, "-k", help="How many passages."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The passages that best answer a question (words and meaning, fused)."""
    passages = search(open_store(bundled=False), name, query, k=k)
    if as_json:
        print_json([p.to_dict() for p in passages])
        return
    if not passages:
        console.print("nothing relevant in this knowledge base", highlight=False)
        return
    for n, p in enumerate(passages, 1):
        console.print(f"\n[bold][{n}] {p.title}[/]  [dim]{p.source} · {p.id[:40]} · similarity "
                      f"{p.similarity:.2f}[/]", highlight=False)
        console.print(p.text, markup=False, highlight=False)


@app.command("rm")
def rm_cmd(
    name: str = typer.Argument(..., help="Knowledge base name."),
    source: str | None = typer.Option(None, "--source", help="Drop only this source (dataset name or document path)."),
) -> None:
    """Delete a knowledge base, or one of its sources (a new version without it)."""
    result = remove_knowledge(name, source=source, store=open_store(bundled=False))
    if isinstance(result, str):
        console.print(f"deleted {result}", highlight=False)
    else:
        _report(result, False)
