"""Reading a dataset's rows back: the one parser of the JSONL layers a dataset manifest names.

Training, evaluation, verification, export and derived datasets all read rows through
``read_rows`` (or ``read_layer`` for one layer), so they agree on what a row is: one JSON
object per non-blank line, layers in manifest order, and a layer without a ``split``
annotation (written by hand or by an early version) counting as training data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from freehold.errors import StoreError
from freehold.store import Layer, Manifest, MediaType, Store


def layer_split(layer: Layer) -> str:
    """The split a dataset layer holds; unannotated layers are training data."""
    return str(layer.annotations.get("split", "train"))


def read_layer(store: Store, layer: Layer) -> Iterator[dict[str, Any]]:
    """The rows of one dataset layer, streamed from its blob."""
    with store.blob_path(layer.digest).open("rb") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise StoreError(f"dataset layer {layer.digest[:19]} line {line_no} is not JSON",
                                 "the dataset file is damaged; rebuild it with 'freehold data import'") from exc


def read_rows(store: Store, manifest: Manifest, split: str = "all") -> Iterator[dict[str, Any]]:
    """Rows (``{"id", "thread", "messages", ...}``) of ``split`` ("all": every split), layer by layer
    in manifest order."""
    for layer in manifest.layers_of(MediaType.DATASET):
        if split == "all" or layer_split(layer) == split:
            yield from read_layer(store, layer)
