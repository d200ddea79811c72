"""GPU check for freehold's LoRA training path: a few steps on CUDA (bf16 autocast), printed.

    python3 benchmarks/gpu_check_tune.py                    # on a machine with a CUDA GPU
    python3 benchmarks/gpu_check_tune.py --smollm2 DIR      # DIR: SmolLM2-135M-Instruct as a HF directory

1. The tiny 2-layer model (freehold.testing) through the real pipeline (chat template,
   assistant-only loss, length-bucketed plan, StepRunner): the loss must fall, and the
   first step's loss must agree with the CPU fp32 one to within bf16 error.
2. SmolLM2-135M: with --smollm2, or the store's bundled model when freehold's store and
   the gguf package are there; else a randomly initialised model of SmolLM2-135M's exact
   shape (same FLOPs and memory, so tokens/s is meaningful; the loss is random weights').

Needs torch, transformers, peft, safetensors, tokenizers, jinja2; nothing else of freehold's
dependencies. Prints the device, loss per step, tokens/s and peak GPU memory.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_steps(runner: Any, plan_steps: list[list[list[Any]]], lr: float, label: str) -> list[float]:
    import torch

    losses = []
    tokens = 0
    start = None
    for i, batches in enumerate(plan_steps, 1):
        if i == 2:  # the first step pays for CUDA kernel selection and allocator growth
            torch.cuda.synchronize()
            start, tokens = time.perf_counter(), 0
        loss, n = runner.step(batches, lr)
        tokens += n
        losses.append(loss)
        print(f"  {label} step {i}: loss {loss:.4f} ({n} tokens)", flush=True)
    torch.cuda.synchronize()
    if start is not None:
        secs = time.perf_counter() - start
        print(f"  {label}: {tokens / secs:,.0f} tokens/s over steps 2..{len(plan_steps)} "
              f"({secs / max(1, len(plan_steps) - 1) * 1000:.0f} ms/step)", flush=True)
    return losses


def tiny_check(steps: int) -> None:
    import torch

    from freehold.testing import write_tiny_hf
    from freehold.train.config import TuneConfig
    from freehold.train.data import Plan, encode
    from freehold.train.model import StepRunner, apply_lora, load_base
    from freehold.train.trainer import render_fn

    colours = ["red", "green", "blue", "black", "white", "amber", "teal", "grey"]
    rows = [{"id": str(i), "messages": [{"role": "user", "content": f"What colour is item {i}?"},
                                        {"role": "assistant", "content": f"The item is {colours[i % 8]}."}]}
            for i in range(64)]
    cfg = TuneConfig("tiny", "colours", "out", lr=3e-3, lora_r=4, lora_alpha=8, lora_dropout=0.0, batch_tokens=512)
    first = {}
    with tempfile.TemporaryDirectory() as tmp:
        hf = write_tiny_hf(Path(tmp) / "hf")
        for device in ("cpu", "cuda"):
            model, tok = load_base(hf, device)
            examples, _ = encode(rows, tok, render_fn(tok.chat_template, tok), 512, "error")
            plan = Plan([e.n_tokens for e in examples], 0, 4, cfg.batch_tokens, 1, steps)
            model = apply_lora(model, cfg, 0)
            torch.manual_seed(1)
            runner = StepRunner(model, cfg, device)
            batches = [[[examples[i] for i in mb] for mb in plan.step(s)] for s in range(1, plan.total + 1)]
            if device == "cpu":
                first["cpu"] = runner.step(batches[0], cfg.lr)[0]
                continue
            losses = run_steps(runner, batches, cfg.lr, "tiny")
            first["cuda"] = losses[0]
            verdict = "falls" if losses[-1] < losses[0] else "DOES NOT FALL"
            print(f"  tiny: loss {losses[0]:.3f} -> {losses[-1]:.3f} ({verdict})"
                  f"; first step CPU fp32 {first['cpu']:.4f} vs CUDA bf16 {first['cuda']:.4f} "
                  f"(rel diff {abs(first['cpu'] - first['cuda']) / first['cpu']:.2e})", flush=True)


def smollm2_model(path: str | None) -> tuple[Any, str]:
    import torch
    import transformers

    if path:
        return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), f"weights from {path}"
    try:
        from freehold.engine.torch import hf_directory
        from freehold.home import open_store

        store = open_store()
        directory = hf_directory(store, store.get("smollm2"))
        return (transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32),
                "the store's bundled SmolLM2-135M-Instruct")
    except Exception as exc:  # no store, no gguf package, no bundled model: same shape, random weights
        config = transformers.LlamaConfig(
            vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
            num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
            tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
        torch.manual_seed(0)
        return transformers.LlamaForCausalLM(config), f"random weights in SmolLM2-135M's shape ({type(exc).__name__})"


def smollm2_check(path: str | None, steps: int, batch_tokens: int) -> None:
    import torch

    from freehold.train.config import TuneConfig
    from freehold.train.data import Example, Plan
    from freehold.train.model import StepRunner, apply_lora

    model, origin = smollm2_model(path)
    print(f"  smollm2: {origin}", flush=True)
    model.config.use_cache = False
    model = model.to("cuda")
    cfg = TuneConfig("smollm2", "synthetic", "out", batch_tokens=batch_tokens)
    model = apply_lora(model, cfg, 0)
    runner = StepRunner(model, cfg, "cuda")
    rng = random.Random(0)
    examples = []
    for i in range(512):  # conversation-like lengths: 120..500 tokens, last 40% is the reply
        n = rng.randint(120, 500)
        ids = [rng.randrange(100, 49000) for _ in range(n)]
        cut = int(n * 0.6)
        examples.append(Example(str(i), ids, [-100] * cut + ids[cut:]))
    plan = Plan([e.n_tokens for e in examples], 0, 1, batch_tokens, 1, steps)
    batches = [[[examples[i] for i in mb] for mb in plan.step(s)] for s in range(1, plan.total + 1)]
    torch.cuda.reset_peak_memory_stats()
    run_steps(runner, batches, cfg.lr, "smollm2")
    print(f"  smollm2: peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB "
          f"(batch_tokens {batch_tokens})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--smollm2", help="SmolLM2-135M-Instruct as a Hugging Face directory")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}", flush=True)
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check here (the CPU path is covered by tests/train)")
        return 1
    print(f"device: {torch.cuda.get_device_name(0)}, bf16 supported: {torch.cuda.is_bf16_supported()}", flush=True)
    from freehold.train.model import choose_device

    print(f"freehold picks device: {choose_device('auto')}", flush=True)
    tiny_check(args.steps)
    smollm2_check(args.smollm2, args.steps, args.batch_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
