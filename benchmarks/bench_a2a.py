"""What an A2A round trip costs over a direct chat completion, same model, same prompt, same run.

    .venv/bin/python benchmarks/bench_a2a.py [--rounds 8] [--tokens 48] [--concurrency 1 8]

A real server (uvicorn on 127.0.0.1) with the bundled SmolLM2 and one agent on it (greedy, so
both paths write the same answer); for each concurrency, in rounds of alternating order: N
requests at once to ``/v1/chat/completions`` (httpx, non-streaming) and N ``SendMessage``
calls through the official a2a-sdk client to ``/a2a/bench`` (non-streaming, so the task is
created, its answer streamed into the task store as an artifact, and the completed task
returned). Reports the median wall time of a batch for each, and A2A's ratio to the direct
call. Goal (issue 17): at most 1.10x at 1 stream and at 8 concurrent tasks. Run it alone on an
idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

QUESTION = "My Summit 45L backpack's zip broke after one trip. Is it covered, and what should I send you?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(home: Path, tokens: int, port: int) -> tuple[object, threading.Thread]:
    import uvicorn

    from freehold.config import ServerOptions, load_settings
    from freehold.home import open_store
    from freehold.server import create_app

    (home / "agents.toml").write_text(f'[agents.bench]\nmodel = "smollm2"\nmax_tokens = {tokens}\n'
                                      "temperature = 0\n")
    store = open_store(load_settings())
    app = create_app(ServerOptions(port=port, slots=8, agents=str(home / "agents.toml")), load_settings(), store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return server, thread


async def direct(url: str, n: int, tokens: int) -> tuple[float, list[int]]:
    async with httpx.AsyncClient(timeout=300) as http:
        async def one() -> int:
            r = await http.post(url + "/v1/chat/completions", json={
                "model": "smollm2", "temperature": 0, "max_tokens": tokens,
                "messages": [{"role": "user", "content": QUESTION}]})
            return int(r.json()["usage"]["completion_tokens"])

        start = time.perf_counter()
        counts = await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - start, list(counts)


async def a2a(url: str, n: int) -> tuple[float, list[int]]:
    from a2a.client import ClientConfig, ClientFactory
    from a2a.types import Message, Part, Role, SendMessageRequest

    async with httpx.AsyncClient(timeout=300) as http:
        client = await ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create_from_url(
            url + "/a2a/bench")

        async def one() -> int:
            msg = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=QUESTION)])
            events = [e async for e in client.send_message(SendMessageRequest(message=msg))]
            meta = dict(events[-1].task.status.message.metadata)["freehold"]
            return int(meta["usage"]["completion_tokens"])

        start = time.perf_counter()
        counts = await asyncio.gather(*(one() for _ in range(n)))
        took = time.perf_counter() - start
        await client.close()
        return took, list(counts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FREEHOLD_HOME"] = tmp
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server, thread = serve(Path(tmp), args.tokens, port)
        asyncio.run(direct(url, 1, args.tokens))  # warm: the model is loaded, the first card made
        asyncio.run(a2a(url, 1))
        print(f"SmolLM2, {args.tokens} tokens greedy, {args.rounds} rounds; batch wall time, median")
        for n in args.concurrency:
            times: dict[str, list[float]] = {"direct": [], "a2a": []}
            tokens: dict[str, list[int]] = {"direct": [], "a2a": []}
            for r in range(args.rounds):
                order = ["direct", "a2a"] if r % 2 == 0 else ["a2a", "direct"]
                for path in order:
                    took, counts = (asyncio.run(direct(url, n, args.tokens)) if path == "direct"
                                    else asyncio.run(a2a(url, n)))
                    times[path].append(took)
                    tokens[path] += counts
            d, a = statistics.median(times["direct"]), statistics.median(times["a2a"])
            same = sorted(set(tokens["direct"])) == sorted(set(tokens["a2a"]))
            print(f"  {n} at once: direct /v1/chat/completions {d * 1000:.0f} ms, A2A SendMessage "
                  f"{a * 1000:.0f} ms, ratio {a / d:.3f}x (tokens per answer {sorted(set(tokens['direct']))}"
                  f"{'' if same else ' vs ' + str(sorted(set(tokens['a2a'])))})")
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=30)
    sys.exit(0)


if __name__ == "__main__":
    main()
