"""The import pipeline and the dataset artefact.

Stages: read > thread > clean > roles > scrub > filter > split > write.

``import_dataset`` runs every stage and commits a store manifest of kind "dataset" whose
config records counts, every filter with its count, the source digests, the seed and the
Merkle root over the examples (``freehold.ledger.merkle``). Each stage is a public
function taking a progress callback, so the server and tests can run them one by one.

Memory stays nearly flat in archive size: cleaned bodies are spilled to a temporary SQLite
file as they are read, and only the small threading keys stay in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from freehold.config import Settings
from freehold.data.clean import strip_reply
from freehold.data.message import Message, parse_message
from freehold.data.pii import Finding, Scrubber, name_tokens
from freehold.data.read import TABLE_FORMATS as _TABLE_FORMATS
from freehold.data.read import Counts, Source, file_digest, read_messages, read_table, resolve_sources
from freehold.data.rows import layer_split, read_layer, read_rows
from freehold.data.surrogates import Surrogates, lists_digest, render_placeholders
from freehold.data.thread import REPLY_SUBJECT, ThreadIndex, ThreadKey
from freehold.errors import UsageError
from freehold.ledger.merkle import canonical_json, example_id, leaf_hash, merkle_root
from freehold.progress import ProgressFn, emit
from freehold.store import Layer, Manifest, MediaType, ModelEntry, Store
from freehold.store.names import format_name, parse_name

SPLITS = ("train", "validation", "test")
# 80/10/10 by thread: the usual fine-tuning split, and enough held out for an eval pass.
SPLIT_RATIOS = (0.8, 0.1, 0.1)
# A turn shorter than this ("Thanks!", "+1") teaches nothing and is dropped (counted).
MIN_TURN_CHARS = 20
# Near-duplicate threshold: SimHash Hamming distance over word 3-shingles (of 64 bits).
NEAR_DUP_BITS = 3
# surrogates: realistic stand-ins (data/surrogates.py), so a tuned model greets "Ruth", not
# "[NAME_1]"; placeholders: the typed placeholders of earlier versions; keep: nothing replaced.
PII_MODES = ("surrogates", "placeholders", "keep")
PII_ALIASES = {"scrub": "placeholders"}  # the name placeholders had before surrogates existed
OTHERS_MODES = ("auto", "user", "drop")
# Below this much mail a worker pool costs more to start than it saves.
PARALLEL_MIN_BYTES = 8_000_000


@dataclass
class Conversation:
    thread: str  # stable thread key: root Message-ID, or a row digest for tables
    turns: list[dict[str, str]]


@dataclass
class ImportResult:
    name: str
    entry: ModelEntry
    config: dict[str, Any]

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.config["counts"])

    @property
    def filters(self) -> dict[str, int]:
        return dict(self.config["filters"])


@dataclass
class _Pass:
    """Running tallies shared by the stages of one import."""

    counts: Counts = field(default_factory=Counts)
    filters: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    threads: int = 0  # threads found (a table's rows), before any is filtered
    turns: int = 0  # turns in the examples written


@dataclass(frozen=True)
class Speakers:
    """Who speaks in the input, as the read and thread stages found it, for the scrub stage and
    the config. The defaults are a table's: its rows name each turn's role, so nobody is ours."""

    ours: list[str] = field(default_factory=list)  # our side's addresses or domains
    ours_inferred: bool = False  # guessed by infer_ours (a mailing list), not given with --ours
    ours_names: dict[str, str] = field(default_factory=dict)  # our address -> its most used display name
    ours_name_tokens: frozenset[str] = frozenset()  # the words of our side's display names
    names: frozenset[str] = frozenset()  # the words of every sender's display name, for the scrubber
    others: str = "user"  # what becomes of people not on our side: "user" or "drop" (build_conversation)

    @property
    def keeps_ours(self) -> bool:
        """Whether surrogates keep our side's names and addresses as written: when --ours named
        it (a business's mailbox, whose staff are its voice), not when it was inferred (a
        mailing list of individuals, where nobody's name is kept)."""
        return bool(self.ours) and not self.ours_inferred


# -- roles ----------------------------------------------------------------------------------


def _matches_ours(sender: str, ours: Iterable[str]) -> bool:
    for o in ours:
        o = o.lower().lstrip("@")
        if "@" in o:
            if sender == o:
                return True
        elif sender.endswith("@" + o) or sender.endswith("." + o):
            return True
    return False


def infer_ours(senders_by_thread: Iterable[list[str]], limit: int = 10) -> list[str]:
    """The organisation's side guessed as the most frequent responders.

    A responder answers threads others started: counted per thread (not per message) so
    one long argument does not crown someone. Those who mostly answer, and together give
    at least half of all answers, are taken, at most ``limit``.
    """
    answered: Counter[str] = Counter()
    started: Counter[str] = Counter()
    threads = 0
    for senders in senders_by_thread:
        threads += 1
        if not senders:
            continue
        started[senders[0]] += 1
        for s in set(senders[1:]) - {senders[0]}:
            if s:
                answered[s] += 1
    total = sum(answered.values())
    # In a small archive one answered thread is evidence; in a large one, demand two.
    min_threads = 2 if threads >= 20 else 1
    chosen: list[str] = []
    covered = 0
    for sender, n in sorted(answered.items(), key=lambda kv: (-kv[1], kv[0])):
        if n < min_threads or n < started[sender] or len(chosen) >= limit:
            continue
        chosen.append(sender)
        covered += n
        if covered * 2 >= total:
            break
    return chosen


def build_conversation(
    messages: list[tuple[str, str, str | None]], ours: list[str], filters: Counter[str], others: str = "user"
) -> list[dict[str, str]] | None:
    """Turns from a thread's (sender, cleaned text, auto reason) in time order, or None (counted).

    Our side is the assistant; everyone else is the user (``others="user"``: the customer's
    colleagues copied on a support thread speak for the customer). With ``others="drop"``
    only the person who started the thread (or, under an announcement of ours, the first
    other person to write) is the user and third parties are dropped and counted: on a
    mailing list they are other helpers, whose answers would otherwise be put in the
    asker's mouth.
    """
    turns: list[dict[str, str]] = []
    asker = next((s for s, _t, _a in messages if not _matches_ours(s, ours)), None)
    for sender, text, auto in messages:
        if auto:
            filters[auto] += 1
            continue
        if others == "drop" and sender != asker and not _matches_ours(sender, ours):
            filters["third_party_message"] += 1
            continue
        if not text.strip():
            filters["empty_after_cleaning"] += 1
            continue
        if len(text.strip()) < MIN_TURN_CHARS:
            filters["too_short_turn"] += 1
            continue
        role = "assistant" if _matches_ours(sender, ours) else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + text  # one speaker twice in a row is one turn
        else:
            turns.append({"role": role, "content": text})
    while turns and turns[0]["role"] == "assistant":
        turns.pop(0)  # an announcement by us, not an answer to anyone
    while turns and turns[-1]["role"] == "user":
        turns.pop()  # a trailing "thanks" or an unanswered follow-up teaches nothing
    if not turns:
        has_ours = any(_matches_ours(s, ours) for s, _t, _a in messages)
        filters["no_reply_from_ours" if not has_ours else "no_question_before_reply"] += 1
        return None
    return turns


# -- dedupe and split -------------------------------------------------------------------------


def _normal_text(turns: list[dict[str, str]]) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", " ".join(t["content"] for t in turns).lower()).split())


_BITS = np.arange(64, dtype=np.uint64)


def simhash(text: str) -> int:
    """64-bit SimHash over word 3-shingles (blake2b per shingle, so it is stable across runs)."""
    words = text.split()
    shingles = [" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))]
    hashes = np.frombuffer(
        b"".join(hashlib.blake2b(s.encode(), digest_size=8).digest() for s in shingles), dtype=">u8"
    ).astype(np.uint64)
    ones = ((hashes[:, None] >> _BITS) & np.uint64(1)).sum(axis=0)
    return int(sum(1 << int(b) for b in np.nonzero(ones * 2 > len(shingles))[0]))


class Deduper:
    """Exact (normalised text) and near (SimHash, 4 bands of 16 bits for candidates) duplicates."""

    def __init__(self) -> None:
        self.exact: set[bytes] = set()
        self.bands: list[dict[int, list[int]]] = [{} for _ in range(4)]

    def check(self, turns: list[dict[str, str]]) -> str | None:
        norm = _normal_text(turns)
        digest = hashlib.sha256(norm.encode()).digest()
        if digest in self.exact:
            return "duplicate_exact"
        self.exact.add(digest)
        h = simhash(norm)
        keys = [(h >> (16 * b)) & 0xFFFF for b in range(4)]
        for band, key in zip(self.bands, keys, strict=True):
            for other in band.get(key, ()):
                if bin(h ^ other).count("1") <= NEAR_DUP_BITS:
                    return "duplicate_near"
        for band, key in zip(self.bands, keys, strict=True):
            band.setdefault(key, []).append(h)
        return None


def split_of(thread: str, seed: int) -> str:
    """Split for a thread: a hash of (seed, thread key), so it never depends on order or size."""
    x = int.from_bytes(hashlib.sha256(f"{seed}\0{thread}".encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for name, ratio in zip(SPLITS, SPLIT_RATIOS, strict=True):
        edge += ratio
        if x < edge:
            return name
    return SPLITS[-1]


# -- email stages -----------------------------------------------------------------------------


def parse_and_clean(raw: bytes) -> Message | str:
    """Parse one raw message and replace its body by what the author added (runs in workers)."""
    m = parse_message(raw)
    if isinstance(m, str):
        return m
    first = not m.in_reply_to and not m.references and not REPLY_SUBJECT.match(m.subject)
    m.body = strip_reply(m.body, m.sender_name or m.sender, keep_quotes=first)
    return m


def default_workers(total_bytes: int) -> int:
    """Processes for parsing: one for small inputs (a pool costs more than it saves), else up to 4."""
    if total_bytes < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


class _Spill:
    """Cleaned messages on disk (SQLite), so bodies do not accumulate in memory."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE m (i INTEGER PRIMARY KEY, sender TEXT, name TEXT, body TEXT, auto TEXT)"
        )
        self.pending: list[tuple[int, str, str, str, str | None]] = []

    def add(self, i: int, m: Message) -> None:
        self.pending.append((i, m.sender, m.sender_name, m.body, m.auto_reason))
        if len(self.pending) >= 2000:
            self.flush()

    def flush(self) -> None:
        self.db.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?)", self.pending)
        self.pending.clear()

    def get(self, indices: list[int]) -> dict[int, tuple[str, str, str, str | None]]:
        out: dict[int, tuple[str, str, str, str | None]] = {}
        for chunk in range(0, len(indices), 500):
            part = indices[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(f"SELECT i, sender, name, body, auto FROM m WHERE i IN ({marks})", part)
            for i, sender, name, body, auto in rows:
                out[i] = (sender, name, body, auto)
        return out

    def senders(self) -> Iterator[tuple[int, str, str]]:
        yield from self.db.execute("SELECT i, sender, name FROM m ORDER BY i")


def _email_conversations(
    sources: list[Source],
    ours: list[str] | None,
    others: str,
    st: _Pass,
    workdir: Path,
    progress: ProgressFn | None,
    workers: int | None,
) -> tuple[Speakers, Iterator[Conversation]]:
    """The read, thread, clean and roles stages for mail: who speaks, worked out now (reading and
    threading all of it), and the conversations, built as the iterator is drawn."""
    spill = _Spill(workdir / "spill.db")
    index = ThreadIndex(spill.db)  # threading tables beside the spilled bodies, on disk
    names = _read_mail(sources, spill, index, st, progress, workers)
    index.build(progress)
    st.threads = len(index)
    speakers = _email_speakers(spill, index, ours, others, names)
    return speakers, _thread_conversations(spill, index, speakers, st, progress)


def _read_mail(
    sources: list[Source],
    spill: _Spill,
    index: ThreadIndex,
    st: _Pass,
    progress: ProgressFn | None,
    workers: int | None,
) -> set[str]:
    """Every message parsed, cleaned and spilled, and keyed for threading; returns the senders'
    display names."""
    n_workers = workers or default_workers(sum(s.size for s in sources))
    names: set[str] = set()  # distinct people, not messages: small however large the archive
    for i, m in enumerate(
        read_messages(sources, st.counts, progress, parser=parse_and_clean, workers=n_workers)
    ):
        spill.add(i, m)
        if m.sender_name:
            names.add(m.sender_name)
        index.add(ThreadKey(i, m.message_id, m.in_reply_to, tuple(m.references), m.subject, m.date))
    spill.flush()
    return names


def _email_speakers(
    spill: _Spill, index: ThreadIndex, ours: list[str] | None, others: str, names: set[str]
) -> Speakers:
    """Our side (given, or inferred from who answers others' threads), its display names, and
    what becomes of everyone else."""
    inferred = not ours
    if not ours:
        senders = index.thread_rows("x.sender", "JOIN m x ON x.i = mm.i")  # the spill's table, same database
        ours = infer_ours([sender for _i, sender in thread] for thread in senders)
    if not ours:
        raise UsageError(
            "could not tell which side of the mail is yours (nobody answers others' threads)",
            "pass --ours with your address or domain, e.g. --ours support@example.com",
        )
    display: dict[str, Counter[str]] = {}
    for _i, sender, name in spill.senders():
        if name and _matches_ours(sender, ours):
            display.setdefault(sender, Counter())[name] += 1
    # auto: with --ours given (a business's mailbox) everyone else is the customer's side; with
    # our side inferred (a mailing list, where many people answer) other people are dropped.
    if others == "auto":
        others = "drop" if inferred else "user"
    return Speakers(
        ours=list(ours),
        ours_inferred=inferred,
        ours_names={a: c.most_common(1)[0][0] for a, c in sorted(display.items())},
        ours_name_tokens=frozenset(name_tokens(n for c in display.values() for n in c)),
        names=frozenset(name_tokens(names)),
        others=others,
    )


def _thread_conversations(
    spill: _Spill, index: ThreadIndex, speakers: Speakers, st: _Pass, progress: ProgressFn | None
) -> Iterator[Conversation]:
    """The roles stage for mail: each thread's turns, our side as the assistant (build_conversation)."""
    for n, thread in enumerate(index.threads()):
        rows = spill.get(thread)
        msgs = [(rows[i][0], rows[i][2], rows[i][3]) for i in thread]
        turns = build_conversation(msgs, speakers.ours, st.filters, speakers.others)
        if n % 200 == 0:
            emit(progress, "building conversations", st.threads, n)
        if turns is not None:
            yield Conversation(index.message_id(thread[0]) or f"thread-{thread[0]}", turns)
    emit(progress, "building conversations", st.threads, st.threads)
    spill.db.close()


def _table_conversations(sources: list[Source], st: _Pass, progress: ProgressFn | None) -> Iterator[Conversation]:
    """A table's rows as conversations, each keyed by a digest of its turns; a row with no answer
    is dropped (counted)."""
    for turns in read_table(sources, st.counts, progress):
        st.threads += 1  # a row is a thread
        kept = [t for t in turns if t["role"] == "system" or len(t["content"].strip()) >= 1]
        if not any(t["role"] == "assistant" for t in kept):
            st.filters["no_assistant_turn"] += 1
            continue
        digest = hashlib.sha256(canonical_json(kept)).hexdigest()[:16]
        yield Conversation(f"row-{digest}", kept)


# -- the whole import -------------------------------------------------------------------------


def import_dataset(
    paths: list[Path],
    name: str,
    *,
    fmt: str = "auto",
    ours: list[str] | None = None,
    pii: str = "surrogates",
    others: str = "auto",
    seed: int = 0,
    store: Store | None = None,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
    workers: int | None = None,
    license: str | None = None,
) -> ImportResult:
    """Turn mail archives or Q/A tables into a chat dataset named ``name`` in the store.

    ``others``: "user" (everyone not on our side speaks as the user), "drop" (only the thread's
    asker does; other people's messages are dropped and counted, for mailing lists) or "auto"
    (user when ``ours`` is given, drop when it is inferred).
    ``pii``: "surrogates" (realistic stand-ins, seeded by ``seed`` and the thread, so a
    re-import is byte-identical; your side's names and addresses are kept when ``ours`` is
    given), "placeholders" (``[NAME_1]`` ..., "scrub" is its old name) or "keep".
    ``license``: the licence the data comes under (a public set's, e.g. CC-BY-NC-4.0); every model
    tuned on it inherits it (freehold.licences.inherit). None: the user's own data, adding none.
    ``workers``: processes that parse and clean messages (default: by input size, at most
    4); the output is byte-identical whatever the number.
    """
    pii = _pii_mode(pii)
    if others not in OTHERS_MODES:
        raise UsageError(f"unknown --others mode {others!r}", "use --others auto (default), user or drop")
    parse_name(name)  # a bad name fails now, not after the whole archive is read
    sources = resolve_sources([Path(p) for p in paths], fmt)
    store = store or Store.open(settings)
    st = _Pass()
    with tempfile.TemporaryDirectory(prefix="freehold-data-") as tmp:
        workdir = Path(tmp)
        speakers, conversations = (
            (Speakers(), _table_conversations(sources, st, progress))  # a table's rows name every role
            if sources[0].format in _TABLE_FORMATS
            else _email_conversations(sources, ours, others, st, workdir, progress, workers)
        )
        with _RowWriter(workdir) as rows:
            _write_examples(conversations, speakers, pii, seed, st, rows)
        if not rows.examples:
            raise UsageError("no training examples came out of the input", _empty_hint(st, speakers))
        emit(progress, "writing", len(SPLITS), 0)
        config = _import_config(sources, seed, pii, speakers, st, rows).to_dict()
        if license:
            config["license"] = license.strip()
        source = {"importer": "freehold.data", "paths": [str(s.path) for s in sources]}
        entry = _commit(store, name, config, rows, source)
        emit(progress, "writing", len(SPLITS), len(SPLITS))
    return ImportResult(entry.name, entry, config)


def _write_examples(
    conversations: Iterable[Conversation], speakers: Speakers, pii: str, seed: int, st: _Pass, rows: _RowWriter
) -> None:
    """The scrub, filter, split and write stages: each conversation's personal data replaced
    (per ``pii``), a duplicate dropped (counted), the rest written as one row of its split."""
    dedupe = Deduper()
    avoid = speakers.names | speakers.ours_name_tokens  # no stand-in is a real name in the archive
    keep = _keeper(speakers)
    for conv in conversations:
        scrubber = (
            Scrubber(speakers.names, surrogates=Surrogates(seed, conv.thread, avoid), keep=keep)
            if pii == "surrogates"
            else Scrubber(speakers.names)
        )
        # Duplicates are found on the placeholder form, so stand-ins (which differ between
        # two copies of one mail) change no counts: every mode keeps the same examples.
        keyed, spans = (conv.turns, []) if pii == "keep" else _scrub(conv.turns, scrubber)
        reason = dedupe.check(keyed)
        if reason:
            st.filters[reason] += 1
            continue
        st.pii.update(scrubber.findings)  # counted for kept examples only
        st.kept.update(scrubber.kept)
        st.turns += len(conv.turns)
        # The thread is named by a hash (its Message-ID can carry a name or address) so
        # anyone can check that no thread spans two splits.
        thread = hashlib.sha256(conv.thread.encode()).hexdigest()[:16]
        rows.write(split_of(conv.thread, seed), {"thread": thread, "messages": conv.turns}, spans)


def _scrub(turns: list[dict[str, str]], scrubber: Scrubber) -> tuple[list[dict[str, str]], list[list[Any]]]:
    """Scrub ``turns`` in place (stand-ins, or placeholders); returns them in placeholder form,
    and where each turn's rendered text holds a replacement: [turn, start, end, type]."""
    marked_turns = []
    spans: list[list[Any]] = []
    for n, t in enumerate(turns):
        marked, t["content"], found = scrubber.scrub_spans(t["content"])
        marked_turns.append({"role": t["role"], "content": marked})
        spans += [[n, start, end, kind] for start, end, kind in found]
    return marked_turns, spans


@dataclass(frozen=True, kw_only=True)
class ImportConfig:
    """What an import records as its manifest config. The ledger signs it and hashes its JSON,
    so ``to_dict`` gives the keys in field order, the order imports have always written them:
    a re-import is byte-identical. The fields with defaults are the same for every import."""

    format: str = "chat-jsonl"
    counts: dict[str, int]  # read, skipped, threads, examples, turns, then examples per split
    skipped: dict[str, int]  # messages or rows not read, by reason
    repaired: dict[str, int]  # read, but only after a repair, by repair
    filters: dict[str, int]  # turns and conversations dropped, by reason
    pii: PiiConfig
    ours: list[str]
    ours_inferred: bool
    ours_names: dict[str, str]
    others: str
    sources: list[dict[str, Any]]  # path, format, size and digest of every input file
    seed: int
    split: dict[str, Any] = field(
        default_factory=lambda: {"by": "thread", "ratios": dict(zip(SPLITS, SPLIT_RATIOS, strict=True))}
    )
    merkle_root: str
    merkle_order: str = "train, validation, test; file order within each"
    example_id: str = "hex RFC 6962 leaf hash of canonical_json(row without 'id')"

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, "pii": self.pii.to_dict()}


@dataclass(frozen=True)
class PiiConfig:
    """A dataset config's ``pii``: how personal data was treated, with counts by type."""

    mode: str  # one of PII_MODES
    replaced: dict[str, int]
    kept: dict[str, int] | None = None  # surrogates: our side's findings left as written
    kept_ours: bool = False  # surrogates: whether our side's names and addresses were kept
    rendered_from: str | None = None  # a re-render: the mode of the rows it re-rendered
    surrogates: SurrogatesConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "replaced": self.replaced}
        if self.kept is not None:
            out |= {"kept": self.kept, "kept_ours": self.kept_ours}
        if self.rendered_from is not None:
            out["from"] = self.rendered_from
        if self.surrogates is not None:
            out["surrogates"] = self.surrogates.to_dict()
        return out


@dataclass(frozen=True)
class SurrogatesConfig:
    """How the stand-ins were drawn: from the seed, a thread key and the name lists."""

    seed: int
    by: str  # the thread key: the import's own, or (a re-render) the row's hash of it

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "by": self.by, "name_lists": lists_digest()}


def _import_config(
    sources: list[Source], seed: int, pii: str, speakers: Speakers, st: _Pass, rows: _RowWriter
) -> ImportConfig:
    """The config of an import whose rows are written: what the stages counted and found."""
    surrogates = pii == "surrogates"
    return ImportConfig(
        counts={
            "messages_read": st.counts.messages,
            "messages_skipped": sum(st.counts.skipped.values()),
            "attachments_skipped": st.counts.attachments_skipped,
            "threads": st.threads,
            "examples": rows.examples,
            "turns": st.turns,
            **rows.split_counts(),
        },
        skipped=dict(sorted(st.counts.skipped.items())),
        repaired=dict(sorted(st.counts.repaired.items())),
        filters=dict(sorted(st.filters.items())),
        pii=PiiConfig(
            mode=pii,
            replaced=dict(sorted(st.pii.items())),
            kept=dict(sorted(st.kept.items())) if surrogates else None,
            kept_ours=surrogates and speakers.keeps_ours,
            surrogates=SurrogatesConfig(seed, "seed and thread") if surrogates else None,
        ),
        ours=list(speakers.ours),
        ours_inferred=speakers.ours_inferred,
        ours_names=dict(speakers.ours_names),
        others=speakers.others,
        sources=[
            {"path": str(s.path), "format": s.format, "size": s.size, "digest": file_digest(s.path)}
            for s in sources
        ],
        seed=seed,
        merkle_root=rows.merkle_root(),
    )


class _RowWriter:
    """A dataset's rows as they are written: one JSONL file per split in ``workdir``, and each
    row's Merkle leaf in order. A context manager: the files are closed on leaving it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.files = {s: (workdir / f"{s}.jsonl").open("wb") for s in SPLITS}
        self.spans = (workdir / PII_SPANS_FILE).open("wb")
        self.with_spans = 0
        self.leaves: dict[str, list[bytes]] = {s: [] for s in SPLITS}
        self.written: Counter[str] = Counter()

    def __enter__(self) -> _RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        for f in (*self.files.values(), self.spans):
            f.close()

    def write(self, split: str, example: dict[str, Any], spans: list[list[Any]] | None = None) -> None:
        """Write ``example`` (a row without its id) with its id prepended: the id covers the whole
        row but the id itself, as the ledger's verify recomputes it. ``spans``: where its text
        holds replaced personal data (a side file for the preview, not part of the row)."""
        row_id = example_id(example)
        row = {"id": row_id, **example}
        self.files[split].write(json.dumps(row, ensure_ascii=False, sort_keys=True).encode() + b"\n")
        self.leaves[split].append(leaf_hash(canonical_json(example)))
        self.written[split] += 1
        if spans:
            self.spans.write(json.dumps({"id": row_id, "spans": spans}).encode() + b"\n")
            self.with_spans += 1

    @property
    def examples(self) -> int:
        return sum(self.written.values())

    def split_counts(self) -> dict[str, int]:
        return {s: self.written[s] for s in SPLITS}

    def ids(self) -> list[str]:
        """Every row's id (its Merkle leaf) in Merkle order: train, validation, test."""
        return [leaf.hex() for s in SPLITS for leaf in self.leaves[s]]

    def merkle_root(self) -> str:
        return merkle_root([leaf for s in SPLITS for leaf in self.leaves[s]]).hex()

    def put_layers(self, store: Store) -> list[Layer]:
        """The written (closed) split files as blobs, one layer per non-empty split."""
        layers: list[Layer] = []
        for s in SPLITS:
            if self.written[s]:
                layer = store.put_file_blob(self.workdir / f"{s}.jsonl", MediaType.DATASET, f"{s}.jsonl")
                annotations = {**layer.annotations, "split": s, "examples": str(self.written[s])}
                layers.append(Layer(layer.media_type, layer.digest, layer.size, annotations))
        if self.with_spans:
            layers.append(store.put_file_blob(self.workdir / PII_SPANS_FILE, MediaType.PII_SPANS, PII_SPANS_FILE))
        return layers


def _pii_mode(pii: str) -> str:
    pii = PII_ALIASES.get(pii, pii)
    if pii not in PII_MODES:
        raise UsageError(
            f"unknown --pii mode {pii!r}", "use --pii surrogates (default), --pii placeholders or --pii keep"
        )
    return pii


def _keeper(speakers: Speakers) -> Callable[[Finding], bool] | None:
    """What surrogates leave as written: our side's names and addresses, when ``keeps_ours``."""
    if not speakers.keeps_ours:
        return None
    ours, tokens = speakers.ours, speakers.ours_name_tokens

    def keep(f: Finding) -> bool:
        if f.type == "NAME":
            return all(w.removesuffix("'s") in tokens for w in f.text.split())
        return f.type == "EMAIL" and "@" in f.text and _matches_ours(f.text.strip().lower(), ours)

    return keep


def _commit(
    store: Store, name: str, config: dict[str, Any], rows: _RowWriter, source: dict[str, Any],
    inputs: list[dict[str, Any]] | None = None,
) -> ModelEntry:
    """Put the rows' layers, write the signed ``dataset`` record (sources, Merkle root, every
    example id) and commit the dataset once, headed by it. ``inputs``: what it was made from
    when not the raw sources (a re-rendered or grounded dataset's rows)."""
    from freehold.home import commit_recorded
    from freehold.ledger import Record, Recorder, layer_refs, ref

    if inputs is None:
        inputs = [ref("source", s["digest"], filename=Path(s["path"]).name) for s in config["sources"]]
    base, tag = parse_name(name)
    name = format_name(base, tag or "latest")
    manifest = Manifest(kind="dataset", name=name, config=config, layers=rows.put_layers(store), source=source)
    ids = rows.ids()

    def record(rec: Recorder, m: Manifest) -> Record:
        return rec.record_dataset(
            name, sources=inputs, merkle_root=config["merkle_root"], example_ids=ids,
            outputs=layer_refs(m), filters={**config["filters"], "pii": config["pii"]["mode"]},
            counts=config["counts"], license=config.get("license"))

    return commit_recorded(store, manifest, record)


def _empty_hint(st: _Pass, speakers: Speakers) -> str:
    top = ", ".join(f"{k}: {v}" for k, v in (st.filters + st.counts.skipped).most_common(4))
    if speakers.ours:
        return (
            f"messages read: {st.counts.messages}; dropped: {top or 'none'}. Check that --ours "
            f"({', '.join(speakers.ours)}) names the side that answers"
        )
    return f"messages read: {st.counts.messages}; dropped: {top or 'none'}"


# -- re-rendering -----------------------------------------------------------------------------


def rerender_dataset(
    name: str,
    output: str,
    *,
    pii: str = "surrogates",
    seed: int | None = None,
    store: Store | None = None,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """A placeholder dataset's rows with realistic stand-ins, committed as dataset ``output``.

    No mail is read again: each row's placeholders get one stand-in each, drawn per
    conversation from ``seed`` (default: the dataset's own) and the row's thread key, so a
    re-render is byte-identical. Splits, row order and thread keys are kept; the ledger record
    takes the old dataset's rows as its inputs, so the lineage leads back to the import.
    A re-import gives better stand-ins (it knows "Ann" from "Ann Smith" and the sex of a name,
    and keeps your side's names), but needs the mail.
    """
    if _pii_mode(pii) != "surrogates":
        raise UsageError(f"re-rendering makes surrogates, not {pii!r}", "use --pii surrogates")
    parse_name(output)
    store = store or Store.open(settings)
    parent = store.get(name, kind="dataset")
    pc = parent.manifest.config
    mode = PII_ALIASES.get(str((pc.get("pii") or {}).get("mode")), str((pc.get("pii") or {}).get("mode")))
    if mode == "surrogates":
        raise UsageError(f"{parent.name} already has realistic stand-ins, not placeholders", "train on it as it is")
    if mode != "placeholders":
        raise UsageError(
            f"{parent.name} was imported with --pii {mode}: it holds no placeholders to replace",
            "import the mail again with --pii surrogates (the default)",
        )
    seed = int(pc.get("seed", 0)) if seed is None else seed
    avoid = frozenset(name_tokens((pc.get("ours_names") or {}).values()))
    replaced: Counter[str] = Counter()

    def rerender(row: dict[str, Any]) -> dict[str, Any]:
        thread = str(row.get("thread") or row["id"])
        surrogates = Surrogates(seed, thread, avoid)
        messages = [
            {**m, "content": render_placeholders(m["content"], surrogates, replaced)}
            if isinstance(m.get("content"), str) else m
            for m in row["messages"]
        ]
        return {"thread": thread, "messages": messages}

    def config(_: dict[str, Any]) -> dict[str, Any]:
        pii_config = PiiConfig(
            mode="surrogates",
            replaced=dict(sorted(replaced.items())),
            rendered_from="placeholders",
            # the thread key a re-render has is the row's, a hash of the import's
            surrogates=SurrogatesConfig(seed, "seed and thread hash"),
        )
        return {
            "pii": pii_config.to_dict(),
            "rerendered_from": {"name": parent.name, "digest": parent.manifest_digest,
                                "merkle_root": pc.get("merkle_root")},
        }

    return derive_dataset(store, parent, output, rerender, config, importer="freehold.data.rerender",
                          stage="re-rendering", progress=progress)


def derive_dataset(
    store: Store,
    parent: ModelEntry,
    output: str,
    transform: Callable[[dict[str, Any]], dict[str, Any]],
    config: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    importer: str,
    stage: str,
    inputs: list[dict[str, Any]] | None = None,
    extra: dict[str, list[dict[str, Any]]] | None = None,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """A new dataset ``output`` made row by row from ``parent``: ``transform(row) -> row``
    (without its id, which is recomputed). Splits and row order are kept, ``extra`` rows
    are added at the end of their split (in the order given); ``config(parent
    config) -> dict`` is merged over the parent's manifest config once every row is done; the
    ledger record takes the parent's rows (and ``inputs``) as its inputs."""
    from freehold.ledger import layer_refs

    pc = parent.manifest.config
    layers_in = parent.manifest.layers_of(MediaType.DATASET)
    total = sum(int(la.annotations.get("examples", 0)) for la in layers_in)
    with tempfile.TemporaryDirectory(prefix="freehold-data-") as tmp:
        with _RowWriter(Path(tmp)) as rows:
            done = 0
            for layer in layers_in:
                split = layer_split(layer)
                if split not in SPLITS:
                    raise UsageError(f"{parent.name} has a layer of unknown split {split!r}", "re-import the mail")
                for row in read_layer(store, layer):
                    rows.write(split, {k: v for k, v in transform(row).items() if k != "id"})
                    done += 1
                    if done % 200 == 0:
                        emit(progress, stage, total, done)
            for split, rows_extra in (extra or {}).items():
                for new in rows_extra:
                    rows.write(split, {k: v for k, v in new.items() if k != "id"})
        emit(progress, stage, total, done)
        counts = {**pc.get("counts", {}), "examples": rows.examples, **rows.split_counts()}
        merged = {**pc, **config(pc), "merkle_root": rows.merkle_root(), "counts": counts}
        source = {"importer": importer, "dataset": parent.name, "digest": parent.manifest_digest}
        entry = _commit(store, output, merged, rows, source,
                        inputs=layer_refs(parent.manifest, role="dataset") + list(inputs or []))
    return ImportResult(entry.name, entry, merged)


# -- reading datasets back --------------------------------------------------------------------


def list_datasets(store: Store | None = None, settings: Settings | None = None) -> list[ModelEntry]:
    store = store or Store.open(settings)
    return store.list("dataset")


def get_dataset(name: str, store: Store | None = None, settings: Settings | None = None) -> ModelEntry:
    store = store or Store.open(settings)
    return store.get(name, kind="dataset")


def held_out_split(entry: ModelEntry) -> str | None:
    """The split a dataset's held-out measurements read: test, else validation, else None."""
    splits = {la.annotations.get("split") for la in entry.manifest.layers_of(MediaType.DATASET)}
    return "test" if "test" in splits else "validation" if "validation" in splits else None


def iter_examples(entry: ModelEntry, store: Store, split: str = "all") -> Iterator[dict[str, Any]]:
    """Rows of a dataset (``{"id", "thread", "messages"}``), split by split in manifest order (``read_rows``)."""
    if split != "all" and split not in SPLITS:
        raise UsageError(f"unknown split {split!r}", f"use one of: all, {', '.join(SPLITS)}")
    yield from read_rows(store, entry.manifest, split)


PII_SPANS_FILE = "pii-spans.jsonl"


def pii_spans(store: Store, entry: ModelEntry) -> dict[str, list[list[Any]]]:
    """Each example's replaced personal data (``[turn, start, end, type]``) by example id; empty
    for datasets imported before spans were kept, or with ``--pii keep``."""
    layer = entry.manifest.layer(MediaType.PII_SPANS)
    if layer is None:
        return {}
    return {str(r["id"]): r["spans"] for r in read_layer(store, layer)}


FILTER_WORDS = {
    "no_reply_from_ours": "{n} thread{s} had no reply from you",
    "no_question_before_reply": "{n} thread{s} had your reply but no question before it",
    "no_assistant_turn": "{n} thread{s} had nothing left for the assistant to say after cleaning",
    "third_party_message": "{n} message{s} from other people in a thread (not the asker, not you) left out",
    "empty_after_cleaning": "{n} message{s} empty once quotes and signatures were removed",
    "too_short_turn": "{n} message{s} too short to teach anything",
    "duplicate_exact": "{n} conversation{s} appeared twice (kept once)",
    "duplicate_near": "{n} conversation{s} nearly identical to another (kept once)",
    "auto_reply": "{n} automatic repl{ies} (out-of-office and the like) left out",
    "bounce": "{n} bounce{s} (undeliverable mail notices) left out",
    "newsletter": "{n} newsletter{s} or bulk mail left out",
    "unparseable": "{n} message{s} that could not be read",
    "missing_headers": "{n} message{s} without sender or date",
    "undecodable": "{n} message{s} in an unknown text encoding",
    "empty_body": "{n} message{s} with no text",
}


def explain_filters(config: dict[str, Any]) -> list[str]:
    """What the import left out and why, in plain words ("19 threads had no reply from you")."""
    counts = Counter({**config.get("skipped", {}), **config.get("filters", {})})
    lines = []
    for key, n in counts.most_common():
        words = FILTER_WORDS.get(key, "{n} left out: " + key.replace("_", " "))
        lines.append(words.format(n=n, s="" if n == 1 else "s", ies="y" if n == 1 else "ies"))
    return lines


def show_dataset(
    name: str,
    *,
    examples: int = 5,
    seed: int | None = None,
    store: Store | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Counts, filters with counts, and ``examples`` random examples (reservoir sampled)."""
    store = store or Store.open(settings)
    entry = store.get(name, kind="dataset")
    rng = random.Random(seed)
    sample: list[dict[str, Any]] = []
    for n, row in enumerate(iter_examples(entry, store)):
        if len(sample) < examples:
            sample.append(row)
        else:
            j = rng.randint(0, n)
            if j < examples:
                sample[j] = row
    spans = pii_spans(store, entry) if sample else {}
    for row in sample:
        row["pii_spans"] = spans.get(str(row.get("id")), [])
    return {"name": entry.name, "digest": entry.manifest_digest, **entry.manifest.config, "examples": sample}


def export_dataset(
    name: str, out: Path, *, split: str = "all", store: Store | None = None, settings: Settings | None = None
) -> int:
    """Write a dataset as chat JSONL (``{"id", "messages"}`` per line); returns the row count."""
    store = store or Store.open(settings)
    entry = store.get(name, kind="dataset")
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"{out} is a directory", "pass a file name, e.g. -o support.jsonl")
    tmp = out.with_name(out.name + ".partial")
    n = 0
    try:
        with tmp.open("wb") as f:
            for row in iter_examples(entry, store, split):
                f.write(json.dumps(row, ensure_ascii=False, sort_keys=True).encode() + b"\n")
                n += 1
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {out}: {exc.strerror}", "choose a writable path") from exc
    return n


def remove_dataset(name: str, store: Store | None = None, settings: Settings | None = None) -> str:
    store = store or Store.open(settings)
    return store.remove(name, kind="dataset").name
