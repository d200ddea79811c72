"""Threading: rebuild conversations from Message-ID / In-Reply-To / References.

JWZ's algorithm (https://www.jwz.org/doc/threading.html) in its essentials: every id seen
gets a container, References chains link parent to child without creating loops, and
In-Reply-To wins as the direct parent. Messages whose parent never arrived still meet
under the missing parent's empty container. Then, as JWZ does, roots that are replies
("Re: x", "AW: x") with no usable headers are joined to the earlier thread with the same
normalised subject, if that thread started at most ``SUBJECT_WINDOW_DAYS`` before.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from freehold.data.message import normalise_subject
from freehold.progress import ProgressFn, emit

# Mailing lists revive old subjects ("Re: R CMD check NOTE") months later; a month keeps
# genuine follow-ups together without gluing unrelated questions that share a subject.
SUBJECT_WINDOW_DAYS = 30
# Parent links held in memory at most (about 10 MB); the rest are read from SQLite.
CACHE_LINKS = 65536


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """What threading needs of one message (kept small: 100k of these must fit easily)."""

    index: int
    message_id: str
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    date: float | None


REPLY_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)*(?:re|aw|sv|vs|antw|r|rif|ref|fw|fwd|wg|tr|rv|enc|odp|pd)\s*(?:\[\d+\])?\s*[:：]",
    re.IGNORECASE,
)


def _is_reply_subject(subject: str) -> bool:
    return bool(REPLY_SUBJECT.match(subject or ""))


def thread_messages(keys: Sequence[ThreadKey], progress: ProgressFn | None = None) -> list[list[int]]:
    """Threads as lists of message indices, each sorted by (date, index); threads sorted by first index.

    ``keys`` in the order the messages came in (ascending ``index``)."""
    index = ThreadIndex(sqlite3.connect(":memory:"))
    for k in keys:
        index.add(k)
    index.build(progress)
    return list(index.threads())


class ThreadIndex:
    """JWZ threading kept in SQLite, so memory stays flat however many messages come in.

    ``add`` the messages in order, ``build`` once, then iterate ``threads()`` (as often as
    needed). Every id, link and thread lives in tables (``th_*``) of the given connection,
    on disk for an import, in memory for small inputs; Python holds one thread at a time.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.executescript(
            """
            CREATE TABLE th_key (i INTEGER PRIMARY KEY, mid TEXT, aid TEXT, irt TEXT, refs TEXT,
                                 subject TEXT, date REAL);
            CREATE TABLE th_seen (mid TEXT PRIMARY KEY) WITHOUT ROWID;
            CREATE TABLE th_parent (node TEXT PRIMARY KEY, par TEXT) WITHOUT ROWID;
            CREATE TABLE th_member (i INTEGER PRIMARY KEY, root TEXT);
            CREATE TABLE th_thread (root TEXT PRIMARY KEY, first INTEGER, first_date REAL, final TEXT)
                WITHOUT ROWID;
            CREATE TABLE th_subject (subject TEXT PRIMARY KEY, root TEXT, first_date REAL) WITHOUT ROWID;
            """
        )
        self.pending: list[tuple[int, str, str, str | None, str | None, str, float | None]] = []
        self.count = 0
        self.n_links = 0
        self._cache: dict[str, str | None] = {}
        self._last = -1  # a bounded look-aside cache of th_parent

    def add(self, k: ThreadKey) -> None:
        """Add the next message; indices must ascend (they are the order the messages came in)."""
        if k.index <= self._last:
            raise ValueError(f"thread keys must come in ascending index order ({k.index} after {self._last})")
        self._last = k.index
        # Missing or repeated Message-IDs get a private id so they cannot capture others' replies.
        fresh = bool(k.message_id) and self.db.execute(
            "INSERT OR IGNORE INTO th_seen VALUES (?)", (k.message_id,)).rowcount == 1
        aid = k.message_id if fresh else f"\0{k.index}"
        # JSON, not a separator: a folded References header can leave a newline inside one id.
        refs = json.dumps(k.references) if k.references else None
        self.pending.append((k.index, k.message_id, aid, k.in_reply_to, refs, k.subject, k.date))
        self.count += 1
        if len(self.pending) >= 5000:
            self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT INTO th_key VALUES (?, ?, ?, ?, ?, ?, ?)", self.pending)
        self.pending.clear()

    def _paged(self, sql: str, start: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        """``sql`` in pages, so writes may go on meanwhile: its first ``len(start)`` columns are the
        order, given as ``WHERE (those) > (?, ...)`` with ORDER BY and LIMIT; ``start`` is below all."""
        last = start
        while True:
            rows = self.db.execute(sql, last).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][: len(start)]

    def _parent(self, node: str) -> str | None:
        if node in self._cache:
            return self._cache[node]
        row = self.db.execute("SELECT par FROM th_parent WHERE node = ?", (node,)).fetchone()
        if len(self._cache) >= CACHE_LINKS:
            self._cache.clear()  # bounded: replies cluster in time, so recent links are the ones asked for
        self._cache[node] = found = row[0] if row else None
        return found

    def _link(self, node: str, parent: str) -> None:
        self.n_links += 1
        self.db.execute("INSERT OR REPLACE INTO th_parent VALUES (?, ?)", (node, parent))
        self._cache[node] = parent

    def _ancestors(self, node: str) -> set[str]:
        out = set()
        while node not in out:
            out.add(node)
            up = self._parent(node)
            if up is None:
                break
            node = up
        return out

    def _root(self, node: str) -> str:
        for _ in range(self.n_links + 1):  # defensive: a loop that slipped through ends here
            up = self._parent(node)
            if up is None:
                break
            node = up
        return node

    def build(self, progress: ProgressFn | None = None) -> None:
        self._flush()
        db = self.db
        rows = self._paged("SELECT i, aid, irt, refs FROM th_key WHERE i > ? ORDER BY i LIMIT 5000", (-1,))
        for done, (_i, aid, irt, refs) in enumerate(rows, 1):
            linked = (*(json.loads(refs) if refs else ()), *([irt] if irt else ()))
            chain = [r for r in dict.fromkeys(linked) if r != aid]
            for a, b in itertools.pairwise(chain):
                if self._parent(b) is None and a not in self._ancestors(b) and b not in self._ancestors(a):
                    self._link(b, a)
            if chain:
                direct = chain[-1]
                if aid not in self._ancestors(direct):  # the message's own header is the best evidence
                    self._link(aid, direct)
            if done % 5000 == 0:
                emit(progress, "threading", 2 * self.count, done)
        rows = self._paged("SELECT i, aid FROM th_key WHERE i > ? ORDER BY i LIMIT 5000", (-1,))
        for done, (i, aid) in enumerate(rows, self.count + 1):
            db.execute("INSERT INTO th_member VALUES (?, ?)", (i, self._root(aid)))
            if done % 5000 == 0:
                emit(progress, "threading", 2 * self.count, done)
        db.execute("CREATE INDEX th_member_root ON th_member (root)")
        # Each thread's start: its earliest member by (date, index).
        db.execute(
            """INSERT INTO th_thread (root, first, first_date)
               SELECT root, i, d FROM (
                 SELECT m.root, m.i, COALESCE(k.date, 0.0) AS d,
                        ROW_NUMBER() OVER (PARTITION BY m.root ORDER BY COALESCE(k.date, 0.0), m.i) AS r
                 FROM th_member m JOIN th_key k ON k.i = m.i) WHERE r = 1"""
        )
        db.execute("CREATE INDEX th_thread_start ON th_thread (first_date, first)")  # _starts pages on it
        # Subject fallback: a reply-looking thread start with no headers joins the latest
        # earlier thread with the same normalised subject (within the window).
        window = SUBJECT_WINDOW_DAYS * 86400
        # Thread starts in (date, index) order.
        starts = self._paged(
            """SELECT t.first_date, t.first, t.root, k.subject, k.irt, k.refs FROM th_thread t
               JOIN th_key k ON k.i = t.first WHERE (t.first_date, t.first) > (?, ?)
               ORDER BY t.first_date, t.first LIMIT 5000""", (-1e30, -1))
        for first_date, _first, root, raw_subject, irt, refs in starts:
            subject = normalise_subject(raw_subject)
            target = db.execute("SELECT root, first_date FROM th_subject WHERE subject = ?",
                                (subject,)).fetchone() if subject else None
            if (target is not None and not irt and not refs and _is_reply_subject(raw_subject)
                    and (not first_date or not target[1] or first_date - target[1] <= window)):
                db.execute("UPDATE th_thread SET final = ? WHERE root = ?", (target[0], root))
                continue
            db.execute("UPDATE th_thread SET final = root WHERE root = ?", (root,))
            if subject:
                db.execute("INSERT OR REPLACE INTO th_subject VALUES (?, ?, ?)", (subject, root, first_date))
        emit(progress, "threading", 2 * self.count, 3 * self.count)
        db.execute(
            """CREATE TABLE th_final AS
               SELECT t.final AS final, MIN(m.i) AS lowest, COUNT(*) AS size
               FROM th_member m JOIN th_thread t ON t.root = m.root GROUP BY t.final"""
        )
        db.execute("CREATE INDEX th_final_final ON th_final (final)")

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM th_final").fetchone()[0])

    def multi_message(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM th_final WHERE size > 1").fetchone()[0])

    def message_id(self, index: int) -> str:
        row = self.db.execute("SELECT mid FROM th_key WHERE i = ?", (index,)).fetchone()
        return str(row[0]) if row else ""

    def threads(self) -> Iterator[list[int]]:
        """Threads (message indices by date, then index) in order of their lowest index."""
        for rows in self.thread_rows():
            yield [i for i, _ in rows]

    def thread_rows(self, column: str = "NULL", join: str = "") -> Iterator[list[tuple[int, Any]]]:
        """Threads as ``threads()`` does, each message with ``column`` of a table joined by ``join``
        (e.g. ``column="x.sender", join="JOIN m x ON x.i = mm.i"`` for a table in the same database)."""
        rows = self.db.execute(
            f"""SELECT f.lowest, mm.i, {column} FROM th_member mm JOIN th_thread t ON t.root = mm.root
                JOIN th_final f ON f.final = t.final JOIN th_key k ON k.i = mm.i {join}
                ORDER BY f.lowest, COALESCE(k.date, 0.0), mm.i"""
        )
        current: list[tuple[int, Any]] = []
        key = None
        for lowest, i, value in rows:
            if lowest != key and current:
                yield current
                current = []
            key = lowest
            current.append((i, value))
        if current:
            yield current
