"""Interoperable exports: in-toto/SLSA statements in DSSE envelopes, OpenSSF model-signing."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from freehold.errors import VerificationError
from freehold.ledger.attest import (
    FREEHOLD_LINEAGE,
    SLSA_PROVENANCE,
    lineage_statement,
    provenance_statement,
    sign_envelope,
    sign_model_directory,
    verify_envelope,
    verify_model_directory,
)
from tests.ledger.conftest import World


def test_provenance_statement_validates_with_in_toto_attestation(world: World) -> None:
    pytest.importorskip("in_toto_attestation")
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    doc = provenance_statement(world.store, "tuned")
    assert doc["predicateType"] == SLSA_PROVENANCE
    stmt = Statement.copy_from_pb(json_format.ParseDict(doc, statement_pb2.Statement()))
    stmt.validate()  # raises on a malformed statement
    # the predicate parses as SLSA Provenance v1 (unknown fields would raise)
    prov = json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
    deps = {d.digest["sha256"] for d in prov.build_definition.resolved_dependencies}
    assert world.store.get("base").manifest.weights[0].digest[7:] in deps
    assert world.records["dataset"].payload["merkle_root"] in deps
    tuned = world.store.get("tuned").manifest.weights[0].digest[7:]
    assert [s["digest"]["sha256"] for s in doc["subject"]] == [tuned]
    assert prov.run_details.byproducts[0].digest["sha256"] == world.records["merge"].hash[7:]
    lin = lineage_statement(world.store, "tuned")
    assert lin["predicateType"] == FREEHOLD_LINEAGE and lin["predicate"]["head"] == world.records["merge"].hash


def test_dsse_envelope_signs_and_rejects_tampering(world: World) -> None:
    env = sign_envelope(provenance_statement(world.store, "tuned"), world.home)
    assert verify_envelope(env, world.home)["predicateType"] == SLSA_PROVENANCE
    body = json.loads(base64.b64decode(env["payload"]))
    body["subject"][0]["digest"]["sha256"] = "0" * 64
    forged = {**env, "payload": base64.b64encode(json.dumps(body).encode()).decode()}
    with pytest.raises(VerificationError, match="trusted key"):
        verify_envelope(forged, world.home)


def _model_signing_cli() -> list[str]:
    exe = Path(sys.executable).with_name("model_signing")
    if exe.exists():
        return [str(exe)]
    if shutil.which("model_signing"):
        return ["model_signing"]
    pytest.skip("model-signing is not installed")


def test_model_signing_cli_accepts_our_signature_and_rejects_a_modified_file(world: World, tmp_path: Path) -> None:
    cli = _model_signing_cli()
    model_dir = tmp_path / "acme-export"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(
        world.store.read_blob(world.store.get("tuned").manifest.weights[0].digest)
    )
    (model_dir / "config.json").write_text('{"architectures": ["Toy"]}')
    sig, pub = sign_model_directory(model_dir, world.home)
    ok = subprocess.run(
        [*cli, "verify", "key", str(model_dir), "--signature", str(sig), "--public_key", str(pub)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    verify_model_directory(model_dir, sig, pub)
    (model_dir / "config.json").write_text('{"architectures": ["Evil"]}')
    bad = subprocess.run(
        [*cli, "verify", "key", str(model_dir), "--signature", str(sig), "--public_key", str(pub)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0
    with pytest.raises(VerificationError):
        verify_model_directory(model_dir, sig, pub)
