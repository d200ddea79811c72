"""``freehold push NAME HOST/NS/MODEL:TAG`` and ``freehold pull HOST/NS/MODEL:TAG``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from freehold.cli import app
from freehold.cli.common import console, open_store, print_json, progress_bar
from freehold.models import human_size

_KEY_HELP = "Key the registry asks for (default: FREEHOLD_REGISTRY_KEY)."
_PLAIN_HELP = "Speak plain HTTP (default: only to loopback addresses; https elsewhere)."


def _transfer(run: Any, as_json: bool, *args: Any, **kwargs: Any) -> Any:
    """A push or pull with a progress bar; its result, or None once printed as JSON (--json)."""
    store = open_store()
    with progress_bar(transient=True) as progress:
        result = run(store, *args, progress=progress, **kwargs)
    if as_json:
        print_json(dataclasses.asdict(result))
        return None
    return result


@app.command("push")
def push_cmd(
    name: str = typer.Argument(..., help="Store model to push, e.g. acme-support."),
    target: str = typer.Argument(..., help="Where: HOST[:PORT]/NAMESPACE/MODEL[:TAG], e.g. "
                                          "127.0.0.1:11500/acme/support:latest."),
    key: str | None = typer.Option(None, "--key", help=_KEY_HELP),
    plain_http: bool | None = typer.Option(None, "--plain-http/--https", help=_PLAIN_HELP),
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=16, help="Layers sent at once."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Send a model to an OCI registry (Freehold's 'serve --registry', or any distribution server)."""
    from freehold.registry import push

    result = _transfer(push, as_json, name, target, key=key, plain_http=plain_http, jobs=jobs)
    if result is not None:
        console.print(f"[green]pushed[/] {name} to {result.remote}: sent {human_size(result.sent_bytes)}, "
                      f"{human_size(result.skipped_bytes)} already there ({result.blobs} blobs, "
                      f"{result.seconds:.1f} s); manifest {result.digest}", highlight=False)


@app.command("pull")
def pull_cmd(
    source: str = typer.Argument(..., help="What: HOST[:PORT]/NAMESPACE/MODEL[:TAG|@DIGEST]."),
    name: str | None = typer.Option(None, "--as", help="Name in this store [NAMESPACE/MODEL:TAG]."),
    key: str | None = typer.Option(None, "--key", help=_KEY_HELP),
    plain_http: bool | None = typer.Option(None, "--plain-http/--https", help=_PLAIN_HELP),
    jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=16, help="Layers fetched at once."),
    allow_untrusted: bool = typer.Option(False, "--allow-untrusted", help="Take a model whose lineage is signed by "
                                         "a key you have not trusted ('audit verify' will then fail until you do)."),
    accept_licence: bool = typer.Option(False, "--accept-licence", help="Accept a licence that restricts use (the "
                                        "Gemma terms, the Llama licence, a RAIL); asked once, recorded."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Fetch a model from an OCI registry; every blob is checked before the model is named."""
    from freehold.registry import pull

    result = _transfer(pull, as_json, source, name=name, key=key, plain_http=plain_http, jobs=jobs,
                       allow_untrusted=allow_untrusted, accept_licence=accept_licence)
    if result is not None:
        console.print(f"[green]pulled[/] {result.name} from {result.remote}: received "
                      f"{human_size(result.received_bytes)}, {human_size(result.reused_bytes)} already here "
                      f"({result.seconds:.1f} s); try it: freehold run {result.name}", highlight=False)


@app.command("bundle")
def bundle_cmd(
    name: str = typer.Argument(..., help="Store model to write, e.g. acme-support."),
    output: Path = typer.Option(..., "--output", "-o", help="The archive to write, e.g. acme-support.tar."),
) -> None:
    """Write a model, its lineage and its signed audits as an OCI image layout archive (for a machine
    with no network to this one); 'freehold import FILE.tar' takes it back with the checks of a pull."""
    from freehold.registry.layout import write_layout

    store = open_store()
    with progress_bar(transient=True) as progress:
        path = write_layout(store, name, output, progress=progress)
    console.print(f"[green]wrote[/] {path} ({human_size(path.stat().st_size)}); on the other machine: "
                  f"freehold import {path.name}", highlight=False)
