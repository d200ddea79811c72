"""The store: blobs + manifests + catalog under ``FREEHOLD_HOME``.

Layout::

    $FREEHOLD_HOME/
      blobs/sha256-<hex>      content-addressed files (weights, templates, manifests, ...)
      blobs/.tmp/             in-flight writes, each named with its writer's pid
      catalog.db              SQLite: names -> manifest digests, aliases, derived artefacts, pins
      .lock                   every write holds it shared, garbage collection exclusive

The lock contract: a blob is written and *pinned* (a catalog row naming the blob and the
writing process) under the shared lock, so garbage collection, which runs under the
exclusive lock, sees either no blob or a pinned one; a commit names the blobs and drops
their pins in one transaction. Pins of processes that are gone are dropped by the next
collection. So a blob about to be named is never collected, whatever another process
removes meanwhile.

An import writes every blob first and then adds the catalog row in one transaction, so
an interrupted import leaves no row and no visible partial blob. Opening a store writes
nothing but its directories and catalog schema (bundled models are registered by
``freehold.home.open_store``, which also writes their ledger records).
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import fcntl
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.config import Settings, load_settings
from freehold.errors import ModelNotFoundError, StoreError, UsageError
from freehold.progress import ProgressFn, emit
from freehold.store.agent_tasks import AgentTaskTable
from freehold.store.blobs import BlobStore, pid_alive, store_os_error
from freehold.store.catalog import Catalog, Ref, drop_pins
from freehold.store.formats import read_gguf_info, read_hf_info
from freehold.store.jobs import JobTable
from freehold.store.manifest import Layer, Manifest, MediaType
from freehold.store.names import DEFAULT_TAG, format_name, parse_name
from freehold.store.registry import RegistryTable

STALE_TRANSFER_S = 7 * 24 * 3600  # an unfinished upload or download older than this is removed by gc()


@dataclass(frozen=True)
class ModelEntry:
    name: str  # full name with tag
    manifest: Manifest
    manifest_digest: str
    created_at: float
    aliases: list[str] = field(default_factory=list)

    @property
    def info(self) -> dict[str, Any]:
        return self.manifest.config

    @property
    def size(self) -> int:
        return self.manifest.size


@dataclass(frozen=True)
class RemoveResult:
    name: str
    blobs_removed: int
    bytes_freed: int


@dataclass(frozen=True)
class Importer:
    """One model format the store imports. ``accepts`` looks at the path only; ``stage`` validates
    and writes (a wrong file gets the format's own fix-it error)."""

    name: str
    accepts: Callable[[Path], bool]
    stage: Callable[..., Manifest]  # (store, path, name, *, progress) -> the staged manifest


class Store:
    def __init__(self, home: Path) -> None:
        self.home = home
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_os_error(exc, home) from exc
        if not home.is_dir():
            raise StoreError(f"FREEHOLD_HOME {home} is not a directory", "point FREEHOLD_HOME at a directory")
        if not os.access(home, os.W_OK):
            raise store_os_error(PermissionError(13, "Permission denied"), home)
        self._blobs = BlobStore(home / "blobs")
        self._lock_path = home / ".lock"
        self._blobs.init()
        self._catalog = Catalog(home / "catalog.db")
        self._owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self.jobs = JobTable(self._catalog)  # long operations asked for, and their progress
        self.registry = RegistryTable(self._catalog)  # what was pushed to this store's registry
        self.agent_tasks = AgentTaskTable(self._catalog)  # the A2A agents' tasks (freehold.agents.a2a)

    @classmethod
    def open(cls, settings: Settings | None = None) -> Store:
        """The store of ``settings.home``, as it is (no side effects beyond creating it)."""
        return cls((settings or load_settings()).home)

    def close(self) -> None:
        """Drop this handle's pins of blobs it wrote but never named, then close the catalog."""
        with contextlib.suppress(StoreError, OSError):
            self._catalog.unpin(self._owner)
        self._catalog.close()

    # locking ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, exclusive: bool = False) -> Iterator[None]:
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise store_os_error(exc, self.home) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def temp_dir(self, prefix: str) -> tempfile.TemporaryDirectory[str]:
        """Scratch space on the store's filesystem that no other process clears while this one lives."""
        return self._blobs.temp_dir(prefix)

    # reading ------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self._blobs.path(digest)

    def has_blob(self, digest: str) -> bool:
        return self._blobs.exists(digest)

    def verify_blob(self, digest: str, progress: ProgressFn | None = None) -> bool:
        """Whether the blob is present and its bytes still hash to ``digest``."""
        return self._blobs.verify(digest, progress)

    def refs(self, kind: str | None = None) -> builtins.list[Ref]:
        return self._catalog.refs(kind)

    def setting(self, key: str) -> str | None:
        return self._catalog.get_setting(key)

    def set_setting(self, key: str, value: str) -> None:
        self._catalog.set_setting(key, value)

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"blob {digest} is missing from the store",
                             "re-import the model ('freehold import') or run 'freehold doctor'") from exc

    def manifest(self, digest: str) -> Manifest:
        return Manifest.from_bytes(self.read_blob(digest))

    def _entry(self, ref: Ref, aliases: dict[str, str] | None = None) -> ModelEntry:
        aliases = self._catalog.aliases() if aliases is None else aliases
        return ModelEntry(ref.full_name, self.manifest(ref.manifest_digest), ref.manifest_digest,
                          ref.created_at, sorted(a for a, target in aliases.items() if target == ref.full_name))

    def list(self, kind: str = "model") -> list[ModelEntry]:
        aliases = self._catalog.aliases()
        return [self._entry(r, aliases) for r in self._catalog.refs(kind)]

    def resolve_ref(self, text: str, kind: str = "model") -> Ref:
        name, tag = parse_name(text, default_tag=None)
        if tag is not None:
            ref = self._catalog.get_ref(kind, name, tag)
        else:
            ref = None
            alias = self._catalog.get_alias(name)
            if alias:
                ref = self._catalog.get_ref(kind, *alias)
            if ref is None:
                ref = self._catalog.get_ref(kind, name, DEFAULT_TAG)
            if ref is None:
                tags = [r for r in self._catalog.refs(kind) if r.name == name]
                if len(tags) == 1:
                    ref = tags[0]
        if ref is None:
            raise ModelNotFoundError(text, self.close_names(text, kind), kind=kind)
        return ref

    def get(self, text: str, kind: str = "model") -> ModelEntry:
        return self._entry(self.resolve_ref(text, kind))

    def has(self, text: str, kind: str = "model") -> bool:
        """Whether ``get(text, kind)`` would find something."""
        try:
            self.resolve_ref(text, kind)
        except ModelNotFoundError:
            return False
        return True

    def close_names(self, text: str, kind: str = "model") -> builtins.list[str]:
        names = [r.full_name for r in self._catalog.refs(kind)]
        if kind == "model":
            names += list(self._catalog.aliases())
        lowered = text.lower()
        prefix = [n for n in names if n.startswith(lowered.split(":")[0]) or lowered in n]
        fuzzy = difflib.get_close_matches(lowered, names, n=5, cutoff=0.5)
        return list(dict.fromkeys(prefix + fuzzy))[:5]

    # writing ------------------------------------------------------------------------------
    def _pinned(self, digest: str) -> None:
        self._catalog.pin(digest, self._owner, os.getpid())

    def _put_file(self, path: Path, progress: ProgressFn | None, link: bool) -> tuple[str, int, str]:
        with self.lock():
            digest, size, how = self._blobs.put_file(path, progress, link=link)
            self._pinned(digest)
        return digest, size, how

    def put_text(self, text: str, media_type: str = "text/plain") -> Layer:
        return self.put_stream_blob(text.encode("utf-8"), media_type)

    def put_file_blob(self, path: Path, media_type: str, filename: str | None = None,
                      progress: ProgressFn | None = None) -> Layer:
        """Store a copy of a file as a pinned blob."""
        digest, size, _ = self._put_file(path, progress, link=False)
        return Layer(media_type, digest, size, {"filename": filename or path.name})

    def put_stream_blob(self, data: bytes | io.BufferedIOBase, media_type: str,
                        annotations: dict[str, str] | None = None) -> Layer:
        stream = io.BytesIO(data) if isinstance(data, bytes) else data
        with self.lock():
            digest, size = self._blobs.put_stream(stream)  # type: ignore[arg-type]
            self._pinned(digest)
        return Layer(media_type, digest, size, annotations or {})

    def commit(self, kind: str, name: str, manifest: Manifest, aliases: tuple[str, ...] = ()) -> ModelEntry:
        """Write the manifest blob and point ``name`` at it; its blobs' pins go in the same transaction."""
        base, tag = parse_name(name)
        assert tag is not None
        with self.lock():
            missing = [la.digest for la in manifest.layers if not self._blobs.exists(la.digest)]
            if missing:
                raise StoreError(f"cannot name {kind} {name}: blob {missing[0]} is not in the store",
                                 "write every layer with the store's put_* methods before committing")
            digest, _ = self._blobs.put_bytes(manifest.to_bytes())
            with self._catalog.transaction() as c:
                c.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?, ?)",
                          (kind, base, tag, digest, time.time()))
                for alias in aliases:
                    c.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)", (alias, base, tag))
                drop_pins(c, self._owner, [la.digest for la in manifest.layers])
        return self.get(format_name(base, tag), kind)

    def commit_blob(self, kind: str, name: str, digest: str) -> ModelEntry:
        """Point ``name`` at a manifest that is already a blob (one received byte for byte from a
        registry, so its digest is the sender's); every layer it names must be in the store."""
        base, tag = parse_name(name)
        assert tag is not None
        manifest = self.manifest(digest)
        if manifest.kind != kind:
            raise StoreError(f"{digest} is a {manifest.kind} manifest, not a {kind}", "name it as a " + manifest.kind)
        with self.lock():
            missing = [la.digest for la in manifest.layers if not self._blobs.exists(la.digest)]
            if missing:
                raise StoreError(f"cannot name {kind} {name}: blob {missing[0]} is not in the store",
                                 "receive every layer before naming the manifest")
            with self._catalog.transaction() as c:
                c.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?, ?)", (kind, base, tag, digest, time.time()))
                drop_pins(c, self._owner, [digest, *(la.digest for la in manifest.layers)])
        return self.get(format_name(base, tag), kind)

    def stage_gguf(self, path: Path, name: str, *, link: bool = False, source: dict[str, Any] | None = None,
                   license_text: str | None = None, params: dict[str, Any] | None = None,
                   progress: ProgressFn | None = None) -> Manifest:
        """Write a GGUF file's blobs (pinned) and return the manifest that would name them; nothing is
        visible until ``commit``. Validated before anything is written. ``params``: the model's own
        sampling defaults (a params layer, e.g. ``{"temperature": 0.2}``); requests override them."""
        base, tag = parse_name(name)
        path = Path(path)
        emit(progress, "reading metadata")
        info = read_gguf_info(path)
        template = info.pop("chat_template", None)
        digest, size, how = self._put_file(path, progress, link)
        layers = [Layer(MediaType.GGUF, digest, size, {"filename": path.name})]
        if template:
            layers.append(self.put_text(template, MediaType.TEMPLATE))
        if license_text:
            layers.append(self.put_text(license_text, MediaType.LICENSE))
        if params:
            layers.append(self.put_text(json.dumps(params, sort_keys=True), MediaType.PARAMS))
        src = {"type": "gguf", "path": str(path.resolve()), "stored_as": how, **(source or {})}
        return Manifest("model", format_name(base, tag or DEFAULT_TAG), info, layers, src)

    def stage_hf(self, directory: Path, name: str, *, source: dict[str, Any] | None = None,
                 progress: ProgressFn | None = None) -> Manifest:
        """Write a Hugging Face model directory's blobs (config.json + safetensors + tokenizer), pinned."""
        base, tag = parse_name(name)
        directory = Path(directory)
        emit(progress, "reading metadata")
        info, files = read_hf_info(directory)
        template = info.pop("chat_template", None)
        license_file = info.pop("license_file", None)
        total = sum(p.stat().st_size for p, _ in files)
        done = 0
        layers: list[Layer] = []
        for path, media_type in files:
            offset = done

            def relay(ev: Any, offset: int = offset) -> None:
                emit(progress, "copying", total, offset + (ev.completed or 0))

            layers.append(self.put_file_blob(path, media_type, progress=relay))
            done += layers[-1].size
        if template:
            layers.append(self.put_text(template, MediaType.TEMPLATE))
        if license_file:
            layers.append(self.put_text(Path(license_file).read_text(encoding="utf-8", errors="replace"),
                                        MediaType.LICENSE))
        src = {"type": "huggingface", "path": str(directory.resolve()), **(source or {})}
        return Manifest("model", format_name(base, tag or DEFAULT_TAG), info, layers, src)

    def stage_path(self, path: Path, name: str | None = None, progress: ProgressFn | None = None) -> Manifest:
        """Stage a model file or directory with the first importer in ``IMPORTERS`` that takes it,
        naming it after the file if no name."""
        path = Path(path).expanduser()
        if not path.exists():
            raise UsageError(f"{path} does not exist", "give the path of a .gguf file or a model directory")
        if name is None:
            stem = path.name.removesuffix(".gguf").lower()
            name = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in stem).strip("-.") or "model"
        importer = next((i for i in IMPORTERS if i.accepts(path)), IMPORTERS[-1])
        return importer.stage(self, path, name, progress=progress)

    def import_gguf(self, path: Path, name: str, *, aliases: tuple[str, ...] = (), link: bool = False,
                    source: dict[str, Any] | None = None, license_text: str | None = None,
                    params: dict[str, Any] | None = None, progress: ProgressFn | None = None) -> ModelEntry:
        """Stage and commit a GGUF file with no ledger record (``freehold.home.import_model`` records one)."""
        manifest = self.stage_gguf(path, name, link=link, source=source, license_text=license_text,
                                   params=params, progress=progress)
        return self._committed(manifest, aliases, progress)

    def import_hf(self, directory: Path, name: str, *, source: dict[str, Any] | None = None,
                  progress: ProgressFn | None = None) -> ModelEntry:
        """Stage and commit a Hugging Face directory with no ledger record."""
        return self._committed(self.stage_hf(directory, name, source=source, progress=progress), (), progress)

    def import_path(self, path: Path, name: str | None = None,
                    progress: ProgressFn | None = None) -> ModelEntry:
        return self._committed(self.stage_path(path, name, progress), (), progress)

    def _committed(self, manifest: Manifest, aliases: tuple[str, ...], progress: ProgressFn | None) -> ModelEntry:
        emit(progress, "writing manifest")
        entry = self.commit(manifest.kind, manifest.name, manifest, aliases)
        emit(progress, "success", digest=entry.manifest_digest)
        return entry

    def add_alias(self, alias: str, target: str) -> None:
        ref = self.resolve_ref(target)
        alias_name, alias_tag = parse_name(alias, default_tag=None)
        if alias_tag is not None:
            raise UsageError(f"alias {alias!r} must not have a tag", "use a bare name such as 'smollm2'")
        self._catalog.set_alias(alias_name, ref.name, ref.tag)

    # removal and garbage collection -------------------------------------------------------
    def remove(self, text: str, kind: str = "model") -> RemoveResult:
        ref = self.resolve_ref(text, kind)
        self._catalog.delete_ref(kind, ref.name, ref.tag)
        n, freed = self.gc()
        return RemoveResult(ref.full_name, n, freed)

    def _used_by(self, manifest_digests: builtins.list[str]) -> set[str]:
        """The manifests themselves and every blob their layers name."""
        used: set[str] = set()
        for digest in manifest_digests:
            used.add(digest)
            with contextlib.suppress(StoreError):
                used.update(layer.digest for layer in self.manifest(digest).layers)
        return used

    def _registry_blobs(self) -> set[str]:
        """The registry's manifests and every blob they name (config, layers, an index's manifests)."""
        used: set[str] = set()
        for digest in self.registry.digests():
            used.add(digest)
            with contextlib.suppress(StoreError, OSError, ValueError, TypeError, AttributeError):
                doc = json.loads(self.read_blob(digest))
                used.update(d["digest"] for d in [doc.get("config") or {}, *doc.get("layers", []),
                                                  *doc.get("manifests", [])] if isinstance(d.get("digest"), str))
        return used

    def referenced_blobs(self) -> set[str]:
        # Derived artefacts whose source died are pruned by gc() before this runs.
        return self._used_by([r.manifest_digest for r in self._catalog.refs()]
                             + [digest for _source, _kind, digest in self._catalog.derived()]) | self._registry_blobs()

    def adopt_blob(self, path: Path, digest: str, hashed: bool = False) -> None:
        """Move a finished upload into the blobs if it hashes to ``digest`` (pinned until named);
        otherwise raise ``ValueError`` with the digest it has and leave the file. ``hashed``: the
        caller hashed it as it arrived (a pull), so it is not read again."""
        with self.lock():
            self._blobs.adopt(path, digest, hashed)
            self._pinned(digest)

    def _pinned_blobs(self) -> set[str]:
        """Blobs a live process wrote and has not named yet; the pins of dead processes go."""
        pinned: set[str] = set()
        dead: set[str] = set()
        for digest, owner, pid in self._catalog.pins():
            if pid_alive(pid):
                pinned.add(digest)
            else:
                dead.add(owner)
        for owner in dead:
            self._catalog.unpin(owner)
        return pinned

    def gc(self) -> tuple[int, int]:
        """Delete blobs no manifest uses and no live writer has pinned; returns (count, bytes)."""
        with self.lock(exclusive=True):
            # Drop derived artefacts whose source no longer belongs to any manifest.
            direct = self._used_by([r.manifest_digest for r in self._catalog.refs()])
            for source, _kind, _digest in self._catalog.derived():
                if source not in direct:
                    self._catalog.delete_derived(source)
            live = self.referenced_blobs() | self._pinned_blobs()
            count = freed = 0
            for digest in list(self._blobs.digests()):
                if digest not in live:
                    freed += self._blobs.remove(digest)
                    count += 1
            # Transfers left unfinished for a week (a push to this registry, a pull from another)
            # are not coming back to resume.
            cutoff = time.time() - STALE_TRANSFER_S
            for leftover in [*self.home.glob("registry/uploads/*"), *self.home.glob("registry/partial/*")]:
                with contextlib.suppress(OSError):
                    if leftover.is_file() and leftover.stat().st_mtime < cutoff:
                        size = leftover.stat().st_size
                        leftover.unlink()
                        freed += size
            return count, freed

    def check(self, progress: ProgressFn | None = None) -> builtins.list[str]:
        """Rehash every blob a manifest uses; return a list of problems (empty when healthy)."""
        problems: builtins.list[str] = []
        for ref in self._catalog.refs():
            try:
                manifest = self.manifest(ref.manifest_digest)
            except StoreError as exc:
                problems.append(f"{ref.kind} {ref.full_name}: manifest unreadable ({exc.message})")
                continue
            if not self._blobs.verify(ref.manifest_digest):
                problems.append(f"{ref.kind} {ref.full_name}: manifest blob does not match its digest")
            for layer in manifest.layers:
                path = self.blob_path(layer.digest)
                if path.is_symlink() and not path.exists():
                    problems.append(f"{ref.kind} {ref.full_name}: {layer.media_type} is a reference to "
                                    f"{os.readlink(path)}, which no longer exists (reinstall its package or "
                                    f"'freehold rm {ref.full_name}')")
                elif not path.exists():
                    problems.append(f"{ref.kind} {ref.full_name}: blob {layer.digest} is missing")
                elif not self._blobs.verify(layer.digest, progress):
                    problems.append(f"{ref.kind} {ref.full_name}: blob {layer.digest} is corrupt "
                                    "(its bytes no longer match the digest)")
        return problems

    # derived artefacts --------------------------------------------------------------------
    def derived(self, source_digest: str, kind: str) -> Manifest | None:
        digest = self._catalog.get_derived(source_digest, kind)
        if digest is None or not self._blobs.exists(digest):
            return None
        manifest = self.manifest(digest)
        if not all(self._blobs.exists(layer.digest) for layer in manifest.layers):
            return None
        return manifest

    def put_derived(self, source_digest: str, kind: str, manifest: Manifest) -> None:
        """Keep ``manifest`` (its blobs already written) for as long as ``source_digest`` is used."""
        with self.lock():
            digest, _ = self._blobs.put_bytes(manifest.to_bytes())
            with self._catalog.transaction() as c:
                c.execute("INSERT OR REPLACE INTO derived VALUES (?, ?, ?, ?)",
                          (source_digest, kind, digest, time.time()))
                drop_pins(c, self._owner, [la.digest for la in manifest.layers])

    def text_layer(self, manifest: Manifest, media_type: str) -> str | None:
        layer = manifest.layer(media_type)
        return self.read_blob(layer.digest).decode("utf-8", errors="replace") if layer else None


# The formats ``import_path`` tries in order; the last is the fallback that explains a bad file.
IMPORTERS: builtins.list[Importer] = [
    Importer("huggingface", Path.is_dir, Store.stage_hf),
    Importer("gguf", Path.is_file, Store.stage_gguf),
]
