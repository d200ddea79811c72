"""The output guard: no scrubber placeholder reaches a reader, whole or split across chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from freehold.data.placeholders import GUARDED, PlaceholderGuard, conversation_name, resolve_placeholders
from freehold.engine import Engine, SamplingParams
from freehold.testing import CHATML

# What the demo model tuned on placeholders wrote (issue 12), and the shapes around it.
DEMO = "Hi [NAME_1],\n\nDear [NAME_2],\n\nThank you for reaching out. Call [PHONE_1] or mail [EMAIL_3]."
CASES = [
    (DEMO, None, "Hi,\n\nDear,\n\nThank you for reaching out. Call or mail."),
    (DEMO, "Oliver", "Hi Oliver,\n\nDear Oliver,\n\nThank you for reaching out. Call or mail."),
    ("Thanks [NAME_1] for the photo.", None, "Thanks for the photo."),
    ("[NAME_1] here. [NAME] too", None, "here. too"),
    ("Best,\n[NAME_1]\n[NAME_2] [NAME_3]", None, "Best,\n\n"),
    ("see [1], arr[i], [NOTE], [Name_1] and [ADDR]", None, "see [1], arr[i], [NOTE], [Name_1] and [ADDR]"),
    ("cut off in [NAME_", None, "cut off in"),
    ("cut off at [", None, "cut off at ["),
]


@pytest.mark.parametrize("text, name, expected", CASES)
def test_whole_text(text: str, name: str | None, expected: str) -> None:
    assert resolve_placeholders(text, name) == expected


@pytest.mark.parametrize("text, name, expected", CASES)
def test_every_split_into_chunks_gives_the_same_text(text: str, name: str | None, expected: str) -> None:
    for size in range(1, 8):
        guard = PlaceholderGuard(name)
        given = ""
        for i in range(0, len(text), size):
            given += guard.feed(text[i : i + size])
            # What is out is never taken back: no piece of a placeholder was given out early.
            assert expected.startswith(given), (size, given)
        assert given + guard.flush() == expected
    for cut in range(len(text)):  # every two-chunk split, the placeholder cut anywhere
        guard = PlaceholderGuard(name)
        assert guard.feed(text[:cut]) + guard.feed(text[cut:]) + guard.flush() == expected


def test_plain_text_streams_through_unchanged_and_unheld() -> None:
    guard = PlaceholderGuard()
    assert [guard.feed(p) for p in ("Hello", " there,", "\nyes")] == ["Hello", " there,", "\nyes"]
    assert guard.feed(" ") == "" and guard.feed("ok") == " ok"  # a trailing space waits one piece


def test_the_customer_name_comes_from_the_conversation() -> None:
    assert conversation_name([{"role": "user", "content": "Hi,\n\nMy zip broke.\n\nThanks,\nOliver"}]) == "Oliver"
    assert conversation_name([{"role": "user", "content": "Hello, my name is Ann and my zip broke."}]) == "Ann"
    assert conversation_name([{"role": "user", "content": "Hi, the zip broke. Is that covered?"}]) is None
    assert conversation_name([{"role": "user", "content": "Hi,\nit broke.\nWorks now."}]) is None
    assert conversation_name([{"role": "user", "content": "Hi,\nit broke.\nThanks"}]) is None
    talk = [
        {"role": "user", "content": "Hi,\nit broke.\n- Ann Smith"},
        {"role": "assistant", "content": "Sorry! Send a photo."},
        {"role": "user", "content": [{"type": "text", "text": "here"}]},
    ]
    assert conversation_name(talk) == "Ann"


class _Scripted:
    """A Backend that "generates" fixed text pieces, one token each (no weights needed)."""

    name = "scripted"
    n_ctx = 4096

    def __init__(self, pieces: Sequence[str]) -> None:
        self.pieces = [p.encode() for p in pieces]
        self.closed = 0

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return list(range(len(text.split())))

    def token_bytes(self, token: int) -> bytes:
        return self.pieces[token]

    def is_eog(self, token: int) -> bool:
        return token >= len(self.pieces)

    def special_token_text(self, which: str) -> str | None:
        return None

    def generate(self, tokens: Sequence[int], params: SamplingParams) -> Iterator[int]:
        try:
            yield from range(len(self.pieces) + 1)
        finally:
            self.closed += 1

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return []

    def close(self) -> None:
        pass


def _engine(pieces: Sequence[str]) -> tuple[Engine, _Scripted]:
    backend = _Scripted(pieces)
    entry: Any = SimpleNamespace(name="tuned:latest")
    return Engine(backend, entry, CHATML), backend  # type: ignore[arg-type]


ASK = [{"role": "user", "content": "Hi, the zip on my Summit 45L backpack broke. Is that covered?\n\nThanks,\nOliver"}]
PIECES = ["Hi", " [", "NAME", "_", "1", "],", "\n\n", "Dear", " [NA", "ME_2", "]", ",\n\nYes", ", it", " is covered."]


def test_engine_chat_streams_no_placeholder() -> None:
    engine, backend = _engine(PIECES)
    params = SamplingParams(temperature=0)
    chunks = list(engine.chat(ASK, params))
    # one greeting is enough: the second ("Dear [NAME_2],") goes
    assert "".join(c.text for c in chunks) == "Hi Oliver,\n\nYes, it is covered."
    assert not any(GUARDED.search(c.text) or "[" in c.text for c in chunks)
    assert sum(len(c.token_ids) for c in chunks) == len(PIECES)  # held tokens are passed on, not lost
    assert chunks[-1].finish_reason == "stop" and chunks[-1].completion_tokens == len(PIECES)
    anonymous = [{"role": "user", "content": "Hi, the zip broke. Is that covered?"}]
    assert engine.complete(engine.chat(anonymous, params)).text == "Hi,\n\nYes, it is covered."
    # Cut by max_tokens in the middle of a placeholder: the partial one is dropped too.
    cut = engine.complete(engine.chat(anonymous, SamplingParams(temperature=0, max_tokens=9)))
    assert cut.finish_reason == "length" and cut.text == "Hi,\n\n"
    # A client that stops reading closes the backend's generator at once.
    stream = engine.chat(anonymous, params)
    next(stream)
    stream.close()  # type: ignore[attr-defined]
    assert backend.closed == 4


@pytest.mark.parametrize(("text", "name", "expected"), [
    ("Hi Katelyn,\n\nYes, zips are covered.", None, "Hi,\n\nYes, zips are covered."),  # made up: dropped
    ("Hi Katelyn,\n\nYes, zips are covered.", "Oliver", "Hi Oliver,\n\nYes, zips are covered."),
    ("Hi Oliver,\n\nYes.", None, "Hi Oliver,\n\nYes."),  # the conversation shows Oliver: kept
    ("Hi SmolLM,\n\nYes.", None, "Hi,\n\nYes."),  # capitals inside a name (seen in a real answer)
    ("Hi McKenzie,\n\nYes.", None, "Hi McKenzie,\n\nYes."),  # the customer signed as McKenzie
    ("Hi Francisco,\n\nDear Marco,\n\nThanks.", None, "Hi,\n\nThanks."),  # one greeting is enough
    ("Dear Sir,\nYes.", None, "Dear Sir,\nYes."),
    ("Hello!\n\nOur hours are 9 to 5.", None, "Hello!\n\nOur hours are 9 to 5."),
    ("Yes, Katelyn Smith wrote the policy.", None, "Yes, Katelyn Smith wrote the policy."),  # not a greeting
])
def test_a_greeting_names_nobody_the_conversation_does_not_show(text: str, name: str | None, expected: str) -> None:
    from freehold.data.placeholders import conversation_words

    seen = conversation_words([{"role": "system", "content": "Sources: Hi Katelyn, ..."},  # not the customer
                               {"role": "user", "content": "Hi, my zip broke.\n\nOliver McKenzie"}])
    assert resolve_placeholders(text, name, seen) == expected
    guard = PlaceholderGuard(name, seen)
    assert "".join(guard.feed(c) for c in text) + guard.flush() == expected  # streamed a character at a time
