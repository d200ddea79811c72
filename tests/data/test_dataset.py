"""The import pipeline end to end on real mail, and the dataset artefact in the store."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from freehold.data import (
    Deduper,
    build_conversation,
    export_dataset,
    import_dataset,
    infer_ours,
    iter_examples,
    list_datasets,
    remove_dataset,
    show_dataset,
    split_of,
)
from freehold.data.surrogates import RESERVED_DOMAINS
from freehold.errors import ModelNotFoundError, UsageError
from freehold.ledger.merkle import canonical_json, example_id, leaf_hash, merkle_root
from freehold.store import MediaType, Store

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+|\S+ @end\|ng \|rom \S+|\b[\w.+-]+ at [\w-]+\.[a-z]{2,}\b")
PHONE = re.compile(r"\+\d[\d ()-]{7,}\d|\(\d{3}\) ?\d{3}-\d{4}")


def _rows(store: Store, name: str) -> dict[str, list[dict]]:
    entry = store.get(name, kind="dataset")
    return {split: list(iter_examples(entry, store, split)) for split in ("train", "validation", "test")}


def test_rpd_counts_and_content(rpd: tuple[Store, dict]) -> None:
    store, config = rpd
    c = config["counts"]
    assert c["messages_read"] == 389 and c["threads"] == 76
    assert c["examples"] == c["train"] + c["validation"] + c["test"] >= 40
    assert config["filters"]["no_reply_from_ours"] > 0 and config["ours_inferred"]
    assert len(config["ours"]) >= 3  # the list's regular helpers
    assert config["others"] == "drop" and config["filters"]["third_party_message"] > 0  # auto, on a list
    rows = _rows(store, "rpd")
    assert sum(map(len, rows.values())) == c["examples"]
    for split_rows in rows.values():
        for row in split_rows:
            msgs = row["messages"]
            assert msgs[0]["role"] == "user" and msgs[-1]["role"] == "assistant"
            assert all(a["role"] != b["role"] for a, b in itertools.pairwise(msgs))
            for m in msgs:
                # Stand-ins only: addresses at the reserved example domains, phones in 555-01xx.
                assert all(e.group(0).endswith(RESERVED_DOMAINS) for e in EMAIL.finditer(m["content"])), m["content"]
                assert all("555-01" in e.group(0) for e in PHONE.finditer(m["content"])), m["content"]
                if m["role"] == "assistant":
                    assert not any(ln.lstrip().startswith(">") for ln in m["content"].splitlines())
                    assert "mailing list" not in m["content"]


def test_splits_share_no_thread_and_ids_and_root_verify(rpd: tuple[Store, dict]) -> None:
    store, config = rpd
    rows = _rows(store, "rpd")
    threads = {split: {r["thread"] for r in rs} for split, rs in rows.items()}
    assert not threads["train"] & threads["validation"]
    assert not threads["train"] & threads["test"] and not threads["validation"] & threads["test"]
    leaves = []
    for split in ("train", "validation", "test"):
        for r in rows[split]:
            example = {k: v for k, v in r.items() if k != "id"}
            assert r["id"] == example_id(example)
            leaves.append(leaf_hash(canonical_json(example)))
    assert merkle_root(leaves).hex() == config["merkle_root"]
    assert all(s["digest"].startswith("sha256:") for s in config["sources"])


def test_rerun_is_byte_identical_and_seed_changes_split(email_dir: Path) -> None:
    archive = email_dir / "numpy-discussion-2001-11" / "2001-November.txt"
    store = Store.open()
    a = import_dataset([archive], "np-a", store=store)
    b = import_dataset([archive], "np-b", store=store)
    assert [la.to_dict() for la in a.entry.manifest.layers] == [
        la.to_dict() for la in b.entry.manifest.layers
    ]
    assert a.config == b.config
    parallel = import_dataset([archive], "np-p", store=store, workers=2)
    assert parallel.config == a.config  # the worker pool changes nothing but speed
    c = import_dataset([archive], "np-c", store=store, seed=7)
    assert c.config["merkle_root"] != a.config["merkle_root"]
    assert c.counts["examples"] == a.counts["examples"]


def test_ours_given_and_pii_keep(email_dir: Path) -> None:
    archive = email_dir / "numpy-discussion-2001-11" / "2001-November.txt"
    store = Store.open()
    nobody = "nobody@nowhere.invalid"
    with pytest.raises(UsageError, match="no training examples") as exc:
        import_dataset([archive], "np", ours=[nobody], store=store)
    assert nobody in (exc.value.hint or "")
    inferred = import_dataset([archive], "np", store=store)
    domain = inferred.config["ours"][0].split("@")[1]
    given = import_dataset([archive], "np2", ours=[domain], pii="keep", store=store)
    assert given.config["ours"] == [domain] and not given.config["ours_inferred"]
    assert given.config["others"] == "user" and inferred.config["others"] == "drop"  # --others auto
    assert given.config["pii"] == {"mode": "keep", "replaced": {}}
    with pytest.raises(UsageError):
        import_dataset([archive], "np3", pii="maybe", store=store)
    with pytest.raises(UsageError, match="--others"):
        import_dataset([archive], "np3", others="everyone", store=store)


def test_maildir_and_perceval_import(email_dir: Path) -> None:
    store = Store.open()
    lkml = import_dataset([email_dir / "notmuch-corpora" / "test" / "corpora" / "lkml"], "lkml", store=store)
    assert lkml.counts["messages_read"] == 210 and lkml.counts["examples"] >= 1
    files = sorted((email_dir / "perceval-mbox-edgecases" / "tests" / "data").rglob("*.mbox"))
    try:
        res = import_dataset(files, "perceval", fmt="mbox", store=store)
        assert res.config["repaired"]["non_ascii_from_line"] == 2
    except UsageError as exc:  # tiny lists hold few answered threads: a clear error, never a crash
        assert "--ours" in (exc.hint or "")


def test_roles_filters_and_dedupe_units() -> None:
    assert infer_ours([["u1", "help"], ["u2", "help", "u2"], ["u3", "help"], ["help", "u1"]]) == ["help"]
    filters: dict = {}
    from collections import Counter

    filters = Counter()
    turns = build_conversation(
        [
            ("help@acme.com", "Announcement from us, which is not an answer to anyone.", None),
            ("ann@x.org", "My order never arrived, can you check order 1234?", None),
            ("ann@x.org", "Out of office", "out_of_office"),
            ("help@acme.com", "Sorry about that - it ships today, tracking follows.", None),
            ("ann@x.org", "thanks!", None),
        ],
        ["acme.com"],
        filters,
    )
    assert turns is not None and [t["role"] for t in turns] == ["user", "assistant"]
    assert filters == {"out_of_office": 1, "too_short_turn": 1}
    assert (
        build_conversation([("ann@x.org", "A question nobody answered at all.", None)], ["acme.com"], filters)
        is None
        and filters["no_reply_from_ours"] == 1
    )
    thread = [
        ("ann@x.org", "Our invoice 88 shows the wrong delivery address, please fix it.", None),
        ("bob@x.org", "Adding: it should be our warehouse on Quay Street, not the office.", None),
        ("help@acme.com", "Done - invoice 88 now shows the Quay Street warehouse.", None),
    ]
    both = build_conversation(thread, ["acme.com"], Counter())  # a colleague copied in speaks for the customer
    assert both is not None and [t["role"] for t in both] == ["user", "assistant"]
    assert "Quay Street, not the office" in both[0]["content"]
    dropped: Counter[str] = Counter()
    asker_only = build_conversation(thread, ["acme.com"], dropped, others="drop")
    assert asker_only is not None and "Quay Street" not in asker_only[0]["content"]
    assert dropped == {"third_party_message": 1}
    d = Deduper()
    base = [
        {"role": "user", "content": "How do I reset the password on the staff portal for a new starter?"},
        {"role": "assistant", "content": "Open Settings, choose Users, pick the account and press Reset."},
    ]
    near = [dict(t) for t in base]
    near[1]["content"] = near[1]["content"].replace("press Reset.", "press Reset!")
    assert d.check(base) is None and d.check(base) == "duplicate_exact"
    assert d.check(near) == "duplicate_exact"  # punctuation and case are normalised away
    near[1]["content"] += " Then tell them."
    assert d.check(near) in ("duplicate_near", None)
    assert split_of("t1", 0) == split_of("t1", 0)
    share = sum(split_of(f"t{i}", 0) == "train" for i in range(2000)) / 2000
    assert 0.75 < share < 0.85


def test_tables_import_show_export_rm(tmp_path: Path) -> None:
    store = Store.open()
    table = tmp_path / "faq.jsonl"
    lines = [
        json.dumps(
            {
                "question": f"How do I do task {i} with my account settings?",
                "answer": f"Open settings and follow the steps for task {i}; email help@acme.com.",
            }
        )
        for i in range(30)
    ]
    table.write_text("\n".join([*lines, lines[0], "garbage"]) + "\n", encoding="utf-8")
    res = import_dataset([table], "faq", store=store)
    assert res.counts["examples"] == 30 and res.filters["duplicate_exact"] == 1
    assert res.config["skipped"] == {"bad_json": 1}
    assert res.config["pii"]["replaced"]["EMAIL"] == 30
    assert [e.name for e in list_datasets(store)] == ["faq:latest"]
    shown = show_dataset("faq", seed=1, store=store)
    assert len(shown["examples"]) == 5 and shown["counts"]["examples"] == 30
    out = tmp_path / "out.jsonl"
    assert export_dataset("faq", out, store=store) == 30
    assert all(json.loads(ln)["messages"][1]["role"] == "assistant" for ln in out.read_text().splitlines())
    entry = store.get("faq", kind="dataset")
    assert {layer.annotations["split"] for layer in entry.manifest.layers_of(MediaType.DATASET)} <= {
        "train",
        "validation",
        "test",
    }
    remove_dataset("faq", store=store)
    with pytest.raises(ModelNotFoundError):
        show_dataset("faq", store=store)


@pytest.mark.parametrize("pii", ["placeholders", "surrogates"])
def test_the_import_records_where_it_replaced_personal_data(store: Store, pii: str) -> None:
    from freehold.data.dataset import pii_spans, show_dataset

    mailbox = Path(__file__).resolve().parents[2] / "examples" / "acme-support.mbox"
    result = import_dataset([mailbox], "shop", ours=["acme-outdoor.example"], pii=pii, store=store)
    spans = pii_spans(store, result.entry)
    rows = {r["id"]: r for r in iter_examples(result.entry, store)}
    assert spans and set(spans) <= set(rows)
    found = [(rows[i]["messages"][turn]["content"][start:end], kind)
             for i, sp in spans.items() for turn, start, end, kind in sp]
    assert len(found) == sum(result.config["pii"]["replaced"].values())  # every replacement, no other text
    if pii == "placeholders":  # each span is exactly its placeholder in the text the model sees
        assert all(re.fullmatch(rf"\[{kind}_\d+\]", text) for text, kind in found), found[:5]
    else:  # stand-ins: real-looking text where a placeholder would be, never a bracket
        assert all(text and "[" not in text for text, _ in found) and {k for _, k in found} >= {"NAME"}
    shown = show_dataset("shop", examples=50, store=store)
    assert any(ex["pii_spans"] for ex in shown["examples"])
    assert result.entry.manifest.layer(MediaType.PII_SPANS) is not None
    assert result.config["merkle_root"] == merkle_root(
        [bytes.fromhex(i) for i in rows]).hex()  # the side file is not training data
