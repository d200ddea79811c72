"""``freehold licence ...``: what binds a model, and accepting a restrictive licence before it is served."""

from __future__ import annotations

import typer

from freehold.cli.common import console, open_store, print_json

app = typer.Typer(no_args_is_help=True, help="Licences: what binds a model; accept one before serving it.")


@app.command("show")
def show_cmd(name: str = typer.Argument(..., help="Store model, e.g. gemma3."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The licence a model comes under (everything it inherited), its obligations, restrictions and notices."""
    from freehold.models import licence_info, pending_licences

    store = open_store()
    entry = store.get(name)
    lic = licence_info(store, entry)
    lic["accepted"] = not pending_licences(store, entry)
    if as_json:
        print_json({"model": entry.name, **lic})
        return
    console.print(f"{entry.name}: {lic['name'] or 'not stated'} ({lic['kind']})", markup=False, highlight=False)
    for src in lic["inherited_from"]:
        console.print(f"  from the {src['kind']} {src['name']}: {src['licence']}", markup=False, highlight=False)
    for o in lic["obligations"]:
        console.print(f"  must ({o['licence']}): {o['text']}", markup=False, highlight=False)
    for r in lic["restrictions"]:
        console.print(f"  restricts ({r['licence']}): {r['text']}", markup=False, highlight=False)
    for f in lic["forbids"]:
        console.print(f"  forbids {f['use']} use: {f['clause']}", markup=False, highlight=False)
    if lic["restricts_use"]:
        console.print("  accepted here" if lic["accepted"] else
                      f"  not accepted yet: 'freehold licence accept {entry.name}' before it is served",
                      markup=False, highlight=False)


@app.command("accept")
def accept_cmd(name: str = typer.Argument(..., help="Store model whose licence you accept."),
               yes: bool = typer.Option(False, "--yes", "-y", help="Accept without asking (you read the terms).")
               ) -> None:
    """Accept a model's restrictive licence once (the ledger records who, when and which terms)."""
    from freehold.errors import UsageError
    from freehold.models import accept, licence_info, pending_licences

    store = open_store()
    entry = store.get(name)
    lic = licence_info(store, entry)
    pending = pending_licences(store, entry)
    if not pending:
        console.print(f"{entry.name}: nothing to accept ({lic['name'] or 'no licence stated'}"
                      f"{', accepted before' if lic['restricts_use'] else ''})", markup=False, highlight=False)
        return
    for term in pending:
        assert term.licence is not None
        console.print(f"{term.licence.name} ({term.licence.source}):", markup=False, highlight=False)
        for r in term.licence.restrictions:
            console.print(f"  restricts: {r}", markup=False, highlight=False)
    console.print(f"the full terms: freehold show {entry.name} --license", markup=False, highlight=False)
    if not yes:
        if not console.is_terminal:
            raise UsageError("accepting a licence needs your confirmation", f"run 'freehold licence accept {name} "
                             "--yes' once you have read the terms")
        typer.confirm("Do you accept these terms?", abort=True)
    ids = accept(store, entry, via="cli")
    console.print(f"[green]accepted[/] {', '.join(ids)}: {entry.name} may now be served", highlight=False)
