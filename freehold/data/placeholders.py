"""The last line of defence: no scrubber placeholder in what a customer reads.

A model tuned on a placeholder dataset (``--pii placeholders``, or one imported before
surrogates were the default) writes "Hi [NAME_1],". ``PlaceholderGuard`` filters generated
text as it streams: a name placeholder becomes the customer's name when the conversation
shows it (``conversation_name``), anything else is dropped with the space before it ("Hi
[NAME_1]," -> "Hi,"). Text that may be the start of a placeholder ("[NA") is held back
until it is clear, so a placeholder split across chunks never leaks, and a partial one
left at the end of the stream is dropped. ``[NAME]`` without a number counts too: models
generalise the shape.

    guard = PlaceholderGuard(conversation_name(messages))
    for piece in pieces:
        print(guard.feed(piece), end="")
    print(guard.flush())

``resolve_placeholders(text, name)`` does the same to a whole text.

A tuned model also greets people it made up: trained on mail with realistic stand-ins it
opens "Hi Katelyn," to a customer who never gave a name. With ``seen`` (the words of the
conversation, ``conversation_words``) the guard checks the greeting lines at the start: a
greeted name the conversation does not show becomes the customer's name when known, else
goes ("Hi Katelyn," -> "Hi,"), and a second greeting after the first is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from freehold.data.pii import _NOT_NAMES, TYPES

GUARDED = re.compile(rf"\[({'|'.join(TYPES)})(?:_\d+)?\]")
_LONGEST = max(map(len, TYPES)) + 9  # "[ADDRESS_" + up to 8 digits
_PARTIAL = re.compile(r"\[([A-Z]*)(_?)(\d*)")
_SPACE = " \t"
# A sign-off a customer ends a mail with: "Thanks,\nOliver", "- Oliver Bennett", "Cheers, Ann".
_SIGN_OFF = re.compile(
    r"^(?:[-–—~]\s*|(?i:thanks|thank you|many thanks|cheers|best|regards|best regards|kind regards|"
    r"warm regards|all the best|sincerely|yours)[,!.]?\s+)?"
    r"([A-Z][a-zà-ÿ'-]+)(?: [A-Z][a-zà-ÿ'-]+)?[.!]?$"
)
_MY_NAME = re.compile(r"\b(?i:my name is|my name's)\s+([A-Z][a-zà-ÿ'-]+)\b")


def _could_become(tail: str) -> bool:
    """Whether ``tail`` (starting with "[") may still grow into a placeholder."""
    m = _PARTIAL.fullmatch(tail)
    if m is None or len(tail) > _LONGEST:
        return False
    letters, underscore, digits = m.groups()
    if not underscore:
        return not digits and any(t.startswith(letters) for t in TYPES)
    return letters in TYPES


def _resolve(text: str, name: str | None, before: str, values: Mapping[str, str] | None = None) -> str:
    """Placeholders in ``text`` replaced or dropped; ``before``: the character given out just
    before it ("" at the start of the stream); ``values``: placeholders that stand for a known
    text (what the serving guardrails replaced in the prompt), given back as that text."""
    if "[" not in text:
        return text
    out: list[str] = []
    pos = 0
    for m in GUARDED.finditer(text):
        start = m.start()
        while start > pos and text[start - 1] in _SPACE:
            start -= 1
        out.append(text[pos:start])
        lead, pos = text[start : m.start()], m.end()
        if values and m.group(0) in values:
            out.append(lead + values[m.group(0)])
            continue
        if name and m.group(1) == "NAME":
            out.append(lead + name)
            continue
        # Dropped with the space before it: "Hi [NAME_1]," -> "Hi,", "Thanks [NAME_1] for" ->
        # "Thanks for"; at a line start with the space after it: "[NAME_1] here" -> "here".
        prev = next((piece[-1] for piece in reversed(out) if piece), before)
        if prev in ("", "\n"):
            while pos < len(text) and text[pos] in _SPACE:
                pos += 1
    out.append(text[pos:])
    return "".join(out)


_GREETING = re.compile(r"^(?P<word>(?i:hi|hello|hey|dear|good (?:morning|afternoon|evening)))"
                       r"(?P<name>(?: [A-Z][A-Za-zÀ-ÿ'-]+){1,2})?(?P<end>\s*[,!.]?\s*)$")
_GREETING_HOLD = 60  # a first line longer than this is not a greeting


class PlaceholderGuard:
    """Incremental filter over generated text (see the module docstring)."""

    def __init__(self, name: str | None = None, seen: frozenset[str] | None = None,
                 values: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.values = values  # placeholder -> the text it stands for (given back instead of dropped)
        self.pending = ""
        self.last = ""  # the last character already given out: "" at the start
        self.seen = seen  # None: greetings are not checked
        self.head = ""  # the greeting lines at the start, held until they are complete
        self.greeted = False
        self.blank = False  # a blank line after the greeting went out

    def _greeting(self, final: bool) -> str:
        """What of ``head`` can go out now (lines checked), the rest held."""
        out: list[str] = []
        while self.seen is not None and self.head:
            line, newline, rest = self.head.partition("\n")
            if not newline and not final and len(line) <= _GREETING_HOLD:
                break  # the line is not complete yet
            m = _GREETING.match(line.strip())
            if line.strip() and m is None:
                self.seen = None  # the greeting is over: stop checking
                break
            self.head = rest
            if m is not None:
                if self.greeted:
                    continue  # "Hi Francisco,\n\nDear Marco,": one greeting is enough
                self.greeted = True
                name = (m.group("name") or "").strip()
                if name and not all(w in self.seen for w in name.split()):
                    line = m.group("word") + (f" {self.name}" if self.name else "") + m.group("end").strip()
            elif self.blank:
                continue  # one blank line after the greeting is enough
            self.blank = m is None
            out.append(line + newline)
            if not newline:
                break
        if self.seen is None or final:
            out.append(self.head)
            self.head = ""
        return "".join(out)

    def _hold_from(self) -> int:
        text = self.pending
        end = len(text)
        while True:
            cut = end
            while cut > 0 and text[cut - 1] in _SPACE:
                cut -= 1  # a space may precede a placeholder that is still coming
            bracket = text.rfind("[", 0, cut)
            if bracket < 0:
                return cut
            tail = text[bracket:cut]
            if GUARDED.fullmatch(tail) or _could_become(tail):
                end = bracket  # what follows decides its spacing: hold it, and look again before it
                continue
            return cut

    def feed(self, text: str) -> str:
        self.pending += text
        if not self.pending:
            return ""
        if "[" not in self.pending and self.pending[-1:] not in _SPACE:
            out, self.pending = self.pending, ""
        else:
            hold = self._hold_from()
            out = _resolve(self.pending[:hold], self.name, self.last, self.values)
            self.pending = self.pending[hold:]
        if out:
            self.last = out[-1]
        return self._greet(out, final=False)

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        bracket = text.rfind("[")
        if bracket >= 0 and _could_become(text[bracket:]) and len(text) - bracket > 1:
            text = text[:bracket].rstrip(_SPACE)  # a placeholder cut off by the end of the stream
        out = _resolve(text, self.name, self.last, self.values)
        if out:
            self.last = out[-1]
        return self._greet(out, final=True)

    def _greet(self, text: str, final: bool) -> str:
        if self.seen is None and not self.head:
            return text
        self.head += text
        return self._greeting(final)


def resolve_placeholders(text: str, name: str | None = None, seen: frozenset[str] | None = None) -> str:
    """A whole text through ``PlaceholderGuard``."""
    guard = PlaceholderGuard(name, seen)
    return guard.feed(text) + guard.flush()


# Whom a reply may greet without a name: "Dear Sir", "Hi there", "Hello Team".
_GREETABLE = frozenset(["Sir", "Madam", "Sirs", "There", "All", "Team", "Everyone", "Friend", "Friends", "Customer",
                        "Folks"])


def conversation_words(messages: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The capitalised words the customer's side of a conversation shows (not the system
    prompt, whose sources greet other people): the names a reply may greet."""
    words: set[str] = set(_GREETABLE)
    for msg in messages:
        content = msg.get("content")
        if msg.get("role") != "system" and isinstance(content, str):
            words.update(re.findall(r"[A-Z][A-Za-zÀ-ÿ'-]+", content))  # McKenzie, SmolLM
    return frozenset(words)


def conversation_name(messages: Iterable[Mapping[str, Any]]) -> str | None:
    """The customer's first name as the conversation shows it (a sign-off, "my name is ..."),
    latest first; None when it does not."""
    for msg in reversed(list(messages)):
        content = msg.get("content")
        if msg.get("role") != "user" or not isinstance(content, str):
            continue
        lines = [ln.strip() for ln in content.strip().splitlines() if ln.strip()]
        for line in reversed(lines[-3:]):
            m = _SIGN_OFF.match(line)
            if m and line != lines[0] and m.group(1) not in _NOT_NAMES:
                return m.group(1)
        m = _MY_NAME.search(content)
        if m and m.group(1) not in _NOT_NAMES:
            return m.group(1)
    return None
