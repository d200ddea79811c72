"""Fixtures for ledger tests: a tiny base model, a dataset and a deterministic torch training
run recorded step by step, merged into a model whose manifest names its ledger head.

The "model" is a 4->2 linear layer trained with plain SGD on features derived from each
example's id, so a run of a few dozen steps takes milliseconds and is bit-reproducible.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from freehold.home import commit_recorded, import_record
from freehold.ledger import (
    MERKLE,
    Ledger,
    Record,
    Recorder,
    dataset_root,
    layer_refs,
    ref,
    register_replayer,
    weights_digest,
)
from freehold.ledger.merkle import example_id
from freehold.store import Layer, Manifest, MediaType, Store

REPLAYER = "tests.tiny:replayer"


def make_rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        ex = {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i * 7 % 11}"},
            ]
        }
        rows.append({"id": example_id(ex), **ex})
    return rows


def stage_dataset(store: Store, name: str, rows: list[dict[str, Any]]) -> Manifest:
    train, valid = rows[: len(rows) * 3 // 4], rows[len(rows) * 3 // 4 :]
    layers = []
    for split, part in (("train", train), ("valid", valid)):
        data = "".join(json.dumps(r) + "\n" for r in part).encode()
        layers.append(store.put_stream_blob(data, MediaType.DATASET, {"filename": f"{split}.jsonl", "split": split}))
    root = dataset_root([r["id"] for r in rows])
    return Manifest("dataset", f"{name}:latest", {"merkle_root": root, "examples": len(rows)}, layers)


def put_dataset(store: Store, name: str, rows: list[dict[str, Any]]) -> Any:
    manifest = stage_dataset(store, name, rows)
    return store.commit("dataset", manifest.name, manifest)


def save_tensors(store: Store, tensors: Mapping[str, Any], filename: str) -> Layer:
    from safetensors.torch import save

    return store.put_stream_blob(save(dict(tensors)), MediaType.SAFETENSORS, {"filename": filename})


class TinyTrainer:
    """Implements freehold.ledger.ReplayTrainer for the toy model."""

    def __init__(self, store: Store, rows: dict[str, dict[str, Any]], seed: int, lr_scale: float = 1.0) -> None:
        self.store = store
        self.rows = rows
        self.seed = seed
        self.lr_scale = lr_scale
        self.restore(None)

    def _init(self) -> dict[str, Any]:
        import torch

        g = torch.Generator().manual_seed(self.seed)
        return {"weight": torch.randn(2, 4, generator=g), "bias": torch.zeros(2)}

    def restore(self, checkpoint: Record | None) -> Mapping[str, Any]:
        if checkpoint is None:
            self.state = self._init()
        else:
            loaded = self.checkpoint_state(checkpoint)
            assert loaded is not None
            self.state = dict(loaded)
        return self.state

    def checkpoint_state(self, checkpoint: Record) -> Mapping[str, Any] | None:
        from safetensors.torch import load

        digest = checkpoint.payload["outputs"][0]["digest"]
        path = self.store.blob_path(digest)
        return load(path.read_bytes()) if path.exists() else None

    def batch(self, ids: list[str]) -> tuple[Any, Any]:
        import torch

        xs = [[b / 255 for b in bytes.fromhex(i)[:4]] for i in ids]
        ys = [[b / 255 for b in bytes.fromhex(i)[4:6]] for i in ids]
        return torch.tensor(xs), torch.tensor(ys)

    def run_step(self, step: Record) -> tuple[Mapping[str, Any], float]:
        return self.train_step(step.payload["example_ids"], step.payload["lr"])

    def train_step(self, ids: list[str], lr: float) -> tuple[dict[str, Any], float]:
        import torch

        x, y = self.batch(ids)
        w = self.state["weight"].clone().requires_grad_(True)
        b = self.state["bias"].clone().requires_grad_(True)
        loss = torch.nn.functional.mse_loss(x @ w.T + b, y)
        loss.backward()
        loss = loss.detach()
        with torch.no_grad():
            assert w.grad is not None and b.grad is not None
            self.state = {
                "weight": (w - lr * self.lr_scale * w.grad).detach(),
                "bias": (b - lr * self.lr_scale * b.grad).detach(),
            }
        return self.state, loss.item()


@dataclass
class World:
    store: Store
    home: Path
    ledger: Ledger
    rows: list[dict[str, Any]]
    run: str = "run-1"
    seed: int = 7
    steps: int = 24
    checkpoint_every: int = 8
    records: dict[str, Record] = field(default_factory=dict)

    @property
    def ledger_path(self) -> Path:
        return self.ledger.path


def build_world(home: Path, steps: int = 24, n_rows: int = 40) -> World:
    store = Store(home)
    ledger = Ledger.open(home)
    rec = Recorder(ledger)
    world = World(store, home, ledger, make_rows(n_rows), steps=steps)
    # base model: one fake GGUF weights blob plus a licence layer
    gguf = store.put_stream_blob(
        io.BytesIO(b"GGUF" + bytes(range(256)) * 8).read(), MediaType.GGUF, {"filename": "base.gguf"}
    )
    lic = store.put_stream_blob(b"Apache-2.0\n", MediaType.LICENSE)
    base_manifest = Manifest("model", "base:latest", {"license": "apache-2.0"}, [gguf, lic], {"type": "test"})
    commit_recorded(store, base_manifest, import_record(base_manifest))
    world.records["import"] = ledger.records()[-1]
    # dataset
    ids = [r["id"] for r in world.rows]

    def dataset_record(r: Recorder, m: Manifest) -> Record:
        return r.record_dataset(
            m.name,
            sources=[ref("source", "sha256:" + "ab" * 32, filename="support.mbox")],
            merkle_root=m.config["merkle_root"],
            example_ids=ids,
            outputs=layer_refs(m),
            filters={"pii": "scrubbed"},
            counts={"examples": len(ids), "train": 30, "valid": 10},
        )

    ds = commit_recorded(store, stage_dataset(store, "support", world.rows), dataset_record)
    world.records["dataset"] = ledger.records()[-1]
    # training run
    base = store.get("base")
    trainer = TinyTrainer(store, {r["id"]: r for r in world.rows}, world.seed)
    world.records["config"] = rec.record_config(
        world.run,
        base=layer_refs(base.manifest, "base"),
        dataset=[ref("dataset", "sha256:" + ds.manifest.config["merkle_root"], MERKLE)],
        architecture={"type": "linear", "in": 4, "out": 2},
        hyperparameters={"lr": 0.5, "batch": 4},
        seed=world.seed,
        threads=1,
        initial_weights=weights_digest(trainer.state),
        replayer=REPLAYER,
    )
    rec.record_note("plain SGD: the toy needs no momentum", run=world.run)
    train_ids = ids[:30]
    last_ckpt: Layer | None = None
    for step in range(1, steps + 1):
        batch = [train_ids[(step * 4 + k) % len(train_ids)] for k in range(4)]
        state, loss = trainer.train_step(batch, 0.5)
        rec.record_step(world.run, step, example_ids=batch, lr=0.5, loss=loss, weights=weights_digest(state))
        if step % world.checkpoint_every == 0:
            last_ckpt = save_tensors(store, state, f"ckpt-{step}.safetensors")
            world.records[f"ckpt{step}"] = rec.record_checkpoint(
                world.run,
                step,
                weights=weights_digest(state),
                outputs=[ref("checkpoint", last_ckpt.digest, media_type=MediaType.SAFETENSORS)],
            )
    assert last_ckpt is not None
    merged = save_tensors(store, trainer.state, "model.safetensors")
    ckpt = last_ckpt

    def merge_record(r: Recorder, m: Manifest) -> Record:
        return r.record_merge(
            inputs=[*layer_refs(base.manifest, "base"), ref("adapter", ckpt.digest)],
            outputs=layer_refs(m, "merged"),
            method="toy-merge",
            run=world.run,
        )

    commit_recorded(store, Manifest("model", "tuned:latest", {"format": "safetensors"}, [merged]), merge_record)
    world.records["merge"] = ledger.records()[-1]
    return world


def tiny_replayer(store: Any, config: Record, index: Any) -> TinyTrainer:
    ids = {}
    for rec in index.records:
        if rec.type == "dataset":
            ids.update({i: {} for i in rec.payload["example_ids"]})
    return TinyTrainer(store, ids, int(config.payload["seed"]))


register_replayer(REPLAYER, tiny_replayer)


@pytest.fixture
def world(freehold_home: Path) -> World:
    return build_world(freehold_home)
