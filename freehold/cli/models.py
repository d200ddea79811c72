"""Model management commands: models, show, import, rm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from freehold.cli import app
from freehold.cli.common import (
    console,
    human_count,
    human_size,
    open_store,
    print_json,
    progress_bar,
    settings,
)
from freehold.errors import ModelNotFoundError, UsageError
from freehold.home import remove
from freehold.licences import licence_terms, model_licence
from freehold.models import describe
from freehold.store import MediaType


@app.command("models")
def models_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the models in the store."""
    store = open_store()
    rows = [describe(store, m) for m in store.list()]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No models yet. Import one with 'freehold import FILE.gguf --name NAME'.")
        return
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "ID", "SIZE", "PARAMS", "QUANT", "FAMILY", "LICENSE", "MODIFIED"):
        table.add_column(col)
    for r in rows:
        name = str(r["name"]) + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        if r["audits"]["flagged"]:
            name += " [FLAGGED]"
        table.add_row(name, str(r["digest"])[7:19], human_size(int(r["size"])), human_count(r["parameters"]),
                      str(r["quantization"] or "-"), str(r["family"] or "-"), str(r["license"] or "-"),
                      str(r["modified"]).replace("T", " "))
    console.print(table)


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Model name, e.g. smollm2."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    license_: bool = typer.Option(False, "--license", help="Print the full licence text."),
    template: bool = typer.Option(False, "--template", help="Print the chat template."),
) -> None:
    """Show a model's metadata, licence, layers and digests."""
    store = open_store()
    m = store.get(name)
    license_text = store.text_layer(m.manifest, MediaType.LICENSE)
    template_text = store.text_layer(m.manifest, MediaType.TEMPLATE)
    if license_:
        terms = licence_terms(m.manifest, license_text)
        console.print(terms if license_text else f"licence: {terms or 'not stated in the model files'}",
                      markup=False, highlight=False)
        return
    if template:
        console.print(template_text or "(no chat template: a base model)", markup=False, highlight=False)
        return
    row = describe(store, m)
    doc = {**row, "config": m.info, "source": m.manifest.source, "lineage": m.manifest.lineage,
           "layers": [layer.to_dict() for layer in m.manifest.layers], "chat_template": bool(template_text)}
    if as_json:
        print_json(doc)
        return
    console.print(f"[bold]{m.name}[/]" + (f"  (aliases: {', '.join(m.aliases)})" if m.aliases else ""))
    info = m.info
    fields = [
        ("architecture", info.get("architecture")), ("family", info.get("family")),
        ("parameters", human_count(info.get("parameters"))), ("quantization", info.get("quantization")),
        ("context length", info.get("context_length")), ("embedding length", info.get("embedding_length")),
        ("layers", info.get("block_count")), ("heads (q/kv)", f"{info.get('head_count')}/{info.get('head_count_kv')}"),
        ("vocab size", info.get("vocab_size")), ("chat template", "yes" if template_text else "no (base model)"),
        ("licence", row["license"] or "not stated"),
    ]
    table = Table(box=None, show_header=False)
    table.add_column(style="dim")
    table.add_column()
    for key, value in fields:
        if value is not None:
            table.add_row(key, str(value))
    console.print(table)
    src = m.manifest.source
    console.print("\n[bold]Provenance[/]")
    for key in sorted(src):
        console.print(f"  {key}: {src[key]}", markup=False, highlight=False)
    from freehold.models import licence_info

    lic = licence_info(store, m)
    console.print(f"\n[bold]Licence[/] {lic['name'] or 'not stated'} ({lic['kind']})", highlight=False)
    for term in lic["terms"]:
        said = (f"{term['name']} ({term['id']}, {term['kind']}): {term['source']}" if term["id"]
                else "unknown to Freehold: read its terms")
        console.print(f"  {term['text']}: {said}", markup=False, highlight=False)
    for src in lic["inherited_from"]:
        console.print(f"  inherited from the {src['kind']} {src['name']}: {src['licence']}", markup=False,
                      highlight=False)
    for o in lic["obligations"]:
        console.print(f"  must: {o['text']}", markup=False, highlight=False)
    for r in lic["restrictions"]:
        console.print(f"  restricts: {r['text']}", markup=False, highlight=False)
    from freehold.models import pending_licences

    if lic["restricts_use"]:
        pending = pending_licences(store, m)
        console.print(f"  [yellow]not accepted yet[/]: it is served once you accept it: freehold licence accept {name}"
                      if pending else "  accepted here (the ledger's licence record)", highlight=False)
    if license_text:
        first = next((ln for ln in license_text.splitlines() if ln.strip()), "")
        console.print(f"\n[bold]Licence terms[/] ({len(license_text)} chars; 'freehold show {name} --license')")
        console.print(f"  {first[:200]}", markup=False, highlight=False)
    from freehold.audits import summary

    audits = summary(store, m.manifest_digest)
    if audits["items"] or audits["signatures"]:
        flagged = " [red]FLAGGED: an open high-severity flag[/]" if audits["flagged"] else ""
        console.print("\n[bold]Audits[/]" + flagged)
        for a in audits["items"]:
            who = a["signer_name"] or f"{a['signer']} (not a trusted key)"
            mark = "" if a["valid"] else " [INVALID SIGNATURE]"
            console.print(f"  {a['time']}  {a['verdict']} ({a['severity']})  {a['summary']}  — {who}{mark}",
                          markup=False, highlight=False)
        for sig in audits["signatures"]:
            console.print(f"  signed by {sig['signer_name'] or sig['signer']} when pushed to {sig['repository']}"
                          + ("" if sig["valid"] else " [INVALID SIGNATURE]"), markup=False, highlight=False)
    console.print("\n[bold]Layers[/]")
    for layer in m.manifest.layers:
        fname = layer.annotations.get("filename", "")
        console.print(f"  {layer.media_type.split('.', 2)[-1]:<28} {layer.digest[:19]}…  "
                      f"{human_size(layer.size):>9}  {fname}", markup=False, highlight=False)
    console.print(f"\nmanifest {m.manifest_digest}", markup=False, highlight=False)


@app.command("import")
def import_cmd(
    path: Path | None = typer.Argument(None, help="A .gguf file, a Hugging Face model directory, or a model.tar "
                                        "from 'freehold bundle'."),
    name: str | None = typer.Option(None, "--name", "-n", help="Name in the store (default: from the file)."),
    bundled: str | None = typer.Option(None, "--bundled", help="Register a bundled model: smollm2 or gemma3."),
    allow_untrusted: bool = typer.Option(False, "--allow-untrusted", help="A bundle: take it even if its lineage is "
                                         "signed by a key you have not trusted."),
    accept_licence: bool = typer.Option(False, "--accept-licence", help="A bundle: accept a licence that restricts "
                                        "use (asked once, recorded)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Import a GGUF file, a Hugging Face directory, a bundle, or a bundled model into the store."""
    from freehold.home import import_model
    from freehold.registry.layout import import_layout, is_layout

    if (path is None) == (bundled is None):
        raise UsageError("give either a PATH or --bundled NAME", "e.g. 'freehold import model.gguf --name mine'")
    store = open_store()
    with progress_bar() as progress:
        if path is not None and is_layout(path):  # offline carry: checked like a pull
            result = import_layout(store, path, name=name, allow_untrusted=allow_untrusted,
                                   accept_licence=accept_licence, progress=progress)
            entry = store.get(result.name)
        else:
            entry = import_model(store, path, name, bundled=bundled, progress=progress)
    if as_json:
        print_json(describe(store, entry))
        return
    info = entry.info
    licence = model_licence(entry.manifest, store.text_layer(entry.manifest, MediaType.LICENSE)) or "not stated"
    console.print(f"imported [bold]{entry.name}[/]: {info.get('architecture')}, "
                  f"{human_count(info.get('parameters'))} params, {info.get('quantization')}, "
                  f"{human_size(entry.size)}, licence {licence}")
    from freehold.models import licence_info

    if licence_info(store, entry)["restricts_use"]:  # the table's kinds, not a note some importers write
        console.print(f"[yellow]note:[/] its licence restricts use; read 'freehold licence show {entry.name}' and "
                      f"accept it before it is served: 'freehold licence accept {entry.name}'", highlight=False)


@app.command("rm")
def rm_cmd(names: list[str] = typer.Argument(..., help="Models to remove.")) -> None:
    """Remove models; blobs are deleted once no other model uses them."""
    store = open_store(bundled=False)
    for name in names:
        result = remove(store, name)
        console.print(f"deleted '{result.name}' ({result.blobs_removed} blobs, "
                      f"{human_size(result.bytes_freed)} freed)")


@app.command("doctor")
def doctor_cmd(
    model: str = typer.Option("smollm2", "--model", help="The model the decode check loads."),
    decode: bool = typer.Option(True, "--decode/--no-decode", help="Load the model and decode one token "
                                "in a child process (a crash there is reported, not fatal)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check this machine and the store: CPU and llama.cpp features, a real decode, every blob rehashed."""
    from freehold.engine import cpu

    flags = cpu.cpu_flags()
    build = cpu.build_features()
    guard = cpu.decide(flags, build)
    store = open_store(bundled=True)
    report: dict[str, object] = {
        "cpu": {"model": cpu.cpu_model(), "flags": [f for f in cpu.SHOWN_CPU_FLAGS if flags and f in flags]},
        "llama_cpp": {"features": [name for name, value in build.items() if value == "1"],
                      "extra_buffers": guard.extra_buffers, "reason": guard.reason, "missing": list(guard.missing)},
    }
    failed = bool(guard.missing)
    if decode:
        try:
            entry = store.get(model)
        except ModelNotFoundError as exc:
            raise UsageError(f"{exc.message}, so the decode check has nothing to load",
                             "pass a model from 'freehold models' with --model, or skip it with --no-decode") from exc
        gguf = entry.manifest.layer(MediaType.GGUF)
        if gguf is None:
            raise UsageError(f"'{entry.name}' has no GGUF weights to decode with",
                             "pass a GGUF model with --model (see 'freehold models'), or skip it with --no-decode")
        probe = cpu.probe_decode(store.blob_path(gguf.digest), settings().threads)
        report["decode"] = {"model": entry.name, **probe.to_dict()}
        failed |= not probe.ok
    with progress_bar(transient=True) as progress:
        problems = store.check(progress)
    report["store"] = {"entries": len(store.refs()), "problems": [str(p) for p in problems]}
    failed |= bool(problems)
    if as_json:
        print_json(report)
    else:
        _print_doctor(report)
    if failed:
        raise typer.Exit(1)


def _print_doctor(report: dict[str, Any]) -> None:
    ok, bad = "[green]✓[/]", "[red]✗[/]"
    cpu_, build = report["cpu"], report["llama_cpp"]
    console.print(f"{ok} CPU: {cpu_['model']}", highlight=False)
    console.print(f"    features: {' '.join(cpu_['flags']) or 'unknown'}", highlight=False)
    mark = bad if build["missing"] else ok if build["extra_buffers"] else "[yellow]![/]"
    console.print(f"{mark} llama.cpp build: {' '.join(build['features'])}", highlight=False)
    if build["missing"]:
        console.print(f"    [red]compiled for {', '.join(build['missing'])}, which this CPU lacks: "
                      "rebuild with 'bash scripts/setup.sh'[/]", highlight=False)
    console.print(f"    weight buffers: {build['reason']}", highlight=False)
    decode = report.get("decode")
    if decode is not None:
        loaded = ", ".join(f"{name} {mib:.1f} MiB" for name, mib in decode["buffers"].items()) or "not reported"
        if decode["ok"]:
            console.print(f"{ok} decode: {decode['model']} loaded ({loaded}) and decoded {decode['token']!r} "
                          f"in {decode['seconds']:.1f} s", highlight=False)
        else:
            console.print(f"{bad} decode: {decode['model']}: {decode['error']} (buffers: {loaded})", highlight=False)
            console.print("    run 'bash scripts/setup.sh' to rebuild llama.cpp for this CPU; if it persists, "
                          "report it with the output of 'freehold doctor --json'", highlight=False)
    store = report["store"]
    for problem in store["problems"]:
        console.print(f"{bad} {problem}", highlight=False)
    if not store["problems"]:
        console.print(f"{ok} store: {store['entries']} entries checked, every blob matches its digest")


@app.command("env")
def env_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show every environment variable Freehold reads, with its current value."""
    from freehold.config import env_report

    rows = env_report(settings())
    if as_json:
        print_json(rows)
        return
    for r in rows:
        console.print(f"[bold]{r['name']}[/] = {r['effective']}", highlight=False)
        console.print(f"    {r['help']}", style="dim", highlight=False)
