"""``--quant auto``: the quantization chosen by measurement on this machine, not by rule.

Each candidate type is made from the same full-precision export and measured here: decode
speed (greedy tokens/s of one stream, the best of ``repeats`` runs) and the perplexity of
held-out text from the user's dataset (every token after the first of each conversation, as
the model's chat template renders it). The reference is the F16 export's perplexity; the
choice is the fastest type whose perplexity is within ``budget`` times it, and if none is, the
most faithful one (which the report says). What was measured goes into the export's manifest
and ledger record, so the choice can be read back and checked.

Why measure: which type is fastest depends on the CPU and the tensor shapes (SmolLM2's hidden
size 576 is not a multiple of 256, so K-quants fall back to other types for most tensors, and
llama.cpp repacks Q4_0 for AVX2/AVX-512, so Q4_0 decodes faster than Q4_1 on the machines seen).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from freehold.errors import UsageError
from freehold.progress import ProgressFn, emit

CANDIDATES = ("q4_0", "q4_1", "q4_k_m", "q5_0", "q5_k_m", "q8_0")
DEFAULT_BUDGET = 1.05  # within 5% of the F16 export's held-out perplexity
DECODE_TOKENS = 48  # tokens per speed run: enough to dwarf the first token's cost on 2 cores
MAX_TEXT_TOKENS = 4096  # held-out tokens scored per candidate (a few dozen conversations)


@dataclass(frozen=True)
class Measured:
    quant: str
    bytes: int
    tokens_per_s: float
    perplexity: float


def conversation_texts(store: Any, dataset: Any, split: str, template: Any) -> Iterator[str]:
    """The dataset's conversations of ``split`` as the model reads them: its chat template's
    rendering (the turns one after another for a model with none)."""
    from freehold.data.dataset import iter_examples

    for row in iter_examples(dataset, store, split):
        yield (template.render(row["messages"], add_generation_prompt=False) if template else
               "\n".join(m["content"] for m in row["messages"]))


def held_out_text(store: Any, dataset: str, template: Any, tokenize: Any) -> list[list[int]]:
    """Token lists of the dataset's held-out conversations (test, else validation), as rendered
    by the model's chat template, up to ``MAX_TEXT_TOKENS`` in all."""
    from freehold.data.dataset import held_out_split

    entry = store.get(dataset, kind="dataset")
    split = held_out_split(entry)
    if split is None:
        raise UsageError(f"dataset {entry.name} has no held-out split to measure perplexity on",
                         "re-import it with enough threads for a test split, or pass another --data")
    texts: list[list[int]] = []
    total = 0
    for text in conversation_texts(store, entry, split, template):
        tokens = tokenize(text)[:1024]
        if len(tokens) < 2:
            continue
        texts.append(tokens)
        total += len(tokens)
        if total >= MAX_TEXT_TOKENS:
            break
    if not texts:
        raise UsageError(f"dataset {entry.name}'s {split} split has no text to measure on", "pass another --data")
    return texts


def perplexity(path: Path, texts: Sequence[Sequence[int]], threads: int) -> float:
    import numpy as np

    from freehold.engine.llama import LlamaScorer
    from freehold.evals.metrics import log_softmax_rows

    scorer = LlamaScorer(path, max(len(t) for t in texts) + 8, threads)
    nll, count = 0.0, 0
    try:
        for tokens in texts:
            logp: Any = log_softmax_rows(scorer.logits(list(tokens)))
            nll -= float(logp[np.arange(len(tokens) - 1), np.asarray(tokens[1:])].sum())
            count += len(tokens) - 1
    finally:
        scorer.close()
    return math.exp(nll / count)


def decode_speed(path: Path, prompt: Sequence[int], threads: int, tokens: int = DECODE_TOKENS,
                 repeats: int = 2) -> float:
    """Greedy tokens/s of one stream after ``prompt`` (end-of-sequence ignored), best of ``repeats``."""
    from freehold.engine.llama import load_llama

    llm = load_llama(path, len(prompt) + tokens + 8, threads)
    best = 0.0
    try:
        for _ in range(repeats):
            gen = llm.generate(list(prompt), top_k=1, temp=0.0, reset=True)
            next(gen)  # the prompt's decode and the first token: not what decode speed measures
            start = time.perf_counter()
            for _, _token in zip(range(tokens), gen, strict=False):
                pass
            best = max(best, tokens / (time.perf_counter() - start))
            gen.close()
    finally:
        llm.close()
    return best


def measure(path: Path, quant: str, texts: Sequence[Sequence[int]], threads: int) -> Measured:
    return Measured(quant, path.stat().st_size, round(decode_speed(path, texts[0][:64], threads), 2),
                    round(perplexity(path, texts, threads), 4))


def pick(reference: Measured, measured: Sequence[Measured], budget: float) -> tuple[Measured, str]:
    """The fastest within ``budget`` x the reference's perplexity, with the reason in words."""
    limit = reference.perplexity * budget
    within = [m for m in measured if m.perplexity <= limit]
    if within:
        best = max(within, key=lambda m: m.tokens_per_s)
        return best, (f"{best.quant}: the fastest ({best.tokens_per_s:.1f} tokens/s) of the types within "
                      f"{budget:g}x the {reference.quant} perplexity ({best.perplexity:.3f} <= {limit:.3f})")
    best = min(measured, key=lambda m: m.perplexity)
    return best, (f"{best.quant}: no type was within {budget:g}x the {reference.quant} perplexity ({limit:.3f}); "
                  f"this is the most faithful ({best.perplexity:.3f})")


def check_budget(budget: float) -> None:
    if not budget >= 1:
        raise UsageError(f"a perplexity budget of {budget:g} asks for better than the full-precision export",
                         "use 1.0 or more, e.g. --ppl-budget 1.05")


def choose(staged: Path, quantize: Any, texts: Sequence[Sequence[int]], workdir: Path, threads: int,
           budget: float = DEFAULT_BUDGET, candidates: Sequence[str] = CANDIDATES, reference: str = "f16",
           progress: ProgressFn | None = None) -> tuple[Path, dict[str, Any]]:
    """Make and measure every candidate from the full-precision ``staged`` export (type
    ``reference``; ``quantize(source, target, quant)``); returns the chosen file and the report
    recorded with it."""
    check_budget(budget)
    emit(progress, f"measuring the {reference} export")
    ref = measure(staged, reference, texts, threads)
    measured: list[Measured] = []
    files: dict[str, Path] = {}
    for i, quant in enumerate(candidates):
        emit(progress, f"measuring {quant}", total=len(candidates), completed=i)
        path = quantize(staged, workdir / f"auto-{quant}.gguf", quant)
        files[quant] = path
        measured.append(measure(path, quant, texts, threads))
    best, why = pick(ref, measured, budget)
    for quant, path in files.items():
        if quant != best.quant:
            path.unlink(missing_ok=True)
    report = {"chose": best.quant, "why": why, "budget": budget, "reference": asdict(ref),
              "candidates": [asdict(m) for m in measured], "held_out_tokens": sum(len(t) for t in texts),
              "decode_tokens": DECODE_TOKENS, "threads": threads}
    return files[best.quant], report
