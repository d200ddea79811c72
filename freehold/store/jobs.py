"""The job table in the store's catalog: what long operations were asked for, where each
stands, and the progress events it emitted (``freehold.jobs`` runs them)."""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from freehold.errors import ModelNotFoundError, UsageError
from freehold.store.catalog import Catalog

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINISHED = (DONE, FAILED, CANCELLED)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    state: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    attempts: int = 0
    cancel_requested: bool = False
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    last_event: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "params": self.params, "state": self.state,
                "created_at": self.created_at, "started_at": self.started_at, "finished_at": self.finished_at,
                "pid": self.pid, "attempts": self.attempts, "cancel_requested": self.cancel_requested,
                "result": self.result, "error": self.error, "progress": self.last_event}


_COLUMNS = ("id, kind, params, state, created_at, started_at, finished_at, pid, attempts, cancel_requested, "
            "result, error")


def _job(row: tuple[Any, ...], last: str | None = None) -> Job:
    (id_, kind, params, state, created, started, finished, pid, attempts, cancel, result, error) = row
    return Job(id_, kind, json.loads(params), state, created, started, finished, pid, attempts, bool(cancel),
               json.loads(result) if result else None, json.loads(error) if error else None,
               json.loads(last) if last else None)


class JobTable:
    """Rows of ``jobs`` and ``job_events``; every change is one transaction, so the worker, the
    process running a job and a CLI asking to cancel it can all write safely."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._catalog.conn

    def add(self, kind: str, params: dict[str, Any]) -> Job:
        job_id = time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(3).hex()
        with self._catalog.transaction() as c:
            c.execute("INSERT INTO jobs (id, kind, params, state, created_at) VALUES (?, ?, ?, ?, ?)",
                      (job_id, kind, json.dumps(params, sort_keys=True), QUEUED, time.time()))
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            matches = [r[0] for r in self._conn.execute("SELECT id FROM jobs WHERE id LIKE ?", (f"%{job_id}%",))]
            if len(matches) == 1:  # a unique part of an id, as 'docker' takes one
                return self.get(matches[0])
            raise ModelNotFoundError(job_id, matches[:5], kind="job",
                                     hint="run 'freehold jobs' to list the jobs" if not matches else None)
        return _job(row, self._last_event(job_id))

    def list(self, states: Iterable[str] | None = None, limit: int = 100) -> list[Job]:
        wanted = tuple(states or STATES)
        marks = ",".join("?" * len(wanted))
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({marks}) "
                                  "ORDER BY created_at DESC LIMIT ?", (*wanted, limit)).fetchall()
        return [_job(r, self._last_event(r[0])) for r in rows]

    def next_queued(self) -> Job | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE state=? ORDER BY created_at LIMIT 1",
                                 (QUEUED,)).fetchone()
        return _job(row) if row else None

    def claim(self, job_id: str, pid: int) -> bool:
        """Mark a queued job running in process ``pid``; False when someone else took it first."""
        with self._catalog.transaction() as c:
            cur = c.execute("UPDATE jobs SET state=?, pid=?, started_at=?, attempts=attempts+1 "
                            "WHERE id=? AND state=?", (RUNNING, pid, time.time(), job_id, QUEUED))
            return cur.rowcount == 1

    def set_pid(self, job_id: str, pid: int) -> None:
        with self._catalog.transaction() as c:
            c.execute("UPDATE jobs SET pid=? WHERE id=?", (pid, job_id))

    def finish(self, job_id: str, state: str, result: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None, *, running_in: int | None = None) -> bool:
        """Record how a job ended. ``running_in``: only if it is still running in that process
        (the worker's verdict on a process that died must not overwrite a later resume)."""
        if state not in FINISHED:
            raise UsageError(f"{state!r} is not a final job state", f"use one of {', '.join(FINISHED)}")
        where, args = ("id=? AND state=? AND pid=?", (job_id, RUNNING, running_in)) if running_in else ("id=?",
                                                                                                        (job_id,))
        with self._catalog.transaction() as c:
            cur = c.execute(f"UPDATE jobs SET state=?, finished_at=?, result=?, error=? WHERE {where}",
                            (state, time.time(), json.dumps(result) if result is not None else None,
                             json.dumps(error) if error is not None else None, *args))
            return cur.rowcount == 1

    def requeue(self, job_id: str, params: dict[str, Any]) -> None:
        """Back to the queue (a job whose process died with the server), with updated params."""
        with self._catalog.transaction() as c:
            c.execute("UPDATE jobs SET state=?, pid=NULL, params=?, finished_at=NULL, result=NULL, error=NULL, "
                      "cancel_requested=0 WHERE id=?", (QUEUED, json.dumps(params, sort_keys=True), job_id))

    def request_cancel(self, job_id: str) -> bool:
        """Ask a job to stop; a queued one is cancelled at once. False when it already finished."""
        with self._catalog.transaction() as c:
            cur = c.execute("UPDATE jobs SET state=?, finished_at=?, cancel_requested=1 WHERE id=? AND state=?",
                            (CANCELLED, time.time(), job_id, QUEUED))
            if cur.rowcount:
                return True
            cur = c.execute("UPDATE jobs SET cancel_requested=1 WHERE id=? AND state=?", (job_id, RUNNING))
            return cur.rowcount == 1

    def cancel_requested(self, job_id: str) -> bool:
        row = self._conn.execute("SELECT cancel_requested FROM jobs WHERE id=?", (job_id,)).fetchone()
        return bool(row and row[0])

    # events -------------------------------------------------------------------------------
    def add_event(self, job_id: str, event: dict[str, Any]) -> int:
        with self._catalog.transaction() as c:
            row = c.execute("SELECT COALESCE(MAX(seq), 0) FROM job_events WHERE job_id=?", (job_id,)).fetchone()
            seq = int(row[0]) + 1
            c.execute("INSERT INTO job_events VALUES (?, ?, ?, ?)", (job_id, seq, time.time(), json.dumps(event)))
        return seq

    def events(self, job_id: str, after: int = 0, limit: int = 1000) -> builtins.list[dict[str, Any]]:
        """Events after sequence number ``after``, each with its ``seq``, ``time`` and ``job``."""
        rows = self._conn.execute("SELECT seq, time, event FROM job_events WHERE job_id=? AND seq>? "
                                  "ORDER BY seq LIMIT ?", (job_id, after, limit)).fetchall()
        return [{"job": job_id, "seq": seq, "time": t, **json.loads(ev)} for seq, t, ev in rows]

    def _last_event(self, job_id: str) -> str | None:
        row = self._conn.execute("SELECT event FROM job_events WHERE job_id=? ORDER BY seq DESC LIMIT 1",
                                 (job_id,)).fetchone()
        return row[0] if row else None
