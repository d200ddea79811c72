"""Does a tune make answers on real help-list mail better? The base against the tuned model on
conversations from a later quarter of the same list, with paired intervals.

    .venv/bin/python benchmarks/bench_answers.py                    # ~20 min on 2 cores
    .venv/bin/python benchmarks/bench_answers.py --limit 20 --epochs 3 --lr 4e-4 --lora-r 64 --tag r64
    .venv/bin/python benchmarks/bench_answers.py --knowledge        # + each with knowledge (~+25 min)

Train on one quarter of r-package-devel (../shared/data/email, default 2023q4) with
'freehold tune' (default flags unless given), evaluate every conversation of the other
quarter (2024q1, a dataset neither model saw: ``--split all``) with the quality suite:
assistant-token perplexity of the real answers, and ROUGE-L, chrF and MiniLM similarity of
generated replies against the real ones, under the sampling each model is served with
(seeded per conversation, the same seed for both models) and under greedy decoding. Prints
each metric for both models, the paired difference with its 95% bootstrap interval, and the
perplexity ratio with its interval. Goal (issue 12): the tuned model above the base on
generated answers, not only on perplexity. The store lives in BENCH_HOME (default
/tmp/freehold-bench-answers) and is reused: a dataset or model already there is not rebuilt
(--fresh starts over).

With --knowledge: the training quarter's threads are indexed (``rpd-kb``), a second model is
tuned with ``--knowledge rpd-kb``, and the base and that model are evaluated with every
prompt grounded in the index as served; the goal of issue 12 is tuned + knowledge <= 0.7x the
base's (no knowledge) perplexity and above both alone on similarity.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MAIL = REPO.parent / "shared" / "data" / "email" / "r-package-devel"


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The tune's flags this run overrides (the rest: TuneConfig's defaults)."""
    out: dict[str, Any] = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr)) if v is not None}
    if args.lora_r is not None:
        out.update(lora_r=args.lora_r, lora_alpha=2 * args.lora_r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", default="2023q4", help="quarter to tune on")
    ap.add_argument("--eval", default="2024q1", help="quarter to evaluate on (every conversation)")
    ap.add_argument("--limit", type=int, default=None, help="at most N evaluation conversations (default: all)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--lora-r", type=int, default=None, help="LoRA rank (alpha = 2r, as the default keeps it)")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--tag", default="default", help="name suffix of the tuned model (one per recipe)")
    ap.add_argument("--fresh", action="store_true", help="remove BENCH_HOME first")
    ap.add_argument("--knowledge", action="store_true", help="also tune with knowledge and evaluate with it")
    args = ap.parse_args()
    if not MAIL.is_dir():
        sys.exit(f"needs the real archive at {MAIL} (clone with ../shared beside the repository)")
    from benchmarks.common import open_bench_store

    settings, store = open_bench_store("/tmp/freehold-bench-answers", args.fresh)
    from freehold.data import import_dataset
    from freehold.evals import run_eval
    from freehold.train import TuneConfig, tune

    for quarter, name in ((args.train, "rpd-train"), (args.eval, "rpd-eval")):
        if not store.has(name, "dataset"):
            import_dataset([MAIL / f"{quarter}.txt"], name, store=store, settings=settings)
    tuned = f"rpd-tuned-{args.tag}"
    if not store.has(tuned):
        overrides: dict[str, Any] = _recipe(args)
        start = time.perf_counter()
        result = tune(TuneConfig(base="smollm2", dataset="rpd-train", output=tuned, **overrides),
                      store=store, settings=settings)
        print(f"tuned {tuned}: {result.steps} steps in {(time.perf_counter() - start) / 60:.1f} min")
    start = time.perf_counter()
    report = run_eval(tuned, suites="quality", data="rpd-eval", split="all", against="smollm2", limit=args.limit,
                      max_tokens=args.max_tokens, store=store, settings=settings)
    seconds = time.perf_counter() - start
    model, base = report.runs[0].result, report.base_runs[0].result
    paired = report.comparison["quality"]["paired"]
    print(f"\n{args.eval} conversations evaluated: {model.scores['conversations']} "
          f"(tuned on {args.train}; eval {seconds / 60:.1f} min); recipe: {args.tag}")
    print(f"{'metric':<30} {'base':>9} {'tuned':>9} {'delta':>9}  95% CI             better/worse")
    rows = (("embedding_similarity", "similarity"), ("rouge_l", "rouge_l"), ("chrf", "chrf"),
            ("embedding_similarity_greedy", "similarity_greedy"), ("rouge_l_greedy", "rouge_l_greedy"),
            ("chrf_greedy", "chrf_greedy"))
    for score, item in rows:
        d = paired[item]
        print(f"{score:<30} {base.scores[score]:>9.4f} {model.scores[score]:>9.4f} {d['delta']:>+9.4f}  "
              f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]  {d['better']}/{d['worse']}")
    pr = paired["perplexity_ratio"]
    print(f"{'perplexity':<30} {base.scores['perplexity']:>9.3f} {model.scores['perplexity']:>9.3f} "
          f"ratio {pr['ratio']:.3f} [{pr['ci95'][0]:.3f}, {pr['ci95'][1]:.3f}]")
    print(f"served sampling: {model.details['decoding']['served']}")
    if args.knowledge:
        _with_knowledge(args, store, settings, report, tuned)
    store.close()


def _with_knowledge(args: Any, store: Any, settings: Any, plain: Any, tuned: str) -> None:
    from freehold.evals import run_eval
    from freehold.evals.compare import compare
    from freehold.knowledge import build_knowledge
    from freehold.train import TuneConfig, tune

    if not store.has("rpd-kb", "knowledge"):
        build_knowledge("rpd-kb", datasets=["rpd-train"], split="all", store=store)
    tuned_kb = f"{tuned}-kb"
    if not store.has(tuned_kb):
        overrides: dict[str, Any] = _recipe(args)
        start = time.perf_counter()
        result = tune(TuneConfig(base="smollm2", dataset="rpd-train", output=tuned_kb, knowledge="rpd-kb",
                                 **overrides), store=store, settings=settings)
        print(f"tuned {tuned_kb}: {result.steps} steps in {(time.perf_counter() - start) / 60:.1f} min")
    start = time.perf_counter()
    grounded = run_eval(tuned_kb, suites="quality", data="rpd-eval", split="all", against="smollm2",
                        knowledge="rpd-kb", limit=args.limit, max_tokens=args.max_tokens, store=store,
                        settings=settings)
    print(f"\nwith knowledge (rpd-kb: every {args.train} thread; eval {(time.perf_counter() - start) / 60:.1f} min); "
          f"prompts with sources: {grounded.runs[0].result.details['knowledge']['found']} of "
          f"{grounded.runs[0].result.scores['conversations']}")
    setups = {"base": plain.base_runs, "tuned": plain.runs, "base + knowledge": grounded.base_runs,
              "tuned with knowledge + knowledge": grounded.runs}
    print(f"{'metric':<30}" + "".join(f"{k:>34}" for k in setups))
    for score in ("embedding_similarity", "rouge_l", "chrf", "embedding_similarity_greedy", "perplexity"):
        print(f"{score:<30}" + "".join(f"{runs[0].result.scores[score]:>34.4f}" for runs in setups.values()))
    top = setups["tuned with knowledge + knowledge"]
    for other in ("base", "tuned", "base + knowledge"):
        paired = compare(top, setups[other])["quality"]["paired"]
        pr = paired["perplexity_ratio"]
        d = paired["similarity"]
        print(f"tuned+knowledge vs {other:<17}: perplexity ratio {pr['ratio']:.3f} [{pr['ci95'][0]:.3f}, "
              f"{pr['ci95'][1]:.3f}]; similarity (served) {d['delta']:+.4f} [{d['ci95'][0]:+.4f}, "
              f"{d['ci95'][1]:+.4f}] {d['better']}/{d['worse']}")


if __name__ == "__main__":
    main()
