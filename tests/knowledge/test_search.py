"""Hybrid retrieval on the sample shop: paraphrased questions find the right passage; the context block fits."""

from __future__ import annotations

import pytest

from freehold.knowledge import Passage, format_context, load_index, search
from freehold.knowledge.search import query_terms, search_index
from tests.knowledge.conftest import QUESTIONS, Shop, top_phrase_hit

QUESTION_LIST = QUESTIONS["questions"]


def test_paraphrased_questions_find_the_fact_first(shop: Shop) -> None:
    """Mail threads and the policy page together: measured 14 of 16 with the fact in the first passage
    and 16 of 16 within the first four (the two misses ask what only the second passage says)."""
    first = top4 = 0
    for q in QUESTION_LIST:
        found = search(shop.store, shop.kb, q["question"], k=4)
        first += top_phrase_hit(found, q["phrase"])
        top4 += any(q["phrase"].lower() in p.text.lower() for p in found)
        if q["clear"]:
            assert top_phrase_hit(found, q["phrase"]), (q["question"], [p.id for p in found])
    assert first >= 12, f"{first}/{len(QUESTION_LIST)} with the fact in the first passage"
    assert top4 >= 15, f"{top4}/{len(QUESTION_LIST)} with the fact in the first four"


def test_policy_page_alone_ranks_the_right_section_first(shop: Shop) -> None:
    """Measured 16 of 16 on the policy page alone."""
    ranked_first = 0
    for q in QUESTION_LIST:
        found = search(shop.store, shop.docs, q["question"], k=4)
        ranked_first += bool(found) and found[0].id.split(":", 1)[1].split(".")[0] == q["section"]
    assert ranked_first >= 15, f"{ranked_first}/{len(QUESTION_LIST)}"


def test_a_thread_answers_a_mail_question_and_order_numbers_match_by_word(shop: Shop) -> None:
    [hit] = search(shop.store, shop.kb, "the zipper on my rucksack snapped, will you fix it?", k=1)
    assert hit.kind == "thread" and "two-year warranty" in hit.text
    index = load_index(shop.store, shop.kb)
    thread = next(p for p in index.passages if p.kind == "thread" and "order #AO-" in p.text)
    order = thread.text.split("order #")[1][:8]
    found = search(shop.store, shop.kb, f"Where is my order {order}?", k=1)
    assert found[0].id == thread.id


def test_unrelated_questions_find_nothing(shop: Shop) -> None:
    for question in QUESTIONS["unrelated"]:
        assert search(shop.store, shop.kb, question) == [], question
    assert search(shop.store, shop.kb, "   ") == []
    assert len(search(shop.store, shop.kb, "What is the capital of France?", k=3, min_similarity=-1)) == 3


def test_results_are_scored_distinct_and_best_first(shop: Shop) -> None:
    found = search(shop.store, shop.kb, "Is a broken zip covered by the warranty?", k=4)
    assert len(found) == 4 and len({p.id for p in found}) == 4
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)
    assert all(p.similarity is not None and p.similarity >= 0.2 for p in found)
    # Templated answers to the same question are near duplicates: the policy section makes the four.
    assert any(p.kind == "document" for p in found) and any(p.kind == "thread" for p in found)


def test_lexical_query_drops_stopwords_and_survives_fts_syntax(shop: Shop) -> None:
    assert query_terms("How do I return my Summit 45L? Return it!") == ["return", "summit", "45l"]
    index = load_index(shop.store, shop.kb)
    for nasty in ('"unbalanced', "NOT AND OR", "zip* NEAR(x)", "col:umn ^start", "'; DROP TABLE passages"):
        search_index(index, nasty)  # no FTS5 syntax error reaches the caller


def _passage(n: int, words: int) -> Passage:
    return Passage(f"id{n}", f"Title {n}", " ".join(f"w{n}.{i}" for i in range(words)), "src", "document")


def count_words(text: str) -> int:
    return len(text.split())


def test_context_fits_the_budget_and_cites_what_it_holds() -> None:
    passages = [_passage(1, 30), _passage(2, 30), _passage(3, 30)]
    whole = format_context(passages, 1000, count_words)
    assert whole.passages == passages and whole.tokens == count_words(whole.text)
    assert whole.text.startswith("[1] Title 1\nw1.0") and "\n\n[3] Title 3\n" in whole.text
    assert whole.citations() == [{"id": f"id{n}", "title": f"Title {n}", "source": "src"} for n in (1, 2, 3)]
    # Each piece is 33 words: two fit in 80, and the 14 left are too few to start a third.
    short = format_context(passages, 80, count_words)
    assert [p.id for p in short.passages] == ["id1", "id2"] and short.tokens == 66
    cut = format_context(passages, 90, count_words)  # 24 left: the third is cut to fit
    assert [p.id for p in cut.passages] == ["id1", "id2", "id3"]
    assert cut.text.endswith("…") and 88 <= cut.tokens <= 90 and cut.tokens == count_words(cut.text)
    tight = format_context(passages, 40, count_words)
    assert [p.id for p in tight.passages] == ["id1"] and tight.tokens <= 40
    assert format_context(passages, 5, count_words).passages == []
    assert format_context([], 100, count_words).text == ""


@pytest.mark.parametrize("budget", [64, 200, 512])
def test_context_with_the_embedders_tokenizer(shop: Shop, budget: int) -> None:
    from freehold.knowledge.index import embedder

    tokenizer = embedder().tokenizer

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    found = search(shop.store, shop.kb, "Can I return an unused tent?", k=4)
    ctx = format_context(found, budget, count)
    assert ctx.passages and count(ctx.text) <= budget
    assert ctx.passages == found[: len(ctx.passages)]
