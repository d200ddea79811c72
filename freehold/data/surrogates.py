"""Realistic stand-ins for personal data, consistent within a conversation and reproducible.

A model tuned on ``[NAME_1]`` learns to write ``[NAME_1]``; one tuned on "Hi Ruth," learns to
greet people. ``Surrogates`` gives each person, address or number found in one conversation
a fictional stand-in, the same in every turn:

    names      first and last names from the lists shipped in data/names/ (US SSA and Census,
               public domain; see data/names/SOURCES.md), of the same sex where the list
               knows the original first name, never a name the archive itself holds
    emails     built from the person's stand-in name at example.com/.org/.net (RFC 2606)
    phones     +1-555-0100 ... 0199, the range NANP reserves for fiction
    cards      well-known test card numbers (Luhn-valid, never issued)
    IBANs      the published specimen IBANs of the banking standards (mod-97 valid)
    addresses  "12 Maple Street", "Musterstraße 12", postcodes in the nonexistent ZZ area
    URLs       https://example.com/s/<random>

Stand-ins are drawn from a generator seeded by (dataset seed, conversation key), never by
the original value, so a re-import is byte-identical and a stand-in says nothing about the
person behind it. ``render_placeholders`` turns an already-scrubbed text (``[NAME_1]``
...) into stand-ins, for datasets imported before surrogates existed.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources

from freehold.data.pii import PLACEHOLDER, address_kind

RESERVED_DOMAINS = ("example.com", "example.org", "example.net")  # RFC 2606: never a real mailbox
TEST_CARDS = ("4111 1111 1111 1111", "5555 5555 5555 4444", "4012 8888 8888 1881", "3782 822463 10005")
SPECIMEN_IBANS = (
    "GB82 WEST 1234 5698 7654 32",
    "DE89 3704 0044 0532 0130 00",
    "NL91 ABNA 0417 1643 00",
    "FR14 2004 1010 0505 0001 3M02 606",
)
_STREET_WORDS = ("Maple", "Cedar", "Birch", "Willow", "Chestnut", "Juniper", "Hawthorn", "Rowan", "Linden", "Alder")
_STREET_TYPE = re.compile(
    r"\b(Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Square|Sq|"
    r"Terrace|Parkway|Pkwy|Highway|Hwy|Close|Crescent)\b"
)
_TITLE_BEFORE = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herr|Frau)\.?\s+$")
# A list thinned below this by the archive's own names falls back to the whole list: a
# stand-in that happens to match a real name beats a conversation of identical stand-ins.
_MIN_POOL = 40


@dataclass(frozen=True)
class _Pool:
    female: tuple[str, ...]
    male: tuple[str, ...]
    first: tuple[str, ...]
    last: tuple[str, ...]
    sex: dict[str, str]


def _read(name: str) -> list[str]:
    text = (resources.files("freehold.data") / "names" / name).read_text(encoding="utf-8")
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


@functools.cache
def _lists() -> tuple[dict[str, str], tuple[str, ...]]:
    sex: dict[str, str] = {}
    for line in _read("first_names.tsv"):
        name, _, kind = line.partition("\t")
        sex[name] = kind
    return sex, tuple(_read("last_names.txt"))


def lists_digest() -> str:
    """sha256 of the shipped name lists: recorded with a dataset, since other lists give other rows."""
    h = hashlib.sha256()
    for name in ("first_names.tsv", "last_names.txt"):
        h.update((resources.files("freehold.data") / "names" / name).read_bytes())
    return "sha256:" + h.hexdigest()


@functools.lru_cache(maxsize=8)
def _pool(avoid: frozenset[str]) -> _Pool:
    sex, last = _lists()

    def thin(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        kept = tuple(n for n in names if n not in avoid)
        return kept if len(kept) >= _MIN_POOL else tuple(names)

    female = thin([n for n, s in sex.items() if s in ("f", "u")])
    male = thin([n for n, s in sex.items() if s in ("m", "u")])
    return _Pool(female, male, thin(list(sex)), thin(last), sex)


class Surrogates:
    """Stand-ins for one conversation. ``avoid``: real names (the archive's) never to draw."""

    def __init__(self, seed: int, conversation: str, avoid: frozenset[str] = frozenset()) -> None:
        self._base = f"freehold-surrogates\0{seed}\0{conversation}"
        self._rngs: dict[str, random.Random] = {}
        self._pool = _pool(avoid)
        self._people: dict[str, tuple[str, str]] = {}  # person -> (first, last) stand-in
        self._tokens: dict[str, tuple[str, int]] = {}  # lower-case name word -> (person, 0 first / 1 last)
        self._used: set[str] = set()
        self._values: dict[tuple[str, str], str] = {}
        self._seen: Counter[str] = Counter()

    def _rng(self, kind: str) -> random.Random:
        # One generator per kind, so a phone number in a thread does not change its names.
        rng = self._rngs.get(kind)
        if rng is None:
            digest = hashlib.sha256(f"{self._base}\0{kind}".encode()).digest()
            rng = self._rngs[kind] = random.Random(int.from_bytes(digest[:8], "big"))
        return rng

    def _draw(self, names: tuple[str, ...]) -> str:
        rng = self._rng("NAME")
        for _ in range(20):
            pick = rng.choice(names)
            if pick not in self._used:
                break
        self._used.add(pick)
        return pick

    def _person(self, person: str, first_word: str | None) -> tuple[str, str]:
        got = self._people.get(person)
        if got is None:
            sex = self._pool.sex.get(first_word or "")
            names = self._pool.female if sex == "f" else self._pool.male if sex == "m" else self._pool.first
            got = self._people[person] = (self._draw(names), self._draw(self._pool.last))
        return got

    # -- the stand-in for one finding ---------------------------------------------------------

    def stand_in(self, kind: str, key: str, text: str, before: str = "") -> str:
        """The stand-in for a finding of ``kind`` (pii.TYPES); ``key`` identifies the value
        within the conversation, ``before`` is the text just before it (for "Dr Smith")."""
        if kind == "NAME":
            return self._name(text, before)
        got = self._values.get((kind, key))
        if got is None:
            self._seen[kind] += 1
            got = self._values[(kind, key)] = self._new_value(kind, text, self._seen[kind] - 1)
        return got

    def stand_in_placeholder(self, token: str, before: str = "") -> str:
        """The stand-in for a scrubber's placeholder (``[NAME_1]``, ``[PHONE_2]`` ...)."""
        m = PLACEHOLDER.fullmatch(token)
        if m is None:
            return token
        if m.group(1) != "NAME":
            return self.stand_in(m.group(1), token, "")
        return self._name(token, before, placeholder=True)

    def _name(self, text: str, before: str, *, placeholder: bool = False) -> str:
        possessive = not placeholder and text.endswith("'s")
        words = [text] if placeholder else text.removesuffix("'s").split()
        if not words:
            return text
        known = self._tokens.get(words[0].lower())
        if known is None and len(words) > 1 and words[-1].lower() in self._tokens:
            known = (self._tokens[words[-1].lower()][0], 0)  # "Dr Bennett", then "Oliver Bennett"
            self._tokens[words[0].lower()] = known
        if known is None:
            person, role = words[0], (1 if len(words) == 1 and _TITLE_BEFORE.search(before) else 0)
            self._tokens[words[0].lower()] = (person, role)
        else:
            person, role = known
        if len(words) > 1:
            self._tokens.setdefault(words[-1].lower(), (person, 1))
        first, last = self._person(person, words[0] if role == 0 else None)
        surname_only = role == 1 or _TITLE_BEFORE.search(before) is not None
        out = f"{first} {last}" if len(words) > 1 else last if surname_only else first
        if not placeholder and text.isupper():
            out = out.upper()
        return out + ("'s" if possessive else "")

    def _new_value(self, kind: str, text: str, index: int) -> str:
        rng = self._rng(kind)
        if kind == "EMAIL":
            return self._email(text)
        if kind == "PHONE":
            number = f"555-01{rng.randrange(100):02d}"
            return f"+1-{number}" if not text or text.lstrip().startswith(("+", "00")) else number
        if kind == "CARD":
            card = TEST_CARDS[index % len(TEST_CARDS)]
            return card if not text or not text.isdigit() else card.replace(" ", "")
        if kind == "IBAN":
            iban = SPECIMEN_IBANS[index % len(SPECIMEN_IBANS)]
            return iban if not text or " " in text else iban.replace(" ", "")
        if kind == "URL":
            return f"https://example.com/s/{rng.getrandbits(48):012x}"
        if kind == "ADDRESS":
            return self._address(text, rng)
        return text

    def _email(self, text: str) -> str:
        m = re.match(r"[\w.+-]*", text.strip())
        local = m.group(0) if m else ""
        words = [w for w in re.split(r"[._+\-\d]+", local.lower()) if w]
        person = next((self._tokens[w][0] for w in words if w in self._tokens), None)
        if person is None:
            # Someone not named in the conversation (yet): a stand-in person of their own, who
            # becomes the stand-in for the name if it turns up later ("ann.smith@", then "Ann").
            person = words[0].capitalize() if words else f"\0{text}"
            for role, w in enumerate(words[:2]):
                self._tokens.setdefault(w, (person, role))
        first, last = self._person(person, words[0].capitalize() if words else None)
        if len(words) == 1 and words[0] in self._tokens and self._tokens[words[0]][1] == 0:
            user = first.lower()
        else:
            sep = next((c for c in local if c in "._-"), ".")
            user = f"{first.lower()}{sep}{last.lower()}"
        domain = RESERVED_DOMAINS[self._rng("EMAIL").randrange(len(RESERVED_DOMAINS))]
        at = " at " if text and "@" not in text else "@"
        return f"{user}{at}{domain}"

    def _address(self, text: str, rng: random.Random) -> str:
        shape = address_kind(text) if text else "street"
        number = rng.randrange(2, 200)
        if shape == "po_box":
            return re.sub(r"\d+", str(rng.randrange(100, 10000)), text, count=1)
        if shape == "uk_postcode":
            return f"ZZ{rng.randrange(1, 10)} {rng.randrange(1, 10)}ZZ"
        if shape == "street_eu":
            return f"Musterstraße {number}" + (", 12345 Musterstadt" if "," in text else "")
        m = _STREET_TYPE.search(text)
        street = f"{number} {rng.choice(_STREET_WORDS)} {m.group(1) if m else 'Street'}"
        return street + (", Anytown, ST 00000" if re.search(r"\d{5}(?:-\d{4})?$", text) else "")


def render_placeholders(text: str, surrogates: Surrogates, counts: Counter[str] | None = None) -> str:
    """``[NAME_1]``, ``[EMAIL_2]`` ... in a scrubbed text replaced by ``surrogates``' stand-ins.

    Each placeholder was one person or value of its conversation, so it gets one stand-in; a
    name placeholder reads as a first name (the scrubber keyed people by their first name),
    or a surname after a title ("Dr [NAME_2]")."""

    def sub(m: re.Match[str]) -> str:
        if counts is not None:
            counts[m.group(1)] += 1
        return surrogates.stand_in_placeholder(m.group(0), text[max(0, m.start() - 12) : m.start()])

    return PLACEHOLDER.sub(sub, text)
