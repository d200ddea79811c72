"""The built-in job kinds: each a dataclass of parameters and a call into the library.

The parameters mirror the CLI's options (the same library function behind both); what a
kind returns is the job's result (JSON): the names it made and the figures a page shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.errors import UsageError
from freehold.jobs.base import JobKind, register_job_kind
from freehold.progress import ProgressFn
from freehold.store import Store


@dataclass
class ImportParams:
    paths: list[str]
    name: str
    format: str = "auto"
    ours: list[str] | None = None
    pii: str = "surrogates"
    others: str = "auto"
    seed: int = 0

    def check(self, store: Store) -> None:
        from freehold.data.read import resolve_sources
        from freehold.store.names import parse_name

        parse_name(self.name)
        resolve_sources([Path(p) for p in self.paths], self.format)  # the files exist and are readable


def _import(store: Store, p: ImportParams, progress: ProgressFn) -> dict[str, Any]:
    from freehold.data.dataset import import_dataset

    result = import_dataset([Path(x) for x in p.paths], p.name, fmt=p.format, ours=p.ours, pii=p.pii,
                            others=p.others, seed=p.seed, store=store, progress=progress)
    return {"dataset": result.name, "counts": result.counts}


@dataclass
class TuneParams:
    base: str
    dataset: str
    output: str
    options: dict[str, Any] = field(default_factory=dict)  # TuneConfig fields: epochs, lr, max_steps, ...
    resume: bool = False

    def config(self) -> Any:
        from freehold.train import TuneConfig

        known = set(TuneConfig.__dataclass_fields__) - {"base", "dataset", "output", "extra"}
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise UsageError(f"unknown tune option(s): {', '.join(unknown)}", f"known: {', '.join(sorted(known))}")
        options = dict(self.options)
        if "target_modules" in options:
            options["target_modules"] = tuple(options["target_modules"])
        cfg = TuneConfig(base=self.base, dataset=self.dataset, output=self.output).with_overrides(**options)
        cfg.validate()
        return cfg

    def check(self, store: Store) -> None:
        self.config()
        store.get(self.base)
        store.get(self.dataset, "dataset")


def _tune(store: Store, p: TuneParams, progress: ProgressFn) -> dict[str, Any]:
    from freehold.train import tune
    from freehold.train.checkpoint import run_dir

    # A resumed job continues its run when the run got as far as writing its config.
    resume = p.resume and (run_dir(store.home, p.output) / "config.json").is_file()
    result = tune(p.config(), store=store, resume=resume, progress=progress)
    return {"model": result.entry.name, "run": result.run, "steps": result.steps, "loss": result.final_loss,
            "val_loss": result.val_loss, "seconds": round(result.seconds, 1)}


@dataclass
class EvalParams:
    model: str
    suites: list[str] | None = None
    data: str | None = None
    against: str | None = None
    limit: int | None = None

    def check(self, store: Store) -> None:
        store.get(self.model)
        if self.against:
            store.get(self.against)


def _eval(store: Store, p: EvalParams, progress: ProgressFn) -> dict[str, Any]:
    from freehold.evals.run import run_eval

    report = run_eval(p.model, suites=p.suites, data=p.data, against=p.against, limit=p.limit, store=store,
                      progress=progress)
    return report.to_dict()


@dataclass
class ExportParams:
    model: str
    quant: str = "q4_k_m"  # or "auto": measured on the held-out split of ``data``
    output: str | None = None
    data: str | None = None
    budget: float | None = None  # with "auto": the perplexity allowed, times the full-precision export's

    def check(self, store: Store) -> None:
        from freehold.export.choose import DEFAULT_BUDGET, check_budget
        from freehold.export.quantize import check_quant

        store.get(self.model)
        if self.quant.lower() != "auto":
            check_quant(self.quant)
            return
        if not self.data:
            raise UsageError("quant auto needs a dataset to measure perplexity on", 'add "data": "DATASET"')
        store.get(self.data, kind="dataset")
        check_budget(self.budget if self.budget is not None else DEFAULT_BUDGET)


def _export(store: Store, p: ExportParams, progress: ProgressFn) -> dict[str, Any]:
    from freehold.export import export_model

    entry = export_model(p.model, p.quant, output=p.output, store=store, progress=progress, data=p.data,
                         budget=p.budget)
    choice = entry.manifest.source.get("quant_choice")
    return {"model": entry.name, "size": entry.size, **({"quant_choice": choice} if choice else {})}


@dataclass
class CompressParams:
    model: str
    data: str
    output: str | None = None
    drop_layers: int = 0
    mlp_width: int | None = None
    heal_steps: int = 200
    lr: float = 5e-5
    loss: str = "forward"
    quant: str = "q8_0"

    def check(self, store: Store) -> None:
        from freehold.export.quantize import check_quant
        from freehold.train.compress import KD_KINDS

        store.get(self.model)
        store.get(self.data, kind="dataset")
        check_quant(self.quant)
        if self.loss not in KD_KINDS:
            raise UsageError(f"unknown distillation loss {self.loss!r}", f"use one of {', '.join(KD_KINDS)}")


def _compress(store: Store, p: CompressParams, progress: ProgressFn) -> dict[str, Any]:
    from freehold.train.compress import compress_model

    entry = compress_model(p.model, p.data, output=p.output, drop_layers=p.drop_layers, mlp_width=p.mlp_width,
                           heal_steps=p.heal_steps, lr=p.lr, loss=p.loss, quant=p.quant, store=store,
                           progress=progress)
    return {"model": entry.name, "size": entry.size, "recipe": entry.manifest.source.get("recipe")}


@dataclass
class VerifyParams:
    name: str
    kind: str = "model"

    def check(self, store: Store) -> None:
        store.get(self.name, self.kind)


def _verify(store: Store, p: VerifyParams, progress: ProgressFn) -> dict[str, Any]:
    from freehold.ledger.ops import verify

    return verify(store, p.name, kind=p.kind, progress=progress).to_dict()


@dataclass
class KnowledgeParams:
    name: str
    datasets: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    pii: str = "surrogates"

    def check(self, store: Store) -> None:
        from freehold.store.names import parse_name

        parse_name(self.name)
        if not self.datasets and not self.documents:
            raise UsageError("nothing to index", "give datasets and/or documents")
        for d in self.datasets:
            store.get(d, "dataset")
        missing = [d for d in self.documents if not Path(d).exists()]
        if missing:
            raise UsageError(f"no such document: {', '.join(missing)}", "upload it first (POST /freehold/uploads)")


def _knowledge(store: Store, p: KnowledgeParams, progress: ProgressFn) -> dict[str, Any]:
    from freehold.knowledge import build_knowledge

    result = build_knowledge(p.name, datasets=p.datasets, documents=[Path(d) for d in p.documents], pii=p.pii,
                             store=store, progress=progress)
    return {"knowledge": result.name, "embedded": result.embedded, "reused": result.reused,
            "passages": result.config.get("passages")}


@dataclass
class PullParams:
    source: str  # HOST[:PORT]/NS/MODEL[:TAG|@DIGEST]
    name: str | None = None
    allow_untrusted: bool = False
    accept_licence: bool = False

    def check(self, store: Store) -> None:
        from freehold.registry.oci import parse_remote

        parse_remote(self.source)
        if self.name is not None:
            from freehold.store.names import parse_name

            parse_name(self.name)


def _pull(store: Store, p: PullParams, progress: ProgressFn) -> dict[str, Any]:
    from freehold.registry import pull

    r = pull(store, p.source, name=p.name, allow_untrusted=p.allow_untrusted,
             accept_licence=p.accept_licence, progress=progress)
    return {"model": r.name, "received_bytes": r.received_bytes, "reused_bytes": r.reused_bytes,
            "digest": r.digest, "attestations": r.attestations}


@dataclass
class PushParams:
    model: str
    target: str  # HOST[:PORT]/NS/MODEL[:TAG]

    def check(self, store: Store) -> None:
        from freehold.registry.oci import parse_remote

        store.get(self.model)
        parse_remote(self.target)


def _push(store: Store, p: PushParams, progress: ProgressFn) -> dict[str, Any]:
    from freehold.registry import push

    r = push(store, p.model, p.target, progress=progress)
    return {"model": p.model, "target": r.remote, "sent_bytes": r.sent_bytes, "skipped_bytes": r.skipped_bytes,
            "digest": r.digest}


register_job_kind(JobKind("import", "Turn mail archives or tables into a dataset.", ImportParams, _import))
register_job_kind(JobKind("knowledge", "Index mail and documents for answers that cite them.", KnowledgeParams,
                          _knowledge))
register_job_kind(JobKind("tune", "Fine-tune a model on a dataset (LoRA).", TuneParams, _tune, resumable=True))
register_job_kind(JobKind("eval", "Evaluate a model, against its base.", EvalParams, _eval))
register_job_kind(JobKind("export", "Export a model to a quantized GGUF.", ExportParams, _export))
register_job_kind(JobKind("compress", "Prune a model and heal it by distillation into a faster one.",
                          CompressParams, _compress))
register_job_kind(JobKind("verify", "Verify a model's lineage on the ledger.", VerifyParams, _verify))
register_job_kind(JobKind("pull", "Fetch a model from a registry, every blob checked.", PullParams, _pull))
register_job_kind(JobKind("push", "Send a model to a registry.", PushParams, _push))
