"""Readers: mbox (pipermail, broken separators, bad bytes), Maildir, .eml, tables; and message parsing."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

from freehold.data.message import html_to_text, normalise_address, normalise_subject, parse_message
from freehold.data.read import Counts, iter_mbox, read_messages, read_table, resolve_sources
from freehold.errors import UsageError


def _read(paths: list[Path], fmt: str = "auto") -> tuple[list, Counts]:
    counts = Counts()
    return list(read_messages(resolve_sources(paths, fmt), counts)), counts


def test_perceval_edge_cases_import_where_mailbox_raises(email_dir: Path) -> None:
    files = sorted((email_dir / "perceval-mbox-edgecases" / "tests" / "data").rglob("*.mbox"))
    bad = [f for f in files if f.name in ("mbox_iso8859_encoding.mbox", "mbox_unixfrom_encoding.mbox")]
    for f in bad:
        with pytest.raises(UnicodeDecodeError):
            list(mailbox.mbox(f))
    msgs, counts = _read(files, "mbox")
    # 26 From_ separators in the 12 files: every message imports, none is lost.
    assert counts.messages == 26 and not counts.skipped
    assert counts.repaired["non_ascii_from_line"] == 2
    subjects = {m.subject for m in msgs}
    assert any("Protocol Buffers" in s for s in subjects)
    assert all(m.body.strip() for m in msgs)


def test_pipermail_archives_message_counts(email_dir: Path) -> None:
    for path, expected in (
        (email_dir / "r-package-devel" / "2023q4.txt", 389),  # 391 'From ' lines, 2 in bodies
        (email_dir / "r-package-devel" / "2024q1.txt", 329),
        (email_dir / "numpy-discussion-2001-11" / "2001-November.txt", 164),
    ):
        _msgs, counts = _read([path])
        assert counts.messages == expected and not counts.skipped
    first = _read([email_dir / "r-package-devel" / "2023q4.txt"])[0][0]
    assert first.sender_name == "Rolf Turner" and first.sender.startswith("ro||turner@")


def test_notmuch_maildir(email_dir: Path) -> None:
    corpora = email_dir / "notmuch-corpora" / "test" / "corpora"
    _msgs, counts = _read([corpora / "default"])
    assert counts.messages == 53 and not counts.skipped
    assert counts.attachments_skipped > 0
    _msgs, counts = _read([corpora / "lkml"], "maildir")
    assert counts.messages == 210


def test_broken_separators_and_garbage_are_counted_not_fatal(tmp_path: Path) -> None:
    mbox = tmp_path / "broken.mbox"
    mbox.write_bytes(
        b"From ann@example.org Mon Jan  1 10:00:00 2024\nFrom: Ann <ann@example.org>\nSubject: one\n"
        b"Message-ID: <1@x>\n\nFrom my experience this line is body text, not a separator.\n\n"
        b"From bob at example.org  Tue Jan  2 10:00:00 2024\nSubject: =?x-unknown?q?caf=E9?=\n"
        b"Content-Type: text/plain; charset=no-such-charset\n\ncaf\xe9 \xff\xfe bytes\n\n"
        b"From x Wed Jan  3 10:00:00 2024\n\x00\x01\x02 not a message at all\n\n"
        b"From y Thu Jan  4 10:00:00 2024\nSubject: html only\nContent-Type: text/html\n\n"
        b"<p>Hello <b>there</b></p><blockquote>quoted</blockquote>\n"
    )
    assert len(list(iter_mbox(mbox))) == 4
    msgs, counts = _read([mbox])
    assert counts.messages == 3 and counts.skipped == {"missing_headers": 1}
    assert "body text, not a separator" in msgs[0].body
    assert "caf" in msgs[1].body
    assert msgs[2].body.startswith("Hello there") and "> quoted" in msgs[2].body


def test_parse_message_never_raises() -> None:
    multipart = b"From: a\nContent-Type: multipart/mixed; boundary=z\n\n--z\n"
    for raw in (b"", b"\xff\xfe\x00", b"Subject: x\n\n", multipart):
        assert isinstance(parse_message(raw), str)


def test_headers_and_subjects() -> None:
    assert normalise_address("ann at example.org (Ann Smith)") == ("ann@example.org", "Ann Smith")
    assert normalise_address("Ann <Ann@Example.org>") == ("ann@example.org", "Ann")
    assert normalise_subject("Re: AW: [R-pkg-devel] Fwd: SV: Build  fails") == "build fails"
    assert html_to_text("<style>x{}</style><p>a&amp;b</p>") == "a&b"


def test_tables_csv_and_jsonl(tmp_path: Path) -> None:
    csv_path = tmp_path / "faq.csv"
    csv_path.write_text(
        "question,answer\nHow do I reset my password?,Use the link on the login page.\nempty,\n",
        encoding="utf-8",
    )
    jsonl = tmp_path / "chat.jsonl"
    jsonl.write_text(
        '{"messages": [{"role": "user", "content": "hi?"}, {"role": "assistant", "content": "hello"}]}\n'
        "not json\n"
        '{"messages": [{"role": "robot", "content": "x"}]}\n',
        encoding="utf-8",
    )
    counts = Counts()
    rows = list(read_table(resolve_sources([csv_path]), counts))
    assert rows == [
        [
            {"role": "user", "content": "How do I reset my password?"},
            {"role": "assistant", "content": "Use the link on the login page."},
        ]
    ]
    assert counts.skipped == {"empty_turn": 1}
    counts = Counts()
    rows = list(read_table(resolve_sources([jsonl]), counts))
    assert len(rows) == 1 and counts.skipped == {"bad_json": 1, "bad_messages": 1}


def test_bad_paths_are_usage_errors_listing_every_problem(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as exc:
        resolve_sources([tmp_path / "missing1", tmp_path / "missing2"])
    assert "missing1" in exc.value.message and "missing2" in exc.value.message and exc.value.hint
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    with pytest.raises(UsageError, match="cannot tell"):
        resolve_sources([tmp_path / "x.bin"])
    with pytest.raises(UsageError, match="unknown format"):
        resolve_sources([tmp_path / "x.bin"], "pst")


def test_a_folder_of_mbox_files_reads_each_as_mbox(shared_data: Path) -> None:
    folder = shared_data / "email" / "r-package-devel"
    sources = resolve_sources([folder])
    assert sources and all(s.format == "mbox" for s in sources)
    assert {s.path.name for s in sources} >= {"2023q4.txt", "2024q1.txt"}
