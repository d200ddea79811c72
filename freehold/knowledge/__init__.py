"""Knowledge: your answered mail and your documents, indexed for grounded answers with citations.

Building (each a new version in the store, recorded on the ledger)::

    build_knowledge("acme-kb", datasets=["acme"], documents=[Path("examples/acme-policies.md")])
    add_knowledge("acme-kb", documents=[Path("faq.pdf")])   # add; with no sources: refresh changed ones
    remove_knowledge("acme-kb", source="faq.pdf")           # drop one source (no source: delete the index)
    show_knowledge("acme-kb"), list_knowledge()

Documents: Markdown, HTML, plain text, PDF (pypdf), DOCX (python-docx), PII-scrubbed like
training data. Datasets: the answered threads of a ``freehold data import`` dataset (its
train split by default), one passage per thread unless long; the passage id is the
dataset example id.

Answering (what the native path calls)::

    passages = search(store, "acme-kb", "is a broken zip covered?", k=4)   # list[Passage], best first
    ctx = format_context(passages, budget=1024, count_tokens=lambda s: len(tokenizer(s)))
    prompt = f"...{ctx.text}..."; citations = ctx.citations()            # [{"id", "title", "source"}]

``Passage``: ``id``, ``title``, ``text``, ``source`` (dataset name or document path),
``kind`` ("thread" | "document"), ``digest`` (Merkle root or file sha256), ``score`` (fused
rank), ``similarity`` (cosine to the question); ``citation()`` -> ``{"id", "title", "source"}``.
``search`` returns [] when no passage reaches ``MIN_SIMILARITY``: the answer should then say
it does not know. ``load_index`` keeps recently used indexes (and the embedder) in memory.

Grounded answers (freehold.knowledge.grounding; the server's native path, ``freehold run
--knowledge``, ``freehold reply``)::

    for chunk in answer(engine, load_index(store, "acme-kb"), messages, params): ...
    # the last chunk's .grounding: {"knowledge": "acme-kb:latest", "found": True, "citations": [...]}

and for training, ``ground_dataset(store, "acme", "acme-kb", count_tokens)`` (what ``freehold
tune --knowledge`` trains on): every row with the sources its question retrieves.
"""

from freehold.knowledge.documents import FORMATS, Document, Passage, Section, convert_document
from freehold.knowledge.grounding import (
    UNKNOWN_ANSWER,
    Grounding,
    answer,
    ground,
    ground_dataset,
    knowledge_for,
)
from freehold.knowledge.index import (
    KnowledgeIndex,
    KnowledgeResult,
    SourceChange,
    add_knowledge,
    build_knowledge,
    get_knowledge,
    list_knowledge,
    load_index,
    remove_knowledge,
    show_knowledge,
)
from freehold.knowledge.search import MIN_SIMILARITY, Context, format_context, search, search_index

__all__ = [
    "FORMATS",
    "MIN_SIMILARITY",
    "UNKNOWN_ANSWER",
    "Context",
    "Document",
    "Grounding",
    "KnowledgeIndex",
    "KnowledgeResult",
    "Passage",
    "Section",
    "SourceChange",
    "add_knowledge",
    "answer",
    "build_knowledge",
    "convert_document",
    "format_context",
    "get_knowledge",
    "ground",
    "ground_dataset",
    "knowledge_for",
    "list_knowledge",
    "load_index",
    "remove_knowledge",
    "search",
    "search_index",
    "show_knowledge",
]
