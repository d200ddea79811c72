"""The registry (issue 15): push from one store, pull into another over loopback, byte for byte;
dedupe, resume, corruption, keys, and the OCI API's errors."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from freehold.config import load_settings
from freehold.errors import RegistryError
from freehold.registry import pull, push
from freehold.server import ServerOptions
from freehold.store import Store
from tests.server.conftest import Live, _free_port, start_server

PUSH_KEY = "push-secret"


def other_store(tmp_path: Path, name: str) -> Store:
    return Store.open(dataclasses.replace(load_settings(), home=tmp_path / name))


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Live]:
    """A registry over its own (empty) store, taking pushes with PUSH_KEY."""
    store = other_store(tmp_path, "registry-home")
    yield from start_server(ServerOptions(port=_free_port(), registry=True, push_keys=[PUSH_KEY], jobs=False), store)
    store.close()


def target(live: Live, repo: str = "acme/tiny:v1") -> str:
    return live.url.removeprefix("http://") + "/" + repo


def test_push_then_pull_is_byte_for_byte_and_the_second_push_sends_nothing(
        store: Store, tiny_gguf: Path, registry: Live, tmp_path: Path) -> None:
    entry = store.import_gguf(tiny_gguf, "tiny")
    events: list[str] = []
    result = push(store, "tiny", target(registry), key=PUSH_KEY, progress=lambda e: events.append(e.status))
    layer_bytes = entry.manifest.size + len(store.read_blob(entry.manifest_digest))
    assert result.sent_bytes == layer_bytes and result.skipped_bytes == 0
    assert "pushing" in events
    # The registry's store serves what it received, under the repository and tag.
    received = registry.store.get("acme/tiny:v1")
    assert received.manifest_digest == entry.manifest_digest

    again = push(store, "tiny", target(registry), key=PUSH_KEY)
    assert again.sent_bytes == 0 and again.skipped_bytes == layer_bytes and again.digest == result.digest

    b = other_store(tmp_path, "b-home")
    pulled = pull(b, target(registry))
    assert pulled.name == "acme/tiny:v1" and pulled.manifest_digest == entry.manifest_digest
    assert pulled.received_bytes == layer_bytes and pulled.digest == result.digest
    for layer in entry.manifest.layers:
        assert b.blob_path(layer.digest).read_bytes() == store.blob_path(layer.digest).read_bytes()
    assert b.check() == []
    # The pulled model runs.
    from freehold.engine import SamplingParams, load_engine

    engine = load_engine("acme/tiny:v1", store=b, context=256, threads=1)
    try:
        out = engine.complete(engine.generate("Hello", SamplingParams(max_tokens=4, temperature=0)))
        assert out.completion_tokens > 0
    finally:
        engine.close()
    # A second pull reuses everything.
    assert pull(b, target(registry)).received_bytes == 0
    b.close()


def test_every_store_model_is_pullable_but_a_dataset_blob_is_never_served(
        store: Store, tiny_gguf: Path, tmp_path: Path) -> None:
    store.import_gguf(tiny_gguf, "tiny")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "my card is 4111 1111 1111 1111"},
                                             {"role": "assistant", "content": "Thanks, noted."}]}) + "\n")
    from freehold.data import import_dataset

    import_dataset([rows], "private", store=store, settings=load_settings())
    for live in start_server(ServerOptions(port=_free_port(), registry=True, jobs=False), store):
        tags = httpx.get(live.url + "/v2/tiny/tags/list").json()
        assert tags == {"name": "tiny", "tags": ["latest"]}
        assert "tiny" in httpx.get(live.url + "/v2/_catalog").json()["repositories"]
        b = other_store(tmp_path, "b-home")
        assert pull(b, target(live, "tiny:latest"), name="tiny-copy").manifest_digest == \
            store.get("tiny").manifest_digest
        b.close()
        layers = store.get("private", "dataset").manifest.layers
        assert layers
        for layer in layers:
            r = httpx.get(f"{live.url}/v2/tiny/blobs/{layer.digest}")
            assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        # Pushing to a registry without push keys is refused, saying how to allow it.
        with pytest.raises(RegistryError, match="takes no pushes") as err:
            push(store, "tiny", target(live))
        assert err.value.status == 403 and "--push-key" in (err.value.hint or "")


def test_keys(store: Store, tiny_gguf: Path, tmp_path: Path) -> None:
    store.import_gguf(tiny_gguf, "tiny")
    reg = other_store(tmp_path, "reg")
    options = ServerOptions(port=_free_port(), registry=True, push_keys=[PUSH_KEY], api_keys=["pull-key"], jobs=False)
    for live in start_server(options, reg):
        with pytest.raises(RegistryError, match="needs an API key") as err:
            push(store, "tiny", target(live), key=None)
        assert err.value.status == 401 and "--key" in (err.value.hint or "")
        with pytest.raises(RegistryError, match="may pull from the registry but not push") as err:
            push(store, "tiny", target(live), key="pull-key")
        assert err.value.status == 403
        r = httpx.post(live.url + "/v2/acme/tiny/blobs/uploads/")
        assert r.status_code == 401 and r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert r.headers["www-authenticate"].startswith("Basic")
        push(store, "tiny", target(live), key=PUSH_KEY)
        b = other_store(tmp_path, "b")
        with pytest.raises(RegistryError) as err:
            pull(b, target(live))  # keyed server: a pull needs a key too
        assert err.value.status == 401
        assert pull(b, target(live), key="pull-key").name == "acme/tiny:v1"
        # Basic auth (what docker and oras send) works as well as Bearer.
        r = httpx.get(live.url + "/v2/acme/tiny/tags/list", auth=("anyone", "pull-key"))
        assert r.status_code == 200 and r.json()["tags"] == ["v1"]
        log = [json.loads(line) for line in (reg.home / "registry" / "access.log").read_text().splitlines()]
        assert {"push", "pull"} <= {line["action"] for line in log}
        assert all(line["key"] for line in log if line["action"] == "push")
        b.close()
    reg.close()


def test_a_flipped_byte_fails_the_pull_and_leaves_the_store_as_it_was(
        store: Store, tiny_gguf: Path, registry: Live, tmp_path: Path) -> None:
    entry = store.import_gguf(tiny_gguf, "tiny")
    push(store, "tiny", target(registry), key=PUSH_KEY)
    weights = entry.manifest.weights[0]
    path = registry.store.blob_path(weights.digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    b = other_store(tmp_path, "b")
    before = sorted(p.name for p in (b.home / "blobs").iterdir())
    with pytest.raises(RegistryError, match="arrived with changed") as err:
        pull(b, target(registry))
    assert err.value.oci_code == "DIGEST_INVALID"
    assert b.list() == [] and sorted(p.name for p in (b.home / "blobs").iterdir()) == before
    b.close()


def test_an_interrupted_pull_resumes_with_range(store: Store, tiny_gguf: Path, registry: Live,
                                                tmp_path: Path) -> None:
    entry = store.import_gguf(tiny_gguf, "tiny")
    push(store, "tiny", target(registry), key=PUSH_KEY)
    weights = entry.manifest.weights[0]
    b = other_store(tmp_path, "b")
    partial = b.home / "registry" / "partial"
    partial.mkdir(parents=True)
    half = weights.size // 2
    (partial / weights.digest.replace(":", "-")).write_bytes(store.blob_path(weights.digest).read_bytes()[:half])
    result = pull(b, target(registry))
    assert result.manifest_digest == entry.manifest_digest and b.check() == []
    ranges = [json.loads(line).get("range") for line in
              (registry.store.home / "registry" / "access.log").read_text().splitlines()]
    assert f"bytes={half}-" in ranges
    b.close()


def _oci_error(r: httpx.Response) -> str:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    return str(r.json()["errors"][0]["code"])


def test_bad_requests_get_oci_errors(store: Store, tiny_gguf: Path, registry: Live) -> None:
    store.import_gguf(tiny_gguf, "tiny")
    push(store, "tiny", target(registry), key=PUSH_KEY)
    url, auth = registry.url, {"Authorization": f"Bearer {PUSH_KEY}"}
    bad_digest = "sha256:" + "0" * 64
    with httpx.Client(base_url=url, headers=auth) as c:
        assert _oci_error(c.get("/v2/acme/tiny/blobs/sha256:xyz")) == "DIGEST_INVALID"
        assert _oci_error(c.get(f"/v2/acme/tiny/blobs/{bad_digest}")) == "BLOB_UNKNOWN"
        assert _oci_error(c.get("/v2/nobody/here/manifests/latest")) == "NAME_UNKNOWN"
        assert _oci_error(c.get("/v2/acme/tiny/manifests/nope")) == "MANIFEST_UNKNOWN"
        assert _oci_error(c.get("/v2/Acme/Tiny/manifests/v1")) == "NAME_INVALID"
        assert _oci_error(c.get("/v2/acme/%2e%2e/tiny/manifests/v1")) == "NAME_INVALID"
        assert _oci_error(c.get("/v2/acme/tiny/blobs/uploads/not-an-upload")) == "BLOB_UPLOAD_UNKNOWN"
        # Chunks out of order: 416 with the offset the upload is at.
        loc = c.post("/v2/acme/tiny/blobs/uploads/").headers["location"]
        assert c.patch(loc, content=b"abc", headers={"Content-Range": "0-2"}).status_code == 202
        r = c.patch(loc, content=b"xyz", headers={"Content-Range": "10-12"})
        assert r.status_code == 416 and r.headers["range"] == "0-2"
        # The wrong digest at the end.
        r = c.put(loc, params={"digest": bad_digest})
        assert _oci_error(r) == "DIGEST_INVALID"
        # A manifest naming a blob nobody pushed; one that is not JSON; an oversize one.
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": bad_digest, "size": 2},
                    "layers": []}
        r = c.put("/v2/acme/tiny/manifests/x", content=json.dumps(manifest),
                  headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert _oci_error(r) == "MANIFEST_BLOB_UNKNOWN"
        assert _oci_error(c.put("/v2/acme/tiny/manifests/x", content=b"{not json")) == "MANIFEST_INVALID"
        assert _oci_error(c.put("/v2/acme/tiny/manifests/x", content=b" " * (5 << 20))) == "SIZE_INVALID"
        assert _oci_error(c.delete(f"/v2/acme/tiny/blobs/{bad_digest}")) == "UNSUPPORTED"
        assert _oci_error(c.get("/v2/acme/tiny/whatever")) == "UNSUPPORTED"
    assert httpx.get(url + "/v2/").status_code == 200  # the API check is open on an open server
    head = httpx.head(url + "/v2/acme/tiny/manifests/v1")
    got = httpx.get(url + "/v2/acme/tiny/manifests/v1")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["docker-content-digest"] == got.headers["docker-content-digest"]
    assert int(head.headers["content-length"]) == len(got.content)
    config = got.json()["config"]["digest"]
    blob = httpx.head(f"{url}/v2/acme/tiny/blobs/{config}")
    assert blob.status_code == 200 and int(blob.headers["content-length"]) == got.json()["config"]["size"]
    # Cross-repository mount: a blob the registry has is linked in at once; an unknown one starts an upload.
    auth = {"Authorization": f"Bearer {PUSH_KEY}"}
    r = httpx.post(f"{url}/v2/other/repo/blobs/uploads/", params={"mount": config, "from": "acme/tiny"}, headers=auth)
    assert r.status_code == 201 and r.headers["location"] == f"/v2/other/repo/blobs/{config}"
    assert httpx.head(f"{url}/v2/other/repo/blobs/{config}").status_code == 200
    r = httpx.post(f"{url}/v2/other/repo/blobs/uploads/", params={"mount": bad_digest, "from": "acme/tiny"},
                   headers=auth)
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["location"]


def test_the_registry_is_off_unless_asked(live: Live) -> None:
    r = httpx.get(live.url + "/v2/")
    assert r.status_code == 404 and "--registry" in r.json()["errors"][0]["detail"]["hint"]


# -- interop with third-party clients and servers ---------------------------------------------


def test_the_oras_client_pushes_and_pulls_an_artifact_byte_for_byte(registry: Live, tmp_path: Path) -> None:
    import oras.client

    host = registry.url.removeprefix("http://")
    art = tmp_path / "policies.md"
    art.write_bytes(b"# Returns\nWithin 30 days.\n" + bytes(range(256)) * 400)
    client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
    client.login(username="ci", password=PUSH_KEY, hostname=host)
    for chunked in (False, True):
        ref = f"{host}/acme/docs:{'chunked' if chunked else 'whole'}"
        resp = client.push(target=ref, files=[f"{art}:text/markdown"], disable_path_validation=True,
                           do_chunked=chunked, chunk_size=40_000)
        assert resp.status_code == 201
        out = tmp_path / f"out-{chunked}"
        pulled = client.pull(target=ref, outdir=str(out))
        assert [Path(p).read_bytes() for p in pulled] == [art.read_bytes()]
    tags = httpx.get(registry.url + "/v2/acme/docs/tags/list").json()["tags"]
    assert tags == ["chunked", "whole"]


DISTRIBUTION = Path("/usr/bin/docker-registry")


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry (the CNCF distribution server) on 127.0.0.1, no auth."""
    import subprocess
    import time

    if not DISTRIBUTION.exists():
        pytest.skip("Debian's docker-registry is not installed (scripts/setup.sh test installs it as root)")
    port = _free_port()
    config = tmp_path / "distribution.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
                      f"{tmp_path / 'distribution-data'}\n  delete:\n    enabled: true\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([str(DISTRIBUTION), "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("docker-registry did not start")
        time.sleep(0.1)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_push_to_and_pull_from_the_cncf_distribution_server(store: Store, tiny_gguf: Path, distribution: str,
                                                           tmp_path: Path) -> None:
    entry = store.import_gguf(tiny_gguf, "tiny")
    result = push(store, "tiny", f"{distribution}/acme/tiny:v1")
    assert result.sent_bytes > 0
    assert push(store, "tiny", f"{distribution}/acme/tiny:v1").sent_bytes == 0  # it has every blob now
    b = other_store(tmp_path, "b")
    pulled = pull(b, f"{distribution}/acme/tiny:v1")
    assert pulled.manifest_digest == entry.manifest_digest and pulled.digest == result.digest
    assert b.check() == []
    # The publish signature went as a referrer through the spec's tag fallback (2.8 has no referrers API).
    tags = httpx.get(f"http://{distribution}/v2/acme/tiny/tags/list").json()["tags"]
    assert result.digest.replace(":", "-") in tags
    from freehold.audits import attestations

    assert pulled.attestations == 1
    [sig] = attestations(b, pulled.manifest_digest)
    assert sig.valid and sig.predicate["oci_manifest"] == result.digest
    b.close()


def test_a_flagged_model_is_deployed_only_with_an_override(live: Live) -> None:
    from freehold.audits import attach

    url = f"{live.url}/freehold/models/tiny/deploy"
    assert httpx.post(url).status_code == 200
    attach(live.store, "tiny", "flag", "high", "tells customers to share their passwords")
    r = httpx.post(url)
    assert r.status_code == 409 and r.json()["error"]["freehold"]["code"] == "model_flagged"
    assert "passwords" in r.json()["error"]["message"]
    listed = {m["name"]: m for m in httpx.get(live.url + "/freehold/models").json()["models"]}
    assert listed["tiny:latest"]["audits"]["flagged"] is True
    assert httpx.post(url, params={"override": "true"}).json() == {"default": "tiny:latest"}


def test_push_and_pull_run_as_jobs_from_the_server(live: Live, registry: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the pages use: a push job and a pull job on one server, against another's registry."""
    import time

    def run(kind: str, params: dict[str, object]) -> dict[str, object]:
        job = httpx.post(live.url + "/freehold/jobs", json={"kind": kind, "params": params}).json()
        deadline = time.time() + 120
        while job["state"] not in ("done", "failed", "cancelled") and time.time() < deadline:
            time.sleep(0.2)
            job = httpx.get(f"{live.url}/freehold/jobs/{job['id']}").json()
        assert job["state"] == "done", job
        return dict(job["result"])

    bad = httpx.post(live.url + "/freehold/jobs", json={"kind": "pull", "params": {"source": "not a registry"}})
    assert bad.status_code == 400 and "does not name a registry" in bad.text
    # The worker's process reads the registry key from its environment, never from the job's params.
    monkeypatch.setenv("FREEHOLD_REGISTRY_KEY", PUSH_KEY)
    pushed = run("push", {"model": "tiny", "target": target(registry)})
    assert pushed["sent_bytes"] and pushed["target"] == target(registry)
    live.store.remove("tiny")
    pulled = run("pull", {"source": target(registry), "name": "tiny-again"})
    assert pulled["model"] == "tiny-again:latest" and pulled["reused_bytes"] == 0
    assert live.store.has("tiny-again")


def test_a_licence_that_restricts_use_is_accepted_once_before_a_pull(store: Store, registry: Live,
                                                                     tmp_path: Path) -> None:
    from freehold.ledger import Ledger
    from freehold.testing import write_tiny_gguf

    gemma = write_tiny_gguf(tmp_path / "gemma-like.gguf", license="gemma")
    store.import_gguf(gemma, "tiny-gemma")
    push(store, "tiny-gemma", target(registry, "acme/gemma:v1"), key=PUSH_KEY)
    push(store, "tiny-gemma", target(registry, "acme/gemma:v2"), key=PUSH_KEY)
    b = other_store(tmp_path, "b")
    before = sorted(p.name for p in (b.home / "blobs").iterdir())
    with pytest.raises(RegistryError, match="whose terms restrict how it may be used") as err:
        pull(b, target(registry, "acme/gemma:v1"))
    assert err.value.oci_code == "LICENCE_NOT_ACCEPTED" and "--accept-licence" in (err.value.hint or "")
    assert b.list() == [] and sorted(p.name for p in (b.home / "blobs").iterdir()) == before
    pull(b, target(registry, "acme/gemma:v1"), accept_licence=True)
    [accepted] = [r for r in Ledger.open(b.home).records() if r.type == "licence"]
    assert accepted.payload["licence"] == "gemma" and accepted.payload["model"] == "acme/gemma:v1"
    pull(b, target(registry, "acme/gemma:v2"))  # accepted once: not asked again
    b.close()


def test_a_push_never_replaces_a_model_of_the_registrys_own_store(store: Store, tiny_gguf: Path,
                                                                   tiny_base_gguf: Path, registry: Live) -> None:
    registry.store.import_gguf(tiny_gguf, "mine")
    store.import_gguf(tiny_base_gguf, "other")
    before = registry.store.get("mine").manifest_digest
    with pytest.raises(RegistryError, match="registry's own store") as err:
        push(store, "other", target(registry, "mine:latest"), key=PUSH_KEY)
    assert err.value.status == 409 and registry.store.get("mine").manifest_digest == before
    push(store, "other", target(registry, "mine:v2"), key=PUSH_KEY)  # another tag is fine
    push(store, "other", target(registry, "mine:v2"), key=PUSH_KEY)  # and moving its own tag again


def test_gc_removes_transfers_left_for_a_week(store: Store, tmp_path: Path) -> None:
    import os
    import time

    uploads, partial = store.home / "registry" / "uploads", store.home / "registry" / "partial"
    uploads.mkdir(parents=True)
    partial.mkdir(parents=True)
    old, fresh = uploads / ("a" * 32), partial / ("sha256-" + "b" * 64)
    old.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y" * 10)
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(old, (week_ago, week_ago))
    assert store.gc()[1] >= 1000
    assert not old.exists() and fresh.exists()  # a recent partial pull may still resume
