"""Side by side: a fine-tune against its base on the same items.

For every suite both ran: each score, the base's value and the difference. For quality,
the items where the fine-tune's reply is most and least similar to the real reply relative
to the base's (by embedding similarity), so a reader sees *how* it is better or worse.
"""

from __future__ import annotations

from typing import Any

from freehold.evals.metrics import mean_ci
from freehold.evals.run import SuiteRun

# Scores where lower is better; everything else reads higher-is-better or has no direction.
LOWER_IS_BETTER = ("perplexity", "nll_per_token", "over_refusal_rate", "bits_per_char", "tokens_per_char")


def compare(model_runs: list[SuiteRun], base_runs: list[SuiteRun], examples: int = 3) -> dict[str, Any]:
    base_by_suite = {r.result.suite: r for r in base_runs}
    out: dict[str, Any] = {}
    for run in model_runs:
        base = base_by_suite.get(run.result.suite)
        if base is None:
            continue
        rows = {}
        for key, value in run.result.scores.items():
            other = base.result.scores.get(key)
            if isinstance(value, int | float) and isinstance(other, int | float):
                rows[key] = {"model": value, "base": other, "delta": round(value - other, 4),
                             "lower_is_better": key.endswith(LOWER_IS_BETTER)}
        entry: dict[str, Any] = {"scores": rows, "model_record": run.record, "base_record": base.record}
        if run.result.suite == "quality":
            entry["paired"] = paired_differences(run.result.items, base.result.items)
            diffs = []
            for item_id, item in run.result.items.items():
                b = base.result.items.get(item_id)
                if b is not None:
                    diffs.append((item["similarity"] - b["similarity"], item_id, item, b))
            diffs.sort(key=lambda d: d[0])

            def show(d: tuple[float, str, dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
                delta, item_id, item, b = d
                return {"id": item_id, "similarity_delta": round(delta, 4), "prompt": item["prompt"][:300],
                        "reference": item["reference"][:300], "model_reply": item["reply"][:300],
                        "base_reply": b["reply"][:300]}

            entry["better"] = [show(d) for d in reversed(diffs[-examples:]) if d[0] > 0]
            entry["worse"] = [show(d) for d in diffs[:examples] if d[0] < 0]
            entry["better_count"] = sum(1 for d in diffs if d[0] > 0)
            entry["worse_count"] = sum(1 for d in diffs if d[0] < 0)
        out[run.result.suite] = entry
    return out


PAIRED_METRICS = ("similarity", "rouge_l", "chrf", "similarity_greedy", "rouge_l_greedy", "chrf_greedy")


def paired_differences(model: dict[str, Any], base: dict[str, Any], n_boot: int = 1000,
                       seed: int = 0) -> dict[str, Any]:
    """Model minus base on the conversations both answered: each metric's mean difference with a
    95% bootstrap interval over conversations, how many got better and worse, and the held-out
    perplexity ratio (model / base) with its interval (conversations resampled, tokens pooled)."""
    import math
    import random

    shared = [k for k in model if k in base]
    out: dict[str, Any] = {"conversations": len(shared)}
    for metric in PAIRED_METRICS:
        pairs = [(model[k][metric], base[k][metric]) for k in shared if metric in model[k] and metric in base[k]]
        if not pairs:
            continue
        d = [float(a) - float(b) for a, b in pairs]
        mean, low, high = mean_ci(d, n_boot=n_boot, seed=seed)
        out[metric] = {"delta": round(mean, 4), "ci95": [round(low, 4), round(high, 4)],
                       "better": sum(x > 0 for x in d), "worse": sum(x < 0 for x in d)}
    nll = [(float(model[k]["nll"]), float(base[k]["nll"]), int(model[k]["n"]), int(base[k]["n"]))
           for k in shared if "nll" in model[k] and "nll" in base[k] and model[k]["n"] and base[k]["n"]]
    if nll:
        def ratio(rows: list[tuple[float, float, int, int]]) -> float:
            return math.exp(sum(r[0] for r in rows) / sum(r[2] for r in rows)
                            - sum(r[1] for r in rows) / sum(r[3] for r in rows))

        rng = random.Random(seed)
        boots = sorted(ratio([nll[rng.randrange(len(nll))] for _ in nll]) for _ in range(n_boot))
        low, high = boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]
        out["perplexity_ratio"] = {"ratio": round(ratio(nll), 4), "ci95": [round(low, 4), round(high, 4)]}
    return out
