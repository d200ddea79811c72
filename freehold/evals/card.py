"""The model card (Hugging Face format) and EU AI Act Annex XI documentation, from the ledger.

Nothing here is typed in by hand or copied from an earlier card: the front matter's
``model-index`` holds exactly the scores of the latest signed eval record per suite that
cites the model's weights; training data, procedure and lineage come from the dataset,
config, step, merge and export records in the model's lineage. What the ledger does not
know is written as *missing*, never guessed: ``--annex-xi`` lists those fields by name.

Estimates are labelled as such: training compute is ``6 x parameters x tokens`` FLOPs (the
forward + backward rule of thumb of Kaplan et al. 2020; an upper bound for LoRA, whose
frozen weights need no weight gradients), and energy is wall time x threads x an assumed
10 W per busy CPU core (state your own with ``--watts-per-thread``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import yaml

from freehold.errors import LedgerError
from freehold.evals.base import SUITES, suite_parts, suite_title
from freehold.evals.runner import weights_refs
from freehold.ledger import Ledger, LedgerIndex, Record
from freehold.licences import model_licence
from freehold.store import MediaType, ModelEntry, Store
from freehold.store.bundled import BUNDLED

# Hub ids of the bundled models, for base_model (the Hub expects a repo id there): a bundled
# model's ``upstream`` opens with its repo id (a note on who repackaged it may follow).
HUB_IDS = {b.alias: b.upstream.split()[0] for b in BUNDLED.values()}
WATTS_PER_THREAD = 10.0
# The Annex XI document's prose, filled by ``_annex``.
ANNEX_TEMPLATE = Path(__file__).with_name("templates") / "annex_xi.md"


@dataclass
class CardResult:
    path: Path
    metadata: dict[str, Any]
    annex_path: Path | None = None
    missing: list[str] = field(default_factory=list)
    evals: list[int] = field(default_factory=list)  # ledger record numbers the card reports


def eval_records(store: Store, entry: ModelEntry, records: list[Record] | None = None) -> dict[str, Record]:
    """The latest eval record per suite whose inputs cite this model's weights."""
    digests = {r["digest"] for r in weights_refs(entry)}
    if records is None:
        from freehold.ledger.bundle import stored_bundle

        carried = stored_bundle(store, entry.manifest_digest)  # a pulled model's evals came with it
        records = (carried.records if carried is not None else []) + Ledger.open(store.home).records()
    latest: dict[str, Record] = {}
    for rec in records:
        if rec.type != "eval":
            continue
        inputs = rec.payload.get("inputs") or []
        if any(isinstance(i, dict) and i.get("role") == "model" and i.get("digest") in digests for i in inputs):
            latest[str(rec.payload.get("suite"))] = rec
    return latest


def _hub_id(store: Store, name: str | None) -> str | None:
    if not name:
        return None
    try:
        entry = store.get(name)
    except Exception:  # a base no longer in the store: name it as recorded
        return name
    for alias in [*entry.aliases, entry.name.split(":")[0]]:
        if alias in HUB_IDS:
            return HUB_IDS[alias]
    return entry.name.removesuffix(":latest")


@dataclass
class _Lineage:
    records: list[Record] = field(default_factory=list)
    index: LedgerIndex | None = None
    error: str | None = None

    def of_type(self, t: str) -> list[Record]:
        return [r for r in self.records if r.type == t]


def _lineage(store: Store, entry: ModelEntry, all_records: list[Record]) -> _Lineage:
    head = (entry.manifest.lineage or {}).get("ledger_head")
    if not head:
        return _Lineage(error=f"{entry.name} names no ledger record (imported before the ledger, or by hand)")
    index = LedgerIndex(all_records)
    if head not in index.by_hash:
        return _Lineage(error=f"{entry.name}'s ledger head {head[:19]} is not in this ledger")
    return _Lineage([index.records[i] for i in index.ancestors(index.by_hash[head])], index)


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class _Card:
    """Gathers every fact once; the card and Annex XI render from it."""

    def __init__(self, store: Store, entry: ModelEntry, watts_per_thread: float) -> None:
        self.store, self.entry = store, entry
        self.records = Ledger.open(store.home).records()
        self.lineage = _lineage(store, entry, self.records)
        self.evals = eval_records(store, entry, self.records)
        self.info = entry.info
        self.source = entry.manifest.source or {}
        configs = self.lineage.of_type("config")
        self.config = configs[-1].payload if configs else None
        datasets = self.lineage.of_type("dataset")
        self.dataset_record = datasets[-1] if datasets else None
        imports = self.lineage.of_type("import")
        self.base_import = imports[0].payload if imports else None
        self.dataset_manifest: dict[str, Any] | None = None
        if self.dataset_record is not None:
            try:
                self.dataset_manifest = store.get(self.dataset_record.payload["name"], kind="dataset").manifest.config
            except Exception:  # the dataset was removed from the store; the record still has counts
                self.dataset_manifest = None
        self.training = self._training(watts_per_thread)

    # facts --------------------------------------------------------------------------------
    @property
    def license(self) -> str | None:
        recorded = (self.base_import or {}).get("license")  # what the base's import record says
        return model_licence(self.entry.manifest, self.store.text_layer(self.entry.manifest, MediaType.LICENSE),
                             recorded=str(recorded) if recorded else None)

    @property
    def base_model(self) -> str | None:
        base = self.source.get("base") or (self.config or {}).get("base_name")
        return _hub_id(self.store, base) if base else None

    @property
    def dataset_names(self) -> list[str]:
        names = [str(r.payload.get("name")).removesuffix(":latest") for r in self.lineage.of_type("dataset")]
        return list(dict.fromkeys(names))

    def _training(self, watts: float) -> dict[str, Any] | None:
        if self.config is None or self.lineage.index is None:
            return None
        index = self.lineage.index
        run = self.config.get("run")
        summary = index.runs.get(str(run))
        steps = [index.records[i] for i in summary.records] if summary else []
        out: dict[str, Any] = {"run": run, "hyperparameters": self.config.get("hyperparameters", {}),
                               "seed": self.config.get("seed"), "threads": self.config.get("threads"),
                               "architecture": self.config.get("architecture", {}),
                               "environment": self.config.get("environment", {}), "steps": len(steps)}
        if steps:
            t0 = dt.datetime.fromisoformat(steps[0].time.replace("Z", "+00:00"))
            t1 = dt.datetime.fromisoformat(steps[-1].time.replace("Z", "+00:00"))
            cfg_time = dt.datetime.fromisoformat(self.records[index.run_config[str(run)]].time.replace("Z", "+00:00"))
            wall = (t1 - min(t0, cfg_time)).total_seconds()
            tokens = sum(int(s.payload.get("tokens") or 0) for s in steps)
            out["wall_seconds"] = round(wall, 1)
            out["first_loss"], out["last_loss"] = summary.first_loss, summary.last_loss  # type: ignore[union-attr]
            if tokens:
                out["tokens"] = tokens
                params = out["architecture"].get("parameters")
                if params:
                    out["flops_estimate"] = 6 * int(params) * tokens
            threads = int(self.config.get("threads") or 1)
            out["energy_kwh_estimate"] = round(wall * threads * watts / 3.6e6, 6)
            out["watts_per_thread"] = watts
        return out


def _model_index(card: _Card) -> list[dict[str, Any]]:
    results = []
    for suite, rec in sorted(card.evals.items()):
        metrics = [{"type": k, "name": k, "value": v} for k, v in rec.payload.get("scores", {}).items()
                   if isinstance(v, int | float) and not isinstance(v, bool) and v == v]  # drop NaN
        data = [i for i in rec.payload.get("inputs", []) if i.get("role") == "data"]
        names = list(dict.fromkeys(str(i.get("dataset") or i.get("filename")) for i in data))
        results.append({
            "task": {"type": "text-generation", "name": suite_title(suite)},
            "dataset": {"type": f"freehold/{suite}", "name": ", ".join(names)[:200] or suite},
            "metrics": metrics,
            "source": {"name": f"Freehold ledger record {rec.number} ({rec.hash[:19]})", "url": f"ledger:{rec.hash}"},
        })
    return [{"name": card.entry.name, "results": results}] if results else []


def _licence_section(card: _Card) -> str:
    """The licence the model comes under (every licence of what it came from), what that binds
    its users and derivatives to, the notices it must carry, and "Built with Llama" where required."""
    from freehold.licences import describe, notice_text

    lic = describe(card.license, link=card.entry.manifest.config.get("license_link"),
                   text=card.store.text_layer(card.entry.manifest, MediaType.LICENSE))
    if not lic["name"]:
        return "Not stated in the model's files or lineage. Find out its terms before you use or share it."
    paras = [f"`{lic['name']}`" + (f" ({lic['kind']})" if lic["kind"] != "unknown" else "") + "."]
    if any(o["kind"] == "attribution" and "Built with Llama" in o["text"] for o in lic["obligations"]):
        paras.insert(0, "**Built with Llama**")
    inherited = (card.entry.manifest.source or {}).get("licence_from") or []
    if inherited:
        paras.append("Inherited from: " + ", ".join(f"{s['kind']} `{s['name']}` ({s['licence']})" for s in inherited)
                     + ".")
    items = [f"- {t['text']}: " + (f"{t['name']} ({t['id']}), {t['source']}" if t["id"]
                                   else "not in Freehold's licence table; read its terms") for t in lic["terms"]]
    items += [f"- must: {o['text']}" for o in lic["obligations"]]
    items += [f"- restricts: {r['text']}" for r in lic["restrictions"]]
    paras.append("\n".join(items))
    notice = notice_text(card.license)
    if notice:
        paras.append("Notice (carried by every copy and derivative):")
        paras.append("\n".join(f"> {line}" if line else ">" for line in notice.strip().splitlines()))
    return "\n\n".join(paras)


def _metadata(card: _Card) -> dict[str, Any]:
    from freehold.licences import terms

    parts = terms(card.license)
    # The Hub's card field takes one licence id; an expression of several goes to license_name.
    meta: dict[str, Any] = {"license": card.license if len(parts) == 1 else "other"}
    if not card.license:
        meta["license"] = "other"
    elif len(parts) > 1:
        meta["license_name"] = card.license
    if card.base_model:
        meta["base_model"] = card.base_model
    if card.dataset_names:
        meta["datasets"] = card.dataset_names
    tags = ["freehold", "text-generation"]
    if card.entry.manifest.layer(MediaType.GGUF):
        tags.append("gguf")
    if card.training is not None:  # a training run is in the lineage
        adapter = str(card.training["architecture"].get("adapter") or "")
        tags += [adapter, "fine-tuned"] if adapter and adapter != "full" else ["fine-tuned"]
    meta["tags"] = tags
    meta["pipeline_tag"] = "text-generation"
    index = _model_index(card)
    if index:
        meta["model-index"] = index
    return meta


def _table(rows: Sequence[Sequence[str]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _eval_section(card: _Card) -> str:
    if not card.evals:
        return ("No evaluation is recorded in the ledger for these weights. Run "
                f"`freehold eval {card.entry.name}` and write the card again.")
    parts = []
    for suite, rec in sorted(card.evals.items()):
        scores = rec.payload.get("scores", {})
        data = [i for i in rec.payload.get("inputs", []) if i.get("role") == "data"]
        parts.append(f"### {suite_title(suite)}\n\nLedger record {rec.number} ({rec.time[:19]}Z, "
                     f"`{rec.hash[:26]}…`), signed by `{rec.key}`. Data: "
                     + ", ".join(f"{i.get('filename') or i.get('dataset')} (`{i['digest'][:19]}…`)" for i in data)
                     + ".\n\n" + _table([(k, _num(v)) for k, v in scores.items()], ("metric", "value")))
    return "\n\n".join(parts)


def _limitations(card: _Card) -> list[str]:
    out = ["Small models make factual errors and can produce fluent but wrong answers; check answers "
           "that matter.", "Scores come from small samples where `--limit` was used; the intervals in each "
           "eval report (the record's output blob) show how far they can move."]
    for suite in _registry_order(card.evals):
        out += suite_parts(suite).limitations(card.evals[suite].payload.get("scores", {}))
    return out


def _registry_order(suites: Sequence[str] | dict[str, Any]) -> list[str]:
    """``suites`` in the order they are registered, then any no longer registered, by name."""
    return [s for s in SUITES if s in suites] + sorted(s for s in suites if s not in SUITES)


def _training_section(card: _Card) -> tuple[str, str]:
    dm = card.dataset_manifest
    rec = card.dataset_record
    if rec is None:
        data = ("No dataset record is in this model's lineage: it was not trained with Freehold, so its "
                "training data is as its publisher documents it.")
    else:
        p = rec.payload
        counts = (dm or {}).get("counts") or p.get("counts") or {}
        lines = [f"Dataset **{p.get('name')}** (ledger record {rec.number}, Merkle root `{p.get('merkle_root')}` "
                 f"over {len(p.get('example_ids') or [])} example ids)."]
        if counts:
            lines.append("Counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")
        if dm:
            srcs = dm.get("sources") or []
            if srcs:
                lines.append("Sources: " + ", ".join(f"`{Path(str(s.get('path'))).name}` ({s.get('format')}, "
                                                      f"`{str(s.get('digest'))[:19]}…`)" for s in srcs) + ".")
            if dm.get("filters"):
                lines.append("Filtered out: " + ", ".join(f"{k} {v}" for k, v in dm["filters"].items()) + ".")
            pii = dm.get("pii") or {}
            if pii:
                lines.append(f"Personal data: mode `{pii.get('mode')}`; replaced: "
                             + (", ".join(f"{k} {v}" for k, v in (pii.get("replaced") or {}).items()) or "none")
                             + ".")
            split = dm.get("split") or {}
            if split:
                lines.append(f"Split by {split.get('by')} with ratios {split.get('ratios')} (seed {dm.get('seed')}).")
        elif p.get("filters"):
            lines.append("Filtered out: " + ", ".join(f"{k} {v}" for k, v in p["filters"].items()) + ".")
        data = " ".join(lines)
    t = card.training
    if t is None:
        proc = "No training run is in this model's lineage."
    else:
        hp = t["hyperparameters"]
        rows = [(k, _num(v)) for k, v in hp.items()]
        rows += [("seed", _num(t["seed"])), ("threads", _num(t["threads"])), ("steps", _num(t["steps"]))]
        for key, label in (("wall_seconds", "wall time (s)"), ("tokens", "training tokens"),
                           ("flops_estimate", "compute estimate (FLOPs, 6·N·T)"),
                           ("energy_kwh_estimate", f"energy estimate (kWh, {t.get('watts_per_thread')} W/thread)"),
                           ("first_loss", "first loss"), ("last_loss", "last loss")):
            if key in t:
                rows.append((label, _num(t[key])))
        env = t.get("environment") or {}
        proc = (f"Run `{t['run']}`" + (f" on {env.get('platform')}" if env.get("platform") else "") + ".\n\n"
                + _table(rows, ("setting", "value")))
    return data, proc


def _lineage_section(card: _Card) -> str:
    if card.lineage.error:
        return card.lineage.error + "."
    rows = []
    for r in card.lineage.records:
        if r.type == "step":
            continue
        outs = [o for o in r.payload.get("outputs", []) if isinstance(o, dict)]
        rows.append((str(r.number), r.type, r.time[:19], f"`{r.hash[:19]}…`",
                     ", ".join(f"`{o['digest'][:19]}…`" for o in outs[:3]) or "-"))
    return ("Every record is signed and hash-chained; check them with "
            f"`freehold audit verify {card.entry.name}`.\n\n"
            + _table(rows, ("record", "type", "time (UTC)", "hash", "outputs")))


def render_card(card: _Card, intended_use: str | None = None) -> tuple[str, dict[str, Any]]:
    meta = _metadata(card)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    e = card.entry
    weights = weights_refs(e)
    data, proc = _training_section(card)
    info = card.info
    details = [("name", e.name), ("manifest", f"`{e.manifest_digest}`")]
    details += [(f"weights ({str(w.get('media_type', '')).rsplit('.', 1)[-1]})", f"`{w['digest']}`") for w in weights]
    for key in ("architecture", "parameters", "quantization", "context_length", "license"):
        if info.get(key) is not None:
            details.append((key, _num(info[key])))
    if card.base_model:
        details.append(("base model", card.base_model))
    body = [
        f"# {e.name}",
        "This card was written by `freehold card` from the signed ledger: every number below is from a "
        "ledger record that cites these exact weights (digests below).",
        "## Model details\n\n" + _table(details, ("", "")),
        "## Intended use\n\n" + (intended_use or (
            "Not stated by the publisher (pass `--intended-use`). "
            + ("A fine-tune for the kind of conversations in its training data (below); " if card.dataset_record
               else "") + "a small general chat model is not suited to decisions about people, medical, legal "
            "or financial advice, or use without human review.")),
        "## Training data\n\n" + data,
        "## Training procedure\n\n" + proc,
        "## Evaluation\n\n" + _eval_section(card),
        "## Licence\n\n" + _licence_section(card),
        "## Limitations\n\n" + "\n".join(f"- {x}" for x in _limitations(card)),
        "## Lineage\n\n" + _lineage_section(card),
    ]
    return f"---\n{front}---\n\n" + "\n\n".join(body) + "\n", meta


# EU AI Act, Annex XI, Section 1 (all general-purpose AI models) and Section 2 item 1-2
# (evaluation and adversarial testing, required for models with systemic risk; included because
# the ledger holds them).
ANNEX_FIELDS: tuple[tuple[str, str], ...] = (
    ("1.1.a", "Tasks the model is intended to perform; type and nature of AI systems it can be integrated in"),
    ("1.1.b", "Acceptable use policies"),
    ("1.1.c", "Date of release and methods of distribution"),
    ("1.1.d", "Architecture and number of parameters"),
    ("1.1.e", "Modality (e.g. text, image) and format of inputs and outputs"),
    ("1.1.f", "Licence"),
    ("1.2.a", "Technical means (instructions of use, infrastructure, tools) required for integration"),
    ("1.2.b", "Design specifications and training process: methodologies, key design choices, what it optimises"),
    ("1.2.c", "Data for training, testing and validation: type, provenance, curation, number of data points, "
              "bias detection"),
    ("1.2.d", "Computational resources used to train (e.g. FLOPs), training time"),
    ("1.2.e", "Known or estimated energy consumption of the model"),
    ("2.1", "Evaluation strategies and results (public or internal protocols and tools)"),
    ("2.2", "Adversarial testing (internal and/or external red-teaming), model adaptations"),
)


def _annex(card: _Card, intended_use: str | None, acceptable_use: str | None) -> tuple[str, list[str], dict[str, Any]]:
    info, t, e = card.info, card.training, card.entry
    facts: dict[str, str | None] = {}
    facts["1.1.a"] = intended_use
    facts["1.1.b"] = acceptable_use
    facts["1.1.c"] = None  # a release is an act of publishing, not recorded by training or evaluation
    arch = info.get("architecture") or (t or {}).get("architecture", {}).get("architecture")
    params = info.get("parameters") or (t or {}).get("architecture", {}).get("parameters")
    facts["1.1.d"] = (f"{arch}, {params} parameters, {info.get('block_count', '?')} layers, context "
                      f"{info.get('context_length', '?')} tokens") if arch and params else None
    fmt = "GGUF" if e.manifest.layer(MediaType.GGUF) else "safetensors"
    facts["1.1.e"] = (f"text in, text out; chat messages rendered by the model's chat template ({fmt} weights)"
                      if card.store.text_layer(e.manifest, MediaType.TEMPLATE) else
                      f"text in, text out (base model, no chat template; {fmt} weights)")
    facts["1.1.f"] = card.license
    facts["1.2.a"] = ("runs on llama.cpp (GGUF) or PyTorch/transformers on a CPU; served with `freehold serve` "
                      "behind OpenAI- and Ollama-compatible APIs")
    if t is not None:
        arch_t = t["architecture"]
        hp = ", ".join(f"{k}={_num(v)}" for k, v in t["hyperparameters"].items())
        facts["1.2.b"] = (f"{arch_t.get('adapter', 'full')} fine-tuning of {arch_t.get('base', card.base_model)}: "
                          f"{hp}; seed {t['seed']}, {t['threads']} threads; optimises next-token cross-entropy on "
                          "assistant tokens")
    else:
        facts["1.2.b"] = None
    if card.dataset_record is not None:
        facts["1.2.c"] = _training_section(card)[0]
    else:
        facts["1.2.c"] = None
    if t is not None and "flops_estimate" in t:
        facts["1.2.d"] = (f"{t['flops_estimate']:.3g} FLOPs (estimate, 6·N·T, T = {t['tokens']} tokens), "
                          f"wall time {t['wall_seconds']} s on {t['threads']} CPU threads")
    elif t is not None and "wall_seconds" in t:
        facts["1.2.d"] = f"wall time {t['wall_seconds']} s on {t['threads']} threads (tokens not recorded)"
    else:
        facts["1.2.d"] = None
    facts["1.2.e"] = (f"{t['energy_kwh_estimate']} kWh (estimate: wall time x threads x {t['watts_per_thread']} W)"
                      if t is not None and "energy_kwh_estimate" in t else None)
    facts["2.1"] = ("; ".join(f"{s}: ledger record {r.number}" for s, r in sorted(card.evals.items()))
                    if card.evals else None)
    # Adversarial testing: what each suite that does it says it does, with the record of its latest run.
    adversarial = [name for name in SUITES if suite_parts(name).adversarial_testing]
    tested = "; ".join(f"{suite_parts(s).adversarial_testing} (ledger record {card.evals[s].number})"
                       for s in adversarial if s in card.evals)
    facts["2.2"] = f"{tested}; no human red-teaming is recorded" if tested else None
    missing = [fid for fid, _ in ANNEX_FIELDS if not facts.get(fid)]
    hints = {"1.1.a": "pass --intended-use", "1.1.b": "pass --acceptable-use",
             "1.1.c": "add the release date and channel when you publish",
             "1.1.d": "import the model with its metadata", "1.1.f": "import the model with a licence",
             "1.2.b": "train with 'freehold tune' (records the config)", "1.2.c": "train on a Freehold dataset",
             "1.2.d": "train with 'freehold tune' (records steps and tokens)", "1.2.e": "as 1.2.d",
             "2.1": f"run 'freehold eval {e.name}'",
             "2.2": f"run 'freehold eval {e.name} --suite {','.join(adversarial)}'"}
    sections = []
    for fid, title in ANNEX_FIELDS:
        value = facts.get(fid) or f"**MISSING**: not in the ledger ({hints.get(fid, '')})."
        sections.append(f"## {fid} {title}\n\n{value}")
    text = Template(ANNEX_TEMPLATE.read_text(encoding="utf-8")).substitute(
        model=e.name, date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        weights=", ".join(f"`{w['digest']}`" for w in weights_refs(e)),
        missing_count=len(missing), missing=", ".join(missing) or "none", fields="\n\n".join(sections))
    fields = {fid: {"title": title, "value": facts.get(fid)} for fid, title in ANNEX_FIELDS}
    data: dict[str, Any] = {"model": e.name, "fields": fields, "missing": missing}
    return text, missing, data


def card_text(store: Store, name: str, watts_per_thread: float = WATTS_PER_THREAD) -> str:
    """The model card (Hugging Face README.md) of store model ``name``, as text."""
    text, _ = render_card(_Card(store, store.get(name), watts_per_thread))
    return text


def write_card(name: str, *, output: Path | str | None = None, annex_xi: bool = False,
               intended_use: str | None = None, acceptable_use: str | None = None,
               watts_per_thread: float = WATTS_PER_THREAD, store: Store | None = None) -> CardResult:
    """Write ``README.md`` (the model card) and, with ``annex_xi``, ``ANNEX_XI.md`` + ``annex_xi.json``."""
    if store is None:
        from freehold.config import load_settings
        from freehold.home import open_store

        store = open_store(load_settings())
    entry = store.get(name)
    try:
        card = _Card(store, entry, watts_per_thread)
    except LedgerError:
        raise
    text, meta = render_card(card, intended_use)
    out = Path(output) if output else Path.cwd() / f"{entry.name.replace(':', '-')}-card"
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "README.md", text)
    result = CardResult(out / "README.md", meta, evals=sorted(r.number for r in card.evals.values()))
    if annex_xi:
        annex_text, missing, data = _annex(card, intended_use, acceptable_use)
        _write_atomic(out / "ANNEX_XI.md", annex_text)
        _write_atomic(out / "annex_xi.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        result.annex_path = out / "ANNEX_XI.md"
        result.missing = missing
    return result


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
