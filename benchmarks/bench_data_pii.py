"""PII detection precision and recall on the labelled sample in tests/data/pii_labels.jsonl.

    .venv/bin/python benchmarks/bench_data_pii.py [--show-errors]

A detection counts as correct when its type matches a label and the texts overlap (one
contains the other); precision = correct detections / detections, recall = labels found
/ labels. The sample is hand-written in the shapes seen in the archives (50 snippets, with
negatives: versions, dates, IPs, order numbers, non-checksum IBAN/card look-alikes).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from freehold.data.pii import TYPES, find_pii, name_tokens  # noqa: E402


def evaluate(path: Path) -> tuple[Counter[str], Counter[str], Counter[str], list[str]]:
    """(true positives, detections, labels) per type, plus error descriptions."""
    tp: Counter[str] = Counter()
    det: Counter[str] = Counter()
    lab: Counter[str] = Counter()
    errors: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        found = find_pii(row["text"], name_tokens(row["names"]))
        labels = [tuple(x) for x in row["pii"]]
        matched: set[int] = set()
        for f in found:
            det[f.type] += 1
            hit = next(
                (
                    i
                    for i, (t, s) in enumerate(labels)
                    if i not in matched and t == f.type and (s in f.text or f.text in s)
                ),
                None,
            )
            if hit is None:
                errors.append(f"false positive {f.type} {f.text!r} in {row['text']!r}")
            else:
                matched.add(hit)
                tp[f.type] += 1
        for i, (t, s) in enumerate(labels):
            lab[t] += 1
            if i not in matched:
                errors.append(f"missed {t} {s!r} in {row['text']!r}")
    return tp, det, lab, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", type=Path, default=REPO / "tests" / "data" / "pii_labels.jsonl")
    ap.add_argument("--show-errors", action="store_true")
    args = ap.parse_args()
    tp, det, lab, errors = evaluate(args.labels)
    print(f"{'type':<8} {'labels':>6} {'found':>6} {'precision':>9} {'recall':>7}")
    for t in TYPES:
        if lab[t] or det[t]:
            print(
                f"{t:<8} {lab[t]:>6} {det[t]:>6} "
                f"{tp[t] / max(1, det[t]):>9.1%} {tp[t] / max(1, lab[t]):>7.1%}"
            )
    T, D, L = sum(tp.values()), sum(det.values()), sum(lab.values())
    print(f"{'all':<8} {L:>6} {D:>6} {T / max(1, D):>9.1%} {T / max(1, L):>7.1%}")
    if args.show_errors:
        print("\n".join(errors))


if __name__ == "__main__":
    main()
