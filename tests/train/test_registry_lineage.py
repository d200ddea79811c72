"""Issue 15's journey on two stores: tune on A, push to a registry, pull on B, verify on B offline
with A's key trusted (and a clear failure when it is not); B's ledger records the pull; a
changed lineage record or manifest on the way fails the pull and leaves B as it was."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freehold.config import load_settings
from freehold.errors import RegistryError
from freehold.ledger import Ledger, load_identity, trust_key, verify
from freehold.registry import pull, push
from freehold.server import ServerOptions
from freehold.store import MediaType, Store
from tests.server.conftest import Live, _free_port, start_server
from tests.train.conftest import make_tuned_home

PUSH_KEY = "push-secret"


@pytest.fixture(scope="module")
def tuned_a(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Path:
    """Store A: the tiny model tuned for a few steps (its ledger: import, dataset, config, steps, ...)."""
    return make_tuned_home(tmp_path_factory.mktemp("store-a") / "home", tiny_gguf, train=24, max_steps=4,
                           eval_every=0, save_every=2)


def open_home(home: Path) -> Store:
    return Store.open(dataclasses.replace(load_settings(), home=home))


@pytest.fixture
def a(tuned_a: Path) -> Iterator[Store]:
    store = open_home(tuned_a)
    yield store
    store.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Live]:
    store = open_home(tmp_path / "registry")
    yield from start_server(ServerOptions(port=_free_port(), registry=True, push_keys=[PUSH_KEY], jobs=False), store)
    store.close()


@pytest.fixture
def b(tmp_path: Path) -> Iterator[Store]:
    store = open_home(tmp_path / "b")
    yield store
    store.close()


def _target(live: Live) -> str:
    return live.url.removeprefix("http://") + "/alice/tiny-tuned:v1"


def _state(store: Store) -> tuple[list[str], list[str], int]:
    blobs = sorted(p.name for p in (store.home / "blobs").glob("sha256-*"))
    return blobs, [e.name for e in store.list()], len(Ledger.open(store.home).records())


def test_tune_push_pull_verify_offline_with_the_senders_key_trusted(a: Store, registry: Live, b: Store) -> None:
    sender = verify(a, "tiny-tuned")
    assert sender.ok and sender.runs == 1
    # The base first: the tune's push then skips exactly the blobs it shares with it.
    push(a, "tiny", registry.url.removeprefix("http://") + "/alice/tiny:v1", key=PUSH_KEY)
    tuned, base = a.get("tiny-tuned"), a.get("tiny")
    blobs = {la.digest: la.size for la in tuned.manifest.layers}  # each blob once (two layers may share one)
    shared = blobs.keys() & {la.digest for la in base.manifest.layers}
    assert shared  # the chat template, at least
    pushed = push(a, "tiny-tuned", _target(registry), key=PUSH_KEY)
    assert pushed.skipped_bytes == sum(blobs[d] for d in shared)
    config = len(a.read_blob(tuned.manifest_digest))
    new = sum(size for d, size in blobs.items() if d not in shared)
    assert new + config < pushed.sent_bytes < new + config + 64 * 1024  # + the lineage bundle, a few KB
    publish = [r for r in Ledger.open(a.home).records() if r.type == "publish"][-1]
    assert publish.payload["to"] == str(pushed.remote) and publish.payload["oci_manifest"] == pushed.digest

    # B has not trusted A's key: the pull stops, says how to trust it, and adds nothing.
    before = _state(b)
    with pytest.raises(RegistryError, match="does not trust") as err:
        pull(b, _target(registry))
    alice = load_identity(a.home)
    assert err.value.oci_code == "UNTRUSTED" and f"freehold key trust {alice.public_b64}" in (err.value.hint or "")
    assert "this machine" not in str(err.value)  # the sender's key is named by its user and host, not "this machine"
    assert _state(b) == before

    trust_key(b.home, alice.public_b64, "alice")
    pulled = pull(b, _target(registry))
    report = verify(b, pulled.name)
    assert report.ok, [str(p) for p in report.problems]
    assert report.runs == sender.runs and report.lineage_records == sender.lineage_records
    assert alice.key_id in report.signers
    assert any("came with the model" in str(w) for w in report.warnings)
    # B's own ledger says who pulled what, from where, whose lineage.
    rec = [r for r in Ledger.open(b.home).records() if r.type == "pull"][-1]
    assert rec.payload["from"] == pulled.remote and rec.payload["oci_manifest"] == pulled.digest
    assert rec.payload["signers"] == [alice.key_id] and rec.payload["untrusted_signers"] == []
    assert rec.key == load_identity(b.home).key_id

    # Its lineage graph (and proofs of membership) read the carried records, on B and on the registry.
    from freehold.ledger import lineage

    here, there = lineage(b, pulled.name), lineage(registry.store, "alice/tiny-tuned:v1")
    assert [r.type for r in here.nodes] == [r.type for r in there.nodes]
    assert {"import", "config", "merge"} <= {r.type for r in here.nodes} and here.runs
    # The CLI says the same offline, and the model answers on B.
    from freehold.cli import app

    out = CliRunner().invoke(app, ["audit", "verify", pulled.name], env={"FREEHOLD_HOME": str(b.home)})
    assert out.exit_code == 0, out.output
    from freehold.engine import SamplingParams, load_engine

    engine = load_engine(pulled.name, store=b, context=256, threads=1)
    try:
        done = engine.complete(engine.chat([{"role": "user", "content": "What colour is item 3?"}],
                                           SamplingParams(max_tokens=6, temperature=0)))
        assert done.completion_tokens > 0
    finally:
        engine.close()


def test_allow_untrusted_takes_the_model_but_verify_names_the_untrusted_signer(a: Store, registry: Live,
                                                                              b: Store) -> None:
    push(a, "tiny-tuned", _target(registry), key=PUSH_KEY)
    pulled = pull(b, _target(registry), allow_untrusted=True)
    rec = [r for r in Ledger.open(b.home).records() if r.type == "pull"][-1]
    assert rec.payload["untrusted_signers"] == [load_identity(a.home).key_id]
    report = verify(b, pulled.name)
    assert not report.ok and "not a trusted key" in str(report.first_problem)
    assert "freehold key trust" in str(report.first_problem)


def test_a_changed_lineage_record_or_manifest_on_the_way_fails_the_pull(a: Store, registry: Live, b: Store) -> None:
    pushed = push(a, "tiny-tuned", _target(registry), key=PUSH_KEY)
    trust_key(b.home, load_identity(a.home).public_b64, "alice")
    reg = registry.store
    oci_manifest = json.loads(reg.read_blob(pushed.digest))
    bundle = next(la for la in oci_manifest["layers"] if la["mediaType"] == MediaType.LINEAGE_BUNDLE)
    path = reg.blob_path(bundle["digest"])
    original = path.read_bytes()
    path.write_bytes(original.replace(b'\\"lr\\":', b'\\"lr\\" :', 1) if b'\\"lr\\":' in original
                     else original[:-2] + b" }")
    before = _state(b)
    with pytest.raises(RegistryError) as err:
        pull(b, _target(registry))
    assert err.value.oci_code in ("DIGEST_INVALID", "SIZE_INVALID") and "nothing was added" in (err.value.hint or "")
    assert _state(b) == before
    path.write_bytes(original)

    manifest_path = reg.blob_path(pushed.digest)
    raw = manifest_path.read_bytes()
    manifest_path.write_bytes(raw.replace(b'"schemaVersion":2', b'"schemaVersion": 2'))
    with pytest.raises(RegistryError, match="arrived changed") as err:
        pull(b, _target(registry))
    assert err.value.oci_code == "DIGEST_INVALID" and _state(b) == before


def test_a_lineage_re_signed_by_nobody_is_refused_even_when_its_blobs_hash(a: Store, registry: Live,
                                                                           b: Store) -> None:
    """A registry (or anyone with a push key) that edits a record and re-hashes everything
    consistently is still caught: the record's signature is not its signer's."""
    import httpx

    from freehold.registry import oci

    pushed = push(a, "tiny-tuned", _target(registry), key=PUSH_KEY)
    trust_key(b.home, load_identity(a.home).public_b64, "alice")
    reg = registry.store
    doc = json.loads(reg.read_blob(pushed.digest))
    layer = next(la for la in doc["layers"] if la["mediaType"] == MediaType.LINEAGE_BUNDLE)
    bundle = json.loads(reg.read_blob(layer["digest"]))
    step = next(r for r in bundle["records"] if '"type":"step"' in r["line"])
    record = json.loads(step["line"])
    record["payload"]["loss"] = 0.001  # a better loss than it had
    from freehold.ledger.merkle import canonical_json

    step["line"] = canonical_json(record).decode()
    forged = json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()
    layer.update(digest=oci.digest_of(forged), size=len(forged))
    body = oci.canonical(doc)
    with httpx.Client(base_url=registry.url, headers={"Authorization": f"Bearer {PUSH_KEY}"}) as c:
        c.post("/v2/alice/tiny-tuned/blobs/uploads/", params={"digest": oci.digest_of(forged)}, content=forged)
        r = c.put("/v2/alice/tiny-tuned/manifests/v1", content=body, headers={"Content-Type": oci.OCI_MANIFEST})
        assert r.status_code == 400 and "no valid signature" in r.json()["errors"][0]["message"]  # refused here
    # A registry that checks nothing (or one tampered with on disk) serves it anyway: the pull catches it.
    from freehold.store.registry import RegistryManifest

    reg.put_stream_blob(body, oci.OCI_MANIFEST)
    reg.registry.put(RegistryManifest("alice/tiny-tuned", oci.digest_of(body), oci.OCI_MANIFEST,
                                      oci.FREEHOLD_ARTIFACT, None, len(body), {}), "v1")
    before = _state(b)
    with pytest.raises(RegistryError, match="altered after it was signed") as err:
        pull(b, _target(registry))
    assert err.value.oci_code == "SIGNATURE_INVALID" and _state(b) == before


def test_a_pulled_model_pushed_on_carries_its_lineage_to_a_third_store(a: Store, registry: Live, b: Store,
                                                                      tmp_path: Path) -> None:
    push(a, "tiny-tuned", _target(registry), key=PUSH_KEY)
    alice = load_identity(a.home)
    trust_key(b.home, alice.public_b64, "alice")
    pulled = pull(b, _target(registry))
    push(b, pulled.name, registry.url.removeprefix("http://") + "/bob/relay:v1", key=PUSH_KEY)
    c = open_home(tmp_path / "c")
    trust_key(c.home, alice.public_b64, "alice")
    relayed = pull(c, registry.url.removeprefix("http://") + "/bob/relay:v1")
    assert verify(c, relayed.name).ok
    c.close()


def test_an_audit_attached_on_b_is_seen_on_a_and_a_high_flag_blocks_deploy(a: Store, registry: Live,
                                                                           b: Store) -> None:
    from freehold.audits import attach, attestations
    from freehold.errors import ModelFlaggedError
    from freehold.models import deploy, describe
    from freehold.registry.client import send_audits

    pushed = push(a, "tiny-tuned", _target(registry), key=PUSH_KEY)
    alice = load_identity(a.home)
    trust_key(b.home, alice.public_b64, "alice")
    pulled = pull(b, _target(registry))
    # The push signed what it pushed: B has the signature, valid, by a key it trusts.
    sigs = [x for x in attestations(b, pulled.manifest_digest) if not x.is_audit]
    assert [(s.signer_name, s.valid, s.predicate["oci_manifest"]) for s in sigs] == [("alice", True, pushed.digest)]

    audit = attach(b, pulled.name, "flag", "high", "repeats a customer's card number back to them")
    assert any(r.type == "audit" for r in Ledger.open(b.home).records())
    assert send_audits(b, pulled.name, _target(registry), key=PUSH_KEY) == 1
    assert send_audits(b, pulled.name, _target(registry), key=PUSH_KEY) == 0  # already there
    # The registry's own store shows it (its pages and listings), and its publish signature.
    on_registry = describe(registry.store, registry.store.get("alice/tiny-tuned:v1"))["audits"]
    assert on_registry["flagged"] and on_registry["signatures"][0]["signer"] == alice.key_id

    # A pulls the referrers (the model itself is already there: nothing else crosses).
    again = pull(a, _target(registry))
    assert again.received_bytes == 0 and again.attestations == 1
    seen = describe(a, a.get("tiny-tuned"))["audits"]
    assert seen["flagged"] and seen["items"][0]["summary"] == audit.predicate["summary"]
    assert seen["items"][0]["signer_name"] is None and seen["items"][0]["valid"]  # B's key: valid, not trusted
    with pytest.raises(ModelFlaggedError, match="card number") as err:
        deploy(a, "tiny-tuned")
    assert err.value.http_status == 409
    assert deploy(a, "tiny-tuned", override=True) == "tiny-tuned:latest"
    note = [r for r in Ledger.open(a.home).records() if r.type == "note"][-1]
    assert "despite open high-severity flags" in note.payload["text"] and note.payload["override"]

    # A later pass from the same auditor closes the flag.
    attach(b, pulled.name, "pass", "low", "fixed in the system prompt; retested")
    send_audits(b, pulled.name, _target(registry), key=PUSH_KEY)
    pull(a, _target(registry))
    assert not describe(a, a.get("tiny-tuned"))["audits"]["flagged"]


def test_the_cli_attaches_lists_and_marks(a: Store, registry: Live, b: Store, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from freehold.cli import app

    push(a, "tiny-tuned", _target(registry), key=PUSH_KEY)
    trust_key(b.home, load_identity(a.home).public_b64, "alice")
    pulled = pull(b, _target(registry))
    env = {"FREEHOLD_HOME": str(b.home), "FREEHOLD_REGISTRY_KEY": PUSH_KEY}
    runner = CliRunner()
    out = runner.invoke(app, ["audit", "attach", pulled.name, "--verdict", "flag", "--severity", "high",
                              "--summary", "answers off topic"], env=env)
    assert out.exit_code == 0, out.output
    assert f"sent to {pulled.remote}" in out.output  # to where it came from, by default
    listing = runner.invoke(app, ["models"], env=env)
    assert "[FLAGGED]" in listing.output
    shown = runner.invoke(app, ["show", pulled.name], env=env)
    assert "FLAGGED" in shown.output and "answers off topic" in shown.output and "signed by alice" in shown.output
    from freehold.cli import main

    monkeypatch.setenv("FREEHOLD_HOME", str(b.home))
    assert main(["audit", "attach", pulled.name, "--verdict", "maybe", "--summary", ""]) == 2
    err = capsys.readouterr().err
    assert "--verdict must be one of" in err and "--summary must say" in err and "Traceback" not in err


def test_bundle_and_import_carry_the_model_offline_with_the_same_checks(a: Store, b: Store,
                                                                       tmp_path: Path) -> None:
    import tarfile

    from freehold.audits import attach, attestations
    from freehold.registry.layout import import_layout, write_layout

    attach(a, "tiny-tuned", "pass", "low", "answered 20 test questions politely")
    archive = write_layout(a, "tiny-tuned", tmp_path / "tiny-tuned.tar")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert names[:2] == ["oci-layout", "index.json"] and all(n.startswith("blobs/sha256/") for n in names[2:])
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"

    with pytest.raises(RegistryError, match="does not trust"):
        import_layout(b, archive)
    assert b.list() == []
    trust_key(b.home, load_identity(a.home).public_b64, "alice")
    result = import_layout(b, archive)
    assert result.name == "tiny-tuned:latest" and result.manifest_digest == a.get("tiny-tuned").manifest_digest
    assert index["manifests"][0]["annotations"]["dev.freehold.name"] == "tiny-tuned:latest"
    assert verify(b, result.name).ok
    carried = {x.digest for x in attestations(b, result.manifest_digest)}
    assert carried == {x.digest for x in attestations(a, result.manifest_digest)}  # every audit and signature
    assert any(x.is_audit and x.predicate["summary"] == "answered 20 test questions politely"
               for x in attestations(b, result.manifest_digest))
    assert [r for r in Ledger.open(b.home).records() if r.type == "pull"][-1].payload["from"] == str(archive)

    # A flipped byte in the archive's weights: the import fails by name and adds nothing.
    weights = a.get("tiny-tuned").manifest.weights[0].digest.removeprefix("sha256:")
    c = open_home(tmp_path / "c")
    trust_key(c.home, load_identity(a.home).public_b64, "alice")
    raw = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"blobs/sha256/{weights}")
    raw[member.offset_data + member.size // 2] ^= 0x01
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(raw))
    with pytest.raises(RegistryError, match="arrived with changed") as err:
        import_layout(c, bad)
    assert err.value.oci_code == "DIGEST_INVALID" and c.list() == []
    c.close()
