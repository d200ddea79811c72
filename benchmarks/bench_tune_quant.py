"""What each GGUF quantization keeps of a fine-tune: held-out perplexity of F16, Q8_0 and Q4_K_M exports.

    .venv/bin/python benchmarks/bench_tune_quant.py --phase tune   # a short SmolLM2 tune (~4 min on 2 cores)
    .venv/bin/python benchmarks/bench_tune_quant.py --phase eval   # export three ways, score held-out answers

The tune: SmolLM2-135M-Instruct on question/answer pairs of the R-package-devel archive
(../shared/data/email), LoRA r=16 on q,k,v,o. Perplexity is over the assistant tokens of the
held-out (validation) conversations, computed from llama.cpp's logits for each GGUF, next to
the merged fp32 PyTorch model and the untuned base (so the tune's own effect is visible).
Target: Q4_K_M <= 1.05x F16.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
HOME = Path(os.environ.get("BENCH_HOME", "/tmp/freehold-bench-tune"))
NAME = "quant-bench"


def _store() -> Any:
    from freehold.config import load_settings
    from freehold.home import open_store

    return open_store(load_settings({"FREEHOLD_HOME": str(HOME)}))


def tune_phase(steps: int) -> None:
    from benchmarks.bench_tune_speed import setup
    from freehold.train import StepInfo, TuneConfig, tune

    setup(128)
    store = _store()
    # A fresh run each time: the previous one's model and run directory go first.
    if any(e.name.split(":")[0] == NAME for e in store.list()):
        store.remove(NAME)
    shutil.rmtree(HOME / "runs" / NAME, ignore_errors=True)
    cfg = TuneConfig(base="smollm2", dataset="email128", output=NAME, max_steps=steps, max_seq_len=256,
                     overlong="truncate", batch_tokens=1024, lr=1e-3, eval_every=steps, save_every=0, threads=2,
                     quant="q8_0")
    def show(event: Any) -> None:
        i = StepInfo.of(event)
        if i is not None:
            print(f"step {i.step}/{i.total} loss {i.loss:.3f} val {i.val_loss} {i.tokens_per_s:.0f} tok/s", flush=True)

    result = tune(cfg, store=store, progress=show)
    print(f"tuned {result.entry.name} in {result.seconds:.0f} s")


def perplexity(logits_fn: Any, examples: list[Any]) -> float:
    import numpy as np

    nll, n = 0.0, 0
    for e in examples:
        logits = np.asarray(logits_fn(e.input_ids), dtype=np.float64)
        for pos in range(1, e.n_tokens):
            if e.labels[pos] == -100:
                continue
            row = logits[pos - 1]
            top = row.max()
            nll -= row[e.labels[pos]] - top - math.log(np.exp(row - top).sum())
            n += 1
    return math.exp(nll / n)


def eval_phase() -> None:
    from freehold.engine.llama import LlamaCppBackend
    from freehold.engine.torch import TorchBackend, hf_directory
    from freehold.export import export_gguf, metadata_gguf
    from freehold.store import MediaType
    from freehold.train.data import encode
    from freehold.train.trainer import dataset_rows, render_fn

    store = _store()
    tuned, base = store.get(NAME), store.get("smollm2")
    merged_dir = hf_directory(store, tuned)
    ref = TorchBackend(merged_dir, 2048, 2, device="cpu")
    template = store.text_layer(tuned.manifest, MediaType.TEMPLATE) or ""
    rows = dataset_rows(store, store.get("email128", kind="dataset"), "validation")
    examples, _ = encode(rows, ref.tokenizer, render_fn(template, ref.tokenizer), 256, "truncate")
    print(f"held-out: {len(examples)} conversations, {sum(e.n_targets for e in examples)} assistant tokens")
    results = {"pytorch fp32 (merged)": perplexity(ref.logits, examples)}
    ref.close()
    base_ref = TorchBackend(hf_directory(store, base), 2048, 2, device="cpu")
    results["base model (untuned, fp32)"] = perplexity(base_ref.logits, examples)
    base_ref.close()
    with tempfile.TemporaryDirectory() as tmp:
        for quant in ("f16", "q8_0", "q4_k_m"):
            start = time.perf_counter()
            path = export_gguf(merged_dir, metadata_gguf(store, tuned), Path(tmp) / f"{quant}.gguf", quant,
                               chat_template=template)
            secs = time.perf_counter() - start
            llama = LlamaCppBackend(path, 512, 2)
            results[f"gguf {quant} ({path.stat().st_size / 1e6:.0f} MB, export {secs:.0f} s)"] = perplexity(
                llama.logits, examples)
            llama.close()
    f16 = next(v for k, v in results.items() if k.startswith("gguf f16"))
    for label, ppl in results.items():
        print(f"{label:45s} perplexity {ppl:8.3f}   x{ppl / f16:.3f} of F16")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=("tune", "eval"), required=True)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    if args.phase == "tune":
        tune_phase(args.steps)
    else:
        eval_phase()
    return 0


if __name__ == "__main__":
    sys.exit(main())
