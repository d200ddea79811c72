"""Fixtures for the eval tests: the tiny model in the store, a small chat dataset, and a
"fine-tune" of the tiny model whose lineage (import, dataset, config, steps, merge, export)
is recorded in the ledger the way ``freehold tune`` records it, so the card has facts to find.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freehold.store import MediaType, Store


@pytest.fixture
def eval_data(shared_data: Path) -> Path:
    path = shared_data / "evals"
    if not path.is_dir():
        pytest.skip(f"no eval sets at {path}")
    return path


@pytest.fixture
def tiny(store: Store, tiny_gguf: Path) -> str:
    """The tiny chat model imported as 'tiny' (with its signed import record)."""
    from freehold.home import import_model

    import_model(store, tiny_gguf, "tiny")
    return "tiny"


QUESTIONS = [
    ("How do I reset my password?", "Open Settings, choose Account, then Reset password and follow the email link."),
    ("Where can I download my invoice?", "Invoices are under Billing > History; click the PDF icon next to a month."),
    ("Can I change my plan mid-month?", "Yes. The change applies at once and we pro-rate the difference."),
    ("How do I add a team member?", "Go to Team, click Invite, and enter their email address."),
    ("Do you offer refunds?", "We refund within 30 days of purchase if you have not used the export feature."),
    ("Is my data encrypted?", "Yes, at rest with AES-256 and in transit with TLS 1.3."),
]


@pytest.fixture
def support(store: Store, tmp_path: Path) -> str:
    """A 120-conversation support dataset (about 12 held-out test conversations)."""
    from freehold.data import import_dataset

    path = tmp_path / "support.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(120):
            q, a = QUESTIONS[i % len(QUESTIONS)]
            f.write(json.dumps({"messages": [
                {"role": "user", "content": f"Ticket {i}: {q} Thanks in advance, customer {i}."},
                {"role": "assistant", "content": f"Hello customer {i}. {a} Best regards, the support team."},
            ]}) + "\n")
    import_dataset([path], "support", store=store)
    return "support"


@pytest.fixture
def tuned(store: Store, tiny: str, support: str, tmp_path: Path) -> str:
    """'tiny-tuned': different weights (seed 1) with a recorded training lineage from tiny + support."""
    from freehold.home import commit_recorded
    from freehold.ledger import MERKLE, Ledger, Recorder, layer_refs, ref
    from freehold.testing import write_tiny_gguf

    path = write_tiny_gguf(tmp_path / "tuned.gguf", seed=1)
    staged = store.stage_gguf(path, "tiny-tuned")
    base = store.get(tiny)
    ds = store.get(support, kind="dataset")
    rec = Recorder(Ledger.open(store.home))
    base_refs = [r for r in layer_refs(base.manifest, "base") if r["media_type"] in MediaType.WEIGHTS]
    rec.record_config("run-1", base=base_refs,
                      dataset=[ref("dataset", "sha256:" + ds.manifest.config["merkle_root"], MERKLE, name=support)],
                      architecture={"base": base.name, "architecture": "llama", "parameters": 91264,
                                    "adapter": "lora"},
                      hyperparameters={"lr": 2e-4, "lora_r": 8, "epochs": 1}, seed=0, threads=2,
                      extra={"base_name": base.name, "dataset_name": support})
    for step in range(1, 4):
        rec.record_step("run-1", step, example_ids=[], lr=2e-4, loss=2.0 / step, weights="sha256:" + "0" * 64,
                        extra={"tokens": 1000})
    gguf = staged.layer(MediaType.GGUF)
    assert gguf is not None
    merged = [ref("merged", "sha256:" + "1" * 64)]
    rec.record_merge(inputs=base_refs, outputs=merged, method="lora", run="run-1")
    gguf_refs = [ref("gguf", gguf.digest)]
    commit_recorded(store, staged, lambda r, m: r.record_export(m.name, inputs=merged, outputs=gguf_refs,
                                                                method="gguf/f32"))
    return "tiny-tuned"
