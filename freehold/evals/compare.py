"""Side by side: a fine-tune against its base on the same items.

For every suite both ran: each score, the base's value and the difference (marked where lower
is better, as the suite says in ``lower_is_better``), plus whatever the suite's ``compare``
adds from the per-item results (quality: paired differences with intervals and the items where
the fine-tune's reply is most and least similar to the real reply relative to the base's), so a
reader sees *how* it is better or worse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from freehold.evals.base import suite_parts

if TYPE_CHECKING:  # run.py calls compare(); compare only reads the runs it is given
    from freehold.evals.run import SuiteRun


def compare(model_runs: list[SuiteRun], base_runs: list[SuiteRun], examples: int = 3) -> dict[str, Any]:
    base_by_suite = {r.result.suite: r for r in base_runs}
    out: dict[str, Any] = {}
    for run in model_runs:
        base = base_by_suite.get(run.result.suite)
        if base is None:
            continue
        suite = suite_parts(run.result.suite)
        rows = {}
        for key, value in run.result.scores.items():
            other = base.result.scores.get(key)
            if isinstance(value, int | float) and isinstance(other, int | float):
                rows[key] = {"model": value, "base": other, "delta": round(value - other, 4),
                             "lower_is_better": key.endswith(suite.lower_is_better)}
        entry: dict[str, Any] = {"scores": rows, "model_record": run.record, "base_record": base.record}
        entry.update(suite.compare(run.result, base.result, examples))
        out[run.result.suite] = entry
    return out
