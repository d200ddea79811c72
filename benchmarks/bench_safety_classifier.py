"""The safety classifier vs a keyword baseline, held out on other sources, and its latency.

    .venv/bin/python benchmarks/bench_safety_classifier.py [--shared ../shared/data]

Two strict folds (freehold.guardrails.classifier.strict_folds: no source on both sides):
trained on AdvBench + XSTest types a + r-package-devel threads, tested on HarmBench + XSTest
types b + numpy-discussion and the sample shop's threads, and the swap. For each: F1,
precision, recall and false-positive rate of the classifier fitted on the training side and of
the keyword baseline (a deny-list of 30 harm words), and the F1 ratio. Then the latency of the
shipped classifier on one prompt at a time (the serving case), p50 and p95 over the held-out
prompts, beside the baseline's. Goal (issue 16): F1 >= 0.85 with p95 <= 20 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from freehold.guardrails import classifier as c

ROOT = Path(__file__).resolve().parents[1]


def _script() -> object:
    spec = importlib.util.spec_from_file_location("train_safety", ROOT / "scripts" / "train_safety_classifier.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--timed", type=int, default=300, help="prompts timed one at a time")
    args = ap.parse_args()
    script = _script()
    data = c.examples(ROOT / "freehold/evals/sets", script.mail_archives(args.shared))  # type: ignore[attr-defined]
    start = time.perf_counter()
    vectors = c.embed_examples(data)
    print(f"{len(data)} prompts, {len(vectors)} texts embedded in {time.perf_counter() - start:.1f} s")
    print(f"{'fold':5} {'judge':17} {'n':>4} {'F1':>6} {'prec':>6} {'recall':>6} {'FPR':>6}")
    f1s = []
    folds = c.measure_folds(data, script.MAIL_TRAIN, script.MAIL_TEST, vectors)  # type: ignore[attr-defined]
    for i, fold in enumerate(folds, 1):
        ours, base = fold.classifier, fold.baseline
        for name, s in (("classifier", ours), ("keyword baseline", base)):
            print(f"{i:<5} {name:17} {s.n:4d} {s.f1:6.3f} {s.precision:6.3f} {s.recall:6.3f} "
                  f"{s.false_positive_rate:6.3f}")
        print(f"      trained on {', '.join(sorted({e.source for e in fold.train}))}")
        print(f"      F1 classifier / baseline: {ours.f1 / base.f1:.2f}x")
        f1s.append((ours.f1, base.f1, ours.false_positive_rate, base.false_positive_rate))
    n = len(f1s)
    print(f"mean  classifier F1 {sum(f[0] for f in f1s) / n:.3f} FPR {sum(f[2] for f in f1s) / n:.3f}; "
          f"baseline F1 {sum(f[1] for f in f1s) / n:.3f} FPR {sum(f[3] for f in f1s) / n:.3f}")
    shipped = c.shipped()
    shipped.score("warm up")
    held = folds[0].test
    short = [e for e in held if len(e.text.split()) <= 60]  # a chat turn; the rest carry long contexts
    for label, timed in (("all held-out prompts", held), ("prompts of <= 60 words", short)):
        for name, judge in (("shipped classifier", shipped), ("keyword baseline", c.KeywordBaseline())):
            s = c.evaluate(judge, timed, timed=args.timed)
            print(f"latency {name:18} {label} ({min(args.timed, len(timed))}, one at a time): "
                  f"p50 {s.p50_ms:.2f} ms, p95 {s.p95_ms:.2f} ms")


if __name__ == "__main__":
    main()
