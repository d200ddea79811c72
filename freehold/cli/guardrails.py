"""``freehold guardrails ...``: try a prompt against the serving policy; measure the safety classifier."""

from __future__ import annotations

from pathlib import Path

import typer

from freehold.cli.common import console, print_json, settings

app = typer.Typer(no_args_is_help=True, help="Guardrails: what serving refuses, replaces and redacts.")


@app.command("check")
def check_cmd(text: str = typer.Argument(..., help="A prompt, as a user would send it."),
              policy: Path | None = typer.Option(None, "--policy", help="The policy file (default: the default "
                                                 "policy)."),
              model: str = typer.Option("default", "--model", help="Whose \\[models.NAME] section applies."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """What the guardrails would do with a prompt: refuse it (and why), or what the model would read."""
    from freehold.guardrails import Guardrails, load_policy

    guard = Guardrails(load_policy(policy)).guard(model)
    checked = guard.check(messages=[{"role": "user", "content": text}])
    doc = {"blocked": checked.blocked, "reply": checked.reply or None,
           "model_reads": (checked.messages or [{}])[-1].get("content") if not checked.blocked else None,
           "replaced": sorted(checked.placeholders) or sorted({t for t, _ in checked.known})}
    if as_json:
        print_json(doc)
        return
    if checked.blocked:
        console.print(f"refused by the {checked.blocked} rail: {checked.reply}", markup=False, highlight=False)
    else:
        console.print(f"the model reads: {doc['model_reads']}", markup=False, highlight=False)


@app.command("eval")
def eval_cmd(mail: list[Path] = typer.Option([], "--mail", help="Mail archives (mbox) of real questions to add "
                                             "as safe prompts (half to each side of the split)."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Measure the shipped safety classifier on a strict split and sign the figures into the ledger."""
    from importlib import resources

    from freehold.guardrails.classifier import record_eval

    sets = Path(str(resources.files("freehold.evals").joinpath("sets")))
    record, scores = record_eval(settings().home, sets, {p.stem: p for p in mail})
    if as_json:
        print_json({"record": record.number, "hash": record.hash, "scores": scores})
        return
    for i in (1, 2):
        f1, base = scores[f"fold{i}_f1"], scores[f"fold{i}_baseline_f1"]
        console.print(f"fold {i}: F1 {f1:.3f} (keyword baseline {base:.3f}), false positives "
                      f"{scores[f'fold{i}_false_positive_rate']:.3f}", highlight=False)
    console.print(f"signed: ledger record {record.number} ({record.hash[:19]})", highlight=False)
