"""Train the refusal judge the safety suite uses (freehold/evals/labels/refusal_judge.json).

    .venv/bin/python scripts/train_refusal_judge.py [--shared ../shared/data]

Reads XSTest's human-labelled completions of three models (GPT-4, Llama 2 original, Llama 2
new) from ../shared/data/evals/xstest and Freehold's own labelled set (real SmolLM2 replies,
written responses). First the strict figures: each variant (learned, ensemble) fitted on two
models' completions and tested on the third's, and on the SmolLM2 and written sets; the rules
and the keyword baseline beside them. Then the shipped ensemble, fitted on all three models'
completions, with those figures and the sources' digests. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
from pathlib import Path

from freehold.evals import judge as j
from freehold.evals.refusal import is_refusal, keyword_refusal, labelled_set, xstest_completions

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"gpt4": "xstest_v2_completions_gpt4.csv", "llama2orig": "xstest_v2_completions_llama2orig.csv",
          "llama2new": "xstest_v2_completions_llama2new.csv"}


def labelled(shared: Path) -> tuple[dict[str, j.Rows], dict[str, j.Rows]]:
    """(XSTest completions by model, Freehold's held-out sets: smollm2, written)."""
    folder = shared / "evals" / "xstest"
    by_model = {m: xstest_completions(folder / f) for m, f in MODELS.items()}
    extra = {"smollm2": [(str(i), lab, t) for i, lab, t in labelled_set("smollm2")],
             "written": [(str(i), lab, t) for i, lab, t in labelled_set("dev") + labelled_set("test")]}
    return by_model, extra


def strict_figures(by_model: dict[str, j.Rows], extra: dict[str, j.Rows],
                   vectors: dict[str, list[float]]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for held, train, test in j.model_folds(by_model):
        row: dict[str, dict[str, float]] = {}
        for variant in j.VARIANTS:
            judge = j.fit(train, variant, vectors)
            row[variant] = {held: j.accuracy(judge, test, vectors),
                            **{name: j.accuracy(judge, rows, vectors) for name, rows in extra.items()}}
        for name, rule in (("rules", is_refusal), ("keyword_baseline", keyword_refusal)):
            row[name] = {held: j.accuracy(rule, test), **{n: j.accuracy(rule, rows) for n, rows in extra.items()}}
        out[f"held_out_{held}"] = {k: {m: round(v, 4) for m, v in d.items()} for k, d in row.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=j.JUDGE_FILE)
    args = ap.parse_args()
    by_model, extra = labelled(args.shared)
    texts = [t for rows in [*by_model.values(), *extra.values()] for _, _, t in rows]
    vectors = j.embed_responses(texts)
    figures = strict_figures(by_model, extra, vectors)
    for fold, row in figures.items():
        print(fold)
        for name, accs in row.items():
            print(f"  {name:17} " + "  ".join(f"{m} {a:.3f}" for m, a in accs.items()))
    shipped = j.fit([r for rows in by_model.values() for r in rows], "ensemble", vectors)
    files = [args.shared / "evals/xstest" / f for f in MODELS.values()] + [j.JUDGE_FILE.with_name(
        "refusal_responses.jsonl")]
    shipped.meta = {
        "embedder": f"all-MiniLM-L6-v2, the response's first {j.RESPONSE_TOKENS} tokens",
        "features": "embedding (384) + the rules' verdict + the keyword baseline's verdict",
        "fitted_on": list(MODELS), "trained": dt.date.today().isoformat(),
        "trained_by": "scripts/train_refusal_judge.py",
        "sources": {p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
        "strict": figures,
    }
    args.out.write_text(json.dumps(shipped.to_dict(), indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
