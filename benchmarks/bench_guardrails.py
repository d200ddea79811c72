"""What the guardrails cost one stream: tokens/s and time to first token, with and without them.

    .venv/bin/python benchmarks/bench_guardrails.py [--rounds 15] [--tokens 64]

One SmolLM2 (the bundled GGUF) loaded once in a ModelManager; the native path (what the OpenAI
and Ollama APIs call) answers the same support question, greedy, ``--tokens`` tokens, under
three policies in rounds of rotating order: none (``--no-guardrails``), the default policy (personal
data in the prompt replaced, the answer's new personal data redacted), and the default with
the built-in safety classifier on the prompt. Medians over the rounds, and each policy's ratio
to none. Goal (issue 16): the default policy costs at most 5% of tokens/s and 20 ms of time to
first token. Run it alone on an idle machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

from freehold.config import load_settings
from freehold.engine import SamplingParams
from freehold.guardrails import OFF, Guardrails, Policy, PolicySet
from freehold.home import import_model
from freehold.server.metrics import Metrics
from freehold.server.models import ModelManager
from freehold.server.native import NativeRequest, run_native
from freehold.store import Store

# No personal data the policy replaces, so every policy gives the model the same prompt and it writes
# the same answer: the difference is the guardrails' own work (scanning the prompt, filtering the
# stream, the classifier). A prompt with a card number would change what the model reads.
QUESTION = ("Hi, I'm Oliver. My order 4411 (Summit 45L backpack) arrived with a broken zip after one trip. "
            "Is it covered by the warranty, and what should I send you?")


def one(manager: ModelManager, metrics: Metrics, tokens: int) -> tuple[float, float]:
    """(time to first visible text, output tokens/s) of one answer."""
    req = NativeRequest("smollm2", messages=[{"role": "user", "content": QUESTION}],
                        params=SamplingParams.given(temperature=0, max_tokens=tokens, seed=1))
    start = time.perf_counter()
    first = None
    n = 0
    for chunk in run_native(manager, metrics, req):
        if first is None and chunk.text:
            first = time.perf_counter() - start
        if chunk.finish_reason is not None:
            n = chunk.completion_tokens
    total = time.perf_counter() - start
    return (first if first is not None else total), n / total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = dataclasses.replace(load_settings(), home=Path(home))
        store = Store.open(settings)
        import_model(store, bundled="smollm2")
        manager = ModelManager(store, settings, slots=1, max_queue=1)
        metrics = Metrics()
        arms = {"none": Guardrails(PolicySet(OFF), store), "default": Guardrails(PolicySet(Policy()), store),
                "default+classifier": Guardrails(PolicySet(Policy(safety="builtin")), store)}
        for rails in arms.values():  # warm every arm (model, embedder) before timing
            manager.guardrails = rails
            one(manager, metrics, 8)
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in arms}
        names = list(arms)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order each round
                manager.guardrails = arms[name]
                results[name].append(one(manager, metrics, args.tokens))
        manager.close()
        store.close()
    base_ttft = statistics.median(t for t, _ in results["none"])
    base_rate = statistics.median(r for _, r in results["none"])
    print(f"{args.rounds} rounds, {args.tokens} tokens, SmolLM2-135M Q4_1, 1 stream")
    print(f"{'policy':20} {'TTFT ms':>8} {'+ms':>6} {'tokens/s':>9} {'ratio':>6}")
    for name, rows in results.items():
        ttft = statistics.median(t for t, _ in rows)
        rate = statistics.median(r for _, r in rows)
        print(f"{name:20} {ttft * 1e3:8.1f} {(ttft - base_ttft) * 1e3:6.1f} {rate:9.1f} {rate / base_rate:6.3f}")


if __name__ == "__main__":
    main()
