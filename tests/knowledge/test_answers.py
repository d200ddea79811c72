"""The real thing: SmolLM2-135M tuned on the sample shop's mail with its policy page attached
(what the README's main command does), answering customers. About 6 minutes on 2 cores."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from freehold.data.placeholders import GUARDED
from tests.knowledge.conftest import MAILBOX, POLICIES, QUESTIONS

ROOT = Path(__file__).resolve().parents[2]
# The share of tests/knowledge/questions.json answered with the required phrase, greedy, by the
# tuned model with its knowledge: measured 13 of 16 on a 2-core Xeon (docs/benchmarks.md,
# "Grounded answers"; 11 before the sources showed replies only, policies first, focused);
# the margin allows for another CPU's arithmetic (bf16 or fp32 training).
MEASURED_HITS = 13
MARGIN = 3
# The demo's recipe (scripts/demo.sh).
RECIPE: dict[str, Any] = {"epochs": 3, "lr": 5e-4, "eval_every": 0, "save_every": 0}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from freehold.config import load_settings
    from freehold.data import import_dataset
    from freehold.knowledge import build_knowledge
    from freehold.train import TuneConfig, tune

    home = tmp_path_factory.mktemp("answers-home")
    settings = load_settings({"FREEHOLD_HOME": str(home)})
    from freehold.home import open_store

    store = open_store(settings)  # the bundled SmolLM2
    import_dataset([MAILBOX], "acme", ours=["acme-outdoor.example"], store=store)
    build_knowledge("acme-kb", datasets=["acme"], documents=[POLICIES], store=store)
    tune(TuneConfig("smollm2", "acme", "acme-support", knowledge="acme-kb", **RECIPE), store=store,
         settings=settings)
    yield store, settings
    store.close()


def _answers(store: Any, settings: Any, model: str, questions: list[str], knowledge: str | None,
             temperature: float | None) -> list[tuple[str, dict[str, Any] | None]]:
    from freehold.engine import SamplingParams, load_engine
    from freehold.knowledge import answer, load_index

    engine = load_engine(model, store=store, settings=settings)
    index = load_index(store, knowledge) if knowledge else None
    out = []
    try:
        for i, q in enumerate(questions):
            params = SamplingParams.given(temperature=temperature, seed=i, max_tokens=120)
            messages = [{"role": "user", "content": q}]
            chunks = list(answer(engine, index, messages, params) if index else engine.chat(messages, params))
            out.append(("".join(c.text for c in chunks), chunks[-1].grounding))
    finally:
        engine.close()
    return out


@pytest.mark.slow
def test_with_its_knowledge_the_tuned_model_states_the_policy_facts(shop: Any) -> None:
    store, settings = shop
    items = QUESTIONS["questions"]
    answers = _answers(store, settings, "acme-support", [q["question"] for q in items], "acme-kb", 0)
    hits = [item["phrase"].lower() in text.lower() for item, (text, _) in zip(items, answers, strict=True)]
    missed = [(item["question"], text[:120]) for item, (text, _), hit in zip(items, answers, hits, strict=True)
              if not hit]
    assert sum(hits) >= MEASURED_HITS - MARGIN, missed
    for (_, grounding) in answers:  # every one cites real passages
        assert grounding is not None and grounding["found"] and grounding["citations"]


@pytest.mark.slow
def test_twenty_customer_answers_never_show_a_placeholder_or_a_made_up_name(shop: Any) -> None:
    store, settings = shop
    questions = [q["question"] for q in QUESTIONS["questions"]] + QUESTIONS["unrelated"]
    assert len(questions) == 20
    from freehold.data.placeholders import conversation_words

    for knowledge in ("acme-kb", None):  # with its knowledge, and without
        for q, (text, _) in zip(questions, _answers(store, settings, "acme-support", questions, knowledge, None),
                                strict=True):
            assert text.strip(), q
            assert not GUARDED.search(text) and "[NAME" not in text and "[EMAIL" not in text, (q, text)
            greeting = re.match(r"\s*(?:Hi|Hello|Hey|Dear) ([A-Z][a-z]+)", text)
            assert greeting is None or greeting.group(1) in conversation_words([{"role": "user", "content": q}]), \
                (q, text[:80])


@pytest.mark.slow
def test_it_drafts_a_reply_to_a_new_mail_with_its_sources(shop: Any) -> None:
    from freehold.engine import SamplingParams, load_engine
    from freehold.knowledge import load_index
    from freehold.knowledge.reply import draft_reply, read_mail

    store, settings = shop
    engine = load_engine("acme-support", store=store, settings=settings)
    try:
        draft = draft_reply(engine, read_mail(ROOT / "examples" / "customer-question.eml"),
                            load_index(store, "acme-kb"), SamplingParams.given(temperature=0, max_tokens=200))
    finally:
        engine.close()
    assert len(draft.text.split()) >= 10 and not GUARDED.search(draft.text)
    assert draft.text.startswith(("Hi Oliver", "Hello Oliver", "Dear Oliver")) or not re.match(
        r"(Hi|Hello|Dear) [A-Z]", draft.text), draft.text[:60]  # greets the sender, or nobody
    assert draft.grounding and draft.grounding["citations"]
    assert "Question:" not in draft.text  # it does not go on writing someone else's thread
