"""The append-only, signed hash chain: ``$FREEHOLD_HOME/ledger/ledger.jsonl``.

One record per line, each line the canonical JSON (``merkle.canonical_json``) of::

    {"v": 1, "seq": N, "type": "step", "time": "2026-11-28T18:00:00.123456Z",
     "payload": {...}, "prev": "sha256:<hex of the previous line's bytes without newline>" | null,
     "key": "ed25519:<key id>", "sig": "<base64 Ed25519 over the canonical JSON without 'sig'>"}

A record's hash (``Record.hash``) is ``sha256:`` over its canonical JSON, i.e. its line.

Crash safety: a record is written as a single ``write`` of a whole line to a file opened
with ``O_APPEND`` while holding an exclusive ``flock``, then ``fsync``'d. A crash can leave
at most a torn last line (no newline); readers report it as ``TornTail`` and appends refuse
to build on it until ``repair()`` moves the torn bytes aside into a named file and
appends a ``repair`` record stating their digest, so nothing is silently dropped.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.errors import LedgerError
from freehold.ledger.keys import Identity, load_identity
from freehold.ledger.merkle import canonical_json

FORMAT_VERSION = 1
LEDGER_DIR = "ledger"
LEDGER_FILE = "ledger.jsonl"


def sha256_hex(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Record:
    """One parsed ledger record. ``number`` is its 1-based line number in the ledger file."""

    number: int
    seq: int
    type: str
    time: str
    payload: dict[str, Any]
    prev: str | None
    key: str
    sig: str
    hash: str
    line: bytes = field(repr=False, default=b"")

    def signed_bytes(self) -> bytes:
        return canonical_json(_unsigned(self.seq, self.type, self.time, self.payload, self.prev, self.key))

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "seq": self.seq,
            "type": self.type,
            "time": self.time,
            "payload": self.payload,
            "prev": self.prev,
            "key": self.key,
            "sig": self.sig,
        }

    def describe(self) -> str:
        return f"record {self.number} ({self.type}, {self.hash[:19]})"


def _unsigned(seq: int, type_: str, time: str, payload: dict[str, Any], prev: str | None, key: str) -> dict[str, Any]:
    return {
        "v": FORMAT_VERSION,
        "seq": seq,
        "type": type_,
        "time": time,
        "payload": payload,
        "prev": prev,
        "key": key,
    }


@dataclass(frozen=True)
class BadLine:
    """A line that is not a well-formed record (unparseable, not canonical, missing fields)."""

    number: int
    problem: str
    line: bytes = field(repr=False, default=b"")


@dataclass(frozen=True)
class TornTail:
    """Bytes after the last newline: an append interrupted mid-write."""

    number: int
    offset: int
    data: bytes = field(repr=False, default=b"")


Entry = Record | BadLine


def parse_line(number: int, line: bytes) -> Entry:
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        return BadLine(number, f"is not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})", line)
    if not isinstance(doc, dict):
        return BadLine(number, "is not a JSON object", line)
    try:
        rec = Record(
            number=number,
            seq=int(doc["seq"]),
            type=str(doc["type"]),
            time=str(doc["time"]),
            payload=dict(doc["payload"]),
            prev=doc["prev"],
            key=str(doc["key"]),
            sig=str(doc["sig"]),
            hash=sha256_hex(line),
            line=line,
        )
        version = doc["v"]
    except (KeyError, TypeError, ValueError) as exc:
        return BadLine(number, f"lacks a required field or has a wrong type ({exc})", line)
    if version != FORMAT_VERSION:
        return BadLine(number, f"has unknown format version {version!r}", line)
    if set(doc) != {"v", "seq", "type", "time", "payload", "prev", "key", "sig"}:
        return BadLine(number, f"has unexpected fields {sorted(set(doc) - set(rec.to_dict()))}", line)
    # Only the canonical byte form is accepted, so every byte of the line is covered by the
    # hash chain: an edit that keeps the JSON meaning (spaces, escapes) is still caught.
    try:
        canonical = canonical_json(doc)
    except ValueError:
        canonical = b""
    if canonical != line:
        return BadLine(number, "is not in canonical JSON form (the bytes were edited)", line)
    return rec


def read_entries(path: Path) -> tuple[list[Entry], TornTail | None]:
    """Every line of the ledger file, parsed, plus a torn tail if the file does not end in a newline."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], None
    return split_entries(data)


def split_entries(data: bytes) -> tuple[list[Entry], TornTail | None]:
    entries: list[Entry] = []
    torn: TornTail | None = None
    start = 0
    number = 0
    while start < len(data):
        end = data.find(b"\n", start)
        number += 1
        if end < 0:
            torn = TornTail(number, start, data[start:])
            break
        entries.append(parse_line(number, data[start:end]))
        start = end + 1
    return entries, torn


class Ledger:
    """Appends signed records to the chain and reads them back.

    Cheap to call per optimizer step: the process remembers the last record's hash and the
    file size it saw; under the lock it only re-reads the tail when another process appended.
    """

    def __init__(self, home: Path, identity: Identity | None = None, fsync: bool = True) -> None:
        self.home = Path(home)
        self.dir = self.home / LEDGER_DIR
        self.path = self.dir / LEDGER_FILE
        self._identity = identity
        self.fsync = fsync
        self._known_size = -1
        self._last: tuple[int, str] | None = None  # (seq, hash) of the last record at _known_size

    @classmethod
    def open(cls, home: Path | None = None, fsync: bool = True) -> Ledger:
        if home is None:
            from freehold.config import load_settings

            home = load_settings().home
        return cls(Path(home), fsync=fsync)

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            self._identity = load_identity(self.home)
        return self._identity

    # reading ------------------------------------------------------------------------------
    def entries(self) -> tuple[list[Entry], TornTail | None]:
        return read_entries(self.path)

    def records(self) -> list[Record]:
        """All records; raises if any line is malformed or the tail is torn (use verify to diagnose)."""
        entries, torn = self.entries()
        for e in entries:
            if isinstance(e, BadLine):
                raise LedgerError(
                    f"ledger record {e.number} {e.problem}", "run 'freehold audit verify' for a full report"
                )
        if torn is not None:
            raise LedgerError(
                f"the ledger ends in a torn record (line {torn.number}, {len(torn.data)} bytes): "
                "an append was interrupted",
                "run 'freehold audit repair' to set it aside",
            )
        return [e for e in entries if isinstance(e, Record)]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def find(self, record_hash: str) -> Record | None:
        for rec in self.records():
            if rec.hash == record_hash:
                return rec
        return None

    def head(self) -> Record | None:
        recs = self.records()
        return recs[-1] if recs else None

    # writing ------------------------------------------------------------------------------
    def append(self, type_: str, payload: dict[str, Any]) -> Record:
        """Sign and append one record; returns it (``.hash`` is what manifests and children cite)."""
        if not type_ or not type_.replace("-", "").replace("_", "").isalnum():
            raise LedgerError(f"bad record type {type_!r}", "use a short word such as 'step' or 'note'")
        try:
            canonical_json(payload)
        except (TypeError, ValueError) as exc:
            raise LedgerError(
                f"the {type_} record's payload is not JSON-serialisable: {exc}",
                "pass only str, int, float (finite), bool, None, lists and dicts",
            ) from exc
        identity = self.identity
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerError(
                f"cannot open the ledger {self.path}: {exc.strerror}", "check FREEHOLD_HOME is writable"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size != self._known_size:
                self._last = self._read_last(size)
                self._known_size = size
            seq, prev = (self._last[0] + 1, self._last[1]) if self._last else (1, None)
            when = utc_now()
            unsigned = _unsigned(seq, type_, when, payload, prev, identity.key_id)
            sig = base64.b64encode(identity.sign(canonical_json(unsigned))).decode()
            line = canonical_json({**unsigned, "sig": sig})
            data = line + b"\n"
            written = os.write(fd, data)
            if written != len(data):  # a short write on a full disk: leave a torn tail, say so
                raise LedgerError(
                    f"only {written} of {len(data)} bytes of the record reached the ledger",
                    "free disk space, then run 'freehold audit repair'",
                )
            if self.fsync:
                os.fsync(fd)
            rec_hash = sha256_hex(line)
            self._known_size = size + len(data)
            self._last = (seq, rec_hash)
        except OSError as exc:
            raise LedgerError(
                f"cannot append to the ledger {self.path}: {exc.strerror}", "check free space and permissions"
            ) from exc
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return Record(seq, seq, type_, when, payload, prev, identity.key_id, sig, rec_hash, line)

    def _read_last(self, size: int) -> tuple[int, str] | None:
        """(seq, hash) of the last record, reading only the file's tail."""
        if size == 0:
            return None
        with self.path.open("rb") as f:
            block = 1 << 16
            pos = size
            buf = b""
            while True:
                step = min(block, pos)
                pos -= step
                f.seek(pos)
                buf = f.read(step) + buf
                if not buf.endswith(b"\n"):
                    raise LedgerError(
                        f"the ledger {self.path} ends in a torn record (an append was interrupted)",
                        "run 'freehold audit repair' to set the torn bytes aside, then retry",
                    )
                cut = buf.rfind(b"\n", 0, len(buf) - 1)
                if cut >= 0 or pos == 0:
                    line = buf[cut + 1 : -1]
                    break
                block *= 2
        entry = parse_line(0, line)
        if isinstance(entry, BadLine):
            raise LedgerError(
                f"the last ledger record {entry.problem}", "run 'freehold audit verify' to find the damage"
            )
        return entry.seq, entry.hash

    def repair(self) -> Record | None:
        """Move a torn tail aside into ``ledger/torn-<time>.bin`` and record that on the chain."""
        if not self.path.exists():
            return None
        with self.path.open("r+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                data = f.read()
                cut = data.rfind(b"\n") + 1
                if cut == len(data):
                    return None
                torn = data[cut:]
                aside = self.dir / f"torn-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}.bin"
                aside.write_bytes(torn)
                f.truncate(cut)
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        self._known_size = -1
        return self.append(
            "repair",
            {
                "torn_bytes": len(torn),
                "torn_digest": sha256_hex(torn),
                "set_aside_as": aside.name,
                "at_line": data.count(b"\n", 0, cut) + 1,
            },
        )
