"""Fixtures for training tests: a tiny base model in the store and small chat datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from freehold.ledger import dataset_root
from freehold.ledger.merkle import example_id
from freehold.store import Layer, Manifest, MediaType, Store

COLOURS = ["red", "green", "blue", "black", "white", "amber", "teal", "grey"]


def chat_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Short conversations with a learnable pattern (the answer repeats the question's word)."""
    rows = []
    for i in range(n):
        colour = COLOURS[(i + seed) % len(COLOURS)]
        msgs = [{"role": "user", "content": f"What colour is item {i}?"},
                {"role": "assistant", "content": f"The item is {colour}. Thanks for asking!"}]
        if i % 3 == 0:
            msgs = [{"role": "system", "content": "You answer briefly."}, *msgs,
                    {"role": "user", "content": "And again?"},
                    {"role": "assistant", "content": f"Still {colour}."}]
        rows.append({"messages": msgs})
    return rows


def make_dataset(store: Store, name: str, splits: dict[str, list[dict[str, Any]]], tmp: Path) -> str:
    """Commit a dataset the way freehold.data does: JSONL layers per split + the Merkle root."""
    layers, ids = [], []
    tmp.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        path = tmp / f"{name}-{split}.jsonl"
        with path.open("w") as f:
            for row in rows:
                eid = example_id(row)
                ids.append(eid)
                f.write(json.dumps({"id": eid, **row}) + "\n")
        layer = store.put_file_blob(path, MediaType.DATASET, f"{split}.jsonl")
        layers.append(Layer(layer.media_type, layer.digest, layer.size,
                            {**layer.annotations, "split": split, "examples": str(len(rows))}))
    root = dataset_root(ids) if ids else "0" * 64
    store.commit("dataset", name, Manifest("dataset", name, {"merkle_root": root}, layers, {}))
    return root


@pytest.fixture
def tiny_store(store: Store, tiny_gguf: Path, tmp_path: Path) -> Store:
    """The store with the tiny GGUF model as 'tiny' and a 48-example dataset 'colours'."""
    from freehold.home import import_model

    import_model(store, tiny_gguf, "tiny")
    make_dataset(store, "colours", {"train": chat_rows(48), "validation": chat_rows(8, seed=3)}, tmp_path / "ds")
    return store


def served_answer(store: Store, name: str, max_tokens: int = 8) -> Any:
    """The Completion of store model ``name`` (its GGUF, in llama.cpp) answering a colour question greedily."""
    from freehold.engine import SamplingParams, load_engine

    engine = load_engine(name, store=store, backend="llama", threads=1)
    try:
        return engine.complete(engine.chat([{"role": "user", "content": "What colour is item 3?"}],
                                           SamplingParams(temperature=0, max_tokens=max_tokens)))
    finally:
        engine.close()


def make_tuned_home(home: Path, tiny_gguf: Path, train: int = 48, **config: Any) -> Path:
    """A store at ``home`` holding 'tiny', the 'colours' dataset and 'tiny-tuned' (a real short
    tune with ``config`` over ``tiny_config``), closed again."""
    from freehold.config import load_settings
    from freehold.home import import_model
    from freehold.train import tune

    settings = load_settings({"FREEHOLD_HOME": str(home)})
    store = Store.open(settings)
    import_model(store, tiny_gguf, "tiny")
    make_dataset(store, "colours", {"train": chat_rows(train), "validation": chat_rows(8, seed=3)}, home.parent / "ds")
    tune(tiny_config(**config), store=store, settings=settings)
    store.close()
    return home


def tiny_config(**overrides: Any) -> Any:
    from freehold.train import TuneConfig

    # Dropout on, so resume and replay must restore the RNG to get the same bits.
    base: dict[str, Any] = dict(base="tiny", dataset="colours", output="tiny-tuned", epochs=2, lr=3e-3,
                                lora_r=4, lora_alpha=8, lora_dropout=0.05, batch_tokens=256, eval_every=4,
                                save_every=5, threads=1, quant="f32")
    base.update(overrides)
    return TuneConfig(**base)


def _clean_mail(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("-- ") or line.strip() == "--" or line.startswith("_______"):
            break  # signature or list footer
        if line.startswith(">") or (line.rstrip().endswith("wrote:") and len(line) < 160):
            continue  # quoted text and its attribution
        lines.append(line.rstrip())
    return "\n".join(lines).strip()


def email_conversations(archive: Path, limit: int, max_chars: int = 1200) -> list[dict[str, Any]]:
    """(question, answer) chat rows from a pipermail mbox: a reply answers the message it cites."""
    import mailbox

    by_id: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for msg in mailbox.mbox(str(archive)):
        payload = msg.get_payload(decode=True)
        body = _clean_mail(payload.decode("utf-8", "replace")) if isinstance(payload, bytes) else ""
        mid, parent = (msg.get("Message-ID") or "").strip(), (msg.get("In-Reply-To") or "").strip()
        if mid:
            by_id[mid] = body
        question = by_id.get(parent)
        if question and body and len(question) <= max_chars and len(body) <= max_chars:
            rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": body}]})
            if len(rows) >= limit:
                break
    return rows
