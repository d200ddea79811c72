"""``freehold eval NAME`` and ``freehold card NAME``: evaluate a model, write its model card.

Both call one library function each (``freehold.evals.run_eval`` / ``write_card``); this
module parses flags, draws progress bars and renders the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from typer.core import TyperCommand, TyperOption

from freehold.cli import app
from freehold.cli.common import console, err_console, open_store, print_json, progress_bar, settings
from freehold.errors import UsageError


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _render(report: Any) -> None:
    from freehold.evals import suite_parts

    for run in report.runs:
        base = next((b for b in report.base_runs if b.result.suite == run.result.suite), None)
        suite = run.result.suite
        table = Table(title=f"{suite}  (ledger record {run.record}"
                            + (f"; base: record {base.record}" if base else "") + ")", title_justify="left")
        table.add_column("metric")
        table.add_column(report.model)
        if base:
            table.add_column(report.base or "base")
            table.add_column("Δ")
        scores = run.result.scores
        keys = suite_parts(suite).headline(scores)  # the rest is in --json and the ledger
        for k in keys or list(scores):
            row = [k, _fmt(scores[k])]
            if base:
                other = base.result.scores.get(k)
                row += [_fmt(other), _fmt(scores[k] - other) if isinstance(other, int | float) else "-"]
            table.add_row(*row)
        console.print(table)
    for suite, q in report.comparison.items():
        if "better_count" in q:  # a suite whose compare pairs conversations (quality's paired differences)
            _render_paired(suite, q, report.base)
    for suite, why in report.skipped.items():
        err_console.print(f"[yellow]skipped {suite}:[/] {why}", highlight=False)
    console.print(f"\nEvery number above is a signed eval record; 'freehold card {report.model}' writes the "
                  "model card from them.", highlight=False)


def _render_paired(suite: str, q: dict[str, Any], base: str | None) -> None:
    console.print(f"\n{suite} vs {base}: better on {q['better_count']} conversations, "
                  f"worse on {q['worse_count']} (embedding similarity to the real reply)", highlight=False)
    for label in ("better", "worse"):
        for ex in q.get(label, [])[:2]:
            console.print(f"[bold]{label}[/] ({ex['similarity_delta']:+.3f}) prompt: {ex['prompt'][:120]!r}\n"
                          f"  fine-tune: {ex['model_reply'][:160]!r}\n  base:      {ex['base_reply'][:160]!r}",
                          highlight=False)
    paired = q.get("paired", {})
    if paired.get("perplexity_ratio"):
        pr = paired["perplexity_ratio"]
        console.print(f"perplexity ratio (fine-tune / base): {pr['ratio']:.3f} "
                      f"(95% CI {pr['ci95'][0]:.3f}-{pr['ci95'][1]:.3f})", highlight=False)
    for metric, d in paired.items():
        if isinstance(d, dict) and "better" in d:  # a metric's paired difference (not the ratio)
            console.print(f"  Δ {metric:<18} {d['delta']:+.4f}  95% CI [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]"
                          f"  better {d['better']}, worse {d['worse']}", highlight=False)


class _EvalCommand(TyperCommand):
    """Fills the --suite and --eval-data help from the suite registry when the help is drawn, so
    a suite registered after this module is imported is listed too."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from freehold.evals import SUITES
        from freehold.evals.base import public_sets

        helps = {"suite": f"Comma-separated suites: {', '.join(SUITES)} (default: every suite whose data is "
                          "available).",
                 "eval_data": f"Folder of public eval sets ({', '.join(f'{s}/' for s in public_sets())}); "
                              "default: the copies packaged with freehold."}
        for param in self.params:
            if isinstance(param, TyperOption) and param.name in helps:
                param.help = helps[param.name]
        super().format_help(ctx, formatter)


# What 'freehold eval NAME' samples with no flags: every suite in minutes on 2 cores (SmolLM2:
# safety 25 s, bias ~80 s, languages ~200 s at 10 items), not the hours of every item.
DEFAULT_LIMIT = 10


@app.command("eval", cls=_EvalCommand)
def eval_cmd(
    name: str = typer.Argument(..., help="Model to evaluate."),
    suite: str = typer.Option(None, "--suite", "-s",
                              help="Comma-separated suites (default: every suite whose data is available)."),
    data: str = typer.Option(None, "--data", "-d", help="Dataset whose held-out split the quality suite uses."),
    split: str = typer.Option(None, "--split", help="Its split to evaluate: test (default, else validation), "
                              "validation, or all (a dataset the model never saw, e.g. a later quarter)."),
    against: str = typer.Option(None, "--against", help="Also evaluate this model (the base) on the same items."),
    knowledge: str = typer.Option(None, "--knowledge", "-k",
                                  help="Quality suite: ground every prompt in this knowledge index, as served."),
    limit: int = typer.Option(DEFAULT_LIMIT, "--limit", "-n",
                              help="At most N items per data source (per category), a seeded sample; 0: every "
                                   "item (hours on a small CPU)."),
    eval_data: Path = typer.Option(None, "--eval-data",
                                   help="Folder of public eval sets; default: the copies packaged with freehold."),
    prompts: list[Path] = typer.Option([], "--prompts",
                                       help="Your own safety prompts, CSV or JSONL with a 'prompt' column "
                                            "(optional 'label': safe|unsafe). Repeatable."),
    backend: str = typer.Option("llama", "--backend", help="llama (llama.cpp, GGUF) or torch."),
    batch: int = typer.Option(8, "--batch", help="Prompts decoded together (1: one at a time)."),
    max_tokens: int = typer.Option(96, "--max-tokens", help="Longest reply generated per prompt."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """Evaluate a model: held-out quality, safety, bias, languages. Each result is a signed ledger record;
    an interrupted run resumes where it stopped."""
    from freehold.evals import run_eval

    if max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, got {max_tokens}", "try --max-tokens 96")
    if limit < 0:
        raise UsageError(f"--limit must be 0 (every item) or positive, got {limit}", f"try --limit {DEFAULT_LIMIT}")
    if limit:
        err_console.print(f"[dim]a sample of at most {limit} items per data source; --limit 0 evaluates every "
                          "item[/]", highlight=False)
    store = open_store()
    with progress_bar(byte_units=False) as progress:
        report = run_eval(name, suites=suite, data=data, split=split, against=against, limit=limit or None,
                          eval_data=eval_data, knowledge=knowledge,
                          prompt_files=prompts, backend=backend, batch=batch, max_tokens=max_tokens,
                          store=store, settings=settings(), progress=progress)
    if as_json:
        print_json(report.to_dict())
    else:
        _render(report)


@app.command("card")
def card_cmd(
    name: str = typer.Argument(..., help="Model to document."),
    output: Path = typer.Option(None, "--output", "-o", help="Folder for README.md (default ./NAME-card)."),
    annex_xi: bool = typer.Option(False, "--annex-xi", help="Also write EU AI Act Annex XI documentation."),
    intended_use: str = typer.Option(None, "--intended-use", help="What the model is for (card + Annex XI 1.1.a)."),
    acceptable_use: str = typer.Option(None, "--acceptable-use", help="Acceptable use policy (Annex XI 1.1.b)."),
    as_json: bool = typer.Option(False, "--json", help="Print paths, metadata and missing fields as JSON."),
) -> None:
    """Write a Hugging Face model card from the ledger (front matter model-index = the eval records)."""
    from freehold.evals import write_card

    result = write_card(name, output=output, annex_xi=annex_xi, intended_use=intended_use,
                        acceptable_use=acceptable_use, store=open_store())
    if as_json:
        print_json({"card": str(result.path), "annex_xi": str(result.annex_path) if result.annex_path else None,
                    "missing": result.missing, "eval_records": result.evals, "metadata": result.metadata})
        return
    console.print(f"wrote {result.path} (eval records: {', '.join(map(str, result.evals)) or 'none'})",
                  highlight=False)
    if result.annex_path:
        console.print(f"wrote {result.annex_path}", highlight=False)
        if result.missing:
            err_console.print(f"[yellow]Annex XI fields missing from the ledger:[/] {', '.join(result.missing)}",
                              highlight=False)
