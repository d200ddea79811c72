"""Grounded prompts: the passages a question retrieves, put in front of the model, and what
the answer cites.

One layout serves training and answering, because a small model only learns to read its
sources when it was tuned on prompts shaped like the ones it is served with (the sample
shop, 16 policy questions: SmolLM2-135M tuned on plain mail states the right fact in 1-5 of
them with sources in the prompt; tuned on the same mail with sources in every prompt, far
more; docs/benchmarks.md has the figures)::

    g = ground(index, messages, count_tokens)          # the last user message is the question
    g.messages      # a system message with the numbered sources, then the conversation
    g.found         # False: nothing relevant was retrieved; answer UNKNOWN_ANSWER, not a guess
    g.report()      # {"knowledge": "acme-kb:latest", "found": True, "citations": [{"id", "title", "source"}]}

``ground_row`` does the same to a dataset's row for training (each row's own thread is
left out of its sources: at answer time a question's thread is not in the index either).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from freehold.engine.base import Chunk, SamplingParams
from freehold.errors import ModelNotFoundError
from freehold.knowledge.documents import ROLE_LABELS
from freehold.knowledge.index import KnowledgeIndex
from freehold.knowledge.search import (
    MIN_SIMILARITY,
    Context,
    for_prompt,
    format_context,
    question_vector,
    search_index,
)
from freehold.progress import ProgressFn
from freehold.store import ModelEntry, Store

# The passages searched and the token budget of the sources block. Three passages of the
# sample shop fit in 400 SmolLM2 tokens with room for a long customer mail in a 2048 context.
DEFAULT_K = 3
DEFAULT_BUDGET = 400
# Passages searched per source shown: replies made from one template are shown once.
CANDIDATES_PER_SOURCE = 3
# The budget never takes more than this share of the context window.
MAX_BUDGET_SHARE = 0.4

INSTRUCTION = ("Answer the customer's question using these sources:\n\n{sources}\n\n"
               "If the sources do not answer it, say you don't know and will check.")
# What a question with nothing relevant in the knowledge base gets instead of an invented
# answer (a 135M model told to say it does not know mostly does not).
UNKNOWN_ANSWER = "I don't know the answer to that yet. Let me check and get back to you."


@dataclass(frozen=True)
class Grounding:
    """A conversation with its sources in the prompt."""

    messages: list[dict[str, Any]]
    context: Context
    knowledge: str  # the index's name:tag

    @property
    def found(self) -> bool:
        return bool(self.context.passages)

    def citations(self) -> list[dict[str, str]]:
        return self.context.citations()

    def report(self) -> dict[str, Any]:
        """The documented extension field of API responses (docs/serving.md, "Knowledge")."""
        return {"knowledge": self.knowledge, "found": self.found, "citations": self.citations()}


def question_of(messages: Sequence[dict[str, Any]], which: str = "last") -> str:
    """The text of the last (or first) user message: what is searched for."""
    users = [m for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]
    if not users:
        return ""
    return str((users[-1] if which == "last" else users[0])["content"])


def budget_for(n_ctx: int, budget: int = DEFAULT_BUDGET) -> int:
    return max(0, min(budget, int(n_ctx * MAX_BUDGET_SHARE)))


def with_sources(messages: Sequence[dict[str, Any]], sources: str) -> list[dict[str, Any]]:
    """``messages`` with the sources block as the system message (after a system prompt the
    conversation already has)."""
    block = INSTRUCTION.format(sources=sources)
    rest = [dict(m) for m in messages]
    if rest and rest[0].get("role") == "system" and isinstance(rest[0].get("content"), str):
        first = rest.pop(0)
        block = f"{first['content']}\n\n{block}"
    return [{"role": "system", "content": block}, *rest]


def ground(index: KnowledgeIndex, messages: Sequence[dict[str, Any]], count_tokens: Callable[[str], int], *,
           budget: int = DEFAULT_BUDGET, k: int = DEFAULT_K, which: str = "last",
           exclude: Iterable[str] = (), min_similarity: float = MIN_SIMILARITY) -> Grounding:
    """Search ``index`` for the conversation's question and put what it finds in the prompt.

    ``count_tokens`` is the serving model's tokenizer; the sources take at most ``budget``
    tokens. ``exclude``: ids never used (a training row's own thread: its passages are the
    row id, then ``id#2``, ``id#3`` for a long one). When nothing
    is relevant the messages are returned as they are, and ``found`` is False.
    """
    skip = set(exclude)
    question = question_of(messages, which)
    qvec = question_vector(question) if question.strip() else None
    found = [p for p in search_index(index, question, CANDIDATES_PER_SOURCE * k + len(skip),
                                     min_similarity=min_similarity, qvec=qvec)
             if p.id.split("#")[0] not in skip]
    context = format_context(for_prompt(found, question, k, qvec=qvec), budget, count_tokens)
    if not context.passages:
        return Grounding([dict(m) for m in messages], context, index.name)
    return Grounding(with_sources(messages, context.text), context, index.name)


def ground_row(index: KnowledgeIndex, row: dict[str, Any], count_tokens: Callable[[str], int], *,
               budget: int = DEFAULT_BUDGET, k: int = DEFAULT_K) -> Grounding:
    """A training row with sources in its prompt, searched for by its first customer message,
    its own thread left out. A row whose question finds nothing stays as it is."""
    return ground(index, row["messages"], count_tokens, budget=budget, k=k, which="first",
                  exclude={str(row.get("id"))})


def grounded_name(dataset: str, knowledge: str) -> str:
    """The name of ``dataset`` grounded on ``knowledge``: ``acme`` + ``acme-kb`` -> ``acme.acme-kb``."""
    return f"{dataset.split(':')[0]}.{knowledge.split(':')[0]}"


def ground_dataset(store: Store, dataset: str, knowledge: str, count_tokens: Callable[[str], int], *,
                   output: str | None = None, budget: int = DEFAULT_BUDGET, k: int = DEFAULT_K,
                   tokenizer: str = "", documents: bool = True, progress: ProgressFn | None = None) -> ModelEntry:
    """Dataset ``dataset`` with sources from ``knowledge`` in every row's prompt, committed as
    ``output`` (default ``grounded_name``): what ``freehold tune --knowledge`` trains on.

    The same grounding of the same versions (dataset, index, tokenizer, budget) is reused, not
    made again; the ledger record takes the dataset's rows and the index as its inputs.
    ``documents``: add ``document_rows`` to the train split."""
    from freehold.data.dataset import derive_dataset
    from freehold.knowledge.index import load_index
    from freehold.ledger import layer_refs

    parent = store.get(dataset, kind="dataset")
    index = load_index(store, knowledge)
    output = output or grounded_name(parent.name, index.name)
    recipe = {"knowledge": index.name, "knowledge_digest": index.digest, "dataset_digest": parent.manifest_digest,
              "budget": budget, "k": k, "tokenizer": tokenizer, "instruction": INSTRUCTION, "query": "first user turn",
              "shown": "for_prompt: replies only, distinct, documents first, focused"}
    extra = {"train": document_rows(index, count_tokens, budget=budget, k=k)} if documents else None
    recipe["document_rows"] = len(extra["train"]) if extra else 0
    with contextlib.suppress(ModelNotFoundError):
        existing = store.get(output, kind="dataset")
        if existing.manifest.config.get("grounded") == recipe:
            return existing
    found = 0

    def transform(row: dict[str, Any]) -> dict[str, Any]:
        nonlocal found
        g = ground_row(index, row, count_tokens, budget=budget, k=k)
        found += g.found
        return {**row, "messages": g.messages, "sources": [c["id"] for c in g.citations()]}

    def config(_: dict[str, Any]) -> dict[str, Any]:
        return {"grounded": recipe, "grounded_rows": found}

    inputs = [{**r, "knowledge": index.name} for r in layer_refs(index.entry.manifest, "knowledge")]
    result = derive_dataset(store, parent, output, transform, config, importer="freehold.knowledge.ground",
                            stage="grounding", progress=progress, extra=extra, inputs=inputs)
    return result.entry


# Questions a customer asks about a topic, for rows that teach reading a document's sections.
TOPIC_QUESTIONS = (
    "What is your policy on {topic}?",
    "Can you tell me about {topic}?",
    "I have a question about {topic}.",
)


def document_rows(index: KnowledgeIndex, count_tokens: Callable[[str], int], *, budget: int = DEFAULT_BUDGET,
                  k: int = DEFAULT_K) -> list[dict[str, Any]]:
    """One training row per document passage: a question about its section's topic (from the
    heading; e.g. "What is your policy on warranty and repairs?"), its sources as served, the
    passage itself as the answer. Mail answers only some of what a policy page says; these
    rows teach the model to answer from the page, not from memory of the mail."""
    rows = []
    for p in index.passages:
        topic = p.title.rsplit(": ", 1)[-1].split(" / ")[-1].strip().lower()
        if p.kind != "document" or not topic or topic == p.title.lower():
            continue
        for template in TOPIC_QUESTIONS:
            convo = [{"role": "user", "content": template.format(topic=topic)},
                     {"role": "assistant", "content": p.text}]
            g = ground(index, convo, count_tokens, budget=budget, k=k, which="first")
            if p.id not in {c["id"] for c in g.citations()}:
                continue  # its question does not find it: it would teach answering from elsewhere
            rows.append({"thread": f"document:{p.id}", "document": p.id, "messages": g.messages,
                         "sources": [c["id"] for c in g.citations()]})
    return rows


def model_knowledge(entry: ModelEntry) -> str | None:
    """The index a model was tuned to read (``freehold tune --knowledge``): served with it by default."""
    value = (entry.manifest.source or {}).get("knowledge")
    return str(value) if value else None


def knowledge_for(entry: ModelEntry, requested: str | None) -> str | None:
    """The index an answer uses: the one asked for, none when asked for "" / "none", else the
    model's own."""
    if requested is not None:
        return None if requested.strip().lower() in ("", "none") else requested
    return model_knowledge(entry)


def answer(engine: Any, index: KnowledgeIndex, messages: Sequence[dict[str, Any]], params: Any = None, *,
           tools: list[dict[str, Any]] | None = None, budget: int = DEFAULT_BUDGET,
           k: int = DEFAULT_K, placeholders: Mapping[str, str] | None = None) -> Iterator[Chunk]:
    """``engine.chat`` grounded on ``index``: the chunks of the answer, the last one carrying
    ``grounding`` (its citations). Nothing relevant found: ``UNKNOWN_ANSWER``, not a guess."""
    g = ground(index, messages, lambda text: len(engine.backend.tokenize(text, add_special=False)),
               budget=budget_for(engine.n_ctx, budget), k=k)
    if not g.found:
        n_prompt = len(engine.tokenize_prompt(engine.render_chat(messages, tools)))
        yield Chunk(UNKNOWN_ANSWER)
        yield Chunk("", [], "stop", n_prompt, 0, grounding=g.report())
        return
    # A thread passage is labelled "Question: ... Answer: ..."; a model that goes on in that
    # shape is writing the next turn of someone else's thread: the answer ends there.
    params = params or SamplingParams.given()
    stops = tuple(f"\n{label}:" for label in ROLE_LABELS.values() if f"\n{label}:" not in params.stop)
    chunks = engine.chat(g.messages, replace(params, stop=(*params.stop, *stops)[:16]), tools=tools,
                         placeholders=placeholders)
    try:
        for chunk in chunks:
            yield replace(chunk, grounding=g.report()) if chunk.finish_reason is not None else chunk
    finally:
        chunks.close()
