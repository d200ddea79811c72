"""Single-stream decode and prompt speed: Freehold's engine vs raw llama-cpp-python.

    .venv/bin/python benchmarks/bench_engine.py            # full run (~3 min on 2 cores)
    .venv/bin/python benchmarks/bench_engine.py --quick    # fewer repeats

Runs each OpenMP wait setting (ACTIVE = spin, PASSIVE = sleep at once: Freehold's
default, SPIN20000 = spin briefly then sleep) in its own subprocess,
idle and with one competing busy process, and prints the
ratio Freehold / raw measured in the same process on the same GGUF, threads and prompt.
Also measures the machine's memory bandwidth and the decode ceiling it implies
(bandwidth / bytes of weights read per token), and cold start of `freehold run` vs a raw
llama-cpp-python script.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "Write a long, detailed story about a dragon who learns to bake bread in a small village."
N_DECODE = 128


def model_path() -> Path:

    from freehold.home import open_store

    store = open_store()
    entry = store.get("smollm2")
    return store.blob_path(entry.manifest.weights[0].digest).resolve()


def worker(threads: int, repeats: int) -> dict[str, float]:
    """Runs inside a subprocess whose OMP_WAIT_POLICY is already set."""
    import llama_cpp

    from freehold.engine import SamplingParams, load_engine

    path = model_path()
    from freehold.engine.llama import decode_threads

    # The same thread split Freehold uses (decode_threads), so the ratio is engine overhead only.
    raw = llama_cpp.Llama(model_path=str(path), n_ctx=4096, n_threads=decode_threads(threads),
                          n_threads_batch=threads, verbose=False)
    engine = load_engine("smollm2", threads=threads, context=4096)
    params = SamplingParams(temperature=0, max_tokens=N_DECODE, repeat_penalty=1.0)
    prompt_tokens = engine.tokenize_prompt(PROMPT)

    def run_raw() -> tuple[float, int]:
        first = None
        n = 0
        for _chunk in raw.create_completion(list(prompt_tokens), max_tokens=N_DECODE, temperature=0,
                                            repeat_penalty=1.0, stream=True):
            n += 1
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        raw.reset()
        return (n - 1) / (end - (first or end)), n

    def run_freehold() -> tuple[float, int]:
        c = engine.complete(engine.stream_tokens(list(prompt_tokens), params))
        engine.backend.llm.reset()  # type: ignore[attr-defined]
        return c.tokens_per_second, c.completion_tokens

    raw_tps, fh_tps = [], []
    for _ in range(repeats):  # interleaved so drift hits both equally
        r, n_raw = run_raw()
        f, n_fh = run_freehold()
        raw_tps.append(r)
        fh_tps.append(f)
    # Prompt processing: a 512-token prompt, evaluated from an empty cache.
    long_prompt = (engine.tokenize_prompt(PROMPT) * 40)[:512]
    pp = []
    for _ in range(max(1, repeats // 2)):
        raw.reset()
        start = time.perf_counter()
        raw.eval(long_prompt)
        pp.append(len(long_prompt) / (time.perf_counter() - start))
    raw.reset()
    return {"raw_tps": statistics.median(raw_tps), "freehold_tps": statistics.median(fh_tps),
            "tokens_raw": n_raw, "tokens_freehold": n_fh, "prompt_tps": statistics.median(pp)}


def busy() -> None:
    while True:
        pass


POLICIES = {"ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
            "SPIN20000": {"GOMP_SPINCOUNT": "20000"}}


def measure(policy: str, threads: int, repeats: int, load: bool) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])
    hog = None
    if load:
        hog = multiprocessing.Process(target=busy, daemon=True)
        hog.start()
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", str(threads), str(repeats)], env=env,
                             capture_output=True, text=True, timeout=900, check=True)
    finally:
        if hog is not None:
            hog.terminate()
            hog.join()
    return json.loads(out.stdout.strip().splitlines()[-1])


def bandwidth_gbs() -> float:
    import numpy as np

    a = np.ones(256 * 1024 * 1024 // 8)  # 256 MiB
    b = np.empty_like(a)
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(b, a)
        dt = time.perf_counter() - start
        best = max(best, 2 * a.nbytes / dt / 1e9)  # read + write
    return best


def cold_start(repeats: int) -> tuple[float, float]:
    path = model_path()
    raw_script = (
        "import llama_cpp;"
        f"m=llama_cpp.Llama(model_path={str(path)!r}, n_ctx=4096, verbose=False);"
        "next(iter(m.create_chat_completion([{'role':'user','content':'Hi'}], max_tokens=1, stream=True)))")
    freehold_cmd = [str(Path(sys.executable).parent / "freehold"), "run", "smollm2", "Hi", "-n", "1"]
    fh, raw = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(freehold_cmd, capture_output=True, check=True, env={**os.environ, "FREEHOLD_NO_SERVER": "1"})
        fh.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", raw_script], capture_output=True, check=True)
        raw.append(time.perf_counter() - start)
    return statistics.median(fh), statistics.median(raw)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(int(sys.argv[2]), int(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    repeats = 2 if args.quick else 5
    size = model_path().stat().st_size
    bw = bandwidth_gbs()
    print(f"model: SmolLM2-135M-Instruct Q4_1 ({size / 1e6:.1f} MB), threads={args.threads}, "
          f"{N_DECODE} greedy tokens, median of {repeats}")
    print(f"memory bandwidth (numpy copy, read+write): {bw:.1f} GB/s -> decode ceiling "
          f"{bw * 1e9 / size:.0f} tokens/s (bandwidth / weight bytes per token)")
    for load in (False, True):
        for policy in POLICIES:
            r = measure(policy, args.threads, repeats, load)
            print(f"{'busy core' if load else 'idle     '}  wait={policy:<9}  raw {r['raw_tps']:6.1f} tok/s  "
                  f"freehold {r['freehold_tps']:6.1f} tok/s  ratio {r['freehold_tps'] / r['raw_tps']:.3f}  "
                  f"prompt {r['prompt_tps']:6.0f} tok/s  (tokens {r['tokens_raw']}/{r['tokens_freehold']})")
    fh, raw = cold_start(3)
    print(f"cold start to first token: freehold run {fh:.2f} s, raw llama-cpp-python script {raw:.2f} s, "
          f"ratio {fh / raw:.2f}")


if __name__ == "__main__":
    main()
