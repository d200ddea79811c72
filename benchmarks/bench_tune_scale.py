"""What does a bigger base cost to tune on this CPU? Training tokens/s of freehold's LoRA step
on models in the exact shapes of SmolLM2-135M (the peer: the bundled model), Gemma 3 270M,
Qwen2.5-0.5B and Qwen2.5-1.5B, in one run.

    .venv/bin/python benchmarks/bench_tune_scale.py             # ~8 min on 2 cores
    .venv/bin/python benchmarks/bench_tune_scale.py --shapes smollm2-135m,qwen2.5-0.5b --steps 3

Weights are random (no bigger model can be downloaded here): a step's arithmetic and memory
depend on the shape, not on the values, so tokens/s is what the real model would get; the
loss is meaningless. Each model runs the same LoRA recipe as 'freehold tune' (r 16 on
q,k,v,o; the precision 'auto' picks; assistant-only labels on 60% of each example) for
``--steps`` optimizer steps of ``--batch-tokens`` tokens after one warm-up step. Prints
tokens/s, the ratio to SmolLM2 measured in the same run, peak resident memory, and what the
sample shop (70k training tokens: 3 epochs of 23.4k) and a 1,000-thread archive (3 epochs
of about 600k tokens) would take at that speed.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Published configs (config.json of each model on the Hugging Face hub), as constructor args.
SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "smollm2-135m": ("llama", dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                   num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)),
    "gemma3-270m": ("gemma3", dict(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                                   num_attention_heads=4, num_key_value_heads=1, head_dim=256,
                                   sliding_window=512, tie_word_embeddings=True)),
    "qwen2.5-0.5b": ("qwen2", dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                   num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True)),
    "qwen2.5-1.5b": ("qwen2", dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                   num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True)),
}
SHOP_TOKENS = 3 * 23_437  # the sample shop with knowledge: 3 epochs (freehold tune's own count)
ARCHIVE_TOKENS = 3 * 600_000  # ~1,000 answered threads of help-list mail, 3 epochs


def build(kind: str, args: dict[str, Any]) -> Any:
    import torch
    import transformers

    torch.manual_seed(0)
    if kind == "llama":
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**args))
    if kind == "qwen2":
        return transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**args))
    config = transformers.Gemma3TextConfig(**args)
    return transformers.Gemma3ForCausalLM(config)


def measure(name: str, steps: int, batch_tokens: int) -> dict[str, Any]:
    import torch

    from freehold.train.config import TuneConfig
    from freehold.train.data import Example, Plan
    from freehold.train.model import StepRunner, apply_lora, choose_precision

    kind, args = SHAPES[name]
    model = build(kind, args)
    params = sum(p.numel() for p in model.parameters())
    model.config.use_cache = False
    cfg = TuneConfig(name, "synthetic", "out", batch_tokens=batch_tokens,
                     precision=choose_precision("auto", "cpu"))
    model = apply_lora(model, cfg, 0)
    runner = StepRunner(model, cfg, "cpu")
    rng = random.Random(0)
    examples = []
    for i in range(256):  # conversation-like lengths: 120..500 tokens, the last 40% is the reply
        n = rng.randint(120, 500)
        ids = [rng.randrange(100, 49000) for _ in range(n)]
        cut = int(n * 0.6)
        examples.append(Example(str(i), ids, [-100] * cut + ids[cut:]))
    plan = Plan([e.n_tokens for e in examples], 0, 1, batch_tokens, 1, steps + 1)
    batches = [[[examples[i] for i in mb] for mb in plan.step(s)] for s in range(1, steps + 2)]
    runner.step(batches[0], cfg.lr)  # warm-up: allocator growth, oneDNN kernel choice
    tokens, t0 = 0, time.perf_counter()
    for b in batches[1:]:
        _, n = runner.step(b, cfg.lr)
        tokens += n
    secs = time.perf_counter() - t0
    del runner, model
    gc.collect()
    return {"name": name, "params": params, "tokens_s": tokens / secs, "step_s": secs / steps,
            "precision": cfg.precision, "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, from: " + ", ".join(SHAPES))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-tokens", type=int, default=1024)
    args = ap.parse_args()
    names = [n.strip() for n in args.shapes.split(",") if n.strip()]
    if "smollm2-135m" not in names:
        names.insert(0, "smollm2-135m")  # the peer every ratio is against
    rows = []
    for name in names:
        r = measure(name, args.steps, args.batch_tokens)
        r["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        rows.append(r)
        print(f"{name:14s} {r['params'] / 1e6:7.0f}M params  {r['tokens_s']:7.1f} tokens/s  "
              f"{r['step_s']:6.1f} s/step  peak RSS so far {r['peak_rss_gb']:.1f} GB ({r['precision']}, "
              f"{r['threads']} threads)", flush=True)
    peer = rows[0]["tokens_s"]
    print("\n| shape (random weights) | params | tokens/s | vs SmolLM2-135M | sample shop, 3 epochs | "
          "1,000 threads, 3 epochs | peak RSS so far |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['params'] / 1e6:.0f}M | {r['tokens_s']:.0f} | {r['tokens_s'] / peer:.2f}x | "
              f"{SHOP_TOKENS / r['tokens_s'] / 60:.0f} min | {ARCHIVE_TOKENS / r['tokens_s'] / 3600:.1f} h | "
              f"{r['peak_rss_gb']:.1f} GB |")


if __name__ == "__main__":
    main()
