"""verify: a clean lineage passes; flipping a byte in the ledger, a blob or a dataset fails and
names the record; the model's manifest must match its head record's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freehold.ledger import verify, verify_ledger
from freehold.store import Manifest, MediaType
from freehold.testing import point_at
from tests.ledger.conftest import World, build_world


def test_clean_lineage_verifies(world: World) -> None:
    report = verify(world.store, "tuned")
    assert report.ok, report.problems
    assert report.records == 4 + world.steps + 3 + 1  # import, dataset, config, note; steps; 3 ckpts; merge
    assert report.datasets_checked == 1 and report.examples_checked == 40
    assert report.checkpoints_checked == 3 and report.checkpoints_not_checked == 0
    assert report.adapters_checked == 1 and report.runs == 1
    assert report.blobs_checked >= 5
    # The raw mailbox the dataset came from is never in the store: said so, not counted as passed.
    (source,) = report.not_checked
    assert source.kind == "source" and source.record == world.records["dataset"].number
    assert "never copied into the store" in source.reason and not report.complete
    assert report.warnings == []


def test_checkpoints_missing_from_the_store_are_listed_not_passed(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    from freehold.cli import main

    for n in (8, 16):  # the last one is also the merged model's file here
        world.store.blob_path(world.records[f"ckpt{n}"].payload["outputs"][0]["digest"]).unlink()
    report = verify(world.store, "tuned")
    assert report.ok and report.checkpoints_checked == 1 and report.checkpoints_not_checked == 2
    listed = {n.record for n in report.not_checked if n.kind == "checkpoint"}
    assert listed == {world.records[f"ckpt{n}"].number for n in (8, 16)}
    d = report.to_dict()
    assert d["checkpoints_not_checked"] == 2 and d["complete"] is False
    assert {n["record"] for n in d["not_checked"]} >= listed and all(n["reason"] for n in d["not_checked"])
    assert main(["audit", "verify", "tuned"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "checkpoints: 1 checked, 2 not checked" in out and "no longer in this store" in out
    assert "every check passed" not in out and "3 item(s) could not be checked" in out


def test_a_tuned_model_with_no_checkpoint_checked_says_so_plainly(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    from freehold.cli import main
    from freehold.ledger import MERKLE, Recorder, layer_refs, ref

    rec = Recorder(world.ledger)
    ds = world.records["dataset"]
    rec.record_config(
        "run-3",
        base=[],
        dataset=[ref("dataset", "sha256:" + ds.payload["merkle_root"], MERKLE)],
        architecture={},
        hyperparameters={},
        seed=1,
        threads=1,
    )
    ids = ds.payload["example_ids"][:2]
    rec.record_step("run-3", 1, example_ids=ids, lr=0.1, loss=1.0, weights="sha256:" + "0" * 64)
    blob = world.store.put_stream_blob(b"run-3 weights", MediaType.SAFETENSORS, {"filename": "m.safetensors"})
    world.store.commit("model", "third:latest", Manifest("model", "third:latest", {}, [blob]))
    merge = rec.record_merge(inputs=[], outputs=layer_refs(world.store.get("third").manifest), method="x", run="run-3")
    point_at(world.store, "third", merge)
    report = verify(world.store, "third")
    assert report.ok and report.runs == 1 and report.checkpoints_checked == 0
    assert any(n.kind == "checkpoint" and "no checkpoint record" in n.reason for n in report.not_checked)
    assert main(["audit", "verify", "third"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "every check passed" not in out and "no checkpoint of its training run could be checked" in out


def test_a_checkpoint_whose_tensors_are_not_its_steps_weights_is_caught(world: World) -> None:
    import torch

    from freehold.ledger import Recorder, ref
    from tests.ledger.conftest import save_tensors

    step8 = world.records["ckpt8"]
    layer = save_tensors(world.store, {"weight": torch.ones(2, 4), "bias": torch.zeros(2)}, "forged.safetensors")
    rec = Recorder(world.ledger)
    forged = rec.record_checkpoint(
        world.run,
        8,
        weights=step8.payload["weights"],
        outputs=[ref("checkpoint", layer.digest, media_type=layer.media_type)],
    )
    point_at(world.store, "tuned", rec.ledger.append("merge", dict(world.records["merge"].payload)))
    report = verify(world.store, "tuned")
    assert report.first_problem is not None and report.first_problem.record == forged.number
    assert "does not hold that step's weights" in report.first_problem.what


def _line_of(data: bytes, pos: int) -> int:
    """1-based line number holding byte ``pos`` (a newline belongs to the line it ends)."""
    return data.count(b"\n", 0, pos) + 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipping_any_ledger_byte_fails_and_names_the_record(data: st.DataObject) -> None:
    home = _small_world_home()
    path = home / "ledger" / "ledger.jsonl"
    original = path.read_bytes()
    pos = data.draw(st.integers(0, len(original) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="xor mask")
    tampered = bytearray(original)
    tampered[pos] ^= mask
    path.write_bytes(bytes(tampered))
    try:
        report = verify_ledger(home)
        assert not report.ok
        assert report.first_problem is not None
        assert report.first_problem.record == _line_of(original, pos)
    finally:
        path.write_bytes(original)


_WORLD_HOME: list[Path] = []


def _small_world_home() -> Path:
    # Built once for all hypothesis examples (the autouse home fixture is per test, not per example).
    if not _WORLD_HOME:
        import atexit
        import shutil
        import tempfile

        home = Path(tempfile.mkdtemp(prefix="freehold-tamper-"))
        atexit.register(shutil.rmtree, home, True)
        build_world(home, steps=8)
        _WORLD_HOME.append(home)
    return _WORLD_HOME[0]


def test_flipped_ledger_byte_fails_model_verify_too(world: World) -> None:
    data = bytearray(world.ledger_path.read_bytes())
    third = data.index(b"\n", data.index(b"\n", data.index(b"\n") + 1) + 1)  # end of record 3
    data[third - 5] ^= 0x01
    world.ledger_path.write_bytes(bytes(data))
    report = verify(world.store, "tuned")
    assert not report.ok and report.first_problem is not None and report.first_problem.record == 3


def _flip_blob(world: World, digest: str, offset: int = 10) -> None:
    path = world.store.blob_path(digest)
    raw = bytearray(path.read_bytes())
    raw[offset % len(raw)] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(raw))


def test_modified_weights_blob_fails_naming_the_record(world: World) -> None:
    base_weights = world.store.get("base").manifest.weights[0].digest
    _flip_blob(world, base_weights)
    report = verify(world.store, "tuned")
    assert not report.ok
    assert report.first_problem is not None and report.first_problem.record == 1  # the import record
    assert "modified" in report.first_problem.what


def test_modified_checkpoint_blob_names_the_checkpoint_record(world: World) -> None:
    ckpt = world.records["ckpt8"]
    _flip_blob(world, ckpt.payload["outputs"][0]["digest"], offset=200)
    report = verify(world.store, "tuned")
    assert report.first_problem is not None and report.first_problem.record == ckpt.number


def test_changed_training_example_is_caught(world: World) -> None:
    """Rewrite a dataset row and re-store it consistently (new blob, new manifest): the dataset
    record's Merkle root no longer matches the rows."""
    ds = world.store.get("support", "dataset")
    layer = ds.manifest.layers_of(MediaType.DATASET)[0]
    rows = [json.loads(x) for x in world.store.read_blob(layer.digest).splitlines()]
    rows[3]["messages"][1]["content"] = "a different answer"
    blob = world.store.blob_path(layer.digest)
    blob.chmod(0o644)
    blob.write_bytes("".join(json.dumps(r) + "\n" for r in rows).encode())
    report = verify(world.store, "tuned")
    assert report.first_problem is not None
    assert report.first_problem.record == world.records["dataset"].number
    problems = " ".join(p.what for p in report.problems)
    assert "modified" in problems and "row 4" in problems and "changed" in problems


def test_swapped_weights_in_manifest_are_caught(world: World) -> None:
    tuned = world.store.get("tuned")
    other = world.store.put_stream_blob(b"other weights", MediaType.SAFETENSORS, {"filename": "model.safetensors"})
    m = tuned.manifest
    world.store.commit("model", "tuned:latest", Manifest(m.kind, m.name, m.config, [other], m.source, m.lineage))
    report = verify(world.store, "tuned")
    assert report.first_problem is not None
    assert report.first_problem.record == world.records["merge"].number
    assert "not the ones this record produced" in report.first_problem.what


def test_model_without_lineage_fails_clearly(world: World) -> None:
    gguf = world.store.put_stream_blob(b"GGUF-x", MediaType.GGUF, {"filename": "x.gguf"})
    world.store.commit("model", "stray:latest", Manifest("model", "stray:latest", {}, [gguf]))
    report = verify(world.store, "stray")
    assert not report.ok and "names no ledger record" in report.problems[0].what


def test_head_missing_from_ledger_fails(world: World) -> None:
    point_at(world.store, "tuned", world.records["merge"])
    tuned = world.store.get("tuned")
    m = tuned.manifest
    lineage = {**m.lineage, "ledger_head": "sha256:" + "0" * 64}
    world.store.commit("model", "tuned:latest", Manifest(m.kind, m.name, m.config, m.layers, m.source, lineage))
    report = verify(world.store, "tuned")
    assert not report.ok and "not in the ledger" in report.problems[0].what


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_flipping_any_byte_of_any_cited_blob_fails_and_names_a_record(data: st.DataObject) -> None:
    from freehold.store import Store

    home = _small_world_home()
    store = Store(home)
    digests = sorted(
        {layer.digest for name in ("base", "tuned") for layer in store.get(name).manifest.layers}
        | {layer.digest for layer in store.get("support", "dataset").manifest.layers}
        | {
            d.name.replace("-", ":", 1)
            for d in (home / "blobs").glob("sha256-*")
            if d.stat().st_size > 1000 and d.read_bytes()[:1] != b"{"
        }
    )
    digest = data.draw(st.sampled_from(digests), label="blob")
    path = store.blob_path(digest)
    original = path.read_bytes()
    pos = data.draw(st.integers(0, len(original) - 1), label="position")
    tampered = bytearray(original)
    tampered[pos] ^= data.draw(st.integers(1, 255), label="xor mask")
    path.chmod(0o644)
    path.write_bytes(bytes(tampered))
    try:
        report = verify(store, "tuned")
        assert not report.ok
        assert report.first_problem is not None and report.first_problem.record is not None
    finally:
        path.write_bytes(original)
        store.close()


def test_a_step_using_an_example_outside_the_dataset_is_caught(world: World) -> None:
    from freehold.ledger import MERKLE, Recorder, ref

    rec = Recorder(world.ledger)
    root = world.records["dataset"].payload["merkle_root"]
    rec.record_config(
        "run-2",
        base=[],
        dataset=[ref("dataset", "sha256:" + root, MERKLE)],
        architecture={},
        hyperparameters={},
        seed=1,
        threads=1,
    )
    bad = rec.record_step("run-2", 1, example_ids=["ee" * 32], lr=0.1, loss=1.0, weights="sha256:" + "0" * 64)
    blob = world.store.put_stream_blob(b"run-2 weights", MediaType.SAFETENSORS, {"filename": "m.safetensors"})
    world.store.commit("model", "second:latest", Manifest("model", "second:latest", {}, [blob]))
    from freehold.ledger import layer_refs

    merge = rec.record_merge(inputs=[], outputs=layer_refs(world.store.get("second").manifest), method="x", run="run-2")
    point_at(world.store, "second", merge)
    report = verify(world.store, "second")
    assert report.first_problem is not None and report.first_problem.record == bad.number
    assert "not in the run's dataset" in report.first_problem.what
    # run-2 saved no checkpoint: verify says so rather than passing it
    assert any(n.kind == "checkpoint" and "no checkpoint record" in n.reason for n in report.not_checked)


def test_verify_a_dataset_by_name(world: World) -> None:
    from freehold.ledger import verify_model

    assert verify_model(world.store, "support", kind="dataset").ok


def test_a_registered_checker_checks_its_record_type(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new record type (a swarm round, say) is checked by registering one checker for it."""
    import importlib

    from freehold.ledger import Record, layer_refs, ref
    from freehold.ledger.verify import LineageCheck, Problem, RecordChecker, register_checker

    # The module (``freehold.ledger.verify`` as an attribute is ops.verify); a copy of its registry
    # so the checker registered here does not outlive the test.
    verify_module = importlib.import_module("freehold.ledger.verify")
    monkeypatch.setattr(verify_module, "CHECKERS", dict(verify_module.CHECKERS))
    merged = world.store.put_stream_blob(b"round 1 weights", MediaType.SAFETENSORS, {"filename": "m.safetensors"})
    tuned = world.store.get("tuned").manifest
    round_rec = world.ledger.append(
        "round", {"round": 1, "inputs": layer_refs(tuned, "update"), "outputs": [ref("model", merged.digest)]}
    )
    world.store.commit("model", "swarm:latest", Manifest("model", "swarm:latest", {}, [merged]))
    point_at(world.store, "swarm", round_rec)
    assert verify(world.store, "swarm").ok  # no checker yet: its blobs are rehashed, nothing more

    seen: list[tuple[int, list[str]]] = []

    def check_round(check: LineageCheck, rec: Record) -> None:
        seen.append((rec.number, sorted(check.dataset_ids)))  # what earlier checkers found is shared
        check.report.problems.append(Problem(rec.number, "round 1 aggregated an update from no known peer"))

    register_checker("round", RecordChecker(check_round))
    report = verify(world.store, "swarm")
    assert seen == [(round_rec.number, [world.records["dataset"].payload["merkle_root"]])]
    assert report.first_problem == Problem(round_rec.number, "round 1 aggregated an update from no known peer")
