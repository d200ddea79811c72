"""The hash chain: append, read back, signatures, keys, torn tails, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from freehold.errors import LedgerError
from freehold.ledger import Ledger, Recorder, trust_key, verify_ledger
from freehold.ledger.keys import Identity, load_identity
from freehold.ledger.merkle import canonical_json


def test_append_links_signs_and_reads_back(freehold_home: Path) -> None:
    ledger = Ledger.open(freehold_home)
    a = ledger.append("note", {"text": "first"})
    b = ledger.append("note", {"text": "second", "n": 2})
    records = ledger.records()
    assert [r.hash for r in records] == [a.hash, b.hash]
    assert records[0].prev is None and records[1].prev == a.hash
    assert records[1].seq == 2 and records[1].payload == {"text": "second", "n": 2}
    # each line is the canonical JSON of the record, so its hash is the next record's prev
    line = ledger.path.read_bytes().splitlines()[0]
    assert line == canonical_json(json.loads(line))
    report = verify_ledger(freehold_home)
    assert report.ok and report.records == 2


def test_key_is_created_private_and_stable(freehold_home: Path) -> None:
    ident = load_identity(freehold_home)
    assert (ident.path.stat().st_mode & 0o777) == 0o600
    assert load_identity(freehold_home).key_id == ident.key_id
    os.chmod(ident.path, 0o644)
    with pytest.raises(LedgerError, match="readable by others"):
        load_identity(freehold_home)


def test_records_by_an_untrusted_key_fail_until_trusted(freehold_home: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Identity(Ed25519PrivateKey.generate(), tmp_path / "other.pem")
    Ledger.open(freehold_home).append("note", {"text": "mine"})
    Ledger(freehold_home, identity=other).append("note", {"text": "theirs"})
    report = verify_ledger(freehold_home)
    assert not report.ok
    assert report.first_problem is not None and report.first_problem.record == 2
    assert "not a trusted key" in report.first_problem.what
    trust_key(freehold_home, other.public_pem(), "a colleague")
    assert verify_ledger(freehold_home).ok


def test_payload_must_be_json(freehold_home: Path) -> None:
    with pytest.raises(LedgerError, match="not JSON-serialisable"):
        Ledger.open(freehold_home).append("note", {"x": float("nan")})
    with pytest.raises(LedgerError, match="needs some text"):
        Recorder(Ledger.open(freehold_home)).record_note("  ")


def test_torn_tail_is_reported_blocks_appends_and_is_repaired(freehold_home: Path) -> None:
    ledger = Ledger.open(freehold_home)
    ledger.append("note", {"text": "whole"})
    with ledger.path.open("ab") as f:  # a crash half way through writing the second record
        f.write(b'{"key":"ed25519:00","payload":{"te')
    report = verify_ledger(freehold_home)
    assert not report.ok
    assert report.first_problem is not None and report.first_problem.record == 2
    assert "torn" in report.first_problem.what
    with pytest.raises(LedgerError, match="torn"):
        Ledger.open(freehold_home).append("note", {"text": "after the crash"})
    fixed = Ledger.open(freehold_home).repair()
    assert fixed is not None and fixed.type == "repair" and fixed.payload["torn_bytes"] == 34
    assert (ledger.dir / fixed.payload["set_aside_as"]).read_bytes().startswith(b'{"key"')
    assert verify_ledger(freehold_home).ok
    assert Ledger.open(freehold_home).repair() is None


def _writer(home: str, who: int, n: int) -> None:
    ledger = Ledger.open(Path(home))
    for i in range(n):
        ledger.append("note", {"who": who, "i": i})


def test_two_processes_appending_at_once_are_serialised(freehold_home: Path) -> None:
    load_identity(freehold_home)  # create the key once, before the writers race
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(freehold_home), w, 40)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    records = Ledger.open(freehold_home).records()
    assert len(records) == 80
    assert [r.seq for r in records] == list(range(1, 81))
    assert verify_ledger(freehold_home).ok
    for who in (1, 2):  # each writer's own records stay in its order
        assert [r.payload["i"] for r in records if r.payload["who"] == who] == list(range(40))


def test_a_second_ledger_object_sees_the_first_ones_appends(freehold_home: Path) -> None:
    one, two = Ledger.open(freehold_home), Ledger.open(freehold_home)
    one.append("note", {"text": "a"})
    two.append("note", {"text": "b"})
    one.append("note", {"text": "c"})
    assert verify_ledger(freehold_home).ok
