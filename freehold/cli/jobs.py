"""``freehold jobs ...``: the long operations the server runs in the background."""

from __future__ import annotations

import time
from typing import Any

import typer

from freehold.cli.common import console, err_console, open_store, print_json

app = typer.Typer(help="Long operations (import, tune, eval, export, verify) the server runs in the background.",
                  invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})


def _ago(t: float | None) -> str:
    if not t:
        return "-"
    s = max(0.0, time.time() - t)
    return f"{s:.0f} s ago" if s < 90 else f"{s / 60:.0f} min ago" if s < 5400 else f"{s / 3600:.1f} h ago"


def _warn_if_nothing_runs_them(jobs: list[Any]) -> None:
    """Jobs run inside 'freehold serve': say so when some wait and no server answers."""
    from freehold.cli.common import settings
    from freehold.client import server_alive

    if any(j.state == "queued" for j in jobs) and not server_alive(settings().server_url):
        err_console.print("[yellow]note:[/] no server is running here, so queued jobs wait: start one with "
                          "'freehold serve'", highlight=False)


def describe(event: dict[str, Any] | None) -> str:
    """One line for a progress event: stage, counts, ETA and a tune step's loss."""
    if not event:
        return ""
    text = str(event.get("status", ""))
    if event.get("total"):
        text += f" {event.get('completed', 0)}/{event['total']}"
    detail = event.get("detail") or {}
    if "loss" in detail:
        text += f" loss {detail['loss']:.3f}"
    if event.get("eta_s") is not None:
        text += f", ~{event['eta_s'] / 60:.1f} min left" if event["eta_s"] >= 60 else f", ~{event['eta_s']:.0f} s left"
    return text


@app.callback()
def jobs_cmd(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Also the jobs that ended."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the jobs: queued and running ones (with --all, also those that ended)."""
    if ctx.invoked_subcommand is not None:
        return
    from freehold.store.jobs import QUEUED, RUNNING, STATES

    store = open_store(bundled=False)
    jobs = store.jobs.list(STATES if all_ else (QUEUED, RUNNING))
    if as_json:
        print_json([j.to_dict() for j in jobs])
        return
    if not jobs:
        console.print("no jobs" + ("" if all_ else " queued or running (--all lists the ended ones too)"))
        return
    _warn_if_nothing_runs_them(jobs)
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("ID", "KIND", "STATE", "CREATED", "PROGRESS"):
        table.add_column(col)
    for j in jobs:
        progress = describe(j.last_event) if j.state == "running" else (
            (j.error or {}).get("message", "") if j.error else "")
        table.add_row(j.id, j.kind, j.state, _ago(j.created_at), progress)
    console.print(table)


@app.command("watch")
def watch_cmd(job_id: str = typer.Argument(..., help="The job's id (or a unique part of it)."),
              as_json: bool = typer.Option(False, "--json", help="Print each event as a JSON line.")) -> None:
    """Follow a job's progress until it ends."""
    import json

    from freehold.errors import from_dict
    from freehold.jobs import watch

    store = open_store(bundled=False)
    _warn_if_nothing_runs_them([store.jobs.get(job_id)])
    last: dict[str, Any] = {}
    for event in watch(store, job_id):
        last = event
        if as_json:
            print(json.dumps(event), flush=True)
        elif "state" not in event:
            err_console.print(f"{event['job']}  {describe(event)}", highlight=False, markup=False)
    if not as_json:
        console.print(f"job {last.get('job')} {last.get('state')}", highlight=False)
    if last.get("state") == "failed" and last.get("error"):
        raise from_dict(last["error"])


@app.command("cancel")
def cancel_cmd(job_id: str = typer.Argument(..., help="The job's id (or a unique part of it).")) -> None:
    """Stop a job: a queued one at once, a running one at its next step (a tune checkpoints first)."""
    from freehold.jobs import cancel

    job = cancel(open_store(bundled=False), job_id)
    console.print(f"job {job.id}: " + ("cancelled" if job.state == "cancelled" else "cancel asked; it stops at "
                                       "its next step"), highlight=False)


@app.command("resume")
def resume_cmd(job_id: str = typer.Argument(..., help="The job's id (or a unique part of it).")) -> None:
    """Queue a cancelled or failed tune again; it continues from its last checkpoint."""
    from freehold.jobs import resume

    job = resume(open_store(bundled=False), job_id)
    console.print(f"job {job.id} queued again", highlight=False)
