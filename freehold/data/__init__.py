"""Training data from your own mail and tables: mbox, Maildir, .eml, CSV, JSONL -> chat JSONL datasets.

The pipeline, one public function per stage (each takes a progress callback where long):

    read_messages / read_table   (read)     streaming readers, bad input counted not raised
    thread_messages              (thread)   JWZ threading with a subject fallback
    strip_reply                  (clean)    quotes, attributions, signatures, footers removed
    infer_ours / build_conversation         who answers (assistant) and who asks (user)
    Scrubber / find_pii          (pii)      personal data found and replaced, consistently per conversation
    Surrogates                   (surrogates) realistic stand-ins (the default) instead of [NAME_1]
    Deduper / split_of                      exact + near duplicates; split by thread, seeded
    import_dataset                          all of the above, committed to the store

the dataset artefact: list_datasets, show_dataset, export_dataset, remove_dataset, and
rerender_dataset (a placeholder dataset's rows with stand-ins, no mail needed); and for
generated text, PlaceholderGuard / resolve_placeholders (placeholders): no "[NAME_1]" a
model learned ever reaches a reader.
"""

from freehold.data.clean import strip_reply
from freehold.data.dataset import (
    SPLITS,
    Deduper,
    ImportResult,
    build_conversation,
    export_dataset,
    get_dataset,
    import_dataset,
    infer_ours,
    iter_examples,
    list_datasets,
    remove_dataset,
    rerender_dataset,
    show_dataset,
    split_of,
)
from freehold.data.message import Message, normalise_subject, parse_message
from freehold.data.pii import Finding, Scrubber, find_pii
from freehold.data.placeholders import PlaceholderGuard, conversation_name, resolve_placeholders
from freehold.data.read import Counts, read_messages, read_table, resolve_sources
from freehold.data.surrogates import Surrogates
from freehold.data.thread import ThreadKey, thread_messages

__all__ = [
    "SPLITS",
    "Counts",
    "Deduper",
    "Finding",
    "ImportResult",
    "Message",
    "PlaceholderGuard",
    "Scrubber",
    "Surrogates",
    "ThreadKey",
    "build_conversation",
    "conversation_name",
    "export_dataset",
    "find_pii",
    "get_dataset",
    "import_dataset",
    "infer_ours",
    "iter_examples",
    "list_datasets",
    "normalise_subject",
    "parse_message",
    "read_messages",
    "read_table",
    "remove_dataset",
    "rerender_dataset",
    "resolve_placeholders",
    "resolve_sources",
    "show_dataset",
    "split_of",
    "strip_reply",
    "thread_messages",
]
