"""Knowledge indexes in the store: build, add to, refresh, show, load and remove.

An index is a store manifest of kind ``knowledge`` with three layers::

    passages.jsonl   {"id", "title", "text", "source", "kind", "digest"} per passage
    vectors.npy      float32 [passages x 384], row i embeds passage i (all-MiniLM-L6-v2, L2-normed)
    lexical.sqlite3  an SQLite FTS5 table over (title, text), rowid = row + 1, and each word's
                     document frequency; opened read-only, straight from the blob

and a config listing every source with its digest (a dataset's Merkle root, a document's
sha256), so a later ``add_knowledge`` re-reads only what changed: a source whose digest is
the same keeps its passages, and a passage whose text is the same keeps its vector. Each
new version is recorded on the ledger (inputs: the dataset layers and Merkle roots, the
document digests; outputs: the three layers) and the manifest names that record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from freehold.config import Settings, cpu_has_bf16

# As for mail: realistic stand-ins, typed placeholders, or nothing replaced.
from freehold.data.dataset import PII_ALIASES, PII_MODES
from freehold.errors import ModelNotFoundError, StoreError, UsageError
from freehold.knowledge.documents import (
    MAX_WORDS,
    PASSAGE_FORMAT,
    Passage,
    convert_document,
    document_passages,
    find_documents,
    scrub_document,
    thread_passages,
)
from freehold.progress import ProgressFn, emit
from freehold.store import Layer, Manifest, MediaType, ModelEntry, Store
from freehold.store.names import parse_name

KIND = "knowledge"
DIMS = 384  # all-MiniLM-L6-v2
SPLIT_CHOICES = ("train", "validation", "test", "all")
# all-MiniLM-L6-v2 was trained on 128-token inputs and its cost is linear in tokens: the first
# ~96 words (about 128 tokens) of title + text are embedded; the lexical index sees all of it.
EMBED_WORDS = 96
# Texts per forward pass, sorted by length so a batch pads little.
EMBED_BATCH = 32
# bf16 autocast embeds about 3x faster on CPUs with bf16 instructions (measured: 209 vs 65
# passages/s at 128 tokens on 2 cores); vectors stay within cosine 0.99998 of fp32.
EMBED_BF16 = True
# Passage matches one lexical query may score (see KnowledgeIndex.lexical). On the 100k-message
# benchmark archive (21,503 passages): FTS5 p50/p95 18.0/27.6 ms unbounded, 6.1/11.1 ms at
# 8,000 (the top 10 share 84% with the unbounded ranking), 3.5/6.3 at 4,000 (72%). An index of
# at most 250 passages is never cut (a question has at most 32 terms).
MAX_POSTINGS = 8000
# Words as the lexical side counts them (document frequencies, query terms).
WORD = re.compile(r"\w+")
# Loaded indexes kept in memory (the server asks the same few again and again).
CACHE_SIZE = 4


@dataclass
class SourceChange:
    kind: str  # "dataset" or "document"
    name: str
    status: str  # new, changed, unchanged, missing (kept as indexed), removed, duplicate
    passages: int


@dataclass
class KnowledgeResult:
    name: str
    entry: ModelEntry
    changes: list[SourceChange]
    embedded: int  # passages embedded in this call
    reused: int  # passages whose vector came from the previous version
    committed: bool  # False when nothing changed (no new version, no ledger record)

    @property
    def config(self) -> dict[str, Any]:
        return self.entry.manifest.config


# -- embeddings -------------------------------------------------------------------------------

def embedder() -> Any:
    """The process's one ``SentenceEmbedder`` (loaded on first use, about 2 s)."""
    from freehold.engine.embedder import shared_embedder

    return shared_embedder()


def embed_text(p: Passage) -> str:
    return " ".join(f"{p.title}\n{p.text}".split()[:EMBED_WORDS])


def embed_key(p: Passage) -> str:
    return hashlib.sha256(embed_text(p).encode()).hexdigest()


def embed_texts(texts: Sequence[str], progress: ProgressFn | None = None, bulk: bool = True) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (bf16 autocast in bulk where the CPU has it)."""
    import torch

    model = embedder()
    out = np.zeros((len(texts), DIMS), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    autocast: Any = contextlib.nullcontext()
    if bulk and EMBED_BF16 and cpu_has_bf16():
        autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    with autocast:
        for start in range(0, len(order), EMBED_BATCH):
            rows = order[start : start + EMBED_BATCH]
            out[rows] = np.asarray(model.embed([texts[i] for i in rows]), dtype=np.float32)
            emit(progress, "embedding", len(texts), min(len(texts), start + EMBED_BATCH))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


# -- the loaded index ---------------------------------------------------------------------------


class KnowledgeIndex:
    """One version of a knowledge index, loaded: passages, vectors and the FTS5 database."""

    def __init__(self, store: Store, entry: ModelEntry) -> None:
        m = entry.manifest
        layers = {la.media_type: la for la in m.layers}
        missing = [t for t in (MediaType.KNOWLEDGE_PASSAGES, MediaType.KNOWLEDGE_VECTORS,
                               MediaType.KNOWLEDGE_LEXICAL) if t not in layers]
        if missing:
            raise StoreError(f"knowledge index {entry.name} lacks its {', '.join(missing)} layer",
                             f"rebuild it: freehold knowledge build {entry.name.split(':')[0]} ...")
        self.entry = entry
        self.name = entry.name
        self.digest = entry.manifest_digest
        self.config = m.config
        with store.blob_path(layers[MediaType.KNOWLEDGE_PASSAGES].digest).open("rb") as f:
            self.passages = [Passage(**json.loads(line)) for line in f]
        self.vectors = np.load(store.blob_path(layers[MediaType.KNOWLEDGE_VECTORS].digest))
        if self.vectors.shape[0] != len(self.passages):
            raise StoreError(f"knowledge index {entry.name} has {len(self.passages)} passages but "
                             f"{self.vectors.shape[0]} vectors", "rebuild it with 'freehold knowledge build'")
        db = store.blob_path(layers[MediaType.KNOWLEDGE_LEXICAL].digest)
        # immutable: blobs never change, so SQLite takes no locks and writes nothing.
        self.db = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        self.lock = threading.Lock()
        self._tensor: Any = None  # the vectors as a torch tensor (shares their memory)

    def similarities(self, qvec: np.ndarray) -> np.ndarray:
        """Cosine of ``qvec`` to every passage (the vectors are unit length).

        Computed by torch, not numpy: OpenBLAS's worker threads spin after a numpy
        matrix-vector product and then starve the embedder's threads (measured on 2 cores: a
        question embedded in 85 ms instead of 6.5 ms after a 21k x 384 product)."""
        import torch

        if self._tensor is None:
            self._tensor = torch.from_numpy(self.vectors)
        return (self._tensor @ torch.from_numpy(np.ascontiguousarray(qvec, dtype=np.float32))).numpy()

    def lexical(self, terms: Sequence[str], limit: int) -> list[int]:
        """Rows matching any of ``terms`` (lower-case words), best BM25 first (title weighted 2, text 1).

        The rarest terms are kept while the passages they occur in add up to at most
        ``MAX_POSTINGS``: FTS5 scores every match, and an OR of a question's ten words matches
        nearly every passage of a large archive (19,137 of 21,503, 18 ms), while the common
        words it drops weigh little in BM25."""
        with self.lock:
            df = dict(self.db.execute(
                f"SELECT word, df FROM words WHERE word IN ({','.join('?' * len(terms))})", list(terms)
            ).fetchall()) if terms else {}
            kept: list[str] = []
            postings = 0
            for term in sorted(terms, key=lambda t: df.get(t, 0)):
                postings += df.get(term, 0)
                if kept and postings > MAX_POSTINGS:
                    break
                kept.append(term)
            if not kept:
                return []
            match = " OR ".join('"' + t.replace('"', '""') + '"' for t in kept)
            rows = self.db.execute(
                "SELECT rowid FROM passages WHERE passages MATCH ? ORDER BY bm25(passages, 2.0, 1.0) LIMIT ?",
                (match, limit),
            ).fetchall()
        return [r[0] - 1 for r in rows]

    def close(self) -> None:
        self.db.close()


_cache: dict[str, KnowledgeIndex] = {}
_cache_lock = threading.Lock()


def load_index(store: Store, name: str) -> KnowledgeIndex:
    """The current version of ``name``, from memory when this version was loaded before."""
    entry = get_knowledge(name, store)
    with _cache_lock:
        key = f"{store.home}\0{entry.manifest_digest}"
        index = _cache.get(key)
        if index is None:
            index = KnowledgeIndex(store, entry)
            while len(_cache) >= CACHE_SIZE:
                _cache.pop(next(iter(_cache)))  # closed when the last search using it is done
            _cache[key] = index
        return index


# -- building -----------------------------------------------------------------------------------


@dataclass
class _Built:
    source: dict[str, Any]
    passages: list[Passage] = field(default_factory=list)
    status: str = "new"


def _splits(split: str) -> list[str]:
    from freehold.data import SPLITS

    if split not in SPLIT_CHOICES:
        raise UsageError(f"unknown split {split!r}", f"use one of: {', '.join(SPLIT_CHOICES)}")
    return list(SPLITS) if split == "all" else [split]


def _dataset_source(store: Store, name: str, split: str, prev: dict[str, Any] | None,
                    prev_passages: list[Passage], must_exist: bool) -> _Built:
    from freehold.data import get_dataset, iter_examples

    try:
        entry = get_dataset(name, store)
    except ModelNotFoundError:
        if must_exist or prev is None:
            raise
        return _Built(prev, prev_passages, "missing")
    root = str(entry.manifest.config.get("merkle_root", ""))
    splits = _splits(split)
    source = {"kind": "dataset", "name": entry.name, "manifest": entry.manifest_digest,
              "merkle_root": root, "splits": splits, "passage_format": PASSAGE_FORMAT}
    if (prev is not None and prev.get("merkle_root") == root and prev.get("splits") == splits
            and prev.get("passage_format") == PASSAGE_FORMAT):
        return _Built({**prev, "manifest": entry.manifest_digest}, prev_passages, "unchanged")
    passages: list[Passage] = []
    examples = 0
    for s in splits:
        for row in iter_examples(entry, store, s):
            examples += 1
            passages += thread_passages(row, entry.name, "sha256:" + root)
    source["examples"] = examples
    return _Built(source, passages, "changed" if prev is not None else "new")


def _document_source(path: Path, shown: str, pii: str, prev: dict[str, Any] | None,
                     prev_passages: list[Passage], must_exist: bool) -> _Built:
    from freehold.data.read import file_digest

    if not path.is_file():
        if must_exist or prev is None:
            raise UsageError(f"{path}: no such file", "check the path")
        return _Built(prev, prev_passages, "missing")
    digest = file_digest(path)
    if (prev is not None and prev.get("digest") == digest and prev.get("pii") == pii
            and prev.get("passage_format") == PASSAGE_FORMAT):
        return _Built(prev, prev_passages, "unchanged")
    doc = convert_document(path)
    if pii != "keep":
        doc = scrub_document(doc, _scrubber(pii, digest).scrub)
    passages = document_passages(doc, digest, shown)
    source = {"kind": "document", "name": shown, "path": str(path.resolve()), "digest": digest,
              "format": doc.format, "title": doc.title, "size": path.stat().st_size, "pii": pii,
              "passage_format": PASSAGE_FORMAT}
    return _Built(source, passages, "changed" if prev is not None else "new")


def _scrubber(pii: str, digest: str) -> Any:
    """One scrubber per document, as per conversation for mail: a person reads the same throughout.
    Stand-ins are seeded by the document's digest, so the same file always reads the same."""
    from freehold.data import Scrubber, Surrogates

    if pii == "surrogates":
        return Scrubber(surrogates=Surrogates(0, digest))
    return Scrubber()


def _pii_mode(pii: str) -> str:
    pii = PII_ALIASES.get(pii, pii)
    if pii not in PII_MODES:
        raise UsageError(f"unknown --pii mode {pii!r}",
                         "use --pii surrogates (default), --pii placeholders or --pii keep")
    return pii


def _source_key(source: dict[str, Any]) -> tuple[str, str]:
    return (source["kind"], source["path"] if source["kind"] == "document" else source["name"])


def _previous(store: Store, name: str) -> KnowledgeIndex | None:
    try:
        return load_index(store, name)
    except ModelNotFoundError:
        return None


def _update(
    name: str,
    store: Store,
    *,
    datasets: Iterable[str],
    documents: Iterable[Path],
    split: str,
    pii: str,
    keep_previous: bool,
    drop: tuple[str, str] | None = None,
    progress: ProgressFn | None = None,
) -> KnowledgeResult:
    pii = _pii_mode(pii)
    _splits(split)
    base, tag = parse_name(name)
    previous = _previous(store, name)
    prev_sources = {_source_key(s): s for s in (previous.config.get("sources", []) if previous else [])}
    prev_by_source: dict[str, list[Passage]] = {}
    for p in previous.passages if previous else []:
        prev_by_source.setdefault(p.source, []).append(p)

    def prev_of(key: tuple[str, str]) -> tuple[dict[str, Any] | None, list[Passage]]:
        src = prev_sources.get(key)
        return src, (prev_by_source.get(src["name"], []) if src else [])

    wanted: dict[tuple[str, str], tuple[str, Any, bool]] = {}  # key -> (kind, what, given now)
    if keep_previous:
        for key, src in prev_sources.items():
            what = (Path(src["path"]), src["name"]) if src["kind"] == "document" else src["name"]
            wanted[key] = (src["kind"], what, False)
    for ds in datasets:
        from freehold.data import get_dataset

        full = get_dataset(ds, store).name
        wanted[("dataset", full)] = ("dataset", full, True)
    shown_names = {src["name"] for src in prev_sources.values()}
    for path, shown in find_documents(documents):
        key = ("document", str(path.resolve()))
        old = prev_sources.get(key)
        if old is None and shown in shown_names:
            shown = key[1]  # another file was added under the same relative name
        shown_names.add(shown)
        wanted[key] = ("document", (path, old["name"] if old else shown), True)
    changes: list[SourceChange] = []
    if drop is not None:
        if drop not in wanted:
            raise UsageError(f"{drop[1]} is not a source of {name}",
                             f"see its sources with 'freehold knowledge show {base}'")
        wanted.pop(drop)
        changes.append(SourceChange(drop[0], prev_sources[drop]["name"], "removed", 0))

    built: list[_Built] = []
    for n, (key, (kind, what, given)) in enumerate(wanted.items()):
        emit(progress, "reading sources", len(wanted), n)
        src, old = prev_of(key)
        if kind == "dataset":
            built.append(_dataset_source(store, what, split if given or src is None else _split_of(src),
                                         src, old, given))
        else:
            path, shown = what
            built.append(_document_source(path, shown, pii if given or src is None else src.get("pii", pii),
                                          src, old, given))
    emit(progress, "reading sources", len(wanted), len(wanted))

    passages: list[Passage] = []
    seen: set[str] = set()
    for b in built:
        kept = [p for p in b.passages if p.id not in seen]  # the same file or example twice
        seen.update(p.id for p in kept)
        status = "duplicate" if b.passages and not kept else b.status
        b.source["passages"] = len(kept)
        passages += kept
        changes.append(SourceChange(b.source["kind"], b.source["name"], status, len(kept)))
    if not passages:
        raise UsageError(f"knowledge base {name} would hold no passages",
                         "give a dataset with answered threads (--data NAME) or documents (--docs FILE)")
    if previous is not None and all(c.status in ("unchanged", "missing") for c in changes) and \
            len(built) == len(prev_sources):
        return KnowledgeResult(previous.name, previous.entry, changes, 0, 0, False)

    # Vectors: reuse every passage whose embedded text is unchanged.
    cache: dict[str, int] = {}
    if previous is not None:
        cache = {embed_key(p): i for i, p in enumerate(previous.passages)}
    keys = [embed_key(p) for p in passages]
    todo = [i for i, k in enumerate(keys) if k not in cache]
    vectors = np.zeros((len(passages), DIMS), dtype=np.float32)
    for i, k in enumerate(keys):
        if k in cache and previous is not None:
            vectors[i] = previous.vectors[cache[k]]
    if todo:
        vectors[todo] = embed_texts([embed_text(passages[i]) for i in todo], progress)

    sources = [b.source for b in built]
    config = {
        "format": "freehold-knowledge",
        "version": int(previous.config.get("version", 0)) + 1 if previous else 1,
        "previous": previous.digest if previous else None,
        "passages": len(passages),
        "counts": {k: sum(1 for p in passages if p.kind == k) for k in ("thread", "document")},
        "sources": sources,
        "split": split,
        "pii": pii,
        "embedder": {"name": embedder().name, "dims": DIMS, "embed_words": EMBED_WORDS, "normalised": True},
        "lexical": {"engine": "sqlite-fts5", "tokenize": _TOKENIZE, "rank": "bm25(title 2, text 1)"},
        "chunking": {"max_words": MAX_WORDS},
    }
    with tempfile.TemporaryDirectory(prefix="freehold-knowledge-") as tmp:
        work = Path(tmp)
        with (work / "passages.jsonl").open("wb") as f:
            for p in passages:
                f.write(json.dumps(p.record(), ensure_ascii=False, sort_keys=True).encode() + b"\n")
        np.save(work / "vectors.npy", vectors)
        _write_lexical(work / "lexical.sqlite3", passages)
        emit(progress, "writing", 3, 0)
        layers: list[Layer] = [
            store.put_file_blob(work / "passages.jsonl", MediaType.KNOWLEDGE_PASSAGES),
            store.put_file_blob(work / "vectors.npy", MediaType.KNOWLEDGE_VECTORS),
            store.put_file_blob(work / "lexical.sqlite3", MediaType.KNOWLEDGE_LEXICAL),
        ]
        manifest = Manifest(KIND, f"{base}:{tag}", config, layers, {"builder": "freehold.knowledge"})
        entry = _commit(store, manifest, sources)
        emit(progress, "writing", 3, 3)
    return KnowledgeResult(entry.name, entry, changes, len(todo), len(passages) - len(todo), True)


def _split_of(source: dict[str, Any]) -> str:
    from freehold.data import SPLITS

    splits = list(source.get("splits") or ["train"])
    return "all" if splits == list(SPLITS) else splits[0]


# Porter stemming: "refunded" finds "refund", "returns" finds "return".
_TOKENIZE = "porter unicode61 remove_diacritics 2"


def _write_lexical(path: Path, passages: list[Passage]) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute(f"CREATE VIRTUAL TABLE passages USING fts5(title, text, tokenize='{_TOKENIZE}')")
        db.executemany("INSERT INTO passages(rowid, title, text) VALUES (?, ?, ?)",
                       [(i + 1, p.title, p.text) for i, p in enumerate(passages)])
        # Document frequency of each word (unstemmed, as questions are split), to keep the
        # lexical query to its rare words.
        df: Counter[str] = Counter()
        for p in passages:
            df.update(set(WORD.findall(f"{p.title} {p.text}".lower())))
        db.execute("CREATE TABLE words (word TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID")
        db.executemany("INSERT INTO words VALUES (?, ?)", sorted(df.items()))
        db.execute("INSERT INTO passages(passages) VALUES ('optimize')")  # one segment: faster queries
        db.commit()
        db.execute("VACUUM")
    finally:
        db.close()


def _commit(store: Store, manifest: Manifest, sources: list[dict[str, Any]]) -> ModelEntry:
    """Commit this version once, headed by its ledger record: inputs (dataset layers and roots,
    document digests) -> layers."""
    from freehold.data import get_dataset
    from freehold.home import commit_recorded
    from freehold.ledger import MERKLE, Record, Recorder, layer_refs, ref

    inputs: list[dict[str, Any]] = []
    for s in sources:
        if s["kind"] == "document":
            inputs.append(ref("document", s["digest"], filename=Path(s["path"]).name))
            continue
        inputs.append(ref("examples", "sha256:" + s["merkle_root"], MERKLE, dataset=s["name"]))
        with contextlib.suppress(ModelNotFoundError):
            ds = get_dataset(s["name"], store)
            if ds.manifest.config.get("merkle_root") == s["merkle_root"]:
                inputs += [
                    {**r, "dataset": s["name"], "split": la.annotations.get("split", "")}
                    for r, la in zip(layer_refs(ds.manifest, "dataset"), ds.manifest.layers, strict=True)
                    if la.annotations.get("split") in s["splits"]
                ]

    def record(rec: Recorder, m: Manifest) -> Record:
        return rec.record_export(
            m.name, inputs=inputs, outputs=layer_refs(m), method="knowledge-index",
            params={"passages": m.config["passages"], "embedder": m.config["embedder"]["name"],
                    "version": m.config["version"]})

    return commit_recorded(store, manifest, record)


# -- public operations ------------------------------------------------------------------------


def _open(store: Store | None, settings: Settings | None) -> Store:
    return store or Store.open(settings)


def build_knowledge(
    name: str,
    *,
    datasets: Iterable[str] = (),
    documents: Iterable[Path] = (),
    split: str = "train",
    pii: str = "surrogates",
    store: Store | None = None,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
) -> KnowledgeResult:
    """Index exactly these datasets' threads and documents as ``name`` (a new version if it exists).

    ``split``: which dataset split's threads to index (train by default, so an evaluation on
    the held-out splits never retrieves the answer it is scored against; "all" for every
    thread). ``pii``: how personal data in documents is replaced, as the data importer does for
mail: "surrogates" (realistic stand-ins), "placeholders" ("[EMAIL_1]") or "keep" (for pages
that hold only your own contact details, which customers should get as written).
    Vectors of an existing version are reused wherever a passage's text is unchanged.
    """
    datasets, documents = list(datasets), list(documents)
    if not datasets and not documents:
        raise UsageError("nothing to index", "give --data DATASET and/or --docs FILE_OR_FOLDER")
    return _update(name, _open(store, settings), datasets=datasets, documents=documents, split=split, pii=pii,
                   keep_previous=False, progress=progress)


def add_knowledge(
    name: str,
    *,
    datasets: Iterable[str] = (),
    documents: Iterable[Path] = (),
    split: str | None = None,
    pii: str | None = None,
    store: Store | None = None,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
) -> KnowledgeResult:
    """Add sources to ``name`` and refresh the ones it has: a document whose bytes changed or a
    dataset whose examples changed is re-indexed; unchanged ones keep their passages and
    vectors. With no new sources this is a refresh; nothing changed means no new version."""
    store = _open(store, settings)
    current = get_knowledge(name, store)
    return _update(name, store, datasets=list(datasets), documents=list(documents),
                   split=split or current.manifest.config.get("split", "train"),
                   pii=pii or current.manifest.config.get("pii", "surrogates"), keep_previous=True, progress=progress)


def remove_knowledge(
    name: str,
    *,
    source: str | None = None,
    store: Store | None = None,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
) -> str | KnowledgeResult:
    """Delete the index ``name`` (returns its full name), or with ``source`` (a dataset name or a
    document's path as shown) drop that source and commit a new version."""
    store = _open(store, settings)
    entry = get_knowledge(name, store)
    if source is None:
        return store.remove(entry.name, kind=KIND).name
    key = _match_source(entry.manifest.config.get("sources", []), source, store)
    cfg = entry.manifest.config
    return _update(name, store, datasets=(), documents=(), split=cfg.get("split", "train"),
                   pii=cfg.get("pii", "surrogates"), keep_previous=True, drop=key, progress=progress)


def _match_source(sources: list[dict[str, Any]], text: str, store: Store) -> tuple[str, str]:
    for s in sources:
        if text == s["name"] or (s["kind"] == "document" and (text == s["path"]
                                                              or str(Path(text).resolve()) == s["path"])):
            return _source_key(s)
    with contextlib.suppress(ModelNotFoundError):
        from freehold.data import get_dataset

        full = get_dataset(text, store).name
        for s in sources:
            if s["kind"] == "dataset" and s["name"] == full:
                return _source_key(s)
    names = ", ".join(s["name"] for s in sources)
    raise UsageError(f"{text} is not a source of this knowledge base", f"its sources: {names}")


def get_knowledge(name: str, store: Store | None = None, settings: Settings | None = None) -> ModelEntry:
    return _open(store, settings).get(name, kind=KIND)


def list_knowledge(store: Store | None = None, settings: Settings | None = None) -> list[ModelEntry]:
    return _open(store, settings).list(KIND)


def show_knowledge(name: str, store: Store | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """The manifest config, and for each source whether it changed since it was indexed
    (``state``: current, changed, missing) so ``add_knowledge`` would re-index it."""
    from freehold.data import get_dataset
    from freehold.data.read import file_digest

    store = _open(store, settings)
    entry = get_knowledge(name, store)
    sources = []
    for s in entry.manifest.config.get("sources", []):
        state = "current"
        if s["kind"] == "document":
            path = Path(s["path"])
            state = "missing" if not path.is_file() else "current" if file_digest(path) == s["digest"] else "changed"
        else:
            try:
                root = get_dataset(s["name"], store).manifest.config.get("merkle_root")
                state = "current" if root == s["merkle_root"] else "changed"
            except ModelNotFoundError:
                state = "missing"
        sources.append({**s, "state": state})
    return {
        "name": entry.name,
        "digest": entry.manifest_digest,
        **entry.manifest.config,
        "sources": sources,
        "layers": [la.to_dict() for la in entry.manifest.layers],
        "size": entry.size,
        "ledger_head": (entry.manifest.lineage or {}).get("ledger_head"),
    }
