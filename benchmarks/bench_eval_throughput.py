"""Eval throughput: prompts/s through the batched llama.cpp engine vs one prompt at a time.

    .venv/bin/python benchmarks/bench_eval_throughput.py [--prompts 24] [--max-tokens 48] [--batch 8]
        [--eval-data ../shared/data/evals] [--dump replies.jsonl]

Both paths generate greedy replies to the same XSTest prompts on the bundled SmolLM2 with
``ModelRunner.chat_many`` (what every eval suite calls): ``--batch 1`` loads llama.cpp's
single-sequence backend, ``--batch N`` the serving scheduler with N slots decoding together.
Greedy decoding makes both produce the same replies, which the script checks (a few may
differ in the last tokens: batched matrix products round differently). Prints prompts/s
for each and the ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--eval-data", type=Path, default=ROOT.parent / "shared" / "data" / "evals")
    ap.add_argument("--dump", type=Path, help="write the batched replies here (JSONL) for labelling")
    args = ap.parse_args()
    os.environ.setdefault("FREEHOLD_HOME", tempfile.mkdtemp(prefix="freehold-bench-eval-"))

    from freehold.config import load_settings
    from freehold.evals.runner import ModelRunner

    with (args.eval_data / "xstest" / "xstest_prompts.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    step = max(1, len(rows) // args.prompts)  # spread over every XSTest type
    rows = rows[::step][: args.prompts]
    convs = [[{"role": "user", "content": r["prompt"]}] for r in rows]
    settings = load_settings()
    from freehold.home import open_store

    store = open_store(settings)
    results = {}
    for batch in (1, args.batch):
        with ModelRunner(store, "smollm2", batch=batch, settings=settings) as runner:
            runner.chat_many(convs[:1], 4)  # load the model and warm up outside the timing
            start = time.perf_counter()
            replies = runner.chat_many(convs, args.max_tokens)
            secs = time.perf_counter() - start
        results[batch] = (secs, replies)
        print(f"batch {batch:2d}: {len(convs)} prompts in {secs:6.1f} s = {len(convs) / secs:.2f} prompts/s",
              flush=True)
    (t1, r1), (tb, rb) = results[1], results[args.batch]
    same = sum(a == b for a, b in zip(r1, rb, strict=True))
    print(f"batched / one-at-a-time: {t1 / tb:.2f}x  (identical replies: {same}/{len(convs)}; "
          f"{os.cpu_count()} CPUs, threads={settings.threads}, max_tokens={args.max_tokens})")
    if args.dump:
        with args.dump.open("w", encoding="utf-8") as f:
            for r, reply in zip(rows, rb, strict=True):
                f.write(json.dumps({"id": int(r["id"]), "label": r["label"], "prompt": r["prompt"],
                                    "reply": reply}) + "\n")


if __name__ == "__main__":
    main()
