"""Quote and signature stripping, on hand cases and on the real reply fixtures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from freehold.data.clean import strip_reply

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_top_post_keeps_only_new_text() -> None:
    text = (
        "Sounds good, ship it.\n\n"
        "On Mon, 1 Jan 2024 at 10:00, Ann <ann@example.org> wrote:\n> Shall we ship?\n"
    )
    assert strip_reply(text) == "Sounds good, ship it."


def test_inline_answers_survive_between_quotes() -> None:
    text = "Ann wrote:\n> first question?\n\nFirst answer.\n\n> second question?\n\nSecond answer.\n"
    assert strip_reply(text) == "First answer.\n\nSecond answer."


@pytest.mark.parametrize(
    "attribution",
    [
        "Am 02.04.2012 um 14:20 schrieb Bob <bob@example.org>:",
        "Le 2 avr. 2012 à 14:20, Bob <bob@example.org> a écrit :",
        "El 2 abr 2012, a las 14:20, Bob <bob@example.org> escribió:",
        "Op 2 apr. 2012 om 14:20 schreef Bob <bob@example.org>:",
        '02.04.2012 14:20 пользователь "bob@example.org" написал:',
        "Den 2 apr 2012 kl. 14:20 skrev Bob <bob@example.org>:",
    ],
)
def test_attributions_in_other_languages_cut_unquoted_originals(attribution: str) -> None:
    assert strip_reply(f"Danke!\n\n{attribution}\nDie ursprüngliche Frage ohne Zitatzeichen.\n") == "Danke!"


def test_outlook_header_block_and_original_message() -> None:
    outlook = (
        "Yes.\n\nFrom: Bob [mailto:bob@example.org]\nSent: Monday, 1 January 2024 10:00\n"
        "To: Ann\nSubject: Q\n\nQ?"
    )
    assert strip_reply(outlook) == "Yes."
    assert strip_reply("Yes.\n\n-----Original Message-----\nFrom: Bob\nQ?") == "Yes."


def test_signatures_footers_and_disclaimers() -> None:
    body = "Use tools::compactPDF() on the built vignette.\n"
    assert strip_reply(body + "\n-- \nAnn Smith\nACME Corp\n") == body.strip()
    assert strip_reply(body + "\nBest regards,\nAnn\n") == body.strip()
    assert strip_reply(body + "\nSent from my iPhone\n") == body.strip()
    assert strip_reply(body + "\nAnn Smith\n+1 212 555 0147\n", sender_name="Ann Smith") == body.strip()
    footer = (
        "\n______________________________________________\nR-package-devel at r-project.org mailing list\n"
    )
    assert strip_reply(body + footer) == body.strip()
    legal = "\nCONFIDENTIALITY NOTICE: This e-mail is intended only for the addressee.\n"
    assert strip_reply(body + legal) == body.strip()


def test_prose_that_looks_like_an_attribution_is_kept() -> None:
    text = "The docs wrote:\nuse --as-cran before submitting.\n\nThat fixed it."
    assert strip_reply(text) == text
    assert strip_reply("Sent from my desk, is much easier then my mobile phone.") != ""


def test_huge_quote_line_is_linear() -> None:
    import time

    text = "Hi\n" + ">" * 800_000 + "\nanswer\n"
    t = time.perf_counter()
    assert strip_reply(text) == "Hi\nanswer"
    assert time.perf_counter() - t < 2


def _load_bench(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_fixture_accuracy_beats_email_reply_parser(shared_data: Path) -> None:
    bench = _load_bench("bench_data_quotes")
    sets = bench.cases(shared_data)
    assert {k: len(v) for k, v in sets.items()} == {
        "github": 22,
        "zapier": 24,
        "talon_replies": 12,
        "talon_signatures": 6,
        "talon_html_held_out": 9,
    }
    ours = sum(len(rows) - len(bench.score(lambda t, s: strip_reply(t, s), rows)) for rows in sets.values())
    total = sum(len(rows) for rows in sets.values())
    assert ours / total >= 0.95
    erp = pytest.importorskip("email_reply_parser")
    base = sum(
        len(rows) - len(bench.score(lambda t, s: erp.EmailReplyParser.parse_reply(t), rows))
        for rows in sets.values()
    )
    assert ours > base


def test_log_between_separator_lines_is_not_a_signature() -> None:
    text = (
        "However, I get a message I have never seen before:\n\n-----------\nAttaching package: 'rlang'\n"
        "-----------\n\nI guess that this is a result of my use of devtools for documentation?\n"
    )
    assert strip_reply(text) == text.strip().replace("\n\n\n", "\n\n")
