"""Ledger benchmark: verify a 10k-step lineage plus a 100 MB model; cost of one append.

    .venv/bin/python benchmarks/bench_ledger_verify.py [--steps 10000] [--model-mb 100]

Builds a throwaway FREEHOLD_HOME (a 100 MB weights blob, a 2,000-example dataset, a run of
N step records with 8 example ids each, a checkpoint and a merge) and times
``freehold.ledger.verify``. The peer, measured in the same run, is plain SHA-256 of the
model file: the floor any verifier pays. Target (issue 6): verify < 10 s.
Also times ``Recorder.record_step`` with fsync and ``weights_digest`` of a LoRA-sized state
dict: together, the per-step overhead the trainer pays.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from freehold.home import commit_recorded, import_record
from freehold.ledger import (
    MERKLE,
    Ledger,
    Recorder,
    dataset_root,
    layer_refs,
    ref,
    verify,
)
from freehold.ledger.merkle import example_id
from freehold.store import Manifest, MediaType, Store


def build(home: Path, steps: int, model_mb: int) -> Store:
    store = Store(home)
    ledger = Ledger(home, fsync=False)  # setup speed only; the timed append below fsyncs
    rec = Recorder(ledger)
    model = home / "model.gguf"
    with model.open("wb") as f:
        for _ in range(model_mb):
            f.write(os.urandom(1 << 20))
    layer = store.put_file_blob(model, MediaType.GGUF, "model.gguf")
    base_manifest = Manifest("model", "base:latest", {}, [layer])
    commit_recorded(store, base_manifest, import_record(base_manifest))
    rows = []
    for i in range(2000):
        ex = {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        rows.append({"id": example_id(ex), **ex})
    ds_layer = store.put_stream_blob(
        "".join(json.dumps(r) + "\n" for r in rows).encode(), MediaType.DATASET, {"filename": "train.jsonl"}
    )
    ids = [r["id"] for r in rows]
    root = dataset_root(ids)
    commit_recorded(store, Manifest("dataset", "ds:latest", {"merkle_root": root}, [ds_layer]),
                    lambda r, m: r.record_dataset(m.name, sources=[], merkle_root=root, example_ids=ids,
                                                  outputs=layer_refs(m)))
    base = store.get("base")
    rec.record_config(
        "run",
        base=layer_refs(base.manifest, "base"),
        dataset=[ref("dataset", "sha256:" + root, MERKLE)],
        architecture={"lora_r": 16},
        hyperparameters={"lr": 2e-4, "batch": 8},
        seed=0,
        threads=2,
    )
    for step in range(1, steps + 1):
        batch = [ids[(step * 8 + k) % len(ids)] for k in range(8)]
        digest = "sha256:" + hashlib.sha256(step.to_bytes(8, "little")).hexdigest()
        rec.record_step("run", step, example_ids=batch, lr=2e-4, loss=1.0 / step, weights=digest)
    adapter = store.put_stream_blob(os.urandom(1 << 20), MediaType.SAFETENSORS, {"filename": "adapter.bin"})
    rec.record_checkpoint("run", steps, weights=digest, outputs=[ref("adapter", adapter.digest)])
    merge_inputs = [*layer_refs(base.manifest, "base"), ref("adapter", adapter.digest)]
    commit_recorded(store, Manifest("model", "tuned:latest", {}, [layer]),
                    lambda r, m: r.record_merge(inputs=merge_inputs, outputs=layer_refs(m, "merged"), method="lora",
                                                run="run"))
    model.unlink()
    return store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--model-mb", type=int, default=100)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    try:
        t0 = time.perf_counter()
        store = build(home, args.steps, args.model_mb)
        built = time.perf_counter() - t0
        ledger_mb = (home / "ledger" / "ledger.jsonl").stat().st_size / 1e6
        weights = store.get("tuned").manifest.weights[0].digest
        t0 = time.perf_counter()
        hashlib.sha256(store.blob_path(weights).read_bytes()).hexdigest()
        peer = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = verify(store, "tuned")
        took = time.perf_counter() - t0
        assert report.ok, report.problems
        rec = Recorder(Ledger.open(home))
        ids = ["ab" * 32] * 8
        n = 200
        t0 = time.perf_counter()
        for step in range(n):
            rec.record_step("run2", step, example_ids=ids, lr=1e-4, loss=0.5, weights="sha256:" + "cd" * 32)
        append_ms = (time.perf_counter() - t0) / n * 1000
        import torch

        from freehold.ledger import weights_digest

        # LoRA r=16 on q,k,v,o of SmolLM2-135M's 30 layers (hidden 576): ~2.2M trainable floats.
        lora = {
            f"l{i}.{m}.{ab}": torch.randn(576, 16) if ab == "A" else torch.randn(16, 576)
            for i in range(30)
            for m in "qkvo"
            for ab in "AB"
        }
        t0 = time.perf_counter()
        for _ in range(10):
            weights_digest(lora)
        digest_ms = (time.perf_counter() - t0) / 10 * 1000
        print(f"setup: {built:.1f} s; ledger {report.records} records, {ledger_mb:.1f} MB; model {args.model_mb} MB")
        print(
            f"verify: {took:.2f} s ({report.blobs_checked} blobs, {report.bytes_hashed / 1e6:.0f} MB hashed, "
            f"{report.examples_checked} examples) -- target < 10 s"
        )
        print(f"peer (sha256 of the model alone): {peer:.2f} s; ratio verify/peer = {took / peer:.2f}")
        print(f"append one step record (sign + fsync): {append_ms:.2f} ms")
        n_params = sum(t.numel() for t in lora.values()) / 1e6
        print(
            f"weights_digest of a LoRA r=16 state dict ({n_params:.1f}M params): {digest_ms:.1f} ms; "
            f"per-step ledger cost {append_ms + digest_ms:.1f} ms"
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
