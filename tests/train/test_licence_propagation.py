"""Issue 16, parts 2 and 3: a derivative inherits every licence of what it came from (base model and
data), carries it in its manifest, GGUF, NOTICE, card, in-toto predicate and ledger; a looser label
is refused; Llama's naming rule is applied; a restrictive licence is accepted once before the model
is served, and a declared use its licence forbids is refused with the clause, on every API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from freehold.config import load_settings
from freehold.errors import LicenceError, LicenceNotAcceptedError, UseNotPermittedError
from freehold.ledger import Ledger
from freehold.models import accept, check_servable
from freehold.server import ServerOptions
from freehold.store import Layer, Manifest, MediaType, Store
from freehold.store.formats import read_gguf_info
from freehold.testing import write_tiny_gguf
from tests.server.conftest import _free_port, start_server
from tests.train.conftest import chat_rows, tiny_config

GEMMA_TERMS = "Gemma Terms of Use\n\nLast modified: March 24, 2025\n\n(the terms, abridged for the test)\n"
GEMMA_ID = "LicenseRef-scancode-gemma-tou-2024-04-01"
NC_DATA = "CC-BY-NC-4.0"


def _dataset(store: Store, name: str, tmp: Path, license: str | None) -> None:
    """A dataset as freehold.data commits it, with the licence ``data import --license`` records."""
    from tests.train.conftest import make_dataset

    root = make_dataset(store, name, {"train": chat_rows(24), "validation": chat_rows(4, seed=3)}, tmp)
    if license:
        entry = store.get(name, kind="dataset")
        layers = [Layer(la.media_type, la.digest, la.size, la.annotations) for la in entry.manifest.layers]
        store.commit("dataset", name, Manifest("dataset", entry.name, {"merkle_root": root, "license": license},
                                               layers, {}))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A store with a Gemma-licensed tiny base tuned on CC BY-NC data, and a Llama-licensed one tuned on
    the user's own data (no licence)."""
    from freehold.home import import_model
    from freehold.train import tune

    tmp = tmp_path_factory.mktemp("licence")
    settings = load_settings({"FREEHOLD_HOME": str(tmp / "home")})
    store = Store.open(settings)
    from freehold.home import commit_recorded, import_record

    staged = store.stage_gguf(write_tiny_gguf(tmp / "gemma.gguf", license="gemma"), "tiny-gemma",
                              license_text=GEMMA_TERMS)  # as the bundled Gemma 3 is registered
    commit_recorded(store, staged, import_record(staged, GEMMA_TERMS))
    import_model(store, write_tiny_gguf(tmp / "llama.gguf", seed=1, license="llama3.2"), "tiny-llama")
    _dataset(store, "public-nc", tmp / "ds1", NC_DATA)
    _dataset(store, "own-mail", tmp / "ds2", None)
    small = dict(epochs=1, max_steps=2, eval_every=0, save_every=0, lora_dropout=0.0)
    tune(tiny_config(base="tiny-gemma", dataset="public-nc", output="gemma-support", **small),
         store=store, settings=settings)
    tune(tiny_config(base="tiny-llama", dataset="own-mail", output="acme-support", **small),
         store=store, settings=settings)
    yield store, settings
    store.close()


def test_a_tune_inherits_the_base_and_data_licences_everywhere_it_is_described(shop: Any) -> None:
    from freehold.evals.card import card_text
    from freehold.ledger.attest import provenance_statement
    from freehold.models import licence_info

    store, _ = shop
    entry = store.get("gemma-support")
    assert entry.manifest.config["license"] == f"gemma AND {NC_DATA}"
    gguf = store.blob_path(entry.manifest.layer(MediaType.GGUF).digest)
    assert read_gguf_info(gguf)["license"] == f"gemma AND {NC_DATA}"  # outside Freehold too
    assert [(s["kind"], s["name"], s["licence"]) for s in entry.manifest.source["licence_from"]] == [
        ("model", "tiny-gemma:latest", "gemma"), ("dataset", "public-nc:latest", NC_DATA)]
    assert store.text_layer(entry.manifest, MediaType.LICENSE) == GEMMA_TERMS  # the base's terms travel
    assert "Gemma is provided under and subject to the Gemma Terms of Use" in store.text_layer(
        entry.manifest, MediaType.NOTICE)
    lic = licence_info(store, entry)
    assert lic["kind"] == "restricted" and lic["restricts_use"] and lic["commercial"] is False
    assert [t["id"] for t in lic["terms"]] == [GEMMA_ID, NC_DATA]
    assert any(o["kind"] == "pass-on-restrictions" and o["licence"] == GEMMA_ID for o in lic["obligations"])
    assert [f["use"] for f in lic["forbids"]] == ["commercial"]
    merge = [r for r in Ledger.open(store.home).records() if r.type in ("merge", "export")]
    assert [r.payload["license"] for r in merge[-4:-2]] == [f"gemma AND {NC_DATA}"] * 2  # gemma-support's pair
    card = card_text(store, "gemma-support")
    assert "license: other" in card and f"license_name: gemma AND {NC_DATA}" in card
    assert "## Licence" in card and "Prohibited Use Policy" in card and "> Gemma is provided" in card
    slsa = provenance_statement(store, "gemma-support")
    assert slsa["predicate"]["buildDefinition"]["externalParameters"]["license"] == f"gemma AND {NC_DATA}"


def test_an_export_keeps_the_licence_and_a_looser_label_is_refused_with_nothing_stored(shop: Any) -> None:
    from freehold.export import export_model

    store, settings = shop
    records = len(Ledger.open(store.home).records())
    with pytest.raises(LicenceError) as refused:
        export_model("gemma-support", "q8_0", output="gemma-support:apache", store=store, settings=settings,
                     license="apache-2.0")
    assert "would drop gemma (Gemma Terms of Use)" in refused.value.message and "§3.2" in refused.value.message
    assert f"--license 'gemma AND {NC_DATA} AND apache-2.0'" in str(refused.value.hint)
    assert not store.has("gemma-support:apache") and len(Ledger.open(store.home).records()) == records
    with pytest.raises(LicenceError, match=f"would drop {NC_DATA}"):
        export_model("gemma-support", "q8_0", output="gemma-support:gemma-only", store=store, settings=settings,
                     license="gemma")
    exported = export_model("gemma-support", "q8_0", store=store, settings=settings)
    assert exported.manifest.config["license"] == f"gemma AND {NC_DATA}"
    assert exported.manifest.source["licence_from"][0]["name"] == "gemma-support:latest"
    assert store.text_layer(exported.manifest, MediaType.LICENSE) == GEMMA_TERMS
    assert store.text_layer(exported.manifest, MediaType.NOTICE)
    added = export_model("gemma-support", "q8_0", output="gemma-support:plus-mit", store=store, settings=settings,
                         license=f"gemma AND {NC_DATA} AND MIT")  # adding a licence keeps what it inherited
    assert added.manifest.config["license"] == f"gemma AND {NC_DATA} AND MIT"
    assert Ledger.open(store.home).records()[-1].payload["license"] == f"gemma AND {NC_DATA} AND MIT"


def test_a_llama_tune_is_named_as_its_licence_requires_and_its_card_says_built_with_llama(shop: Any) -> None:
    from freehold.evals.card import card_text
    from freehold.models import licence_info

    store, _ = shop
    entry = store.get("acme-support")
    assert entry.manifest.config["license"] == "llama3.2"  # the user's own mail adds no licence
    assert "llama-acme-support" in entry.aliases and store.get("llama-acme-support").name == entry.name
    assert "Built with Llama" in card_text(store, "acme-support")
    assert "Llama 3.2 is licensed under the Llama 3.2 Community License" in store.text_layer(
        entry.manifest, MediaType.NOTICE)
    assert any(o["kind"] == "naming" for o in licence_info(store, entry)["obligations"])


def test_a_restricted_model_is_served_only_once_accepted_and_never_for_a_use_it_forbids(shop: Any) -> None:
    store, _ = shop
    entry = store.get("gemma-support")
    with pytest.raises(LicenceNotAcceptedError) as pending:
        check_servable(store, entry)
    assert "freehold licence accept gemma-support" in str(pending.value.hint)
    assert pending.value.http_status == 403
    with pytest.raises(UseNotPermittedError) as forbidden:  # the declared use is checked first
        check_servable(store, entry, "commercial")
    assert "§2(a)(1)" in forbidden.value.message and NC_DATA in forbidden.value.message

    live_opts = ServerOptions(port=_free_port(), slots=2, max_queue=4, jobs=False)
    for live in start_server(live_opts, store):
        chat = {"model": "gemma-support", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        r = httpx.post(live.url + "/v1/chat/completions", json=chat, timeout=30)
        assert r.status_code == 403 and r.json()["error"]["code"] == "licence_not_accepted", r.text
        r = httpx.post(live.url + "/api/chat", json={**chat, "stream": False}, timeout=30)
        assert r.status_code == 403 and "accept" in r.json()["error"], r.text
        r = httpx.post(live.url + "/freehold/models/gemma-support/deploy", timeout=30)
        assert r.status_code == 403, r.text
        r = httpx.post(live.url + "/freehold/models/gemma-support/accept-licence", timeout=30)
        assert r.status_code == 200 and r.json()["accepted"] == [GEMMA_ID, NC_DATA], r.text
        r = httpx.post(live.url + "/v1/chat/completions", json=chat, timeout=60)
        assert r.status_code == 200, r.text
        page = httpx.get(live.url + "/models/gemma-support", timeout=30).text
        assert 'id="licence-accepted"' in page and "Gemma is provided under" in page
    records = [r for r in Ledger.open(store.home).records() if r.type == "licence"]
    assert [r.payload["id"] for r in records[-2:]] == [GEMMA_ID, NC_DATA]
    assert all(r.payload["by"] and r.payload["via"] == "web" and r.payload["model"] == "gemma-support:latest"
               and r.payload["text_sha256"] for r in records[-2:])
    assert accept(store, entry) == []  # once: nothing left to accept
    check_servable(store, entry, "research")

    for live in start_server(ServerOptions(port=_free_port(), slots=2, max_queue=4, jobs=False,
                                           declared_use="commercial"), store):
        chat = {"model": "gemma-support", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        r = httpx.post(live.url + "/v1/chat/completions", json=chat, timeout=30)
        assert r.status_code == 403 and r.json()["error"]["code"] == "use_not_permitted", r.text
        assert "NonCommercial" in r.json()["error"]["message"]
        r = httpx.post(live.url + "/api/generate", json={"model": "gemma-support", "prompt": "hi", "stream": False},
                       timeout=30)
        assert r.status_code == 403, r.text
        r = httpx.post(live.url + "/v1/chat/completions", json={**chat, "model": "tiny-llama"}, timeout=30)
        assert r.status_code == 403 and r.json()["error"]["code"] == "licence_not_accepted", r.text


def test_the_cli_refuses_serve_for_a_forbidden_use_and_accepts_once(shop: Any, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    _, settings = shop
    env = {**os.environ, "FREEHOLD_HOME": str(settings.home)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "freehold", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    shown = cli("licence", "show", "acme-support", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["accepted"] is False and doc["terms"][0]["id"] == "LicenseRef-scancode-llama-3.2-license-2024"
    run = cli("run", "acme-support", "hello", "-n", "2")
    assert run.returncode != 0 and "freehold licence accept acme-support" in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    asked = cli("licence", "accept", "acme-support")  # not a terminal: it needs --yes
    assert asked.returncode != 0 and "--yes" in asked.stdout + asked.stderr
    done = cli("licence", "accept", "acme-support", "--yes")
    assert done.returncode == 0 and "accepted" in done.stdout, done.stderr
    assert cli("run", "acme-support", "hello", "-n", "2", "--threads", "1").returncode == 0
    bad = cli("serve", "--declare-use", "everything", "--port", str(_free_port()))
    assert bad.returncode != 0 and "commercial, research, personal" in bad.stdout + bad.stderr
