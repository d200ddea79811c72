"""The registry over loopback: pull throughput against a plain HTTP copy of the same bytes, and
the bytes a push of a tuned model sends when its base is already on the registry.

    .venv/bin/python benchmarks/bench_registry.py            # ~3 min on 2 cores (a 6-step tune included)
    .venv/bin/python benchmarks/bench_registry.py --rounds 7

1. Throughput: a ``freehold serve --registry`` process over a store holding the bundled SmolLM2
   (the model's 98 MB GGUF and its small layers). Each round, alternating: ``freehold.registry.pull``
   into an empty store (manifest, every blob hashed as it arrives, lineage and signature checks,
   the model named), against the peer, a plain ``httpx`` stream of the same blob bytes from the same
   server into a file (and ``curl -o`` when it is installed), nothing checked. Ratio = peer seconds /
   pull seconds (goal >= 0.8x). Median of the rounds.
2. Dedupe: SmolLM2 pushed first, then a model tuned from it (6 steps on the sample shop's mail);
   every byte of every request the second push sends is counted (bodies and headers, by an httpx
   hook), against the bytes of the tuned model's layers the registry did not have (goal <= +1%).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PUSH_KEY = "bench-push"


def _serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FREEHOLD_HOME": str(home), "FREEHOLD_PUSH_KEY": PUSH_KEY}
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "freehold"), "serve", "--registry", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("the registry did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pull-only", action="store_true", help="only the throughput part (no tune)")
    args = ap.parse_args()
    import dataclasses

    import httpx

    from freehold.config import load_settings
    from freehold.data import import_dataset
    from freehold.home import import_model, open_store
    from freehold.registry import client, pull, push
    from freehold.store import Store
    from freehold.train import TuneConfig, tune

    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    try:
        reg_home, a_home = work / "registry", work / "a"
        settings_a = dataclasses.replace(load_settings(), home=a_home)
        a = open_store(settings_a)  # registers the bundled SmolLM2
        reg = Store.open(dataclasses.replace(load_settings(), home=reg_home))
        import_model(reg, bundled="smollm2")
        reg.close()
        port = _free_port()
        proc = _serve(reg_home, port)
        host = f"127.0.0.1:{port}"
        try:
            # -- 1. pull throughput -------------------------------------------------------------
            r = httpx.get(f"http://{host}/v2/smollm2/manifests/135m-instruct",
                          headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
            layers = r.json()["layers"]
            gguf = max(layers, key=lambda la: la["size"])
            total = sum(la["size"] for la in layers) + r.json()["config"]["size"]
            curl = shutil.which("curl")
            pulls, copies, curls = [], [], []
            for i in range(args.rounds):
                b_home = work / f"b{i}"
                b = Store.open(dataclasses.replace(load_settings(), home=b_home))
                t = time.perf_counter()
                result = pull(b, f"{host}/smollm2:135m-instruct", name="smollm2-copy")
                pulls.append(time.perf_counter() - t)
                assert result.received_bytes == total, (result.received_bytes, total)
                b.close()
                shutil.rmtree(b_home)
                out = work / "copy.bin"
                t = time.perf_counter()
                with httpx.stream("GET", f"http://{host}/v2/smollm2/blobs/{gguf['digest']}") as resp, \
                        out.open("wb") as f:
                    for block in resp.iter_bytes(1 << 20):
                        f.write(block)
                copies.append(time.perf_counter() - t)
                out.unlink()
                if curl:
                    t = time.perf_counter()
                    subprocess.run([curl, "-s", "-o", str(out), f"http://{host}/v2/smollm2/blobs/{gguf['digest']}"],
                                   check=True)
                    curls.append(time.perf_counter() - t)
                    out.unlink()
            pull_s, copy_s = statistics.median(pulls), statistics.median(copies)
            # The peer moves the GGUF only; scale it to the pull's bytes (the other layers are a few KB).
            copy_all = copy_s * total / gguf["size"]
            print(f"pull of the bundled SmolLM2 ({total / 1e6:.1f} MB, {args.rounds} rounds, median):")
            print(f"  freehold pull     {pull_s:.3f} s  {total / pull_s / 1e6:8.1f} MB/s")
            print(f"  httpx stream      {copy_s:.3f} s  {gguf['size'] / copy_s / 1e6:8.1f} MB/s  "
                  f"(the GGUF alone, {gguf['size'] / 1e6:.1f} MB)")
            if curls:
                curl_s = statistics.median(curls)
                print(f"  curl -o           {statistics.median(curls):.3f} s  {gguf['size'] / curl_s / 1e6:8.1f} MB/s")
            print(f"  ratio (httpx / pull, same bytes): {copy_all / pull_s:.2f}x  (goal >= 0.8)")
            if curls:
                curl_all = statistics.median(curls) * total / gguf["size"]
                print(f"  ratio (curl / pull, same bytes):  {curl_all / pull_s:.2f}x")

            # -- 2. bytes on the wire for a tuned model whose base is there -----------------------
            if args.pull_only:
                return
            push(a, "smollm2", f"{host}/bench/smollm2:base", key=PUSH_KEY)
            import_dataset([REPO / "examples" / "acme-support.mbox"], "acme", ours=["acme-outdoor.example"],
                           store=a, settings=settings_a)
            t = time.perf_counter()
            tune(TuneConfig(base="smollm2", dataset="acme", output="acme-tuned", max_steps=6, eval_every=0),
                 store=a, settings=settings_a)
            print(f"\ntuned acme-tuned (6 steps) in {time.perf_counter() - t:.0f} s")
            counted = {"bytes": 0}

            def count(request: httpx.Request) -> None:
                head = sum(len(k) + len(v) + 4 for k, v in request.headers.raw) + len(request.method) + \
                    len(str(request.url.raw_path)) + 12
                counted["bytes"] += head + len(request.content)

            original = client.Registry.__init__

            def counting(self: client.Registry, *a_: object, **k: object) -> None:
                original(self, *a_, **k)  # type: ignore[arg-type]
                self.http.event_hooks["request"].append(count)

            client.Registry.__init__ = counting  # type: ignore[method-assign]
            try:
                tuned = a.get("acme-tuned")
                base = a.get("smollm2")
                have = {la.digest for la in base.manifest.layers} | {base.manifest_digest}
                result = push(a, "acme-tuned", f"{host}/bench/acme-tuned:v1", key=PUSH_KEY)
                first = counted["bytes"]
                counted["bytes"] = 0
                again = push(a, "acme-tuned", f"{host}/bench/acme-tuned:v2", key=PUSH_KEY)
                second = counted["bytes"]
                counted["bytes"] = first
            finally:
                client.Registry.__init__ = original  # type: ignore[method-assign]
            new_layers = sum(la.size for la in tuned.manifest.layers if la.digest not in have)
            shared = sum(la.size for la in tuned.manifest.layers if la.digest in have)
            print(f"push of acme-tuned to a registry that has its base: {counted['bytes'] / 1e6:.2f} MB on the wire; "
                  f"new layers {new_layers / 1e6:.2f} MB, shared with the base {shared / 1e6:.2f} MB (not sent); "
                  f"reported sent {result.sent_bytes / 1e6:.2f} MB, skipped {result.skipped_bytes / 1e6:.2f} MB")
            print(f"  wire / new layers: {counted['bytes'] / new_layers:.4f}  (goal <= 1.01)")
            print(f"the same model pushed again under another tag: {second / 1e3:.1f} KB on the wire "
                  f"(sent {again.sent_bytes} B of layers, {again.skipped_bytes / 1e6:.2f} MB already there)")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            a.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
