"""Realistic stand-ins: consistent per conversation, reproducible, never a placeholder; re-rendering."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from freehold.cli import main
from freehold.data import import_dataset, iter_examples, rerender_dataset
from freehold.data.pii import PLACEHOLDER, Scrubber, find_pii, iban_ok, luhn_ok, name_tokens
from freehold.data.placeholders import GUARDED
from freehold.data.surrogates import RESERVED_DOMAINS, SPECIMEN_IBANS, TEST_CARDS, Surrogates, _lists
from freehold.errors import UsageError
from freehold.store import MediaType, Store

ACME = Path(__file__).resolve().parents[2] / "examples" / "acme-support.mbox"
NAMES = Path(__file__).resolve().parents[2] / "freehold" / "data" / "names"
EMAIL = re.compile(r"[\w.+-]+(?:@| at )([\w-]+\.[a-z]{2,})\b")
PHONE = re.compile(r"\+\d[\d ()-]{7,}\d|\(\d{3}\) ?\d{3}-\d{4}")


def _contents(store: Store, name: str) -> list[str]:
    entry = store.get(name, kind="dataset")
    return [m["content"] for row in iter_examples(entry, store) for m in row["messages"]]


def _layers(result) -> list[dict]:  # type: ignore[no-untyped-def]
    return [la.to_dict() for la in result.entry.manifest.layers]


def test_name_lists_ship_with_their_source() -> None:
    sex, last = _lists()
    assert sum(s in ("f", "u") for s in sex.values()) >= 200 and sum(s in ("m", "u") for s in sex.values()) >= 200
    assert len(last) >= 300 and len(set(last)) == len(last)
    sources = (NAMES / "SOURCES.md").read_text(encoding="utf-8")
    assert "Social Security" in sources and "Census" in sources and "public domain" in sources
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert "data/names/*" in pyproject  # shipped in the wheel, not only in a checkout


def test_stand_ins_are_consistent_within_a_conversation_and_fictional() -> None:
    names = name_tokens(["Ann Smith", "Oliver Bennett"])
    turns = [
        "Hi Ann, mail ann.smith@gmail.com or call +44 20 7946 0958.",
        "Ann Smith again: ann.smith@gmail.com. Card 4242 4242 4242 4242, IBAN DE89 3704 0044 0532 0130 00.",
        "Dear Dr Bennett, thanks. Oliver Bennett, 14 Elm Row, Leeds LS2 7HY, tel +44 20 7946 0958",
    ]
    s = Scrubber(names, surrogates=Surrogates(3, "<thread@x>"))
    out = [s.scrub(t) for t in turns]
    first = re.match(r"Hi (\w+),", out[0]).group(1)  # type: ignore[union-attr]
    full = re.match(r"(\w+ \w+) again", out[1]).group(1)  # type: ignore[union-attr]
    assert full.split()[0] == first and first != "Ann"  # "Ann" and "Ann Smith" are one person
    user = f"{first.lower()}.{full.split()[1].lower()}"
    email = re.search(r"mail (\S+) or", out[0]).group(1)  # type: ignore[union-attr]
    assert email.split("@")[0] == user and email.split("@")[1] in RESERVED_DOMAINS  # built from the stand-in
    assert out[1].count(email) == 1  # the same address in the next turn
    assert out[0].endswith("call +1-555-01" + out[0][-3:-1] + ".") and out[2].endswith(out[0][-12:-1])
    card = re.search(r"Card ([\d ]+),", out[1]).group(1)  # type: ignore[union-attr]
    assert card in TEST_CARDS and luhn_ok(card.replace(" ", ""))
    iban = re.search(r"IBAN (.+)\.$", out[1]).group(1)  # type: ignore[union-attr]
    assert iban in SPECIMEN_IBANS and iban_ok(iban)
    surname = re.search(r"Dear Dr (\w+),", out[2]).group(1)  # type: ignore[union-attr]
    assert f" {surname}, " in out[2] and "Bennett" not in out[2] and "LS2 7HY" not in out[2]
    assert "ZZ" in out[2] and not any(w in " ".join(out) for w in ("Ann", "Smith", "Oliver", "7946"))
    assert [f.type for f in find_pii(turns[0], names)] == ["NAME", "EMAIL", "PHONE"]
    # Reproducible from (seed, conversation); another conversation or seed draws again.
    again = Scrubber(names, surrogates=Surrogates(3, "<thread@x>"))
    assert [again.scrub(t) for t in turns] == out
    others = {Scrubber(names, surrogates=Surrogates(seed, c)).scrub(turns[0]) for seed in (3, 4) for c in "ab"}
    assert len(others) > 1


def test_scrub_both_gives_placeholders_for_dedupe_and_keeps_what_keep_says() -> None:
    s = Scrubber(
        name_tokens(["Ann Smith", "Maya Lindqvist"]),
        surrogates=Surrogates(0, "t"),
        keep=lambda f: f.text == "Maya",
    )
    marked, rendered = s.scrub_both("Thanks Maya, from Ann")
    assert marked == "Thanks [NAME_1], from [NAME_2]"
    assert rendered.startswith("Thanks Maya, from ") and "Ann" not in rendered
    assert s.kept == {"NAME": 1} and s.findings == {"NAME": 1}


def test_acme_import_has_stand_ins_is_reproducible_and_matches_placeholder_counts() -> None:
    store = Store.open()
    a = import_dataset([ACME], "acme-a", ours=["acme-outdoor.example"], store=store)
    b = import_dataset([ACME], "acme-b", ours=["acme-outdoor.example"], store=store)
    assert _layers(a) == _layers(b) and a.config == b.config  # byte-identical rows, same digests
    assert a.config["pii"]["mode"] == "surrogates" and a.config["pii"]["kept_ours"]
    assert a.config["pii"]["surrogates"]["name_lists"].startswith("sha256:")
    ph = import_dataset([ACME], "acme-ph", ours=["acme-outdoor.example"], pii="placeholders", store=store)
    assert ph.config["pii"]["mode"] == "placeholders"
    assert ph.counts == a.counts and ph.filters == a.filters  # stand-ins change no dedupe decision
    texts = _contents(store, "acme-a")
    assert not any(GUARDED.search(t) for t in texts)
    assert any(PLACEHOLDER.search(t) for t in _contents(store, "acme-ph"))
    assert sum(t.startswith("Hi ") for t in texts) > 20  # the agent greets people by (stand-in) name
    assert "Maya" in " ".join(texts)  # the shop's own agent is the business's voice: kept
    assert "Oliver" not in " ".join(texts) and "Bennett" not in " ".join(texts)
    other_seed = import_dataset([ACME], "acme-s", ours=["acme-outdoor.example"], seed=5, store=store)
    assert other_seed.config["merkle_root"] != a.config["merkle_root"]
    from freehold.ledger import Ledger

    rec = [r for r in Ledger.open(store.home).records() if r.type == "dataset" and r.payload["name"] == "acme-a:latest"]
    assert rec and rec[-1].payload["filters"]["pii"] == "surrogates"


def test_real_list_mail_gets_no_placeholder_and_only_reserved_addresses(rpd: tuple[Store, dict]) -> None:
    store, config = rpd
    assert config["pii"]["mode"] == "surrogates" and not config["pii"]["kept_ours"]  # a list: nobody kept
    assert config["pii"]["replaced"]["NAME"] > 20 and config["pii"]["replaced"]["EMAIL"] > 0
    for text in _contents(store, "rpd"):
        assert not GUARDED.search(text), text
        for m in EMAIL.finditer(text):
            assert m.group(1) in RESERVED_DOMAINS, m.group(0)
        for m in PHONE.finditer(text):
            assert "555-01" in m.group(0), m.group(0)


def test_rerender_replaces_placeholders_with_lineage_to_the_import(capsys: pytest.CaptureFixture[str]) -> None:
    store = Store.open()
    ph = import_dataset([ACME], "acme", ours=["acme-outdoor.example"], pii="placeholders", store=store)
    new = rerender_dataset("acme", "acme-real", store=store)
    again = rerender_dataset("acme", "acme-real2", store=store)
    assert _layers(new) == _layers(again)  # deterministic
    old_rows = list(iter_examples(ph.entry, store))
    new_rows = list(iter_examples(new.entry, store))
    assert [r["thread"] for r in old_rows] == [r["thread"] for r in new_rows]  # same rows, same order
    splits = [la.annotations["split"] for la in new.entry.manifest.layers_of(MediaType.DATASET)]
    assert splits == [la.annotations["split"] for la in ph.entry.manifest.layers_of(MediaType.DATASET)]
    assert new.counts == ph.counts and new.config["pii"]["replaced"] == {"NAME": 62}
    assert new.config["rerendered_from"]["name"] == "acme:latest"
    for old, row in zip(old_rows, new_rows, strict=True):
        assert not any(GUARDED.search(m["content"]) for m in row["messages"])
        # Outside the placeholders nothing changed, and one placeholder is one stand-in per row.
        for o, n in zip(old["messages"], row["messages"], strict=True):
            pattern = re.escape(o["content"])
            for ph_token in set(PLACEHOLDER.findall(o["content"])):
                pattern = pattern.replace(re.escape(f"[{ph_token[0]}_{ph_token[1]}]"), r"([A-Z][a-z]+)")
            assert re.fullmatch(pattern, n["content"]), (o["content"], n["content"])
    from freehold.ledger import Ledger
    from freehold.ledger.graph import LedgerIndex

    records = Ledger.open(store.home).records()
    index = LedgerIndex(records)
    child = max(i for i, r in enumerate(records) if r.type == "dataset" and r.payload["name"] == "acme-real:latest")
    parent = max(i for i, r in enumerate(records) if r.type == "dataset" and r.payload["name"] == "acme:latest")
    assert parent in index.parents[child]
    with pytest.raises(UsageError, match="already"):
        rerender_dataset("acme-real", "x", store=store)
    import_dataset([ACME], "acme-raw", ours=["acme-outdoor.example"], pii="keep", store=store)
    with pytest.raises(UsageError, match="no placeholders"):
        rerender_dataset("acme-raw", "x", store=store)
    store.close()
    assert main(["data", "rerender", "acme", "-o", "acme-cli", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["name"] == "acme-cli:latest" and doc["merkle_root"] == new.config["merkle_root"]
    assert main(["data", "rerender", "acme", "-o", "y", "--pii", "placeholders"]) != 0
    assert "surrogates" in capsys.readouterr().err
