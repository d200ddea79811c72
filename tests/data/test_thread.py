"""Threading: JWZ links, missing parents, loops, subject fallback, and counts on the real archives."""

from __future__ import annotations

from pathlib import Path

import pytest

from freehold.data.read import Counts, read_messages, resolve_sources
from freehold.data.thread import ThreadKey, thread_messages

DAY = 86400.0


def key(
    i: int,
    mid: str,
    irt: str | None = None,
    refs: tuple[str, ...] = (),
    subject: str = "s",
    date: float | None = None,
) -> ThreadKey:
    return ThreadKey(i, mid, irt, refs, subject, date if date is not None else float(i))


def test_references_build_one_thread_even_with_missing_parent() -> None:
    keys = [
        key(0, "a", subject="Q"),
        key(1, "b", "a", ("a",)),
        key(2, "c", "b", ("a", "b")),
        # parent "gone" never arrived: its two replies still meet under it
        key(3, "d", "gone", ("gone",), subject="Re: other"),
        key(4, "e", "gone", ("gone",), subject="Re: other"),
    ]
    assert thread_messages(keys) == [[0, 1, 2], [3, 4]]


def test_loops_and_duplicate_ids_do_not_hang_or_merge() -> None:
    keys = [key(0, "a", "b", ("b",)), key(1, "b", "a", ("a",)), key(2, "a", subject="dup id, other thread")]
    threads = thread_messages(keys)
    assert sorted(map(sorted, threads)) == [[0, 1], [2]]


def test_subject_fallback_when_headers_are_missing() -> None:
    keys = [
        key(0, "a", subject="[list] Build fails", date=0),
        key(1, "b", subject="Re: [list] Build fails", date=DAY),  # no headers: joins thread 0
        key(2, "c", subject="Build fails", date=2 * DAY),  # not a reply: new thread
        key(3, "d", subject="AW: Build fails", date=90 * DAY),
    ]  # too late: new thread
    assert thread_messages(keys) == [[0, 1], [2], [3]]


def _threads(paths: list[Path], fmt: str = "auto") -> list[list[int]]:
    counts = Counts()
    msgs = list(read_messages(resolve_sources(paths, fmt), counts))
    keys = [
        ThreadKey(i, m.message_id, m.in_reply_to, tuple(m.references), m.subject, m.date)
        for i, m in enumerate(msgs)
    ]
    return thread_messages(keys)


def test_thread_counts_on_real_archives(email_dir: Path) -> None:
    corpora = email_dir / "notmuch-corpora" / "test" / "corpora"
    expected = {  # (threads, threads with more than one message), measured and checked by hand on samples
        "r-package-devel/2023q4.txt": (76, 72),
        "r-package-devel/2024q1.txt": (53, 50),
        "numpy-discussion-2001-11/2001-November.txt": (54, 24),
    }
    for rel, (n, multi) in expected.items():
        threads = _threads([email_dir / rel])
        assert (len(threads), sum(len(t) > 1 for t in threads)) == (n, multi), rel
    default = _threads([corpora / "default"])
    assert (len(default), sum(len(t) > 1 for t in default)) == (25, 14)
    lkml = _threads([corpora / "lkml"])
    assert len(lkml) == 7 and max(map(len, lkml)) == 100


def test_on_disk_index_with_a_tiny_cache_threads_the_same(email_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The index lives in SQLite with a bounded link cache: evicting it constantly changes nothing."""
    import sqlite3

    from freehold.data import thread

    path = email_dir / "r-package-devel" / "2023q4.txt"
    expected = _threads([path])
    monkeypatch.setattr(thread, "CACHE_LINKS", 3)
    msgs = list(read_messages(resolve_sources([path]), Counts()))
    index = thread.ThreadIndex(sqlite3.connect(tmp_path / "index.db"))
    for i, m in enumerate(msgs):
        index.add(ThreadKey(i, m.message_id, m.in_reply_to, tuple(m.references), m.subject, m.date))
    index.build()
    assert list(index.threads()) == expected and len(index) == len(expected) == 76
    assert index.multi_message() == 72 and list(index.threads()) == expected  # iterable again


def test_an_id_with_a_newline_stays_one_id_and_keys_must_ascend() -> None:
    """A folded References header without angle brackets can leave a newline inside one id."""
    keys = [key(0, "m0@x", subject="hi"), key(1, "m2@x", None, ("m0@x\n\tm1@x",), subject="other")]
    assert thread_messages(keys) == [[0], [1]]
    with pytest.raises(ValueError, match="ascending"):
        thread_messages([key(1, "b"), key(0, "a")])
