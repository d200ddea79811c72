"""Filters over an answer as it streams: nothing they stop ever leaves in a chunk.

Each filter has ``feed(text) -> text it can give out now`` and ``flush() -> the rest``; what
may still turn into something it stops is held back, and only that: a word still being
written (its end decides), a run of digits (a card or phone number may go on), the start of
a denied phrase. Everything else goes out at once, so a stream is barely delayed.

    Redactor(types, known)   personal data the conversation did not hold becomes "[redacted]"
    DenyFilter(terms)        a denied word or phrase stops the answer (``hit`` says which)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from freehold.data.pii import find_pii, identity

REDACTED = "[redacted]"
# The most a Redactor holds back: longer than any card, IBAN, phone or ordinary e-mail address,
# so text with no space in it (code, a run of digits) still streams.
MAX_HOLD = 80
_SPACE = " \t\n\r"
# A token that may be part of a number still being written: digits, and the separators cards,
# phones and IBANs use between digit groups (IBANs also letters: "DE89 3704").
_NUMBERISH = re.compile(r"[\dA-Z+()./-]*\d[\dA-Z+()./-]*|[+(]")


class Redactor:
    """Personal data of ``types`` in an answer that is not among ``known`` (the ``identity`` of what the
    conversation held) is replaced by "[redacted]"; ``redacted`` counts them."""

    def __init__(self, types: Iterable[str], known: set[tuple[str, str]]) -> None:
        self.types = set(types)
        self.known = known
        self.pending = ""
        self.redacted = 0

    def _hold_from(self, text: str) -> int:
        cut = len(text)
        if cut and text[-1] not in _SPACE:  # a word still being written: "ann" may become ann@x.org
            cut = max(text.rfind(c, 0, cut) for c in _SPACE) + 1
        start = cut
        while True:  # then any run of number-like tokens before it: "4111 1111 " may go on
            end = start
            while end > 0 and text[end - 1] in " -":
                end -= 1
            begin = max(text.rfind(c, 0, end) for c in _SPACE) + 1
            if end == 0 or begin == end or not _NUMBERISH.fullmatch(text[begin:end]):
                break
            start = begin
        return max(start if start < cut else cut, len(text) - MAX_HOLD)

    def _redact(self, text: str, final: bool) -> tuple[str, str]:
        """(what goes out, what is held)."""
        hold = len(text) if final else self._hold_from(text)
        findings = [f for f in find_pii(text) if f.type in self.types]
        for f in findings:  # a finding that runs past the cut is held whole
            if f.start < hold < f.end:
                hold = f.start
        out, pos = [], 0
        for f in findings:
            if f.end > hold:
                break
            if (f.type, identity(f.type, f.text)) in self.known:
                continue
            out += [text[pos:f.start], REDACTED]
            pos = f.end
            self.redacted += 1
        out.append(text[pos:hold])
        return "".join(out), text[hold:]

    def feed(self, text: str) -> str:
        self.pending += text
        out, self.pending = self._redact(self.pending, final=False)
        return out

    def flush(self) -> str:
        out, self.pending = self._redact(self.pending, final=True)
        return out


@functools.lru_cache(maxsize=64)
def _deny_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    """One regex per deny-list, compiled once (a filter is made per request)."""
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", re.IGNORECASE)


class DenyFilter:
    """Stops at the first denied word or phrase (case-insensitive, whole words): ``hit`` is the
    term; what came before it goes out, nothing from it on."""

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = [t.strip().lower() for t in terms if t.strip()]
        self.pattern = _deny_pattern(tuple(self.terms)) if self.terms else None
        self.longest = max((len(t) for t in self.terms), default=0)
        self.pending = ""
        self.hit: str | None = None

    def _hold_from(self, text: str) -> int:
        """The start of the longest tail that is the beginning of a term (or a whole term whose
        next character decides whether it is a whole word)."""
        low = text.lower()
        for start in range(max(0, len(text) - self.longest), len(text)):
            if start > 0 and (low[start - 1].isalnum() or low[start - 1] == "_"):
                continue  # not at a word start
            tail = low[start:]
            if any(t.startswith(tail) for t in self.terms):
                return start
        return len(text)

    def _check(self, final: bool) -> str:
        if self.pattern is None or self.hit is not None:
            out, self.pending = ("" if self.hit else self.pending), ""
            return out
        m = self.pattern.search(self.pending)
        if m is not None and (m.end() < len(self.pending) or final):
            self.hit = m.group(0).lower()
            out, self.pending = self.pending[:m.start()], ""
            return out
        hold = len(self.pending) if final else self._hold_from(self.pending)
        if m is not None:
            hold = min(hold, m.start())  # a term at the very end: the next character decides
        out, self.pending = self.pending[:hold], self.pending[hold:]
        return out

    def feed(self, text: str) -> str:
        self.pending += text
        return self._check(final=False)

    def flush(self) -> str:
        return self._check(final=True)

    def found_in(self, text: str) -> str | None:
        """The first denied term in a whole text (a prompt), None when there is none."""
        m = self.pattern.search(text) if self.pattern is not None else None
        return m.group(0).lower() if m else None
