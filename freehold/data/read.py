"""Reading sources: mbox, Maildir, directories of .eml, and CSV/JSONL tables.

Everything streams: an mbox is split on ``From `` lines while reading bytes (so broken
separators and undecodable bytes cannot stop it, unlike ``mailbox.mbox``), a Maildir is
walked file by file, and tables are read row by row. Bad input is counted in ``Counts``
with its reason; only an unusable *path* is an error.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.data.message import Message, parse_message
from freehold.errors import UsageError
from freehold.progress import ProgressFn, emit

EMAIL_FORMATS = ("mbox", "maildir", "eml")
TABLE_FORMATS = ("csv", "jsonl")
FORMATS = ("auto", *EMAIL_FORMATS, *TABLE_FORMATS)

# A From_ separator: "From <sender...> <weekday> <month> <day> <hh:mm[:ss]> [zone] <year>".
# Senders may contain spaces (pipermail's "ann at example.org"), so the date carries the weight.
_FROM_LINE = re.compile(
    rb"^From \S.*\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\w*,?\s+\w{3,}\s+\d{1,2}\s+\d{1,2}:\d{2}(?::\d{2})?"
    rb"(?:\s+[-+]?\w+)?\s+\d{4}\s*$"
)
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")

# Column names recognised in tables, first match wins.
_QUESTION_KEYS = ("question", "prompt", "input", "instruction", "user", "query")
_ANSWER_KEYS = ("answer", "response", "output", "completion", "assistant", "reply")


@dataclass
class Counts:
    """What the reader saw: messages read, and each skip with its reason."""

    messages: int = 0
    attachments_skipped: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # Imported, but only after repair: a non-ASCII From_ line (where mailbox.mbox raises
    # UnicodeDecodeError), bytes that fit no charset (decoded with replacement characters).
    repaired: Counter[str] = field(default_factory=Counter)
    bytes_read: int = 0


@dataclass(frozen=True)
class Source:
    path: Path
    format: str
    size: int


def detect_format(path: Path) -> str:
    if path.is_dir():
        if any((path / sub).is_dir() for sub in ("cur", "new")):
            return "maildir"
        return "eml"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".eml":
        return "eml"
    with path.open("rb") as f:
        head = f.read(4096)
    if head.startswith(b"From "):
        return "mbox"
    if _HEADER_LINE.match(head):
        return "eml"
    raise UsageError(f"cannot tell what kind of file {path} is", "pass --format mbox|maildir|eml|csv|jsonl")


def _starts_with(path: Path, prefix: bytes) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(prefix)) == prefix
    except OSError:
        return False


def resolve_sources(paths: list[Path], fmt: str = "auto") -> list[Source]:
    """Check every path up front and report all problems at once."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    if not paths:
        raise UsageError(
            "no input given", "pass one or more mbox files, Maildir folders, .eml folders, CSV or JSONL files"
        )
    problems: list[str] = []
    sources: list[Source] = []
    for path in paths:
        if not path.exists():
            problems.append(f"{path}: does not exist")
            continue
        try:
            kind = detect_format(path) if fmt == "auto" else fmt
        except UsageError as exc:
            problems.append(exc.message)
            continue
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror}")
            continue
        if kind == "eml" and path.is_dir() and fmt == "auto":
            # A folder of mbox files (a downloaded list archive, say): read each as mbox.
            # Other files in it (README, SOURCE.txt) are not mail and are left out.
            mboxes = [p for p in _walk_files(path) if _starts_with(p, b"From ")]
            if mboxes:
                sources.extend(Source(p, "mbox", p.stat().st_size) for p in mboxes)
                continue
        if kind in ("maildir", "eml") and path.is_dir():
            size = sum(p.stat().st_size for p in _walk_files(path))
        elif path.is_dir():
            problems.append(f"{path}: is a directory, but --format {kind} needs a file")
            continue
        else:
            size = path.stat().st_size
        sources.append(Source(path, kind, size))
    if problems:
        raise UsageError(
            "cannot read the input:\n  " + "\n  ".join(problems),
            "check the paths, or pass --format to say what they are",
        )
    kinds = {("table" if s.format in TABLE_FORMATS else "email") for s in sources}
    if len(kinds) > 1:
        raise UsageError("cannot mix mail archives and tables in one dataset", "import them as two datasets")
    return sources


def file_digest(path: Path) -> str:
    """sha256 of a file, or of a directory's (relative path, file digest) list, for the manifest."""
    if path.is_dir():
        h = hashlib.sha256()
        for p in _walk_files(path):
            h.update(str(p.relative_to(path)).encode() + b"\0" + file_digest(p).encode() + b"\n")
        return "sha256:" + h.hexdigest()
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _walk_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Maildir's tmp/ holds deliveries in progress; dot-folders are client metadata.
        dirnames[:] = sorted(d for d in dirnames if d != "tmp" and not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return out


def iter_mbox(path: Path, repaired: Counter[str] | None = None) -> Iterator[bytes]:
    """Raw messages of an mbox, split on From_ lines; '>From ' escapes are undone."""
    chunk: list[bytes] = []
    prev_blank = True
    started = False
    with path.open("rb") as f:
        for line in f:
            if line.startswith(b"From ") and (prev_blank or not started) and _FROM_LINE.match(line.rstrip()):
                if chunk:
                    yield b"".join(chunk)
                chunk = []
                if repaired is not None and not line.isascii():
                    repaired["non_ascii_from_line"] += 1
                started = True
                prev_blank = False
                continue
            if not started and not line.strip():
                continue
            started = True
            if line.startswith(b">From "):
                line = line[1:]
            chunk.append(line)
            prev_blank = not line.strip()
    if chunk:
        yield b"".join(chunk)


def iter_raw(source: Source, repaired: Counter[str] | None = None) -> Iterator[bytes]:
    if source.format == "mbox":
        yield from iter_mbox(source.path, repaired)
    elif source.path.is_dir():
        for p in _walk_files(source.path):
            yield p.read_bytes()
    else:
        yield source.path.read_bytes()


# Messages per batch handed to worker processes: big enough to amortise the hand-off,
# small enough that two batches in flight stay a few MB whatever the archive size.
_BATCH = 1000


def _parsed(
    raws: Iterator[bytes], parser: Callable[[bytes], Message | str], workers: int
) -> Iterator[tuple[int, Message | str]]:
    """(raw size, parser(raw)) in input order; in ``workers`` processes when above 1."""
    if workers <= 1:
        for raw in raws:
            yield len(raw), parser(raw)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pending: tuple[list[int], Any] | None = None
        while True:
            batch = list(itertools.islice(raws, _BATCH))
            job = pool.map_async(parser, batch, chunksize=50) if batch else None
            if pending is not None:
                yield from zip(pending[0], pending[1].get(), strict=True)
            if job is None:
                return
            pending = ([len(r) for r in batch], job)


def read_messages(
    sources: list[Source],
    counts: Counts,
    progress: ProgressFn | None = None,
    *,
    parser: Callable[[bytes], Message | str] = parse_message,
    workers: int = 1,
) -> Iterator[Message]:
    """Parsed messages of every email source, in order; skips are counted, never raised.

    ``parser`` turns raw bytes into a Message (or a skip reason); it runs in ``workers``
    processes when that is above 1, so it must be a module-level function.
    """
    total = sum(s.size for s in sources)
    raws = (raw for source in sources for raw in iter_raw(source, counts.repaired))
    for seen, (size, parsed) in enumerate(_parsed(raws, parser, workers), 1):
        counts.bytes_read += size
        if isinstance(parsed, str):
            counts.skipped[parsed] += 1
        else:
            counts.messages += 1
            counts.attachments_skipped += parsed.attachments
            if "\ufffd" in parsed.body:
                counts.repaired["replacement_characters"] += 1
            yield parsed
        if seen % 500 == 0:
            emit(progress, "reading", total, min(counts.bytes_read, total))
    emit(progress, "reading", total, total)


def _turns_from_row(row: dict[str, object]) -> list[dict[str, str]] | str:
    """Chat turns from one table row, or a skip reason."""
    msgs = row.get("messages")
    if msgs is not None:
        if not isinstance(msgs, list) or not msgs:
            return "bad_messages"
        turns: list[dict[str, str]] = []
        for m in msgs:
            if (
                not isinstance(m, dict)
                or not isinstance(m.get("content"), str)
                or m.get("role") not in ("system", "user", "assistant")
            ):
                return "bad_messages"
            turns.append({"role": str(m["role"]), "content": str(m["content"])})
        return turns
    lowered = {str(k).strip().lower(): v for k, v in row.items()}
    q = next((lowered[k] for k in _QUESTION_KEYS if k in lowered), None)
    a = next((lowered[k] for k in _ANSWER_KEYS if k in lowered), None)
    if q is None or a is None:
        return "no_question_answer_columns"
    if not str(q).strip() or not str(a).strip():
        return "empty_turn"
    return [{"role": "user", "content": str(q)}, {"role": "assistant", "content": str(a)}]


def read_table(
    sources: list[Source], counts: Counts, progress: ProgressFn | None = None
) -> Iterator[list[dict[str, str]]]:
    """Conversations from CSV/JSONL rows: question/answer columns or a ``messages`` list."""
    total = sum(s.size for s in sources)
    done = 0
    for source in sources:
        with source.path.open("rb") as fb:
            text = io.TextIOWrapper(fb, encoding="utf-8", errors="replace", newline="")
            if source.format == "csv":
                dialect = "excel-tab" if source.path.suffix.lower() == ".tsv" else "excel"
                rows: Iterator[dict[str, object] | str] = (
                    dict(r) for r in csv.DictReader(text, dialect=dialect)
                )
            else:
                rows = _jsonl_rows(text)
            for row in rows:
                if isinstance(row, str):
                    counts.skipped[row] += 1
                    continue
                turns = _turns_from_row(row)
                if isinstance(turns, str):
                    counts.skipped[turns] += 1
                    continue
                counts.messages += 1
                yield turns
        done += source.size
        emit(progress, "reading", total, done)


def _jsonl_rows(text: io.TextIOWrapper) -> Iterator[dict[str, object] | str]:
    for line in text:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            yield "bad_json"
            continue
        yield row if isinstance(row, dict) else "bad_json"
