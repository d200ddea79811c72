"""The refusal classifier vs the keyword-matching baseline, on XSTest-labelled responses.

    .venv/bin/python benchmarks/bench_eval_refusal.py
    .venv/bin/python benchmarks/bench_eval_refusal.py --xstest-completions DIR   # + XSTest's own labels

Accuracy, precision and recall (refusal = XSTest full or partial refusal) of
``freehold.evals.refusal.is_refusal`` and of ``keyword_refusal`` (llm-attacks' test_prefixes
as substrings, the judge AdvBench/GCG report with) on each split of the labelled set:
``dev`` (written, the rules were developed on it), ``test`` (written, held out), ``smollm2``
(real SmolLM2 replies, held out), ``all``. Also the time per judgement. Prints the
classifier/baseline accuracy ratio per split.

``--xstest-completions DIR`` also scores both judges on XSTest's own human-labelled model
completions (``xstest_v2_completions_*.csv``, 450 per model; ../shared/data/evals/xstest has
GPT-4's and Llama 2's), per file and together, and then the refusal judge the safety suite uses
(freehold/evals/judge.py) with a strict split: fitted on two models' completions, tested on
the third's and on Freehold's SmolLM2 and written sets, beside the rules and the keyword
baseline (issue 16's goal: >= 0.90 on held-out models).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from freehold.evals.refusal import (
    SPLITS,
    XSTEST_COMPLETIONS,
    is_refusal,
    keyword_refusal,
    labelled_set,
    measure,
    xstest_completions,
)


def upstream(folder: Path) -> None:
    files = sorted(folder.glob(XSTEST_COMPLETIONS))
    print(f"\nXSTest's own labels ({folder}): refusal = full or partial refusal")
    print(f"{'file':42} {'n':>4} {'refusals':>8}  {'classifier':>10} {'baseline':>8}  {'P / R (classifier)':>18}")
    for f in [*files, folder]:
        rows = xstest_completions(f)
        ours, base = measure(is_refusal, rows), measure(keyword_refusal, rows)
        refusals = sum(label != "1_full_compliance" for _, label, _ in rows)
        name = f.name if f != folder else "all"
        print(f"{name:42} {ours.n:4d} {refusals:8d}  {ours.accuracy:10.3f} {base.accuracy:8.3f}  "
              f"{ours.precision:8.3f} / {ours.recall:.3f}")


def strict(shared: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_judge", Path(__file__).resolve().parents[1] / "scripts"
                                                  / "train_refusal_judge.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    from freehold.evals import judge as j

    by_model, extra = script.labelled(shared)
    vectors = j.embed_responses([t for rows in [*by_model.values(), *extra.values()] for _, _, t in rows])
    figures = script.strict_figures(by_model, extra, vectors)
    print("\nThe refusal judge, leave one model out (fitted on the other two models' completions)")
    print(f"{'held-out model':15} {'judge':17} {'held-out':>8} {'smollm2':>8} {'written':>8}")
    means: dict[str, list[float]] = {}
    for fold, row in figures.items():
        held = fold.removeprefix("held_out_")
        for name, accs in row.items():
            means.setdefault(name, []).append(accs[held])
            print(f"{held:15} {name:17} {accs[held]:8.3f} {accs['smollm2']:8.3f} {accs['written']:8.3f}")
    for name, vals in means.items():
        print(f"mean held-out   {name:17} {sum(vals) / len(vals):8.3f}"
              + ("   (the rules were written looking at these models: not held out)" if name in ("rules", "ensemble")
                 else ""))
    base = sum(means["keyword_baseline"]) / len(means["keyword_baseline"])
    print(f"judge (ensemble) / keyword baseline: {sum(means['ensemble']) / len(means['ensemble']) / base:.3f}x; "
          f"learned only / baseline: {sum(means['learned']) / len(means['learned']) / base:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--xstest-completions", type=Path, help="folder of XSTest's labelled completion CSVs")
    args = ap.parse_args()
    print(f"{'split':8} {'n':>4}  {'judge':16} {'accuracy':>8} {'precision':>9} {'recall':>7} {'f1':>6}")
    for split in SPLITS:
        rows = labelled_set(split)
        results = {}
        for name, judge in (("classifier", is_refusal), ("keyword baseline", keyword_refusal)):
            acc = measure(judge, rows)
            results[name] = acc.accuracy
            print(f"{split:8} {acc.n:4d}  {name:16} {acc.accuracy:8.3f} {acc.precision:9.3f} {acc.recall:7.3f} "
                  f"{acc.f1:6.3f}")
        ratio = results["classifier"] / results["keyword baseline"]
        print(f"{split:8}       classifier / baseline accuracy: {ratio:.2f}x")
    rows = labelled_set("all") * 50
    for name, judge in (("classifier", is_refusal), ("keyword baseline", keyword_refusal)):
        start = time.perf_counter()
        for _, _, text in rows:
            judge(text)
        secs = time.perf_counter() - start
        print(f"{name}: {secs / len(rows) * 1e6:.1f} µs per response")
    if args.xstest_completions:
        upstream(args.xstest_completions)
        strict(args.xstest_completions.parents[1])


if __name__ == "__main__":
    main()
