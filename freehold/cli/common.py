"""Shared CLI plumbing: settings, the store, progress bars, JSON output."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from freehold import home
from freehold.config import Settings, load_settings
from freehold.errors import FreeholdError
from freehold.models import human_count, human_size  # noqa: F401 - the CLI's formatting
from freehold.progress import Progress as ProgressEvent
from freehold.progress import ProgressFn
from freehold.store import Store

console = Console()
if not console.is_terminal:  # piped output: do not wrap tables at 80 columns
    console = Console(width=160)
err_console = Console(stderr=True, soft_wrap=True)  # never wrap error messages mid-word

@dataclass
class _Invocation:
    """One command's settings, resolved when first needed; flags of the root command on top."""

    settings: Settings | None = None
    debug: bool = False


_invocation: ContextVar[_Invocation | None] = ContextVar("freehold_invocation", default=None)


@contextmanager
def invocation() -> Iterator[None]:
    """The span of one command (``freehold.cli.main``): settings are read once inside it, and
    afresh by the next command, so a changed environment is always seen."""
    token = _invocation.set(_Invocation())
    try:
        yield
    finally:
        _invocation.reset(token)


def settings() -> Settings:
    """The resolved settings (defaults, config file, environment, then ``--debug``)."""
    inv = _invocation.get()
    if inv is None:  # called outside a command (a library caller, a test): nothing is cached
        return load_settings()
    if inv.settings is None:
        inv.settings = load_settings()
        if inv.debug:
            inv.settings = dataclasses.replace(inv.settings, debug=True)
    return inv.settings


def set_debug() -> None:
    """``freehold --debug``: tracebacks for errors and llama.cpp's own logs, for this command."""
    inv = _invocation.get()
    if inv is not None:
        inv.debug = True
        if inv.settings is not None:
            inv.settings = dataclasses.replace(inv.settings, debug=True)


def debugging(args: list[str]) -> bool:
    """Whether this command shows tracebacks (``--debug`` or FREEHOLD_DEBUG=1)."""
    if "--debug" in args:
        return True
    try:
        return settings().debug
    except FreeholdError:  # the configuration itself is what failed
        return False


def open_store(bundled: bool = True) -> Store:
    with progress_bar(transient=True) as progress:
        return home.open_store(settings(), bundled=bundled, progress=progress)


@contextmanager
def progress_bar(transient: bool = False, byte_units: bool = True) -> Iterator[ProgressFn]:
    """Yield a ProgressFn that draws one rich bar per status (on stderr, only on a terminal)."""
    if not err_console.is_terminal:
        yield lambda event: None
        return
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    columns += [DownloadColumn()] if byte_units else [TextColumn("{task.completed}/{task.total}")]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=transient) as bar:
        tasks: dict[str, TaskID] = {}

        def on_event(event: ProgressEvent) -> None:
            task = tasks.get(event.status)
            if task is None:
                task = tasks[event.status] = bar.add_task(event.status, total=event.total)
            bar.update(task, completed=event.completed or 0, total=event.total)

        yield on_event


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def licence_note(store: Store, entry: Any) -> None:
    """After a derivative is made: the licence it inherited, what that binds, the name it must use."""
    from freehold.models import licence_info

    lic = licence_info(store, entry)
    if not lic["name"]:
        return
    parents = ", ".join(f"{s['name']} ({s['licence']})" for s in lic["inherited_from"])
    console.print(f"licence: {lic['name']}" + (f", from {parents}" if parents else ""), markup=False, highlight=False)
    for o in lic["obligations"]:
        if o["kind"] in ("pass-on-restrictions", "naming", "attribution"):
            console.print(f"  must: {o['text']}", markup=False, highlight=False)
    from freehold.licences import naming_prefix

    prefix = (naming_prefix(lic["name"]) or "").lower()
    aliases = [a for a in entry.aliases if a.lower().startswith(prefix + "-")] if prefix else []
    for alias in aliases:
        console.print(f"  also named {alias}, as its licence requires", markup=False, highlight=False)
