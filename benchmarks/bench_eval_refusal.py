"""The refusal classifier vs the keyword-matching baseline, on XSTest-labelled responses.

    .venv/bin/python benchmarks/bench_eval_refusal.py

Accuracy, precision and recall (refusal = XSTest full or partial refusal) of
``freehold.evals.refusal.is_refusal`` and of ``keyword_refusal`` (llm-attacks' test_prefixes
as substrings, the judge AdvBench/GCG report with) on each split of the labelled set:
``dev`` (written, the rules were developed on it), ``test`` (written, held out), ``smollm2``
(real SmolLM2 replies, held out), ``all``. Also the time per judgement. Prints the
classifier/baseline accuracy ratio per split.
"""

from __future__ import annotations

import time

from freehold.evals.refusal import SPLITS, is_refusal, keyword_refusal, labelled_set, measure


def main() -> None:
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


if __name__ == "__main__":
    main()
