"""The audit, key and lineage commands in process: output, exit codes, fix-it errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freehold.cli import main
from tests.ledger.conftest import World


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_key_show_export_trust(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "key", "show", "--json")
    me = json.loads(out)
    assert code == 0 and me["key_id"].startswith("ed25519:") and me["fingerprint"].startswith("SHA256:")
    code, out, _ = run(capsys, "key", "export")
    assert code == 0 and out.startswith("-----BEGIN PUBLIC KEY-----")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "alice.pem").write_bytes(pem)
    code, out, _ = run(capsys, "key", "trust", str(tmp_path / "alice.pem"), "--name", "alice")
    assert code == 0 and "trusted ed25519:" in out
    code, out, _ = run(capsys, "key", "list", "--json")
    names = {v["name"] for v in json.loads(out).values()}
    assert names == {"alice", "this machine"}
    code, _, err = run(capsys, "key", "trust", "bm90IGEga2V5", "--name", "x")
    assert code == 2 and "not an Ed25519 public key" in err and "Traceback" not in err


def test_verify_ok_then_tampered(capsys: pytest.CaptureFixture[str], world: World) -> None:
    code, out, _ = run(capsys, "audit", "verify", "tuned")
    assert code == 0 and "verified" in out
    data = world.ledger_path.read_bytes()
    world.ledger_path.write_bytes(data.replace(b'"lr":0.5,"run"', b'"lr":0.7,"run"', 1))  # record 5, the first step
    code, out, err = run(capsys, "audit", "verify", "tuned")
    err = " ".join(err.split())  # undo rich's wrapping
    assert code == 3
    assert "verification failed at record 5" in err and "invalid signature" in err and "hint:" in err
    code, out, _ = run(capsys, "audit", "verify", "tuned", "--json")
    assert code == 3 and json.loads(out)["first_problem"]["record"] == 5


def test_verify_unknown_model_is_a_clean_error(capsys: pytest.CaptureFixture[str], world: World) -> None:
    code, _, err = run(capsys, "audit", "verify", "nope")
    assert code == 1 and "not found" in err and "Traceback" not in err


def test_lineage_text_json_dot(capsys: pytest.CaptureFixture[str], world: World) -> None:
    code, out, _ = run(capsys, "lineage", "tuned")
    assert code == 0
    for part in (
        "merge (toy-merge)",
        "import base:latest",
        "dataset support:latest",
        "24 steps (1..24)",
        "note: plain SGD",
    ):
        assert part in out
    code, out, _ = run(capsys, "lineage", "tuned", "--json")
    doc = json.loads(out)
    assert doc["head"] == world.records["merge"].hash
    assert {n["type"] for n in doc["nodes"]} == {"import", "dataset", "config", "checkpoint", "merge"}
    assert doc["runs"][0]["steps"] == 24
    code, out, _ = run(capsys, "lineage", "tuned", "--dot")
    assert out.startswith("digraph lineage {") and "->" in out and out.rstrip().endswith("}")


def test_note_prove_replay_attest_log(capsys: pytest.CaptureFixture[str], world: World, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "audit", "note", "tuned", "why we chose lr=0.5")
    assert code == 0 and "noted as record" in out
    code, out, _ = run(capsys, "lineage", "tuned")
    assert "why we chose lr=0.5" in out
    eid = world.rows[4]["id"]
    code, out, _ = run(capsys, "audit", "prove", "tuned", eid, "--json")
    assert code == 0 and json.loads(out)["verified"] is True
    code, out, _ = run(capsys, "audit", "prove", "tuned", eid)
    assert "proof verified" in out and "merkle root" in out
    f = tmp_path / "ex.jsonl"
    f.write_text(json.dumps({"messages": world.rows[4]["messages"]}) + "\n" + "11" * 32 + "\n")
    code, out, _ = run(capsys, "audit", "prove", "tuned", "--file", str(f))
    assert code == 0 and "1 of 2 example(s) were in the training data" in out
    code, out, _ = run(capsys, "audit", "replay", "tuned", "--sample", "10%")
    assert code == 0 and "match bit for bit" in out
    code, out, _ = run(capsys, "audit", "replay", "tuned", "--steps", "5:6", "--json")
    assert code == 0 and json.loads(out)[0]["checked"] == 6
    code, _, err = run(capsys, "audit", "replay", "tuned", "--steps", "99:100")
    assert code == 2 and "no step in 99:100" in err
    code, out, _ = run(capsys, "audit", "attest", "tuned", "-o", str(tmp_path / "att.jsonl"))
    envelopes = [json.loads(x) for x in (tmp_path / "att.jsonl").read_text().splitlines()]
    assert code == 0 and len(envelopes) == 2 and envelopes[0]["payloadType"] == "application/vnd.in-toto+json"
    code, out, _ = run(capsys, "audit", "log", "-n", "3")
    assert code == 0 and len(out.strip().splitlines()) == 3


def test_repair_command(capsys: pytest.CaptureFixture[str], world: World) -> None:
    with world.ledger_path.open("ab") as f:
        f.write(b'{"half')
    code, _, err = run(capsys, "audit", "verify", "tuned")
    assert code == 3 and "torn" in err
    code, out, _ = run(capsys, "audit", "repair")
    assert code == 0 and "set 6 torn bytes aside" in out
    code, out, _ = run(capsys, "audit", "verify", "tuned")
    assert code == 0


def test_third_party_verifies_with_only_the_public_key(
    capsys: pytest.CaptureFixture[str], world: World, tmp_path: Path
) -> None:
    run(capsys, "key", "export", "-o", str(tmp_path / "owner.pem"))
    code, out, _ = run(capsys, "audit", "verify", "tuned", "--key", str(tmp_path / "owner.pem"))
    assert code == 0 and "verified" in out
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "stranger.pem").write_bytes(stranger)
    code, _, err = run(capsys, "audit", "verify", "tuned", "--key", str(tmp_path / "stranger.pem"))
    assert code == 3 and "not a trusted key" in " ".join(err.split())
