"""``run_eval``: run suites on a model (and its base), record each result in the ledger.

Every suite result becomes one signed ``eval`` record: inputs are the model's weight
digests and the digests of the data read, scores are the suite's flat numbers, and the
single output is a JSON report blob in the store (per-category intervals, examples, every
reply) so anyone holding the store can see what a number was computed from.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.config import Settings, load_settings
from freehold.errors import EvalError, UsageError
from freehold.evals.base import (
    SUITES,
    DataGiven,
    EvalContext,
    SuiteResult,
    eval_data_hint,
    get_suite,
    packaged_sets,
    suite_parts,
)
from freehold.evals.runner import ModelRunner
from freehold.ledger import Ledger, Recorder, ref
from freehold.progress import ProgressFn, emit
from freehold.store import Layer, Manifest, ModelEntry, Store

REPORT_MEDIA = "application/vnd.freehold.eval-report+json"


def default_suites() -> list[str]:
    """The suites a run without --suite tries, in registry order (those whose ``default`` is set)."""
    return [name for name in SUITES if suite_parts(name).default]


@dataclass
class SuiteRun:
    model: str
    result: SuiteResult
    record: int  # 1-based ledger record number
    record_hash: str
    report_digest: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "suite": self.result.suite, "scores": self.result.scores,
                "record": self.record, "record_hash": self.record_hash, "report": self.report_digest,
                "seconds": round(self.seconds, 2), "details": self.result.details}


@dataclass
class EvalReport:
    model: str
    runs: list[SuiteRun]
    base: str | None = None
    base_runs: list[SuiteRun] = field(default_factory=list)
    comparison: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "base": self.base, "runs": [r.to_dict() for r in self.runs],
                "base_runs": [r.to_dict() for r in self.base_runs], "comparison": self.comparison,
                "skipped": self.skipped}


def _parse_suites(suites: Sequence[str] | str | None) -> list[str] | None:
    if suites is None:
        return None
    names = [s.strip() for s in (suites.split(",") if isinstance(suites, str) else suites) if s.strip()]
    for n in names:
        get_suite(n)  # unknown names fail before any model loads
    return names


def _choose(requested: list[str] | None, given: DataGiven) -> tuple[list[str], dict[str, str]]:
    """Suites to run: the requested ones (each suite's own error, before any model loads, when
    its data is missing), or every default suite whose data is available."""
    if requested is not None:
        for name in requested:
            missing = suite_parts(name).unavailable(given)
            if missing is not None and missing.error is not None:
                raise missing.error
        return requested, {}
    chosen, skipped = [], {}
    for name in default_suites():
        missing = suite_parts(name).unavailable(given)
        if missing is None:
            chosen.append(name)
        else:
            skipped[name] = missing.skipped
    return chosen, skipped


def _record(store: Store, runner: ModelRunner, result: SuiteResult, seconds: float) -> SuiteRun:
    report = {"suite": result.suite, "model": runner.name, "model_digest": runner.digest,
              "backend": runner.backend_name, "scores": result.scores, "data": result.data,
              "details": result.details, "items": result.items, "seconds": round(seconds, 2),
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    blob = json.dumps(report, ensure_ascii=False, sort_keys=True, default=str).encode()
    layer = store.put_stream_blob(blob, REPORT_MEDIA, {"suite": result.suite})
    rec = Recorder(Ledger.open(store.home)).record_eval(
        suite=result.suite, model=runner.refs, data=result.data, scores=result.scores,
        outputs=[ref("report", layer.digest, media_type=REPORT_MEDIA)])
    # The report and the built-in data it cites live as long as the model does (a derived
    # artefact of its manifest): no manifest names them, so garbage collection would take them.
    cited = [Layer("text/plain", d["digest"], store.blob_path(d["digest"]).stat().st_size)
             for d in result.data if store.has_blob(d["digest"])]
    store.put_derived(runner.entry.manifest_digest, f"eval-report:{rec.hash}",
                      Manifest("eval-report", f"{runner.name}/{result.suite}", {"record": rec.number},
                               [layer, *cited]))
    return SuiteRun(runner.name, result, rec.number, rec.hash, layer.digest, seconds)


def _run_all(store: Store, entry: ModelEntry, names: list[str], ctx_kwargs: dict[str, Any],
             backend: str, batch: int, settings: Settings, progress: ProgressFn | None) -> list[SuiteRun]:
    runs = []
    with ModelRunner(store, entry, backend=backend, batch=batch, settings=settings) as runner:
        ctx = EvalContext(store=store, runner=runner, progress=progress, **ctx_kwargs)
        for name in names:
            emit(progress, f"{entry.name}: {name}")
            start = time.perf_counter()
            result = get_suite(name).run(ctx)
            runs.append(_record(store, runner, result, time.perf_counter() - start))
    return runs


def run_eval(name: str, *, suites: Sequence[str] | str | None = None, data: str | None = None,
             against: str | None = None, limit: int | None = None, eval_data: Path | str | None = None,
             prompt_files: Sequence[Path | str] = (), backend: str = "llama", batch: int = 8,
             max_tokens: int = 96, seed: int = 0, split: str | None = None, knowledge: str | None = None,
             store: Store | None = None, settings: Settings | None = None,
             progress: ProgressFn | None = None) -> EvalReport:
    """Evaluate ``name`` (and ``against``, its base, on the same items); every result is an eval record.

    ``eval_data``: a folder of public sets laid out like ``freehold/evals/sets`` (the packaged
    copies, used when it is None). ``knowledge``: the quality suite grounds every prompt in this
    index, as the server would (both models, the same passages)."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}", "give the number of items per data source")
    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}", "use 1 for one prompt at a time")
    settings = settings or load_settings()
    from freehold.home import open_store

    store = store or open_store(settings)
    entry = store.get(name)
    base_entry = store.get(against) if against else None
    dataset = store.get(data, kind="dataset") if data else None
    if knowledge:
        from freehold.knowledge import get_knowledge

        get_knowledge(knowledge, store)  # a clear error before any model loads
    eval_dir = Path(eval_data).expanduser() if eval_data else packaged_sets()
    if eval_data and eval_dir is not None and not eval_dir.is_dir():
        raise EvalError(f"eval data folder {eval_dir} does not exist",
                        f"point --eval-data at {eval_data_hint()}, or leave it out to use the sets packaged with "
                        "freehold")
    files = [Path(p).expanduser() for p in prompt_files]
    for f in files:
        if not f.is_file():
            raise EvalError(f"prompt file {f} does not exist", "give a CSV or JSONL file with a 'prompt' column")
    requested = _parse_suites(suites)
    chosen, skipped = _choose(requested, DataGiven(dataset, eval_dir, files))
    if not chosen:
        raise EvalError("no eval suite can run with the data given",
                        "; ".join(f"{name}: {why}" for name, why in skipped.items())
                        or f"name one with --suite: {', '.join(SUITES)}")
    ctx_kwargs = {"limit": limit, "eval_data": eval_dir, "eval_data_given": bool(eval_data), "dataset": dataset,
                  "prompt_files": files, "max_tokens": max_tokens, "seed": seed, "split": split,
                  "knowledge": knowledge}
    runs = _run_all(store, entry, chosen, ctx_kwargs, backend, batch, settings, progress)
    report = EvalReport(entry.name, runs, skipped=skipped)
    if base_entry is not None:
        report.base = base_entry.name
        report.base_runs = _run_all(store, base_entry, chosen, ctx_kwargs, backend, batch, settings, progress)
        from freehold.evals.compare import compare

        report.comparison = compare(runs, report.base_runs)
    return report
