"""The ``freehold`` command: a thin layer over the library.

Each command group lives in its own module and registers itself on ``app``. Commands
parse arguments, call one library function, render progress and map errors to exit codes.
"""

from __future__ import annotations

import sys

import click
import typer

from freehold import __version__
from freehold.errors import FreeholdError

app = typer.Typer(
    name="freehold",
    help="Own your AI: run, tune, verify and serve open models on your own machine, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"freehold {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    if debug:
        from freehold.cli.common import set_debug

        set_debug()


def _register() -> None:
    # Imported for their side effect of adding commands to ``app``.
    import importlib

    top_level = ("models", "run", "serve", "tune", "export", "evals", "lineage", "registry", "agents")
    for module in top_level:  # top-level commands
        try:
            importlib.import_module(f"freehold.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"freehold.cli.{module}":
                raise
    for module, name, help_text in (
        ("data", "data", "Turn mail archives and tables into training datasets."),
        ("ledger", "audit", "Verify and explain what went into a model (the signed ledger)."),
        ("keys", "key", "Your signing identity for the ledger."),
        ("licence", "licence", "Licences: what binds a model; accept one before serving it."),
        ("guardrails", "guardrails", "Guardrails: what serving refuses, replaces and redacts."),
        ("knowledge", "knowledge", "Index your mail and documents for answers that cite their sources."),
        ("jobs", "jobs", "Long operations (import, tune, eval, export, verify) the server runs in the background."),
    ):
        try:
            mod = importlib.import_module(f"freehold.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"freehold.cli.{module}":
                raise
            continue
        app.add_typer(mod.app, name=name, help=help_text)


_register()

# typer >= 0.29 vendors part of click: catch both its and click's exception classes.
_EXIT: tuple[type[BaseException], ...] = (click.exceptions.Exit, typer.Exit)
_ABORT: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.Abort)
_INTERRUPT: tuple[type[BaseException], ...] = (*_ABORT, KeyboardInterrupt)
_USAGE: tuple[type[Exception], ...] = (click.ClickException,)
try:
    from typer._click.exceptions import ClickException as _TyperClickException

    _USAGE = (*_USAGE, _TyperClickException)
except ImportError:  # older typer uses click's classes directly
    pass


def main(argv: list[str] | None = None) -> int:
    from freehold.cli.common import invocation

    args = sys.argv[1:] if argv is None else argv
    with invocation():
        return _run(args)


def _run(args: list[str]) -> int:
    from rich.markup import escape

    from freehold.cli.common import debugging, err_console

    try:
        result = app(args=args, prog_name="freehold", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except FreeholdError as exc:
        if debugging(args):
            err_console.print_exception()
        err_console.print(f"[bold red]Error:[/] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}", highlight=False)
        return exc.exit_code
    except _EXIT as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except _USAGE as exc:
        exc.show()  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    except _INTERRUPT:
        err_console.print("\n[yellow]interrupted[/]")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: still one line and a way forward, never a bare traceback
        if debugging(args):
            err_console.print_exception()
        first = (str(exc).strip().splitlines() or [""])[0]
        err_console.print(f"[bold red]Error:[/] unexpected {type(exc).__name__}: {escape(first)}", highlight=False)
        err_console.print("[yellow]hint:[/] this is a bug in Freehold; run the command again with --debug for "
                          "the traceback and report it",
                          highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
