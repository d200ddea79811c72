"""Importing a model and writing its signed ``import`` record to the ledger, in one call."""

from __future__ import annotations

from pathlib import Path

from freehold.errors import UsageError
from freehold.progress import ProgressFn
from freehold.store.store import ModelEntry, Store


def import_model(store: Store, path: Path | None = None, name: str | None = None, *, bundled: str | None = None,
                 progress: ProgressFn | None = None) -> ModelEntry:
    """Import a GGUF file, a Hugging Face directory or a bundled model, and record it."""
    if (path is None) == (bundled is None):
        raise UsageError("give either a PATH or --bundled NAME", "e.g. 'freehold import model.gguf --name mine'")
    if bundled is not None:
        from freehold.store.bundled import register

        return register(store, bundled, progress)  # records the import itself
    assert path is not None
    entry = store.import_path(path, name, progress)
    return record_import(store, entry.name)


def record_import(store: Store, name: str) -> ModelEntry:
    from freehold.ledger import record_store_import

    record_store_import(store, name)
    return store.get(name)
