"""Memory and errors under a sustained load: 32 clients for 5 minutes against `freehold serve`.

    .venv/bin/python benchmarks/bench_soak.py                 # 300 s, 32 clients
    .venv/bin/python benchmarks/bench_soak.py --seconds 60    # a shorter check

Each client loops: a streaming or non-streaming chat completion (alternating), 16-32 greedy
tokens, a fresh prompt each time, and now and then a client that hangs up mid-stream. The
server's RSS is sampled every 5 s; growth is the last sample over the first sample taken
after a 30 s warm-up. Every response other than 200 (and explicit 429/503) counts as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import free_port, wait_up


async def client(i: int, url: str, deadline: float, stats: dict[str, int]) -> None:
    rng = random.Random(i)
    async with httpx.AsyncClient(timeout=120) as h:
        n = 0
        while time.time() < deadline:
            n += 1
            body = {"model": "smollm2", "temperature": 0, "max_tokens": rng.randint(16, 32),
                    "messages": [{"role": "user", "content": f"Client {i}, request {n}: name a colour."}]}
            try:
                if n % 2:
                    async with h.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True}) as r:
                        if r.status_code != 200:
                            stats["busy" if r.status_code in (429, 503) else "errors"] += 1
                            continue
                        k = 0
                        async for _line in r.aiter_lines():
                            k += 1
                            if n % 7 == 0 and k == 3:
                                stats["hangups"] += 1
                                break  # hang up mid-stream
                else:
                    r = await h.post(url + "/v1/chat/completions", json=body)
                    if r.status_code != 200:
                        stats["busy" if r.status_code in (429, 503) else "errors"] += 1
                        continue
                stats["ok"] += 1
            except httpx.HTTPError:
                stats["errors"] += 1


async def sample(proc: psutil.Process, deadline: float, samples: list[tuple[float, int]]) -> None:
    start = time.time()
    while time.time() < deadline:
        rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        samples.append((time.time() - start, rss))
        await asyncio.sleep(5)


async def main_async(url: str, pid: int, seconds: int, clients: int) -> None:
    stats = {"ok": 0, "busy": 0, "errors": 0, "hangups": 0}
    samples: list[tuple[float, int]] = []
    deadline = time.time() + seconds
    await asyncio.gather(sample(psutil.Process(pid), deadline, samples),
                         *(client(i, url, deadline, stats) for i in range(clients)))
    warm = next((rss for t, rss in samples if t >= min(30, seconds / 3)), samples[0][1])
    last = samples[-1][1]
    print(f"{clients} clients for {seconds} s: {stats['ok']} requests ok, {stats['hangups']} hang-ups, "
          f"{stats['busy']} busy (429/503), {stats['errors']} errors")
    print(f"server RSS after warm-up {warm / 2**20:.0f} MiB, at the end {last / 2**20:.0f} MiB, "
          f"growth {last / warm:.3f}x (target <= 1.10x); peak {max(r for _, r in samples) / 2**20:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--clients", type=int, default=32)
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "freehold"), "serve", "--port", str(port),
                             "--slots", "16", "--max-queue", "64"], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(url, proc)
        asyncio.run(main_async(url, proc.pid, args.seconds, args.clients))
        print(f"server still healthy: {httpx.get(url + '/health').json()['status']}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
