"""run (one-shot) and chat (interactive, multi-turn)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from freehold.cli import app
from freehold.cli.common import console, err_console, open_store, print_json, progress_bar, settings
from freehold.config import REPLY_MAX_TOKENS, Settings
from freehold.engine import ChatEngine, Chunk, Engine, SamplingParams, load_engine
from freehold.errors import UsageError


def _default(knob: str) -> str:
    return f"Default: the model's, else {getattr(SamplingParams(), knob)}."


CHAT_HELP = """Commands: /bye (exit), /clear (forget the conversation), /system TEXT (set the system
prompt), /help. End a line with \\ to continue on the next line."""


def _load(name: str, backend: str, ctx: int | None, threads: int | None) -> ChatEngine:
    # Like ollama: use a running server when there is one (and nothing asks for in-process).
    if backend == "llama" and ctx is None and threads is None:
        from freehold.client import connect

        remote = connect(settings(), name)
        if remote is not None:
            return remote
    from freehold.models import check_servable

    store = open_store()
    check_servable(store, store.get(name))  # a restrictive licence is accepted once before the model answers
    with progress_bar(transient=True) as progress:
        return load_engine(name, store=store, backend=backend, settings=settings(), context=ctx,
                           threads=threads, progress=progress)


def _chat(engine: ChatEngine, messages: list[dict[str, Any]], params: SamplingParams,
          knowledge: str | None) -> Iterator[Chunk]:
    """The chat's chunks, grounded where ``knowledge`` (or, when None, the model) says so."""
    from freehold.client import RemoteEngine

    if isinstance(engine, RemoteEngine):
        return engine.chat(messages, params, knowledge=knowledge)  # the server grounds it
    if isinstance(engine, Engine):
        from freehold.knowledge import answer, knowledge_for, load_index

        kb = knowledge_for(engine.entry, knowledge)
        if kb:
            return answer(engine, load_index(open_store(), kb), messages, params)
    return engine.chat(messages, params)


def print_sources(grounding: dict[str, Any] | None) -> None:
    """The citations of a grounded answer, numbered as in its prompt."""
    if not grounding:
        return
    cites = grounding.get("citations") or []
    if not cites:
        console.print(f"(nothing in {grounding.get('knowledge')} answers this)", style="dim", markup=False,
                      highlight=False)
        return
    console.print("Sources:", style="dim", markup=False, highlight=False)
    for n, c in enumerate(cites, 1):
        console.print(f"  [{n}] {c['title']} ({c['source']}, {c['id'][:24]})", style="dim", markup=False,
                      highlight=False)


def _stream(engine: ChatEngine, chunks: Iterator[Chunk], verbose: bool) -> str:
    last: list[Any] = [None]
    completion = engine.complete(_echo(chunks, last))
    sys.stdout.write("\n")
    sys.stdout.flush()
    print_sources(getattr(last[0], "grounding", None))
    if verbose:
        err_console.print(
            f"[dim]prompt {completion.prompt_tokens} tokens, output {completion.completion_tokens} tokens, "
            f"first token {completion.time_to_first_token * 1000:.0f} ms, "
            f"{completion.tokens_per_second:.1f} tokens/s, finish: {completion.finish_reason}[/]")
    return completion.text


def _echo(chunks: Any, last: list[Any]) -> Any:
    for chunk in chunks:
        if chunk.text:
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        last[0] = chunk
        yield chunk


@app.command("run")
def run_cmd(
    name: str = typer.Argument(..., help="Model name, e.g. smollm2."),
    prompt: str | None = typer.Argument(None, help="The prompt. Read from stdin when omitted and piped; "
                                                   "starts a chat on a terminal."),
    system: str | None = typer.Option(None, "--system", help="System prompt."),
    raw: bool = typer.Option(False, "--raw", help="Plain completion: no chat template."),
    temperature: float | None = typer.Option(None, "--temperature", "-t",
                                             help="0 = greedy (deterministic). " + _default("temperature")),
    top_p: float | None = typer.Option(None, "--top-p", help=_default("top_p")),
    top_k: int | None = typer.Option(None, "--top-k", help=_default("top_k")),
    min_p: float | None = typer.Option(None, "--min-p", help=_default("min_p")),
    repeat_penalty: float | None = typer.Option(None, "--repeat-penalty", help=_default("repeat_penalty")),
    seed: int | None = typer.Option(None, "--seed", help="Fix the sampling seed."),
    stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", "-n", help="Limit output tokens."),
    ctx: int | None = typer.Option(None, "--ctx", help=f"Context window (default {Settings.context} or the model's)."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads."),
    backend: str = typer.Option("llama", "--backend", help="llama (llama.cpp) or torch (PyTorch)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print token counts and speed."),
    knowledge: str | None = typer.Option(
        None, "--knowledge", "-k", help="Answer from this knowledge index, citing its sources; 'none': without. "
        "Default: the model's own (tune --knowledge)."),
) -> None:
    """Run a model on one prompt and stream the answer (or chat, on a terminal with no prompt)."""
    params = SamplingParams.given(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                                  repeat_penalty=repeat_penalty, seed=seed, stop=tuple(stop), max_tokens=max_tokens)
    if prompt is None:
        if sys.stdin.isatty():
            _chat_loop(_load(name, backend, ctx, threads), params, system, knowledge=knowledge)
            return
        prompt = sys.stdin.read()
        if not prompt.strip():
            raise UsageError("no prompt given and stdin is empty", f"freehold run {name} \"your question\"")
    engine = _load(name, backend, ctx, threads)
    try:
        if raw:
            _stream(engine, engine.generate(prompt, params), verbose)
        else:
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}]
            _stream(engine, _chat(engine, messages, params, knowledge), verbose)
    finally:
        engine.close()


@app.command("chat")
def chat_cmd(
    name: str = typer.Argument(..., help="Model name, e.g. smollm2."),
    system: str | None = typer.Option(None, "--system", help="System prompt."),
    temperature: float | None = typer.Option(None, "--temperature", "-t",
                                             help="0 = greedy. " + _default("temperature")),
    seed: int | None = typer.Option(None, "--seed"),
    max_tokens: int | None = typer.Option(None, "--max-tokens", "-n"),
    ctx: int | None = typer.Option(None, "--ctx"),
    backend: str = typer.Option("llama", "--backend"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
    knowledge: str | None = typer.Option(None, "--knowledge", "-k",
                                         help="Answer from this knowledge index; 'none': without."),
) -> None:
    """Chat with a model, multi-turn. /bye to quit."""
    params = SamplingParams.given(temperature=temperature, seed=seed, max_tokens=max_tokens)
    engine = _load(name, backend, ctx, None)
    if not engine.has_template:
        from freehold.engine.chat import no_template_error

        engine.close()
        raise no_template_error(engine.name)
    _chat_loop(engine, params, system, verbose, knowledge=knowledge)


def _read_message() -> str | None:
    lines: list[str] = []
    prompt = ">>> "
    while True:
        try:
            line = input(prompt)
        except EOFError:
            return None if not lines else "\n".join(lines)
        if line.endswith("\\"):
            lines.append(line[:-1])
            prompt = "... "
            continue
        lines.append(line)
        return "\n".join(lines)


def _chat_loop(engine: ChatEngine, params: SamplingParams, system: str | None, verbose: bool = False,
               knowledge: str | None = None) -> None:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()
    history: list[dict[str, str]] = []
    if sys.stdin.isatty():
        console.print(f"[dim]chatting with {engine.name} ({engine.n_ctx}-token context). /help for commands.[/]")
    try:
        while True:
            text = _read_message()
            if text is None:
                break
            stripped = text.strip()
            if not stripped:
                continue
            if stripped.startswith("/"):
                cmd, _, arg = stripped.partition(" ")
                if cmd in ("/bye", "/exit", "/quit"):
                    break
                if cmd == "/clear":
                    history.clear()
                    console.print("[dim]conversation cleared[/]")
                elif cmd == "/system":
                    system = arg.strip() or None
                    console.print(f"[dim]system prompt {'set' if system else 'cleared'}[/]")
                elif cmd in ("/help", "/?"):
                    console.print(CHAT_HELP, markup=False)
                else:
                    console.print(f"unknown command {cmd}; /help lists them", markup=False)
                continue
            history.append({"role": "user", "content": text})
            messages = ([{"role": "system", "content": system}] if system else []) + history
            try:
                answer = _stream(engine, _chat(engine, messages, params, knowledge), verbose)
            except KeyboardInterrupt:
                sys.stdout.write("\n")
                history.pop()
                continue
            except Exception:
                history.pop()
                raise
            history.append({"role": "assistant", "content": answer})
    finally:
        engine.close()


@app.command("reply")
def reply_cmd(
    name: str = typer.Argument(..., help="Model that drafts the reply, e.g. acme-support."),
    mail: Path = typer.Option(..., "--mail", "-m", help="The incoming mail (.eml file)."),
    knowledge: str | None = typer.Option(
        None, "--knowledge", "-k", help="Answer from this knowledge index, citing its sources; 'none': without. "
        "Default: the model's own (tune --knowledge)."),
    temperature: float | None = typer.Option(None, "--temperature", "-t", help="Default: the model's."),
    seed: int | None = typer.Option(None, "--seed", help="Fix the sampling seed."),
    max_tokens: int | None = typer.Option(REPLY_MAX_TOKENS, "--max-tokens", "-n",
                                          help=f"Limit the draft's tokens [{REPLY_MAX_TOKENS}]."),
    as_json: bool = typer.Option(False, "--json", help="Print the draft and its sources as JSON."),
) -> None:
    """Draft a reply to an incoming mail in your voice, with the sources it is based on."""
    from freehold.knowledge import knowledge_for, load_index
    from freehold.knowledge.reply import draft_reply, read_mail

    incoming = read_mail(mail)
    params = SamplingParams.given(temperature=temperature, seed=seed, max_tokens=max_tokens)
    store = open_store()
    with progress_bar(transient=True) as progress:
        engine = load_engine(name, store=store, settings=settings(), progress=progress)
    try:
        kb = knowledge_for(engine.entry, knowledge)
        index = load_index(store, kb) if kb else None
        if as_json:
            draft = draft_reply(engine, incoming, index, params)
            print_json(draft.to_dict())
            return
        console.print(f"To: {incoming.sender}\nSubject: {incoming.reply_subject}\n", markup=False, highlight=False)

        def echo(piece: str) -> None:
            sys.stdout.write(piece)
            sys.stdout.flush()

        draft = draft_reply(engine, incoming, index, params, on_text=echo)
        sys.stdout.write("\n")
        sys.stdout.flush()
        print_sources(draft.grounding)
    finally:
        engine.close()
