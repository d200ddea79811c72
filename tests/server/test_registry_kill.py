"""A pull and a push killed with SIGKILL mid-transfer resume and finish (slow: a generated 75 MB
model, separate `freehold` processes over loopback)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from freehold.config import load_settings
from freehold.server import ServerOptions
from freehold.store import Store
from tests.server.conftest import Live, _free_port, start_server

pytestmark = pytest.mark.slow
FREEHOLD = [str(Path(sys.executable).parent / "freehold")]
KEY = "push-secret"


def _store(home: Path) -> Store:
    return Store.open(dataclasses.replace(load_settings(), home=home))


@pytest.fixture(scope="module")
def big_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 75 MB llama GGUF (random weights): big enough to be killed midway over loopback."""
    from freehold.testing import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("big") / "big.gguf", n_layers=2, dim=1024, ffn=2048)


@pytest.fixture
def registry(tmp_path: Path, big_gguf: Path) -> Iterator[Live]:
    from freehold.home import import_model

    store = _store(tmp_path / "registry")
    import_model(store, big_gguf, "big")
    yield from start_server(ServerOptions(port=_free_port(), registry=True, push_keys=[KEY], jobs=False), store)
    store.close()


def _kill_when(proc: subprocess.Popen[bytes], ready: object, timeout: float = 60) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true (polled every 2 ms)."""
    deadline = time.time() + timeout
    while not ready():  # type: ignore[operator]
        assert proc.poll() is None, "it finished before it could be killed"
        assert time.time() < deadline
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_pull_killed_mid_transfer_resumes_and_finishes(registry: Live, tmp_path: Path) -> None:
    home = tmp_path / "b"
    env = {**os.environ, "FREEHOLD_HOME": str(home)}
    ref = registry.url.removeprefix("http://") + "/big:latest"
    gguf = registry.store.get("big").manifest.weights[0]
    partial = home / "registry" / "partial" / gguf.digest.replace(":", "-")
    proc = subprocess.Popen([*FREEHOLD, "pull", ref], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def midway() -> bool:
        try:  # the partial file moves into the blobs once complete
            return 0 < partial.stat().st_size < gguf.size
        except FileNotFoundError:
            return False

    _kill_when(proc, midway)
    kept = partial.stat().st_size
    assert 0 < kept < gguf.size
    b = _store(home)
    assert not b.has("big:latest")  # killed: nothing named
    b.close()
    done = subprocess.run([*FREEHOLD, "pull", ref], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "pulled big:latest" in done.stdout
    log = [json.loads(line) for line in (registry.store.home / "registry" / "access.log").read_text().splitlines()]
    resumed = [e for e in log if e["action"] == "pull-blob" and e["digest"] == gguf.digest and e.get("range")]
    assert resumed and int(resumed[-1]["range"].removeprefix("bytes=").rstrip("-")) >= kept
    b = _store(home)
    assert b.get("big:latest").manifest_digest == registry.store.get("big").manifest_digest
    assert b.check() == [] and not partial.exists()
    b.close()


def test_a_push_killed_mid_upload_resumes_from_the_registrys_offset(tmp_path: Path, big_gguf: Path) -> None:
    from freehold.home import import_model

    a_home = tmp_path / "a"
    a = _store(a_home)
    import_model(a, big_gguf, "big")
    a.close()
    env = {**os.environ, "FREEHOLD_HOME": str(a_home), "FREEHOLD_REGISTRY_KEY": KEY}
    # A registry that has never seen the model: its own store is empty.
    empty = _store(tmp_path / "registry2")
    for live in start_server(ServerOptions(port=_free_port(), registry=True, push_keys=[KEY], jobs=False), empty):
        ref = live.url.removeprefix("http://") + "/acme/big:v1"
        state_dir = a_home / "registry" / "push-state"
        uploads = empty.home / "registry" / "uploads"

        def midway(uploads: Path = uploads) -> bool:
            for p in uploads.glob("*") if uploads.exists() else []:
                try:  # a small blob's upload may finish (and its file move into the blobs) meanwhile
                    if not p.name.endswith(".json") and p.stat().st_size >= 8 << 20:
                        return True  # at least one chunk of the weights arrived
                except FileNotFoundError:
                    continue
            return False

        proc = subprocess.Popen([*FREEHOLD, "push", "big", ref], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _kill_when(proc, midway)
        [state_file] = state_dir.glob("*.json")
        location = next(iter(json.loads(state_file.read_text()).values()))
        offset = httpx.get(live.url + location, headers={"Authorization": f"Bearer {KEY}"}).headers["range"]
        have = int(offset.split("-")[1]) + 1
        assert have >= 8 << 20
        done = subprocess.run([*FREEHOLD, "push", "big", ref, "--json"], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        total = sum(la.size for la in empty.get("acme/big:v1").manifest.layers)
        assert result["sent_bytes"] <= total - have  # it did not send again what the registry had
        assert empty.check() == [] and not list(state_dir.glob("*.json"))
    empty.close()
