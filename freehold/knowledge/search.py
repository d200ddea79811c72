"""Hybrid retrieval over a knowledge index, and the context block an answer is grounded in.

``search`` ranks passages twice, by BM25 over SQLite FTS5 (words: order numbers, product
names, "refund") and by cosine similarity of all-MiniLM-L6-v2 embeddings (meaning: "send it
back" finds "returns"), and fuses the two rankings by reciprocal rank fusion. A passage whose
similarity to the question is below ``min_similarity`` is dropped, so a question the index
knows nothing about gets an empty list, not the least bad passages.

``for_prompt`` turns what was found into what a prompt shows (our replies only, one per
template, policies first, the sentence asked about first); ``format_context`` numbers those
into a block that fits a token budget; the passages it kept are the ones to cite.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from freehold.knowledge.documents import GREETING_LINE, Passage
from freehold.knowledge.index import WORD, KnowledgeIndex, embed_texts, load_index
from freehold.store import Store

# Reciprocal rank fusion constant (Cormack et al. 2009): 60 is the published default; a
# passage's fused score is sum over rankings of 1 / (RRF_K + rank).
RRF_K = 60
# Candidates taken from each ranking before fusion.
CANDIDATES = 50
# Below this cosine a passage is not about the question. Measured on the sample shop
# (tests/knowledge/questions.json): the right policy passage of every paraphrased question
# scores 0.21-0.71; the best passage for unrelated questions ("capital of France", "a haiku
# about the sea") 0.01-0.07, for small talk near the shop's domain ("what time is it?",
# "a joke about hiking") 0.15-0.29, which may still get through.
MIN_SIMILARITY = 0.20
# A passage this close (cosine) to one already returned says the same thing and is skipped,
# so k passages carry k facts: on the sample shop, threads answering the same question with
# the same template are 0.84-0.89 apart, the policy section on it 0.50-0.60 from them.
DUPLICATE_SIMILARITY = 0.80
# A block shorter than this is not worth adding as a cut-off last passage.
MIN_PIECE_TOKENS = 24

# Words that carry no topic: left out of the lexical query (every passage has them).
_STOPWORD_TEXT = (
    "a an the and or but if then so of to in on at by for with from as into about over after before "
    "is are was were be been being am do does did doing have has had having can could will would shall "
    "should may might must i me my mine we us our you your yours he him his she her it its they them their "
    "this that these those there here what which who whom whose when where why how all any some no not "
    "very just also too than more most much many such own same other only again once hi hello hey dear "
    "thanks thank please regards cheers let get got want need like know think up down out off"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def query_terms(question: str, max_terms: int = 32) -> list[str]:
    """The question's topic words for the lexical side: lower case, no stop words, each once."""
    terms: list[str] = []
    for w in WORD.findall(question.lower()):
        if w in STOPWORDS or (len(w) < 2 and not w.isdigit()) or w in terms:
            continue
        terms.append(w)
    return terms[:max_terms]


def question_vector(question: str) -> np.ndarray:
    """The question's embedding (search and ``focus`` share it)."""
    return embed_texts([question], bulk=False)[0]


def search_index(index: KnowledgeIndex, query: str, k: int = 4, *, min_similarity: float = MIN_SIMILARITY,
                 qvec: np.ndarray | None = None) -> list[Passage]:
    """The ``k`` best passages of a loaded index for ``query`` (see ``search``); ``qvec``: its
    embedding, when the caller already has it."""
    if not query.strip() or k <= 0 or not index.passages:
        return []
    if qvec is None:
        qvec = question_vector(query)
    sims = index.similarities(qvec)
    n = min(CANDIDATES, len(sims))
    top = np.argpartition(-sims, n - 1)[:n]
    by_vector = top[np.argsort(-sims[top], kind="stable")].tolist()
    by_words = index.lexical(query_terms(query), CANDIDATES)
    fused: dict[int, float] = {}
    for ranking in (by_vector, by_words):
        for rank, row in enumerate(ranking, 1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank)
    order = sorted(fused, key=lambda r: (-fused[r], -float(sims[r]), r))
    out: list[Passage] = []
    chosen: list[int] = []
    for row in order:
        sim = float(sims[row])
        if sim < min_similarity:
            continue
        if chosen and float((index.vectors[chosen] * index.vectors[row]).sum(axis=1).max()) >= DUPLICATE_SIMILARITY:
            continue
        chosen.append(row)
        out.append(replace(index.passages[row], score=round(fused[row], 6), similarity=round(sim, 4)))
        if len(out) == k:
            break
    return out


def search(store: Store, kb_name: str, query: str, k: int = 4, *,
           min_similarity: float = MIN_SIMILARITY) -> list[Passage]:
    """The ``k`` passages of knowledge base ``kb_name`` that best answer ``query``, best first.

    Each has ``score`` (fused rank) and ``similarity`` (cosine, the relevance floor is
    ``min_similarity``; pass -1 to keep every candidate). Empty when nothing is relevant.
    """
    return search_index(load_index(store, kb_name), query, k, min_similarity=min_similarity)


# A sentence ends at . ! or ? followed by space and a capital, digit, quote or currency sign.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(£$€])")
# Sentence embeddings already computed (policy pages are asked about again and again).
_SENTENCE_VECTORS: dict[str, np.ndarray] = {}
_SENTENCE_CACHE_SIZE = 4096


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (paragraph breaks end one too)."""
    out: list[str] = []
    for para in text.split("\n"):
        out.extend(s.strip() for s in _SENTENCE_END.split(para) if s.strip())
    return out


def _sentence_vectors(texts: list[str]) -> np.ndarray:
    missing = [t for t in dict.fromkeys(texts) if t not in _SENTENCE_VECTORS]
    if missing:
        if len(_SENTENCE_VECTORS) + len(missing) > _SENTENCE_CACHE_SIZE:
            _SENTENCE_VECTORS.clear()
        for t, v in zip(missing, embed_texts(missing, bulk=False), strict=True):
            _SENTENCE_VECTORS[t] = v
    return np.stack([_SENTENCE_VECTORS[t] for t in texts])


def focus(passages: Sequence[Passage], question: str, qvec: np.ndarray | None = None) -> list[Passage]:
    """Document passages with their sentences reordered, the one closest in meaning to
    ``question`` first (ties keep the page's order); threads stay as they are.

    A small model copies its first source from the top: a policy section answers several
    questions, and the one asked is often in its last sentence (the sample shop: "refunds
    within 5 working days" after the 60-day return window, "not accidental damage" after
    the warranty). The same order is used in training rows and in answers."""
    docs = [p for p in passages if p.kind == "document"]
    if not docs or not question.strip():
        return list(passages)
    if qvec is None:
        qvec = question_vector(question)
    out = []
    for p in passages:
        parts = sentences(p.text) if p.kind == "document" else []
        if len(parts) < 2:
            out.append(p)
            continue
        sims = _sentence_vectors(parts) @ qvec
        order = sorted(range(len(parts)), key=lambda i: (-float(sims[i]), i))
        out.append(replace(p, text=" ".join(parts[i] for i in order)))
    return out


_TURN = re.compile(r"\n\n(?=(?:Question|Answer): )")


def replies_only(p: Passage) -> Passage:
    """A thread passage as a prompt shows it: the business's answers, without the customer's
    text (its question is the title) or the greeting line.

    A 135M model given whole threads copies the wrong side: on the sample shop it answered
    "What do you need from me to get a faulty zip fixed?" with another customer's "The zip
    on my Trailblazer 2 tent broke after two trips ... Is this covered?", and greeted the
    asker by the other customer's name. A passage that is all question (the start of a long
    thread) is kept as it is."""
    if p.kind != "thread":
        return p
    turns = _TURN.split(p.text)
    answers = []
    for turn in turns:
        if not turn.startswith("Answer: "):
            continue
        lines = turn[len("Answer: "):].strip().splitlines()
        while lines and (not lines[0].strip() or GREETING_LINE.match(lines[0].strip())):
            lines.pop(0)
        if lines:
            answers.append("\n".join(lines).strip())
    if not answers:
        return p
    return replace(p, text="\n\n".join(answers))


# Replies sharing this share of their words (Jaccard) say the same thing: a shop answers a
# common question with one template (the sample shop's late-parcel replies: 0.90 apart;
# different questions: at most 0.31).
SAME_REPLY = 0.7


def _words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def for_prompt(passages: Sequence[Passage], question: str, k: int, *,
               qvec: np.ndarray | None = None) -> list[Passage]:
    """The first ``k`` distinct passages as a prompt shows them: threads as their replies
    (``replies_only``), one of several replies made from the same template, documents
    first (the business's policies before its past replies: when they differ, the page is
    the rule), each document's sentences closest to the question first (``focus``).

    Each step measured on the sample shop's 16 policy questions (SmolLM2-135M tuned with
    knowledge, greedy): whole threads as found 11/16; replies only 13/16; with distinct
    replies and documents first, 13/16; with focus too, 13-16/16 (two tunes; docs/benchmarks.md)."""
    kept: list[Passage] = []
    seen: list[set[str]] = []
    for p in passages:
        shown = replies_only(p)
        words = _words(shown.text)
        if any(len(words & w) >= SAME_REPLY * len(words | w) for w in seen):
            continue
        kept.append(shown)
        seen.append(words)
        if len(kept) == k:
            break
    kept.sort(key=lambda p: p.kind != "document")
    return focus(kept, question, qvec)


@dataclass(frozen=True)
class Context:
    """A numbered block of passages for a prompt; ``passages`` are those it holds, in its order."""

    text: str
    passages: list[Passage]
    tokens: int

    def citations(self) -> list[dict[str, str]]:
        return [p.citation() for p in self.passages]


def _piece(n: int, p: Passage, text: str | None = None) -> str:
    return f"[{n}] {p.title}\n{p.text if text is None else text}"


def format_context(passages: Sequence[Passage], budget: int, count_tokens: Callable[[str], int]) -> Context:
    """Passages as ``[1] title\\ntext`` blocks, best first, in at most ``budget`` tokens.

    Whole passages are added while they fit; the first that does not is cut at a word so
    the budget is filled (when at least ``MIN_PIECE_TOKENS`` remain), and the rest left out.
    ``count_tokens`` is the serving model's tokenizer (``str -> int``).
    """
    pieces: list[str] = []
    kept: list[Passage] = []
    used = 0
    for p in passages:
        candidate = "\n\n".join([*pieces, _piece(len(kept) + 1, p)])
        tokens = count_tokens(candidate)
        if tokens <= budget:
            pieces.append(_piece(len(kept) + 1, p))
            kept.append(p)
            used = tokens
            continue
        if budget - used >= MIN_PIECE_TOKENS:
            cut = _cut(pieces, len(kept) + 1, p, budget, count_tokens)
            if cut is not None:
                pieces.append(cut[0])
                kept.append(p)
                used = cut[1]
        break
    return Context("\n\n".join(pieces), kept, used if pieces else 0)


def _cut(pieces: list[str], n: int, p: Passage, budget: int,
         count_tokens: Callable[[str], int]) -> tuple[str, int] | None:
    """The longest word prefix of ``p``'s text that fits (binary search), or None."""
    words = p.text.split(" ")
    lo, hi, best = 1, len(words) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        piece = _piece(n, p, " ".join(words[:mid]) + " …")
        tokens = count_tokens("\n\n".join([*pieces, piece]))
        if tokens <= budget:
            best, lo = (piece, tokens), mid + 1
        else:
            hi = mid - 1
    return best
