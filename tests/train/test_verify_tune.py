"""'freehold audit verify' on a real tiny-model tune: every checkpoint and the merged adapter are
loaded and their weights compared with the step records; tampering with any of them, even
re-stored under a consistent digest, fails verify and names the record."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from freehold.ledger import Ledger, Record, Recorder, ref, verify
from freehold.store import MediaType, Store
from freehold.testing import point_at
from tests.train.conftest import chat_rows, make_dataset, make_tuned_home, tiny_config


@pytest.fixture(scope="module")
def tuned_home(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Path:
    """A home holding one short tiny fine-tune with three checkpoints (steps 5, 10, 12)."""
    return make_tuned_home(tmp_path_factory.mktemp("verify-tune") / "home", tiny_gguf, max_steps=12, eval_every=0)


@pytest.fixture
def home(tuned_home: Path, tmp_path: Path) -> Path:
    """A private copy of the tuned home, so a test may tamper with it."""
    return Path(shutil.copytree(tuned_home, tmp_path / "tuned-home", symlinks=True))


def _records(home: Path, type_: str) -> list[Record]:
    return [r for r in Ledger.open(home).records() if r.type == type_]


@contextmanager
def _opened(home: Path) -> Iterator[Store]:
    store = Store(home)
    try:
        yield store
    finally:
        store.close()


def _write_blob(store: Store, digest: str, data: bytes) -> None:
    path = store.blob_path(digest)
    path.chmod(0o644)
    path.write_bytes(data)


def _flip(store: Store, digest: str, offset: int) -> None:
    raw = bytearray(store.blob_path(digest).read_bytes())
    raw[offset] ^= 0x01
    _write_blob(store, digest, bytes(raw))


def test_a_real_tune_verifies_with_every_checkpoint_and_the_adapter_checked(home: Path) -> None:
    checkpoints = _records(home, "checkpoint")
    assert [c.payload["step"] for c in checkpoints] == [5, 10, 12]
    assert all(c.payload["outputs"][0]["media_type"] == MediaType.ADAPTER for c in checkpoints)
    with _opened(home) as store:
        report = verify(store, "tiny-tuned")
    assert report.ok, report.problems
    assert report.checkpoints_checked == 3 and report.checkpoints_not_checked == 0
    assert report.adapters_checked == 1 and report.adapters_not_checked == 0
    assert report.runs == 1 and report.complete and report.not_checked == [] and report.warnings == []
    d = report.to_dict()
    assert d["checkpoints_checked"] == 3 and d["adapters_checked"] == 1 and d["complete"] is True


def test_the_cli_says_what_it_checked(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from freehold.cli import main

    monkeypatch.setenv("FREEHOLD_HOME", str(home))
    assert main(["audit", "verify", "tiny-tuned"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "checkpoints: 3 checked, 0 not checked; adapters: 1 checked, 0 not checked" in out
    assert "verified: every check passed" in out and "warning" not in out


def test_a_flipped_byte_in_a_checkpoint_blob_names_its_record(home: Path) -> None:
    middle = _records(home, "checkpoint")[1]
    digest = middle.payload["outputs"][0]["digest"]
    with _opened(home) as store:
        _flip(store, digest, offset=-5)  # inside the tensor data: the file still parses
        report = verify(store, "tiny-tuned")
    assert not report.ok and report.first_problem is not None
    assert report.first_problem.record == middle.number and "modified" in report.first_problem.what


def test_a_flipped_byte_in_the_adapter_names_the_records_that_cite_it(home: Path) -> None:
    last, merge = _records(home, "checkpoint")[-1], _records(home, "merge")[0]
    with _opened(home) as store:
        adapter = store.get("tiny-tuned").manifest.layer(MediaType.ADAPTER)
        assert adapter is not None and adapter.digest == last.payload["outputs"][0]["digest"]
        _flip(store, adapter.digest, offset=-5)
        report = verify(store, "tiny-tuned")
    assert not report.ok
    cited_by = {p.record for p in report.problems if "modified" in p.what}
    assert {last.number, merge.number} <= cited_by  # the checkpoint that saved it and the merge that used it


def _tampered_adapter(store: Store, digest: str) -> str:
    """The checkpoint's tensors with one value changed, stored as a new, self-consistent blob."""
    from safetensors.torch import load_file, save

    tensors = load_file(str(store.blob_path(digest)))
    name = sorted(k for k in tensors if "lora_B" in k)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 0.25
    return store.put_stream_blob(save(tensors, metadata={"format": "pt"}), MediaType.ADAPTER).digest


def _re_head(store: Store) -> None:
    """Append a copy of the model's head record and point the manifest at it, so records appended
    before it are part of the model's lineage."""
    records = Ledger.open(store.home).records()
    head_hash = store.get("tiny-tuned").manifest.lineage["ledger_head"]
    head = next(r for r in records if r.hash == head_hash)
    point_at(store, "tiny-tuned", Ledger.open(store.home).append(head.type, dict(head.payload)))


def test_changed_tensors_under_a_consistent_digest_are_caught(home: Path) -> None:
    """A checkpoint record (signed by a trusted key) citing a blob whose digest is right but whose
    tensors are not the weights the step recorded: the tensors are hashed, not only the file."""
    middle = _records(home, "checkpoint")[1]
    out = middle.payload["outputs"][0]
    with _opened(home) as store:
        forged = Recorder(Ledger.open(home)).record_checkpoint(
            middle.payload["run"],
            middle.payload["step"],
            weights=middle.payload["weights"],
            outputs=[ref("adapter", _tampered_adapter(store, out["digest"]), media_type=MediaType.ADAPTER)],
        )
        _re_head(store)
        report = verify(store, "tiny-tuned")
    assert not report.ok and report.first_problem is not None
    assert report.first_problem.record == forged.number
    assert "does not hold that step's weights" in report.first_problem.what
    assert "modified" not in " ".join(p.what for p in report.problems)  # every blob matches its digest


def test_a_swapped_adapter_layer_is_caught(home: Path) -> None:
    from freehold.store import Manifest

    with _opened(home) as store:
        entry = store.get("tiny-tuned")
        m = entry.manifest
        old = m.layer(MediaType.ADAPTER)
        assert old is not None
        new = _tampered_adapter(store, old.digest)
        layers = [
            type(old)(old.media_type, new, store.blob_path(new).stat().st_size, old.annotations) if la == old else la
            for la in m.layers
        ]
        store.commit("model", m.name, Manifest(m.kind, m.name, m.config, layers, m.source, m.lineage))
        report = verify(store, "tiny-tuned")
    assert not report.ok and report.first_problem is not None
    assert "adapter" in report.first_problem.what and "cited by no record" in report.first_problem.what


def test_a_checkpoint_record_without_an_adapter_name_still_verifies(home: Path) -> None:
    """Checkpoint records written before the adapter name was recorded (PEFT's "default")."""
    middle = _records(home, "checkpoint")[1]
    out: dict[str, Any] = {k: v for k, v in middle.payload["outputs"][0].items() if k != "adapter_name"}
    with _opened(home) as store:
        Recorder(Ledger.open(home)).record_checkpoint(
            middle.payload["run"], middle.payload["step"], weights=middle.payload["weights"], outputs=[out]
        )
        _re_head(store)
        report = verify(store, "tiny-tuned")
    assert report.ok, report.problems
    assert report.checkpoints_checked == 4


def test_a_checkpoint_removed_from_the_store_is_not_checked_and_says_why(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from freehold.cli import main

    first = _records(home, "checkpoint")[0]
    with _opened(home) as store:
        store.blob_path(first.payload["outputs"][0]["digest"]).unlink()
        report = verify(store, "tiny-tuned")
    assert report.ok and not report.complete
    assert report.checkpoints_checked == 2 and report.checkpoints_not_checked == 1
    (item,) = report.not_checked
    assert item.record == first.number and "removed" in item.reason
    assert report.to_dict()["not_checked"][0]["record"] == first.number
    monkeypatch.setenv("FREEHOLD_HOME", str(home))
    assert main(["audit", "verify", "tiny-tuned"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "checkpoints: 2 checked, 1 not checked" in out and f"not checked: record {first.number}" in out
    assert "every check passed" not in out and "1 item(s) could not be checked" in out


def test_a_checkpoint_that_would_not_verify_stops_the_run(
    store: Store, tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the adapter file's tensor names stopped mapping onto the model's parameters (a PEFT
    change), the trainer says so at the first checkpoint rather than recording it."""
    from freehold.errors import TrainingError
    from freehold.home import import_model
    from freehold.train import checkpoint, tune

    import_model(store, tiny_gguf, "tiny")
    make_dataset(store, "colours", {"train": chat_rows(16)}, tmp_path / "ds")
    monkeypatch.setattr(checkpoint, "parameter_tensors", lambda tensors, adapter_name="default": dict(tensors))
    with pytest.raises(TrainingError, match="do not hash to the trained weights"):
        tune(tiny_config(max_steps=5, eval_every=0), store=store)
    assert _records(store.home, "checkpoint") == []
