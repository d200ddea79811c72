"""How far batched greedy decoding agrees with solo greedy decoding (SmolLM2, llama.cpp).

    .venv/bin/python benchmarks/bench_divergence.py

llama.cpp's batched kernels add floating-point terms in a different order than a solo
run, so greedy text can part ways after some tokens. For 8 prompts decoded alone and then
all 8 together, prints the index of the first differing token (or "same" for 64 tokens).
Timing-independent: safe to run on a busy machine.
"""

from __future__ import annotations

import threading

from freehold.engine import Engine, SamplingParams
from freehold.engine.batched import BatchedLlamaBackend
from freehold.store import MediaType

PROMPTS = ["Explain how a rainbow forms.", "Write a haiku about autumn.", "What is the capital of Japan?",
           "Give three tips for better sleep.", "Describe a cat to someone who has never seen one.",
           "How do I boil an egg?", "Why is the sky blue?", "Name five fruits and their colours."]
N = 64


def main() -> None:
    from freehold.home import open_store

    store = open_store()
    entry = store.get("smollm2")
    backend = BatchedLlamaBackend(store.blob_path(entry.manifest.weights[0].digest), 4096, 2, slots=8)
    engine = Engine(backend, entry, store.text_layer(entry.manifest, MediaType.TEMPLATE))
    params = SamplingParams(temperature=0, max_tokens=N, repeat_penalty=1.0)

    def tokens(prompt: str) -> list[int]:
        out: list[int] = []
        for chunk in engine.chat([{"role": "user", "content": prompt}], params):
            out.extend(chunk.token_ids)
        return out

    solo = {p: tokens(p) for p in PROMPTS}
    together: dict[str, list[int]] = {}
    threads = [threading.Thread(target=lambda p=p: together.__setitem__(p, tokens(p))) for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    firsts = []
    for p in PROMPTS:
        a, b = solo[p], together[p]
        first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
        if first is None and len(a) != len(b):
            first = min(len(a), len(b))
        firsts.append(first)
        print(f"{p[:45]:<46} {'same' if first is None else f'first difference at token {first}'}")
    same = sum(f is None for f in firsts)
    print(f"{same}/{len(PROMPTS)} identical for {N} tokens; earliest divergence "
          f"{min((f for f in firsts if f is not None), default='none')}")
    backend.close()


if __name__ == "__main__":
    main()
