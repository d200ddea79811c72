"""Serving under concurrency: Freehold vs llama-cpp-python's own server vs the raw ceiling.

    .venv/bin/pip install 'llama-cpp-python[server]==0.3.36'   # the peer's server extras, once
    .venv/bin/python benchmarks/bench_serve.py                  # N = 1, 4, 8, 16 (~4 min, 2 cores)
    .venv/bin/python benchmarks/bench_serve.py --clients 1 4 --tokens 32
    .venv/bin/python benchmarks/bench_serve.py --llama-server /tmp/lsbuild/bin/llama-server
    .venv/bin/python benchmarks/bench_serve.py --clients 1 4 8 --skip-peer --ui --tune   # issue 14's figures

The optional llama-server (llama.cpp's C++ server) is built in a temp dir from the llama.cpp
sources inside the llama-cpp-python sdist, never committed:
    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/sd && tar xzf ...
    cmake -S .../vendor/llama.cpp -B /tmp/lsbuild -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF && cmake --build /tmp/lsbuild --target llama-server

For each N, N clients stream chat completions at once (greedy, `--tokens` each, a distinct
prompt per client) through the OpenAI API; we report aggregate output tokens/s and p50/p99
time to first token. The ceiling is llama.cpp's batch API driven directly (same model,
threads, N sequences, no HTTP, no Python scheduler). Each server runs alone, in its own
process, on the bundled SmolLM2-135M-Instruct Q4_1 GGUF; run on an otherwise idle machine.

``--ui`` measures Freehold again with the web app open in a headless chromium (the catalog
and the jobs page, which polls every 2 s), and reports the ratio to the run without it (goal,
issue 14: the UI costs serving at most 5%). ``--tune`` then also starts a tune job through the
native API (the sample mailbox, uploaded and imported) and measures while it trains, to show
what one heavy job on 2 cores costs the requests served beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROMPTS = [f"Write a short story about a {animal} who opens a bakery." for animal in (
    "cat", "dog", "fox", "owl", "bear", "wolf", "deer", "frog", "hare", "mole", "seal", "swan", "crow", "goat",
    "lynx", "mouse")]


def gguf_path() -> Path:

    from freehold.home import open_store

    store = open_store()
    return store.blob_path(store.get("smollm2").manifest.weights[0].digest).resolve()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            # /health answers 200 only once the model is loaded (llama-server says 503 before);
            # a server without /health is ready when it lists its models.
            health = httpx.get(url + "/health", timeout=1).status_code
            if health == 200 or (health == 404 and httpx.get(url + "/v1/models", timeout=1).status_code == 200):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


async def one(client: httpx.AsyncClient, url: str, model: str, prompt: str, tokens: int) -> tuple[float, int, bool]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
            "temperature": 0, "stream": True}
    start = time.perf_counter()
    ttft = None
    n = 0
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                delta = json.loads(line[6:])["choices"]
                if delta and delta[0].get("delta", {}).get("content"):
                    n += 1
                    if ttft is None:
                        ttft = time.perf_counter() - start
    except (httpx.HTTPError, ValueError):
        return ttft or 0.0, n, False  # llama-cpp-python's server cuts streams when a new one arrives
    return ttft or 0.0, n, True


async def load(url: str, model: str, n_clients: int, tokens: int) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=600) as client:
        await one(client, url, model, "warm up", 4)
        start = time.perf_counter()
        results = await asyncio.gather(*(one(client, url, model, PROMPTS[i % len(PROMPTS)], tokens)
                                         for i in range(n_clients)))
        wall = time.perf_counter() - start
    ttfts = sorted(r[0] for r in results)
    total = sum(r[1] for r in results)
    return {"tps": total / wall, "p50": statistics.median(ttfts), "failed": sum(not r[2] for r in results),
            "p99": ttfts[min(len(ttfts) - 1, round(0.99 * (len(ttfts) - 1)))], "tokens": total}


def chat_prompt(text: str) -> str:
    """The prompt text a server builds from one user message: SmolLM2's own chat template."""
    from freehold.engine.chat import ChatTemplate
    from freehold.home import open_store
    from freehold.store import MediaType

    store = open_store()
    source = store.text_layer(store.get("smollm2").manifest, MediaType.TEMPLATE) or ""
    return ChatTemplate(source).render([{"role": "user", "content": text}])


def ceiling(n_seq: int, tokens: int, threads: int) -> tuple[float, float]:
    """Raw batched greedy generation through llama-cpp-python's low-level API: no HTTP, no scheduler.

    The same work as the servers do for N requests: the chat-templated prompts are decoded in
    one batch, then ``tokens`` output tokens per sequence. Returns (output tokens/s over the
    whole, prompt included, like the servers' figure; output tokens/s of the decode phase alone).
    """
    import llama_cpp
    from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaModel

    from freehold.engine.llama import _quiet_stderr

    with _quiet_stderr():
        model = LlamaModel(path_model=str(gguf_path()), params=llama_cpp.llama_model_default_params(),
                           verbose=False)
    p = llama_cpp.llama_context_default_params()
    p.n_ctx = 4096
    p.n_batch = p.n_ubatch = 512
    p.n_seq_max = n_seq
    p.kv_unified = True
    from freehold.engine.llama import decode_threads

    p.n_threads = decode_threads(threads)  # the same split Freehold uses
    p.n_threads_batch = threads
    with _quiet_stderr():
        ctx = LlamaContext(model=model, params=p, verbose=False)
    batch = LlamaBatch(n_tokens=512, embd=0, n_seq_max=1, verbose=False)
    n_vocab = model.n_vocab()
    import numpy as np

    texts = [chat_prompt(PROMPTS[i % len(PROMPTS)]) for i in range(n_seq)]
    prompts = [list(model.tokenize(t.encode(), False, True)) for t in texts]
    b = batch.batch
    started = time.perf_counter()
    nxt = [0] * n_seq
    # The prompts in chunks of n_batch tokens, as a server would.
    queue = [(s, j, t) for s, toks in enumerate(prompts) for j, t in enumerate(toks)]
    for chunk_start in range(0, len(queue), 512):
        ends = []
        for n, (s, j, t) in enumerate(queue[chunk_start:chunk_start + 512]):
            b.token[n], b.pos[n], b.n_seq_id[n] = t, j, 1
            b.seq_id[n][0] = s
            b.logits[n] = j == len(prompts[s]) - 1
            if j == len(prompts[s]) - 1:
                ends.append((s, n))
        b.n_tokens = min(512, len(queue) - chunk_start)
        llama_cpp.llama_decode(ctx.ctx, b)
        for s, i in ends:
            nxt[s] = int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, i), (n_vocab,))))
    pos = [len(t) for t in prompts]
    start = time.perf_counter()
    produced = 0
    for _ in range(tokens - 1):
        for s in range(n_seq):
            b.token[s], b.pos[s], b.n_seq_id[s], b.logits[s] = nxt[s], pos[s], 1, True
            b.seq_id[s][0] = s
            pos[s] += 1
        b.n_tokens = n_seq
        llama_cpp.llama_decode(ctx.ctx, b)
        nxt = [int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, s), (n_vocab,))))
               for s in range(n_seq)]
        produced += n_seq
    end = time.perf_counter()
    ctx.close()
    model.close()
    return n_seq * tokens / (end - started), produced / (end - start)


def run_server(kind: str, threads: int, slots: int, binary: str | None = None
               ) -> tuple[subprocess.Popen[bytes], str, str]:
    from freehold.engine.llama import decode_threads

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FREEHOLD_THREADS": str(threads)}
    if kind == "freehold":
        cmd = [str(Path(sys.executable).parent / "freehold"), "serve", "--port", str(port), "--slots", str(slots)]
        model = "smollm2"
    elif kind == "llama-server":
        # Same total KV as Freehold's scheduler gives 16 slots (16384 tokens), continuous batching on.
        cmd = [str(binary), "-m", str(gguf_path()), "--port", str(port), "--host", "127.0.0.1",
               "-t", str(decode_threads(threads)), "-tb", str(threads), "-c", str(max(4096, 1024 * slots)),
               "-np", str(slots), "--kv-unified", "-a", "smollm2"]
        model = "smollm2"
    else:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--port", str(port),
               "--n_threads", str(decode_threads(threads)), "--n_threads_batch", str(threads), "--n_ctx", "4096",
               "--model_alias", "smollm2"]
        model = "smollm2"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_up(url, proc)
    return proc, url, model


UI_SCRIPT = """
import sys, time
from playwright.sync_api import sync_playwright
from tests.web.conftest import chromium_path
with sync_playwright() as p:
    b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
    for path in ("/", "/jobs"):
        b.new_page().goto(sys.argv[1] + path)
    print("open", flush=True)
    time.sleep(3600)
"""


def open_ui(url: str) -> subprocess.Popen[bytes]:
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", UI_SCRIPT, url], cwd=repo, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.stdout is not None
    proc.stdout.readline()  # the pages are open
    time.sleep(2)
    return proc


def start_tune(url: str) -> str:
    """Upload and import the sample mailbox, start a tune of SmolLM2 on it; its job id once it trains."""
    mailbox = Path(__file__).resolve().parents[1] / "examples" / "acme-support.mbox"
    up = httpx.post(url + "/freehold/uploads", params={"filename": "acme.mbox"}, content=mailbox.read_bytes()).json()
    job = httpx.post(url + "/freehold/jobs", json={"kind": "import", "params": {
        "paths": [up["path"]], "name": "bench-shop", "ours": ["acme-outdoor.example"]}}).json()
    while httpx.get(f"{url}/freehold/jobs/{job['id']}").json()["state"] != "done":
        time.sleep(0.5)
    tune = httpx.post(url + "/freehold/jobs", json={"kind": "tune", "params": {
        "base": "smollm2", "dataset": "bench-shop", "output": f"bench-tune-{os.getpid()}",
        "options": {"epochs": 50}}}).json()
    while (httpx.get(f"{url}/freehold/jobs/{tune['id']}").json().get("progress") or {}).get("status") != "training":
        time.sleep(0.5)
    return str(tune["id"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--llama-server", help="path to a llama-server binary to compare with too")
    ap.add_argument("--ui", action="store_true", help="measure Freehold again with the web app open")
    ap.add_argument("--tune", action="store_true", help="and again while a tune job runs (with --ui)")
    args = ap.parse_args()
    # One OpenMP wait setting for all three (Freehold's default unless the caller set one);
    # the servers inherit it.
    from freehold.engine.llama import _prepare_env

    _prepare_env()
    wait = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ}
    print(f"SmolLM2-135M-Instruct Q4_1, threads={args.threads}, {args.tokens} greedy tokens per client, {wait}")
    rows: dict[int, dict[str, float]] = {n: {} for n in args.clients}
    for n in args.clients:
        rows[n]["ceiling"], rows[n]["decode_only"] = ceiling(n, args.tokens, args.threads)
    kinds = ["freehold"] + ([] if args.skip_peer else ["llama-cpp-python"])
    kinds += ["llama-server"] if args.llama_server else []
    for kind in kinds:
        proc, url, model = run_server(kind, args.threads, max(args.clients), args.llama_server)
        try:
            for n in args.clients:
                r = asyncio.run(load(url, model, n, args.tokens))
                rows[n][kind] = r["tps"]
                rows[n][kind + "_p50"] = r["p50"]
                rows[n][kind + "_p99"] = r["p99"]
                rows[n][kind + "_failed"] = r["failed"]
            if kind == "freehold" and args.ui:
                extra(rows, url, model, args, "freehold+ui", open_ui(url))
                for n in args.clients:  # again without, so the order of the runs cancels out
                    rows[n]["freehold_after"] = asyncio.run(load(url, model, n, args.tokens))["tps"]
            if kind == "freehold" and args.ui and args.tune:
                job = start_tune(url)
                try:
                    extra(rows, url, model, args, "freehold+ui+tune", open_ui(url))
                finally:
                    httpx.post(f"{url}/freehold/jobs/{job}/cancel")
        finally:
            proc.terminate()
            proc.wait(60)
    print(f"{'N':>3} {'decode':>7} {'ceiling':>8} {'freehold':>9} {'vs ceil':>8} {'p50 ttft':>9} {'p99 ttft':>9} "
          f"{'llama-cpp-py':>12} {'p50 ttft':>9} {'cut':>4} {'freehold/peer':>13}")
    for n, r in rows.items():
        peer = r.get("llama-cpp-python")
        print(f"{n:>3} {r['decode_only']:7.1f} {r['ceiling']:8.1f} {r['freehold']:9.1f} "
              f"{r['freehold'] / r['ceiling']:8.2f} "
              f"{r['freehold_p50']:9.3f} {r['freehold_p99']:9.3f} "
              + (f"{peer:12.1f} {r['llama-cpp-python_p50']:9.3f} {r['llama-cpp-python_failed']:4.0f} "
                 f"{r['freehold'] / peer:13.2f}" if peer else ""))
    if args.llama_server:
        for n, r in rows.items():
            ls = r["llama-server"]
            print(f"N={n:>2}: llama-server {ls:6.1f} tok/s (p50 ttft {r['llama-server_p50']:.3f} s, "
                  f"cut {r['llama-server_failed']:.0f}) -> freehold / llama-server {r['freehold'] / ls:.2f}")
    for n, r in rows.items():
        if "freehold+ui" in r:
            without = (r["freehold"] + r["freehold_after"]) / 2  # the runs before and after it
            line = (f"N={n:>2}: with the web app open {r['freehold+ui']:6.1f} tok/s = "
                    f"{r['freehold+ui'] / without:.3f}x without it (before {r['freehold']:.1f}, "
                    f"after {r['freehold_after']:.1f})")
            if "freehold+ui+tune" in r:
                line += (f"; and a tune job training {r['freehold+ui+tune']:6.1f} tok/s = "
                         f"{r['freehold+ui+tune'] / without:.3f}x")
            print(line)
    print("tokens/s are output tokens of completed and cut streams over wall time; 'cut' counts streams the "
          "peer server ended early (it interrupts a stream when a new request arrives); 'ceiling' does the "
          "servers' work (templated prompts, then the output tokens) without HTTP or a scheduler, 'decode' is "
          "its decode phase alone (prompts excluded)")


def extra(rows: dict[int, dict[str, float]], url: str, model: str, args: argparse.Namespace, name: str,
          ui: subprocess.Popen[bytes]) -> None:
    try:
        for n in args.clients:
            rows[n][name] = asyncio.run(load(url, model, n, args.tokens))["tps"]
    finally:
        ui.kill()
        ui.wait()


if __name__ == "__main__":
    main()
