"""The agents' task table in the store's catalog (``a2a_tasks``): rows of an opaque task body
with what listing needs (owner, agent, context, state, time). ``freehold.agents.a2a`` stores the
A2A protocol's Task messages in it, so tasks outlive a restart."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from freehold.store.catalog import Catalog


@dataclass(frozen=True)
class TaskQuery:
    owner: str
    agent: str
    context_id: str | None = None
    state: int | None = None
    updated_after_ns: int | None = None
    offset: int = 0
    limit: int = 50


class AgentTaskTable:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._catalog.conn

    def put(self, owner: str, agent: str, task_id: str, context_id: str, state: int, updated_ns: int,
            body: bytes) -> None:
        with self._catalog.transaction() as c:
            c.execute("INSERT OR REPLACE INTO a2a_tasks VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (owner, agent, task_id, context_id, state, updated_ns, body))

    def get(self, owner: str, agent: str, task_id: str) -> bytes | None:
        row = self._conn.execute("SELECT body FROM a2a_tasks WHERE owner=? AND agent=? AND id=?",
                                 (owner, agent, task_id)).fetchone()
        return bytes(row[0]) if row else None

    def delete(self, owner: str, agent: str, task_id: str) -> None:
        with self._catalog.transaction() as c:
            c.execute("DELETE FROM a2a_tasks WHERE owner=? AND agent=? AND id=?", (owner, agent, task_id))

    def list(self, q: TaskQuery) -> tuple[list[bytes], int]:
        """(the bodies of one page, newest first; how many match in all)."""
        where: list[str] = ["owner=?", "agent=?"]
        args: list[str | int] = [q.owner, q.agent]
        if q.context_id:
            where.append("context_id=?")
            args.append(q.context_id)
        if q.state:
            where.append("state=?")
            args.append(q.state)
        if q.updated_after_ns is not None:
            where.append("updated_ns>=?")
            args.append(q.updated_after_ns)
        sql = " AND ".join(where)
        total = self._conn.execute(f"SELECT COUNT(*) FROM a2a_tasks WHERE {sql}", args).fetchone()[0]
        rows = self._conn.execute(f"SELECT body FROM a2a_tasks WHERE {sql} ORDER BY updated_ns DESC, id DESC "
                                  "LIMIT ? OFFSET ?", [*args, q.limit, q.offset]).fetchall()
        return [bytes(r[0]) for r in rows], int(total)
