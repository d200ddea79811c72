"""``freehold audit ...``: verify, replay, prove membership, add notes, export attestations."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from freehold.cli.common import console, err_console, open_store, print_json, progress_bar
from freehold.errors import UsageError

app = typer.Typer(no_args_is_help=True, help="Verify and explain what went into a model (the signed ledger).")


@app.command("verify")
def verify_cmd(
    name: str = typer.Argument(..., help="Model (or, with --dataset, dataset) name."),
    dataset: bool = typer.Option(False, "--dataset", help="NAME is a dataset."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    key: list[Path] | None = typer.Option(
        None, "--key", help="Trust only this public key file (repeatable), not the store's trusted list."
    ),
) -> None:
    """Check the chain, signatures, artefact digests and dataset Merkle roots behind NAME."""
    from rich.markup import escape

    from freehold.ledger.keys import keys_from_files
    from freehold.ledger.ops import verify

    store = open_store(bundled=False)
    trusted = keys_from_files(key) if key else None
    with progress_bar(transient=True) as progress:
        report = verify(store, name, kind="dataset" if dataset else "model", trusted=trusted, progress=progress)
    if as_json:
        print_json(report.to_dict())
    else:
        signers = ", ".join(f"{k} ({n})" for k, n in report.signers.items()) or "none"
        console.print(
            f"{report.name}: {report.records} ledger records, {report.lineage_records} in its lineage; "
            f"signed by {signers}",
            highlight=False,
        )
        sources = f", {report.sources_checked} source file(s)" if report.sources_checked else ""
        console.print(
            f"  {report.blobs_checked} blobs rehashed ({report.bytes_hashed / 1e6:.1f} MB){sources}, "
            f"{report.datasets_checked} dataset(s) / {report.examples_checked} examples in {report.seconds:.2f} s",
            highlight=False,
        )
        if report.runs or report.checkpoints_checked or report.checkpoints_not_checked:
            console.print(
                f"  checkpoints: {report.checkpoints_checked} checked, {report.checkpoints_not_checked} not checked; "
                f"adapters: {report.adapters_checked} checked, {report.adapters_not_checked} not checked "
                "(weights loaded and compared with their step records)",
                highlight=False,
            )
        for item in report.not_checked:
            console.print(f"  [yellow]not checked:[/] {escape(str(item))}", highlight=False)
        for w in report.warnings:
            console.print(f"  [yellow]warning:[/] {escape(str(w))}", highlight=False)
        for p in report.problems[1:10]:
            err_console.print(f"  also: {p}", highlight=False, markup=False)
        if report.complete and not report.warnings:
            console.print("[bold green]verified[/]: every check passed")
        elif report.ok:
            left = [f"{len(report.not_checked)} item(s) could not be checked"] if report.not_checked else []
            left += [f"{len(report.warnings)} warning(s)"] if report.warnings else []
            console.print(
                f"[bold green]verified[/]: every check that could run passed; {' and '.join(left)} (see above)",
                highlight=False,
            )
        if report.ok and report.runs and not report.checkpoints_checked:
            console.print(
                "  [yellow]no checkpoint of its training run could be checked:[/] the tuned weights were not "
                "compared with the recorded steps",
                highlight=False,
            )
    report.raise_for_problems()


@app.command("replay")
def replay_cmd(
    name: str = typer.Argument(..., help="Model name."),
    steps: str | None = typer.Option(None, "--steps", help="Inclusive span A:B of steps to replay."),
    sample: str | None = typer.Option(None, "--sample", help="Replay a random fraction, e.g. 1%."),
    seed: int = typer.Option(0, "--seed", help="Seed for choosing the sample."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Re-run recorded training steps from the nearest checkpoint and compare weight digests."""
    from freehold.errors import VerificationError
    from freehold.ledger.ops import parse_fraction, parse_span, replay

    store = open_store(bundled=False)
    span = parse_span(steps) if steps else None
    fraction = parse_fraction(sample) if sample else None
    with progress_bar(transient=True, byte_units=False) as progress:
        reports = replay(store, name, span, fraction, seed, progress)
    if as_json:
        print_json([r.to_dict() for r in reports])
    else:
        for r in reports:
            console.print(r.summary(), highlight=False, markup=False)
    if not all(r.bit_exact for r in reports):
        raise VerificationError(
            "replay did not reproduce the recorded weights bit for bit",
            "see the distances above; same machine and thread count should match exactly",
        )


@app.command("prove")
def prove_cmd(
    name: str = typer.Argument(..., help="Model name."),
    example_id: str | None = typer.Argument(None, help="The example's id (64 hex digits)."),
    file: Path | None = typer.Option(None, "--file", "-f", help="JSONL of examples (or ids) to check."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Prove an example was (or was not) in NAME's training data, and list the steps that used it."""
    from freehold.ledger.membership import ids_from_file
    from freehold.ledger.ops import prove

    if (example_id is None) == (file is None):
        raise UsageError("give either an EXAMPLE_ID or --file", "e.g. freehold audit prove acme 3fa2… ")
    ids = ids_from_file(file) if file else [str(example_id).lower()]
    store = open_store(bundled=False)
    proofs = prove(store, name, ids)
    if as_json:
        print_json([p.to_dict() for p in proofs] if file else proofs[0].to_dict())
        return
    for p in proofs:
        if not p.found:
            console.print(f"{p.example_id}: [bold]not in[/] {name}'s training data", highlight=False)
            continue
        state = "[green]verified[/]" if p.verified else "[red]PROOF FAILS[/]"
        console.print(
            f"{p.example_id}: in dataset {p.dataset} (record {p.dataset_record}), leaf {p.index} of {p.size}, "
            f"proof {state}; used in {len(p.steps)} step(s)",
            highlight=False,
        )
        if not file:
            console.print(f"  merkle root {p.merkle_root}", highlight=False)
            for n, h in enumerate(p.proof):
                console.print(f"  path[{n}] {h}", highlight=False)
            for s in p.steps[:50]:
                console.print(f"  step {s['step']} of run {s['run']} (record {s['record']})", highlight=False)
    if file:
        used = sum(1 for p in proofs if p.found)
        console.print(f"{used} of {len(proofs)} example(s) were in the training data", highlight=False)


@app.command("note")
def note_cmd(
    name: str = typer.Argument(..., help="Model name."),
    text: str = typer.Argument(..., help="The decision and why, in quotes."),
) -> None:
    """Record a decision note about NAME on the ledger."""
    from freehold.ledger.ops import note

    rec = note(open_store(bundled=False), name, text)
    console.print(f"noted as record {rec.number} ({rec.hash[:19]})", highlight=False)


@app.command("attach")
def attach_cmd(
    name: str = typer.Argument(..., help="Model name."),
    verdict: str = typer.Option(..., "--verdict", help="pass, concern or flag."),
    severity: str = typer.Option("low", "--severity", help="low or high (a high flag marks the model everywhere "
                                 "and deploying it needs a confirmed override)."),
    summary: str = typer.Option(..., "--summary", help="What you found, in a sentence."),
    report: Path | None = typer.Option(None, "--report", help="A report file to attach (at most 1 MB)."),
    push_to: str | None = typer.Option(None, "--push", help="Registry reference to attach it to (default: where the "
                                       "model was pulled from or pushed to, if anywhere)."),
    key: str | None = typer.Option(None, "--key", help="The registry's key (default: FREEHOLD_REGISTRY_KEY)."),
    local: bool = typer.Option(False, "--local", help="Keep it in this store only."),
) -> None:
    """Attach a signed audit to NAME (an in-toto statement, in the ledger, sent to its registry)."""
    from freehold.audits import attach
    from freehold.registry.client import origin, send_audits

    store = open_store(bundled=False)
    audit = attach(store, name, verdict, severity, summary, report)
    console.print(f"audit {audit.digest[:19]} attached to {name}: {verdict} ({severity})", highlight=False)
    target = None if local else push_to or origin(store, store.get(name))
    if target:
        sent = send_audits(store, name, target, key=key)
        console.print(f"sent to {target} ({sent} new)", highlight=False)


@app.command("attest")
def attest_cmd(
    name: str = typer.Argument(..., help="Model name."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the DSSE envelopes here (JSONL)."),
    unsigned: bool = typer.Option(False, "--statement", help="Print the bare in-toto statements instead."),
) -> None:
    """Export in-toto statements (SLSA provenance + Freehold lineage) in signed DSSE envelopes."""
    from freehold.ledger.ops import attest

    docs = attest(open_store(bundled=False), name, signed=not unsigned)
    text = "".join(json.dumps(d, sort_keys=True) + "\n" for d in docs)
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {len(docs)} {'statement' if unsigned else 'envelope'}(s) to {output}")
    else:
        print(text, end="")


@app.command("sign")
def sign_cmd(
    directory: Path = typer.Argument(..., help="An exported model directory."),
    signature: Path | None = typer.Option(None, "--signature", help="Where to write it (default DIR.sig)."),
) -> None:
    """Sign a model directory with OpenSSF model-signing (check it with 'model_signing verify key')."""
    from freehold.ledger.ops import sign_directory

    sig, pub = sign_directory(open_store(bundled=False), directory, signature)
    console.print(f"signature: {sig}\npublic key: {pub}", highlight=False)
    console.print(
        f"check with: model_signing verify key {directory} --signature {sig} --public_key {pub}", highlight=False
    )


@app.command("repair")
def repair_cmd() -> None:
    """Set a torn last record aside (an interrupted append) and note that on the ledger."""
    from freehold.ledger.ops import repair

    rec = repair(open_store(bundled=False))
    if rec is None:
        console.print("the ledger ends cleanly; nothing to repair")
    else:
        console.print(
            f"set {rec.payload['torn_bytes']} torn bytes aside as {rec.payload['set_aside_as']}; "
            f"recorded as record {rec.number}",
            highlight=False,
        )


@app.command("log")
def log_cmd(
    limit: int = typer.Option(20, "--limit", "-n", help="How many of the latest records."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the latest ledger records."""
    from freehold.ledger.ops import recent

    records = recent(open_store(bundled=False), limit)
    if as_json:
        print_json([{**r.to_dict(), "record": r.number, "hash": r.hash} for r in records])
        return
    from freehold.ledger.graph import describe

    for r in records:
        console.print(f"{r.number:>6}  {r.time[:19]}  {r.hash[7:19]}  {describe(r)}", highlight=False, markup=False)
