"""The SQLite catalog: which names point at which manifests.

Schema changes are named, forward-only migrations (applied in order, recorded in
``_migrations``); never edit one that has shipped, add a new one.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from freehold.errors import StoreError, StoreReadOnlyError

MIGRATIONS: list[tuple[str, str]] = [
    ("001_refs", """
        CREATE TABLE refs (
            kind TEXT NOT NULL,              -- 'model' or 'dataset'
            name TEXT NOT NULL,
            tag TEXT NOT NULL,
            manifest_digest TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (kind, name, tag)
        );
    """),
    ("002_aliases", """
        CREATE TABLE aliases (
            alias TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            tag TEXT NOT NULL
        );
    """),
    ("003_derived", """
        -- Artefacts computed from a blob once and reused (e.g. a GGUF dequantised to
        -- safetensors for PyTorch). Collected with their source.
        CREATE TABLE derived (
            source_digest TEXT NOT NULL,
            kind TEXT NOT NULL,
            manifest_digest TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (source_digest, kind)
        );
    """),
    ("004_settings", """
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """),
    ("005_pins", """
        -- Blobs written but not yet named by a manifest: garbage collection keeps them while
        -- the writing process (pid) is alive. A commit removes the pins of what it names.
        CREATE TABLE pins (
            digest TEXT NOT NULL,
            owner TEXT NOT NULL,             -- one open Store: '<pid>-<random>'
            pid INTEGER NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (digest, owner)
        );
    """),
    ("006_jobs", """
        -- Long operations (import, tune, eval, export, verify) run as jobs: queued here, run
        -- one heavy job at a time by the server's worker, watched by the CLI and the pages.
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            params TEXT NOT NULL,            -- JSON, the kind's typed parameters
            state TEXT NOT NULL,             -- queued, running, done, failed, cancelled
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            pid INTEGER,                     -- the process running it
            attempts INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            result TEXT,                     -- JSON, what it made
            error TEXT                       -- JSON, FreeholdError.to_dict()
        );
        CREATE INDEX jobs_state ON jobs (state, created_at);
        CREATE TABLE job_events (
            job_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            time REAL NOT NULL,
            event TEXT NOT NULL,             -- JSON, one progress event
            PRIMARY KEY (job_id, seq)
        );
    """),
    ("007_registry", """
        -- The OCI registry (freehold.registry): manifests pushed to it, by repository, each a
        -- blob in the store. Tags name them, and subject links a referrer (a signature, an
        -- audit) to the manifest it is about.
        CREATE TABLE registry_manifests (
            repo TEXT NOT NULL,
            digest TEXT NOT NULL,
            media_type TEXT NOT NULL,
            artifact_type TEXT,
            subject TEXT,                    -- the digest this manifest refers to, if any
            size INTEGER NOT NULL,
            annotations TEXT,                -- JSON, for the referrers list
            created_at REAL NOT NULL,
            PRIMARY KEY (repo, digest)
        );
        CREATE INDEX registry_subject ON registry_manifests (repo, subject);
        CREATE TABLE registry_tags (
            repo TEXT NOT NULL,
            tag TEXT NOT NULL,
            digest TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (repo, tag)
        );
        -- Blobs pushed to a repository (readable there before a manifest names them)
        CREATE TABLE registry_blobs (
            repo TEXT NOT NULL,
            digest TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (repo, digest)
        );
    """),
    ("008_a2a_tasks", """
        -- A2A tasks (freehold.agents.a2a): each agent's tasks as the protocol's Task message,
        -- so a restart loses none. owner is a digest of the API key that made it (empty on an
        -- open loopback server), and one owner never sees another's.
        CREATE TABLE a2a_tasks (
            owner TEXT NOT NULL,
            agent TEXT NOT NULL,
            id TEXT NOT NULL,
            context_id TEXT NOT NULL,
            state INTEGER NOT NULL,          -- a2a TaskState
            updated_ns INTEGER NOT NULL,     -- the status timestamp, for ListTasks' order and filter
            body BLOB NOT NULL,              -- the Task, serialised protobuf
            PRIMARY KEY (owner, agent, id)
        );
        CREATE INDEX a2a_tasks_list ON a2a_tasks (owner, agent, updated_ns);
    """),
]


def drop_pins(c: sqlite3.Connection, owner: str, digests: Iterable[str] | None = None) -> None:
    """Inside a transaction: drop ``owner``'s pins of ``digests`` (all of them when None), so a
    commit names its blobs and releases them atomically."""
    if digests is None:
        c.execute("DELETE FROM pins WHERE owner=?", (owner,))
    else:
        c.executemany("DELETE FROM pins WHERE owner=? AND digest=?", [(owner, d) for d in digests])


@dataclass(frozen=True)
class Ref:
    kind: str
    name: str
    tag: str
    manifest_digest: str
    created_at: float

    @property
    def full_name(self) -> str:
        return f"{self.name}:{self.tag}"


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._tx_lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "readonly" in text or "unable to open" in text:
                raise StoreReadOnlyError(f"cannot open the catalog {path}: {exc}",
                                         "make FREEHOLD_HOME writable or point it elsewhere") from exc
            raise StoreError(f"cannot open the catalog {path}: {exc}", "check FREEHOLD_HOME") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the catalog {path} is damaged: {exc}",
                             "move it aside; 'freehold doctor' can rebuild it from the manifests") from exc

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        # One connection serves every thread of a process (the server's request threads): one
        # transaction at a time on it.
        with self._tx_lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        self.conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
        applied = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
        for name, sql in MIGRATIONS:
            if name in applied:
                continue
            with self.transaction() as c:
                # Re-check inside the write lock: another process may have just migrated.
                if c.execute("SELECT 1 FROM _migrations WHERE name=?", (name,)).fetchone():
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))

    def applied_migrations(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM _migrations ORDER BY name")]

    # refs ---------------------------------------------------------------------------------
    def put_ref(self, kind: str, name: str, tag: str, manifest_digest: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?, ?)",
                      (kind, name, tag, manifest_digest, time.time()))

    def get_ref(self, kind: str, name: str, tag: str) -> Ref | None:
        row = self.conn.execute("SELECT * FROM refs WHERE kind=? AND name=? AND tag=?",
                                (kind, name, tag)).fetchone()
        return Ref(*row) if row else None

    def refs(self, kind: str | None = None) -> list[Ref]:
        if kind is None:
            rows = self.conn.execute("SELECT * FROM refs ORDER BY kind, name, tag")
        else:
            rows = self.conn.execute("SELECT * FROM refs WHERE kind=? ORDER BY name, tag", (kind,))
        return [Ref(*r) for r in rows]

    def delete_ref(self, kind: str, name: str, tag: str) -> bool:
        with self.transaction() as c:
            cur = c.execute("DELETE FROM refs WHERE kind=? AND name=? AND tag=?", (kind, name, tag))
            c.execute("DELETE FROM aliases WHERE name=? AND tag=?", (name, tag))
            return cur.rowcount > 0

    # aliases ------------------------------------------------------------------------------
    def set_alias(self, alias: str, name: str, tag: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)", (alias, name, tag))

    def get_alias(self, alias: str) -> tuple[str, str] | None:
        row = self.conn.execute("SELECT name, tag FROM aliases WHERE alias=?", (alias,)).fetchone()
        return (row[0], row[1]) if row else None

    def aliases(self) -> dict[str, str]:
        return {a: f"{n}:{t}" for a, n, t in self.conn.execute("SELECT alias, name, tag FROM aliases")}

    # derived artefacts --------------------------------------------------------------------
    def put_derived(self, source_digest: str, kind: str, manifest_digest: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO derived VALUES (?, ?, ?, ?)",
                      (source_digest, kind, manifest_digest, time.time()))

    def get_derived(self, source_digest: str, kind: str) -> str | None:
        row = self.conn.execute("SELECT manifest_digest FROM derived WHERE source_digest=? AND kind=?",
                                (source_digest, kind)).fetchone()
        return row[0] if row else None

    def derived(self) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in self.conn.execute("SELECT source_digest, kind, manifest_digest FROM derived")]

    def delete_derived(self, source_digest: str) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM derived WHERE source_digest=?", (source_digest,))

    # pins ---------------------------------------------------------------------------------
    def pin(self, digest: str, owner: str, pid: int) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO pins VALUES (?, ?, ?, ?)", (digest, owner, pid, time.time()))

    def pins(self) -> list[tuple[str, str, int]]:
        return [tuple(r) for r in self.conn.execute("SELECT digest, owner, pid FROM pins")]

    def unpin(self, owner: str, digests: Iterable[str] | None = None) -> None:
        """Drop ``owner``'s pins of ``digests`` (all of its pins when None)."""
        with self.transaction() as c:
            drop_pins(c, owner, digests)

    # settings -----------------------------------------------------------------------------
    def get_setting(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))
