"""The Freehold home: its store and its ledger, composed.

The store holds artefacts and knows nothing of the ledger; the ledger records history and
reads the store. Everything that writes both goes through here, in one order: write the
artefact's blobs (pinned, invisible), write the signed record that made them (it cites the
layers, which are known now), then commit the manifest *once*, pointing at that record.
A crash before the commit leaves an unreferenced record and blobs that the next garbage
collection removes; never a visible artefact without its ledger head.

    from freehold.home import commit_recorded, import_model, open_store
    store = open_store()                       # the store, with the bundled models registered
    entry = import_model(store, Path("m.gguf"), "mine")   # staged, recorded, committed
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from freehold.config import Settings, load_settings
from freehold.errors import UsageError
from freehold.ledger import Ledger, Record, Recorder, layer_refs
from freehold.licences import model_licence
from freehold.progress import ProgressFn, emit
from freehold.store import Manifest, MediaType, ModelEntry, RemoveResult, Store
from freehold.store import bundled as bundled_models

WriteRecord = Callable[[Recorder, Manifest], Record]


def open_store(settings: Settings | None = None, *, bundled: bool = True,
               progress: ProgressFn | None = None) -> Store:
    """The store of ``settings``; with ``bundled`` the bundled models that register automatically
    (SmolLM2) are registered first, once per store (not again after 'freehold rm')."""
    store = Store.open(settings or load_settings())
    if bundled:
        ensure_bundled(store, progress)
    return store


def commit_recorded(store: Store, manifest: Manifest, write: WriteRecord | None, *,
                    aliases: tuple[str, ...] = ()) -> ModelEntry:
    """Record what made ``manifest`` (``write(recorder, manifest)``; its blobs are written), then
    commit it once with ``lineage.ledger_head`` naming that record. ``write=None``: no record
    (a tune run with ``--no-ledger``)."""
    if write is not None:
        record = write(Recorder(Ledger.open(store.home)), manifest)
        manifest = manifest.with_lineage(ledger_head=record.hash, ledger_record=record.number)
    return store.commit(manifest.kind, manifest.name, manifest, aliases)


def import_record(manifest: Manifest, license_text: str | None = None) -> WriteRecord:
    """The ``import`` record of a model entering the store: its weights layers, source and licence."""
    licence = model_licence(manifest, license_text)

    def write(rec: Recorder, m: Manifest) -> Record:
        return rec.record_import(m.name, layer_refs(m, "weights"), source=m.source, license=licence)

    return write


def _license_text(store: Store, manifest: Manifest) -> str | None:
    return store.text_layer(manifest, MediaType.LICENSE)


def import_model(store: Store, path: Path | None = None, name: str | None = None, *, bundled: str | None = None,
                 progress: ProgressFn | None = None) -> ModelEntry:
    """Import a GGUF file, a Hugging Face directory or a bundled model, with its ``import`` record."""
    if (path is None) == (bundled is None):
        raise UsageError("give either a PATH or --bundled NAME", "e.g. 'freehold import model.gguf --name mine'")
    if bundled is not None:
        return register_bundled(store, bundled, progress)
    assert path is not None
    manifest = store.stage_path(path, name, progress)
    emit(progress, "writing manifest")
    entry = commit_recorded(store, manifest, import_record(manifest, _license_text(store, manifest)))
    emit(progress, "success", digest=entry.manifest_digest)
    return entry


def register_bundled(store: Store, key: str, progress: ProgressFn | None = None) -> ModelEntry:
    """Register a bundled model by key ('smollm2' or 'gemma3') with its import record."""
    model, staged = bundled_models.stage(store, key, progress)
    emit(progress, "writing manifest")
    entry = commit_recorded(store, staged, import_record(staged, _license_text(store, staged)),
                            aliases=(model.alias,))
    store.set_setting(f"bundled.{key}", "registered")
    emit(progress, "success", digest=entry.manifest_digest)
    return entry


def ensure_bundled(store: Store, progress: ProgressFn | None = None) -> None:
    """Register the automatic bundled models once (not again after the user removes them)."""
    for key in bundled_models.pending_automatic(store):
        emit(progress, f"registering bundled model {bundled_models.BUNDLED[key].name}")
        register_bundled(store, key, progress)


def remove(store: Store, name: str, kind: str = "model") -> RemoveResult:
    """Remove a name and collect what nothing uses any more; a removed bundled model stays removed."""
    result = store.remove(name, kind)
    if kind == "model":
        bundled_models.note_removed(store, result.name)
    return result
