"""The one reader of dataset JSONL layers (freehold/data/rows.py) that training, evaluation,
export and verification share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freehold.data.rows import read_rows
from freehold.errors import StoreError
from freehold.store import Layer, Manifest, MediaType, Store


def layer(store: Store, tmp_path: Path, name: str, text: str, split: str | None) -> Layer:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(text, encoding="utf-8")
    put = store.put_file_blob(path, MediaType.DATASET, path.name)
    notes = {**put.annotations, **({"split": split} if split else {})}
    return Layer(put.media_type, put.digest, put.size, notes)


def row(i: int) -> str:
    return json.dumps({"id": str(i), "messages": [{"role": "user", "content": f"q{i}"}]}) + "\n"


def test_rows_by_split_in_layer_order_blank_lines_skipped_unannotated_is_train(store: Store, tmp_path: Path) -> None:
    layers = [layer(store, tmp_path, "a", row(1) + "\n" + row(2), "train"),
              layer(store, tmp_path, "b", row(3), "validation"),
              layer(store, tmp_path, "c", "  \n" + row(4), None)]  # a hand-made layer: training data
    m = Manifest("dataset", "d", {}, layers)
    assert [r["id"] for r in read_rows(store, m)] == ["1", "2", "3", "4"]
    assert [r["id"] for r in read_rows(store, m, "train")] == ["1", "2", "4"]
    assert [r["id"] for r in read_rows(store, m, "validation")] == ["3"]
    assert list(read_rows(store, m, "test")) == []


def test_a_damaged_layer_names_the_layer_and_line(store: Store, tmp_path: Path) -> None:
    bad = layer(store, tmp_path, "bad", row(1) + "{not json\n", "train")
    with pytest.raises(StoreError, match=rf"dataset layer {bad.digest[:19]} line 2 is not JSON") as exc:
        list(read_rows(store, Manifest("dataset", "d", {}, [bad])))
    assert "freehold data import" in (exc.value.hint or "")
