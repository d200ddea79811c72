"""The content-addressed model and dataset store (see ``store.store`` for the layout)."""

from freehold.store.manifest import Layer, Manifest, MediaType
from freehold.store.store import ModelEntry, RemoveResult, Store

__all__ = ["Layer", "Manifest", "MediaType", "ModelEntry", "RemoveResult", "Store"]
