"""PII scrubbing: checksums, consistent placeholders, precision/recall on the labelled sample."""

from __future__ import annotations

import json
from pathlib import Path

from freehold.data.pii import Scrubber, find_pii, iban_ok, luhn_ok, name_tokens

LABELS = Path(__file__).with_name("pii_labels.jsonl")


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE12 3456 7890 1234 5678 90")


def test_placeholders_are_typed_and_consistent_within_a_conversation() -> None:
    s = Scrubber(name_tokens(["Ann Smith"]))
    first = s.scrub("Hi Ann, mail ann@example.org or call +44 20 7946 0958.")
    second = s.scrub("Ann Smith again: ann@example.org, bob@example.org")
    assert first == "Hi [NAME_1], mail [EMAIL_1] or call [PHONE_1]."
    assert second == "[NAME_1] again: [EMAIL_1], [EMAIL_2]"
    assert Scrubber().scrub("bob@example.org") == "[EMAIL_1]"  # a new conversation starts over


def test_precision_and_recall_on_labelled_sample() -> None:
    tp = found = labelled = 0
    for line in LABELS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        hits = find_pii(row["text"], name_tokens(row["names"]))
        labels = [tuple(x) for x in row["pii"]]
        found += len(hits)
        labelled += len(labels)
        tp += sum(1 for h in hits if any(t == h.type and (s in h.text or h.text in s) for t, s in labels))
    assert labelled >= 35
    assert tp / found >= 0.9 and tp / labelled >= 0.9


def test_code_versions_and_dates_are_left_alone() -> None:
    text = "R 4.3.2, gcc 13.2.1, seed 20231101, on 2023-10-31 at 14:20, p = 0.0012345, ip 10.0.0.1"
    assert find_pii(text) == []


def test_slugs_and_digests_in_urls_are_not_secrets() -> None:
    ok = [
        "https://www.r-project.org/nosvn/R.check/r-devel-linux-x86_64-debian-clang/pkg-00check.html",
        "https://stackoverflow.com/questions/70585796/unable-to-understand-1-note-in-devtools-check",
        "https://github.com/r-lib/devtools/commit/0123456789abcdef0123456789abcdef01234567",
    ]
    assert all(find_pii(u) == [] for u in ok)
    assert [f.type for f in find_pii("https://x.com/reset?t=AbC123xYz987QweRty654PlM")] == ["URL"]
    assert [f.type for f in find_pii("https://eur01.safelinks.protection.outlook.com/?url=a&data=b%40c")] == [
        "URL"
    ]


def test_greeting_name_must_be_on_the_greeting_line() -> None:
    assert find_pii("Hello,\n\nI've been asked to update my package.") == []
    assert [f.text for f in find_pii("Hello Maria,\n\nthanks")] == ["Maria"]
