"""Manifests: small JSON documents naming a model's (or dataset's) typed layers.

A manifest is itself stored as a blob (its digest is what the catalog points at), so it is
immutable and content-addressed like everything else. Shape, after Ollama's::

    {"schemaVersion": 1, "kind": "model", "name": "smollm2:135m-instruct",
     "config": {...metadata read from the weights...},
     "layers": [{"mediaType": "...", "digest": "sha256:...", "size": 123,
                 "annotations": {"filename": "..."}}],
     "source": {...where it came from...}, "lineage": {"ledger_head": null}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from freehold.errors import StoreError


class MediaType:
    GGUF = "application/vnd.freehold.model.gguf"
    SAFETENSORS = "application/vnd.freehold.model.safetensors"
    SAFETENSORS_INDEX = "application/vnd.freehold.model.safetensors.index+json"
    HF_CONFIG = "application/vnd.freehold.hf.config+json"
    TOKENIZER = "application/vnd.freehold.tokenizer"
    TEMPLATE = "application/vnd.freehold.template.jinja"
    PARAMS = "application/vnd.freehold.params+json"
    LICENSE = "application/vnd.freehold.license"
    # The notices a licence requires every copy and derivative to carry (the Gemma terms' §3.1
    # NOTICE, the Llama licence's Notice): freehold.licences.notice_text.
    NOTICE = "application/vnd.freehold.notice"
    CARD = "application/vnd.freehold.card+markdown"
    LINEAGE = "application/vnd.freehold.lineage+json"
    # A pulled model's lineage: its signed ledger records and their signers' keys (freehold.ledger.bundle).
    LINEAGE_BUNDLE = "application/vnd.freehold.lineage-bundle+json"
    DATASET = "application/vnd.freehold.dataset+jsonl"
    # Where each example's personal data was replaced: {"id", "spans": [[turn, start, end, type]]}
    # per line, for the preview that highlights it. Not training data (outside the Merkle root).
    PII_SPANS = "application/vnd.freehold.dataset.pii-spans+jsonl"
    # A PEFT adapter file (checkpoints and tuned models): tensor names without the adapter name.
    ADAPTER = "application/vnd.freehold.adapter.safetensors"
    ADAPTER_CONFIG = "application/vnd.freehold.adapter.config+json"
    # A knowledge index (freehold.knowledge): passages, their embeddings (row i = passage i)
    # and the SQLite FTS5 database over them.
    KNOWLEDGE_PASSAGES = "application/vnd.freehold.knowledge.passages+jsonl"
    KNOWLEDGE_VECTORS = "application/vnd.freehold.knowledge.vectors.npy"
    KNOWLEDGE_LEXICAL = "application/vnd.freehold.knowledge.fts5.sqlite3"

    WEIGHTS = (GGUF, SAFETENSORS)


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(sorted(self.annotations.items()))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layer:
        return cls(d["mediaType"], d["digest"], int(d["size"]), dict(d.get("annotations", {})))


@dataclass(frozen=True)
class Manifest:
    kind: str
    name: str
    config: dict[str, Any]
    layers: list[Layer]
    source: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=lambda: {"ledger_head": None})
    schema_version: int = 1

    def to_bytes(self) -> bytes:
        doc = {
            "schemaVersion": self.schema_version,
            "kind": self.kind,
            "name": self.name,
            "config": self.config,
            "layers": [layer.to_dict() for layer in self.layers],
            "source": self.source,
            "lineage": self.lineage,
        }
        return json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
            return cls(kind=doc["kind"], name=doc["name"], config=doc.get("config", {}),
                       layers=[Layer.from_dict(d) for d in doc["layers"]], source=doc.get("source", {}),
                       lineage=doc.get("lineage", {}), schema_version=int(doc.get("schemaVersion", 1)))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"a manifest in the store is unreadable: {exc}",
                             "run 'freehold doctor' to check the store") from exc

    def with_lineage(self, **lineage: Any) -> Manifest:
        """The same manifest pointing at its ledger record (``ledger_head``, ``ledger_record``)."""
        return replace(self, lineage={**(self.lineage or {}), **lineage})

    def layers_of(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]

    def layer(self, media_type: str) -> Layer | None:
        found = self.layers_of(media_type)
        return found[0] if found else None

    @property
    def weights(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type in MediaType.WEIGHTS]

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)
