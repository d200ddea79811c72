"""Knowledge indexes in the store: layers, lineage, citations to real ids, re-import, changed sources."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from freehold.data import import_dataset, iter_examples
from freehold.data.read import file_digest
from freehold.errors import ModelNotFoundError, UsageError
from freehold.knowledge import (
    add_knowledge,
    build_knowledge,
    list_knowledge,
    load_index,
    remove_knowledge,
    search,
    show_knowledge,
)
from freehold.ledger import Ledger, verify_model
from freehold.store import MediaType, Store
from tests.knowledge.conftest import MAILBOX, POLICIES, Shop


def test_index_is_a_store_artefact_with_lineage(shop: Shop) -> None:
    entry = shop.store.get(shop.kb, kind="knowledge")
    types = [la.media_type for la in entry.manifest.layers]
    assert types == [MediaType.KNOWLEDGE_PASSAGES, MediaType.KNOWLEDGE_VECTORS, MediaType.KNOWLEDGE_LEXICAL]
    config = entry.manifest.config
    train = shop.store.get("acme", kind="dataset").manifest.config["counts"]["train"]
    assert config["counts"] == {"thread": train, "document": 10} and config["split"] == "train"
    index = load_index(shop.store, shop.kb)
    assert index.vectors.shape == (config["passages"], 384) and str(index.vectors.dtype) == "float32"
    head = entry.manifest.lineage["ledger_head"]
    record = Ledger.open(shop.store.home).find(head)
    assert record is not None
    inputs = {r["role"]: r for r in record.payload["inputs"]}
    assert inputs["document"]["digest"] == file_digest(POLICIES)
    assert inputs["examples"]["digest"] == "sha256:" + shop.store.get("acme", kind="dataset").manifest.config[
        "merkle_root"]
    assert {r["digest"] for r in record.payload["outputs"]} == {la.digest for la in entry.manifest.layers}
    report = verify_model(shop.store, shop.kb, shop.store.home, kind="knowledge")
    assert report.ok, report.problems


def test_citations_point_at_real_dataset_ids_and_document_digests(shop: Shop) -> None:
    dataset = shop.store.get("acme", kind="dataset")
    train_ids = {row["id"] for row in iter_examples(dataset, shop.store, "train")}
    prefix = file_digest(POLICIES).removeprefix("sha256:")[:12]
    index = load_index(shop.store, shop.kb)
    threads = [p for p in index.passages if p.kind == "thread"]
    docs = [p for p in index.passages if p.kind == "document"]
    assert {p.id.split("#")[0] for p in threads} == train_ids  # every train thread, nothing else
    assert all(p.source == dataset.name for p in threads)
    assert all(p.id.startswith(prefix + ":") and p.source == str(POLICIES) for p in docs)
    for p in search(shop.store, shop.kb, "Is a broken zip covered by the warranty?"):
        c = p.citation()
        assert set(c) == {"id", "title", "source"}
        assert c["id"].split("#")[0] in train_ids or c["id"].startswith(prefix)


def test_reimport_of_the_same_mailbox_finds_the_same_ids(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    import_dataset([MAILBOX], "acme", ours=["acme-outdoor.example"], store=store)
    first = build_knowledge("kb", datasets=["acme"], store=store)
    ids = [p.id for p in load_index(store, "kb").passages]
    before = store.get("acme", kind="dataset").manifest_digest
    import_dataset([MAILBOX], "acme", ours=["acme-outdoor.example"], store=store)
    assert store.get("acme", kind="dataset").manifest_digest != before  # a new ledger record, same rows
    again = add_knowledge("kb", store=store)
    assert not again.committed and [c.status for c in again.changes] == ["unchanged"]
    assert [p.id for p in load_index(store, "kb").passages] == ids
    # Indexing every split re-reads the dataset; the train threads' vectors are reused, not recomputed.
    counts = store.get("acme", kind="dataset").manifest.config["counts"]
    rebuilt = build_knowledge("kb", datasets=["acme"], split="all", store=store)
    assert rebuilt.committed and rebuilt.changes[0].status == "changed"
    assert rebuilt.reused == first.embedded == counts["train"]
    assert rebuilt.embedded == counts["validation"] + counts["test"]
    assert set(ids) < {p.id for p in load_index(store, "kb").passages}


def test_a_changed_document_is_detected_and_reindexed(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    page = tmp_path / "policies.md"
    shutil.copy(POLICIES, page)
    extra = tmp_path / "prices.txt"
    extra.write_text("The Summit 45L backpack costs £120.\n", encoding="utf-8")
    first = build_knowledge("kb", documents=[page, extra], store=store)
    assert first.embedded == 11 and first.config["version"] == 1
    assert [s["state"] for s in show_knowledge("kb", store=store)["sources"]] == ["current", "current"]

    page.write_text(page.read_text(encoding="utf-8") + "\n## Gift cards\n\nGift cards never expire.\n",
                    encoding="utf-8")
    assert [s["state"] for s in show_knowledge("kb", store=store)["sources"]] == ["changed", "current"]
    second = add_knowledge("kb", store=store)
    assert [(c.name, c.status) for c in second.changes] == [(str(page), "changed"), (str(extra), "unchanged")]
    # Only the new section is embedded: the others' text (and so their vectors) did not change.
    assert second.committed and second.embedded == 1 and second.reused == 11
    assert second.config["version"] == 2 and second.config["previous"] == first.entry.manifest_digest
    new_prefix = file_digest(page).removeprefix("sha256:")[:12]
    [hit] = search(store, "kb", "Do gift cards expire?", k=1)
    assert hit.id == f"{new_prefix}:gift-cards" and "never expire" in hit.text
    assert all(not p.id.startswith(first.config["sources"][0]["digest"][7:19])
               for p in load_index(store, "kb").passages)  # the old version's ids are gone

    page.unlink()
    kept = add_knowledge("kb", store=store)
    assert not kept.committed and kept.changes[0].status == "missing"  # kept as indexed, not dropped
    assert show_knowledge("kb", store=store)["sources"][0]["state"] == "missing"


def test_add_remove_source_and_delete(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    import_dataset([MAILBOX], "acme", ours=["acme-outdoor.example"], store=store)
    base = build_knowledge("kb", datasets=["acme"], store=store)
    added = add_knowledge("kb", documents=[POLICIES], store=store)
    assert added.embedded == 10 and added.reused == base.config["passages"]
    assert [c.status for c in added.changes] == ["unchanged", "new"]
    assert search(store, "kb", "How much does next-day shipping cost?", k=1)[0].kind == "document"
    dropped = remove_knowledge("kb", source=str(POLICIES), store=store)
    assert not isinstance(dropped, str)
    assert dropped.config["counts"]["document"] == 0 and dropped.embedded == 0
    with pytest.raises(UsageError, match="not a source"):
        remove_knowledge("kb", source="nothing.md", store=store)
    assert remove_knowledge("kb", store=store) == "kb:latest"
    assert list_knowledge(store) == []
    with pytest.raises(ModelNotFoundError) as err:
        search(store, "kb", "anything")
    assert "freehold knowledge ls" in (err.value.hint or "")


def test_split_all_indexes_every_thread_and_pii_keep_keeps_contacts(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    import_dataset([MAILBOX], "acme", ours=["acme-outdoor.example"], store=store)
    counts = store.get("acme", kind="dataset").manifest.config["counts"]
    contact = tmp_path / "contact.md"
    contact.write_text("# Contact\n\nWrite to help@acme-outdoor.example any day.\n", encoding="utf-8")
    every = build_knowledge("kb", datasets=["acme"], documents=[contact], split="all", store=store)
    assert every.config["counts"]["thread"] == counts["examples"]
    stand_in = load_index(store, "kb").passages[-1].text
    assert "help@acme-outdoor.example" not in stand_in and "[EMAIL" not in stand_in  # a realistic stand-in
    placeholders = build_knowledge("kb1", documents=[contact], pii="scrub", store=store)  # the old name
    assert placeholders.config["pii"] == "placeholders"
    assert "[EMAIL_1]" in load_index(store, "kb1").passages[0].text
    kept = build_knowledge("kb2", documents=[contact], pii="keep", store=store)
    assert kept.config["pii"] == "keep"
    assert "help@acme-outdoor.example" in load_index(store, "kb2").passages[0].text


def test_bad_requests_say_how_to_fix_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    with pytest.raises(UsageError, match="nothing to index"):
        build_knowledge("kb", store=store)
    with pytest.raises(ModelNotFoundError):
        build_knowledge("kb", datasets=["no-such-dataset"], store=store)
    with pytest.raises(UsageError, match="unknown split"):
        build_knowledge("kb", documents=[POLICIES], split="dev", store=store)
    with pytest.raises(UsageError, match="unknown --pii"):
        build_knowledge("kb", documents=[POLICIES], pii="maybe", store=store)
