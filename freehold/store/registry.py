"""The registry's tables in the store's catalog: which OCI manifests were pushed to which
repository, their tags, and which manifest refers to which (``freehold.registry`` serves them).

A manifest's bytes are a blob like any other; these rows only name them. A Freehold model
pushed to the registry is also committed to the catalog's models (``freehold.registry.server``),
so the registry's store serves what it receives.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from freehold.store.catalog import Catalog


@dataclass(frozen=True)
class RegistryManifest:
    repo: str
    digest: str
    media_type: str
    artifact_type: str | None
    subject: str | None
    size: int
    annotations: dict[str, str]

    def descriptor(self) -> dict[str, Any]:
        """The OCI descriptor of this manifest (as the referrers list gives it)."""
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        if self.annotations:
            d["annotations"] = self.annotations
        return d


_COLUMNS = "repo, digest, media_type, artifact_type, subject, size, annotations"


def _row(r: tuple[Any, ...]) -> RegistryManifest:
    return RegistryManifest(r[0], r[1], r[2], r[3], r[4], int(r[5]), json.loads(r[6]) if r[6] else {})


class RegistryTable:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    @property
    def _conn(self) -> Any:
        return self._catalog.conn

    def put(self, m: RegistryManifest, tag: str | None = None) -> None:
        with self._catalog.transaction() as c:
            c.execute(f"INSERT OR REPLACE INTO registry_manifests ({_COLUMNS}, created_at) VALUES (?,?,?,?,?,?,?,?)",
                      (m.repo, m.digest, m.media_type, m.artifact_type, m.subject, m.size,
                       json.dumps(m.annotations, sort_keys=True) if m.annotations else None, time.time()))
            if tag is not None:
                c.execute("INSERT OR REPLACE INTO registry_tags VALUES (?, ?, ?, ?)",
                          (m.repo, tag, m.digest, time.time()))

    def get(self, repo: str, digest: str) -> RegistryManifest | None:
        r = self._conn.execute(f"SELECT {_COLUMNS} FROM registry_manifests WHERE repo=? AND digest=?",
                               (repo, digest)).fetchone()
        return _row(r) if r else None

    def tag(self, repo: str, tag: str) -> str | None:
        r = self._conn.execute("SELECT digest FROM registry_tags WHERE repo=? AND tag=?", (repo, tag)).fetchone()
        return str(r[0]) if r else None

    def tags(self, repo: str) -> list[str]:
        return [str(r[0]) for r in self._conn.execute("SELECT tag FROM registry_tags WHERE repo=? ORDER BY tag",
                                                       (repo,))]

    def repos(self) -> list[str]:
        return [str(r[0]) for r in self._conn.execute("SELECT DISTINCT repo FROM registry_manifests ORDER BY repo")]

    def has_repo(self, repo: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM registry_manifests WHERE repo=? LIMIT 1", (repo,)).fetchone()
        return row is not None

    def referrers(self, repo: str, subject: str) -> list[RegistryManifest]:
        return [_row(r) for r in self._conn.execute(
            f"SELECT {_COLUMNS} FROM registry_manifests WHERE repo=? AND subject=? ORDER BY created_at, digest",
            (repo, subject))]

    def delete(self, repo: str, digest: str) -> bool:
        """Forget a manifest and every tag naming it (its blobs go at the next gc)."""
        with self._catalog.transaction() as c:
            n = c.execute("DELETE FROM registry_manifests WHERE repo=? AND digest=?", (repo, digest)).rowcount
            c.execute("DELETE FROM registry_tags WHERE repo=? AND digest=?", (repo, digest))
        return bool(n)

    def untag(self, repo: str, tag: str) -> bool:
        with self._catalog.transaction() as c:
            return bool(c.execute("DELETE FROM registry_tags WHERE repo=? AND tag=?", (repo, tag)).rowcount)

    def add_blob(self, repo: str, digest: str) -> None:
        with self._catalog.transaction() as c:
            c.execute("INSERT OR REPLACE INTO registry_blobs VALUES (?, ?, ?)", (repo, digest, time.time()))

    def pushed_blobs(self) -> set[str]:
        return {str(r[0]) for r in self._conn.execute("SELECT DISTINCT digest FROM registry_blobs")}

    def digests(self) -> list[str]:
        """Every manifest digest the registry names (garbage collection keeps them and their blobs)."""
        return [str(r[0]) for r in self._conn.execute("SELECT DISTINCT digest FROM registry_manifests")]
