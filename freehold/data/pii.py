"""Offline PII scrubbing: find personal data with rules and checksums, and replace it.

Detected: email addresses (plain and the obfuscated list-archive forms), phone numbers,
IBANs (mod-97 checked), card numbers (Luhn checked), URLs carrying secrets (tokens, keys,
signatures, credentials), postal addresses where a street or postcode pattern shows them,
and personal names: after greetings, and any name known from the archive's From headers.
No model is downloaded: every rule is here and runs in microseconds per message.

``Scrubber.scrub(text)`` replaces each finding with a typed placeholder (``[EMAIL_1]``,
``[PHONE_2]``, ...; the shape is ``placeholder`` and ``PLACEHOLDER`` here) or, given a
``Surrogates`` (data/surrogates.py), with a realistic stand-in. Either way the replacement
is kept within one ``Scrubber`` (one conversation), so the same person or address reads the
same in every turn.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from freehold.data.surrogates import Surrogates


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
# pipermail: "ann at example.org"; R's archive: "ann @end|ng |rom example@org"
_EMAIL_R = re.compile(r"(?<!\S)\S+ @end\|ng \|rom \S+")
_EMAIL_AT = re.compile(
    r"(?<![\w.+-])([\w.+-]+) (?:at|AT|\(at\)|\[at\]) ([\w-]+(?:(?:\.| dot | \. )[\w-]+)*"
    r"(?:\.| dot )[A-Za-z]{2,})(?![\w-])"
)
# Words that precede " at <domain>" in prose ("look at cran.r-project.org"): not mailboxes.
_NOT_LOCAL_PART = _words(
    "look looking looked arrive arrived available based hosted located posted see seen published found "
    "is are was were be been it this that which what and or but me us them him her you we they "
    "here there one more online stored kept listed appear appears appeared"
)

_PHONE_CANDIDATE = re.compile(r"(?<![\w.+/-])(?:\+|00)?\(?\d[\d ().\-/]{5,20}\d(?![\w/-]|\.\d)")
_PHONE_KEYWORD = re.compile(
    r"(?:tel|phone|fax|mobile|mob|cell|ph|call|téléphone|telefon|telf|tfno|tlf|móvil|movil|handy)"
    r"\.?\s*[:.]?\s*(?:\+|\(|\d)",
    re.IGNORECASE,
)
_NANP = re.compile(r"^\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}$")
_EURO = re.compile(r"^0\d{1,4}[ /.-]\d{2,}(?:[ .-]\d{2,}){0,3}$")
_DATE_LIKE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")

_DIGIT_RUN = re.compile(r"\d{4}|\d[ .()/-]\d")
_CAPITALISED = re.compile(r"\b[A-Z][\w'-]+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")

_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"')\]]+", re.IGNORECASE)
_SECRET_PARAM = re.compile(
    r"(?:^|[?&;])(?:[\w-]*(?:token|secret|passw(?:or)?d|pwd|api[_-]?key|apikey|access[_-]?key|auth|"
    r"session|sessionid|sid|signature|sig|code|key|otp|jwt|hash|ticket|verify))=([^&;#]+)",
    re.IGNORECASE,
)
_RANDOM_SEGMENT = re.compile(r"[A-Za-z0-9_-]{24,}")

_STREET_TYPES = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Square|Sq|Terrace|Parkway|Pkwy|Highway|Hwy|Close|Crescent"
)
_STREET = re.compile(
    rf"\b\d{{1,6}}[A-Za-z]?,?\s+(?:[A-Z][\w'.-]*\s+){{1,4}}(?:{_STREET_TYPES})\b\.?"
    r"(?:,?\s+(?:Suite|Ste|Apt|Unit|Floor)\.?\s*#?\w+)?"
    r"(?:,\s*[A-Z][\w.-]*(?:\s[A-Z][\w.-]*){0,2},?\s+(?:[A-Z]{2}\s+)?\d{5}(?:-\d{4})?)?"
)
_STREET_EU = re.compile(
    r"\b[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|laan|straat|gatan|vej)"
    r"\s+\d{1,4}[a-z]?\b(?:,\s*(?:[A-Z]{1,2}-)?\d{4,5}\s+[A-ZÄÖÜ][\wäöüß-]+)?"
)
_UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}\b")
_PO_BOX = re.compile(r"\b(?:P\.?\s?O\.?\s?Box|Postfach)\s+\d+\b", re.IGNORECASE)

_GREETING = re.compile(
    r"(?:^|\n)\s*(?:Hi|Hello|Hey|Dear|Hallo|Hej|Hei|Ciao|Hola|Bonjour|Salut|Liebe[rs]?|Sehr geehrte[rs]?|"
    r"Good (?:morning|afternoon|evening)|Thanks|Thank you|Many thanks)[ \t]*,?[ \t]+"
    r"(?:(?:Dr|Mr|Mrs|Ms|Prof|Herr|Frau)\.?[ \t]+)?"
    r"([A-Z][a-zà-ÿ'-]+(?:[ -][A-Z][a-zà-ÿ'-]+)?)\b"
)
_NOT_NAMES = _words(
    "All Everyone Everybody Team There Folks Guys List Listers Community Friends Colleagues Sir Madam Both "
    "Again Again, For So Very Much Once Also Anyway Indeed Yes No Ok Okay Sure Great Good Morning Support "
    "The This That It In And But Or If You We They I A An To Of On At By With From As Is Are Was Be Not "
    "Package Packages Maintainer Maintainers Developer Developers CRAN Core Help Admin Administrator "
    "Please Regards Best Cheers Kind Thanks Thank Dear Hello Hi Hey Sent Re Fwd R Python Windows Linux "
    "Mac Github GitHub Google Microsoft Apple Java January February March April May June July August "
    "September October November December Monday Tuesday Wednesday Thursday Friday Saturday Sunday"
)

TYPES = ("EMAIL", "PHONE", "IBAN", "CARD", "URL", "ADDRESS", "NAME")
# The scrubber's placeholder, "[NAME_1]": what placeholder datasets hold and what a model
# tuned on them may write (data/placeholders.py guards generated text against it).
PLACEHOLDER = re.compile(rf"\[({'|'.join(TYPES)})_(\d+)\]")


def placeholder(kind: str, n: int) -> str:
    return f"[{kind}_{n}]"


def address_kind(text: str) -> str:
    """Which address pattern matched: "po_box", "uk_postcode", "street_eu" or "street"."""
    if _PO_BOX.fullmatch(text):
        return "po_box"
    if _UK_POSTCODE.fullmatch(text):
        return "uk_postcode"
    if _STREET_EU.match(text):
        return "street_eu"
    return "street"


@dataclass(frozen=True)
class Finding:
    type: str
    start: int
    end: int
    text: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


def _phone_ok(text: str, match_start: int, full: str) -> bool:
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15 or _DATE_LIKE.match(text.strip()):
        return False
    stripped = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)+", stripped) and not _NANP.match(stripped):
        return False  # versions and IP addresses
    if stripped.startswith(("+", "00")) and len(digits) >= 8:
        return True
    if _NANP.match(stripped) or _EURO.match(stripped):
        return True
    before = full[max(0, match_start - 25) : match_start]
    return bool(_PHONE_KEYWORD.search(before + stripped[:1]))


def _url_has_secret(url: str) -> bool:
    if re.match(r"^[a-z]+://[^/@\s]+:[^/@\s]+@", url, re.IGNORECASE):
        return True  # credentials in the authority part
    if "%40" in url or "safelinks.protection.outlook.com" in url.lower():
        return True  # an encoded address, or Outlook's wrapper that embeds the recipient's
    query = url.split("?", 1)[1] if "?" in url else ""
    for m in _SECRET_PARAM.finditer("?" + query if query else ""):
        if len(m.group(1)) >= 6:
            return True
    for value in re.findall(r"=([^&;#]+)", query):
        if _looks_random(value):
            return True
    path = url.split("?", 1)[0].split("#", 1)[0]
    # A capability URL (password reset, signed share link). Hex digests (git SHAs, content
    # hashes) and hyphenated slugs ("r-devel-linux-x86_64-debian-clang") are not secrets.
    return any(len(seg) >= 32 and _looks_random(seg) for seg in path.split("/")[3:])


def _looks_random(value: str) -> bool:
    """A token: long, mixed case with digits, not a hyphenated run of words."""
    return (
        _RANDOM_SEGMENT.fullmatch(value) is not None
        and value.count("-") <= 2
        and any(c.isdigit() for c in value)
        and any(c.islower() for c in value)
        and any(c.isupper() for c in value)
    )


def name_tokens(names: Iterable[str]) -> set[str]:
    """Capitalised tokens of personal names that are safe to match as whole words."""
    out: set[str] = set()
    for name in names:
        for tok in re.split(r"[\s,()\"]+", name):
            tok = tok.strip(".'")
            if (
                len(tok) >= 3
                and tok[0].isupper()
                and tok not in _NOT_NAMES
                and not tok.isupper()
                and tok.isalpha()
            ):
                out.add(tok)
    return out


def find_pii(text: str, names: set[str] | frozenset[str] = frozenset()) -> list[Finding]:
    """Every finding in ``text``, non-overlapping, earliest and longest first."""
    found: list[Finding] = []

    def add(kind: str, start: int, end: int) -> None:
        found.append(Finding(kind, start, end, text[start:end]))

    # Cheap substring checks first: most text has no '@', no '://' and few digit runs.
    if "://" in text:
        for m in _URL.finditer(text):
            if _url_has_secret(m.group(0)):
                add("URL", m.start(), m.end())
    if "@" in text:
        for m in _EMAIL_R.finditer(text):
            add("EMAIL", m.start(), m.end())
        for m in _EMAIL.finditer(text):
            add("EMAIL", m.start(), m.end())
    if "at " in text or "AT " in text or "(at)" in text or "[at]" in text:
        for m in _EMAIL_AT.finditer(text):
            if m.group(1).lower() not in _NOT_LOCAL_PART:
                add("EMAIL", m.start(), m.end())
    has_digits = _DIGIT_RUN.search(text) is not None
    for m in _IBAN.finditer(text) if has_digits else ():
        if iban_ok(m.group(0)):
            add("IBAN", m.start(), m.end())
    for m in _CARD.finditer(text) if has_digits else ():
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
            add("CARD", m.start(), m.end())
    for m in _PHONE_CANDIDATE.finditer(text) if has_digits else ():
        cand = m.group(0).rstrip(".-/ (")
        lead = len(cand) - len(cand.lstrip(" ("))
        if "(" in cand and ")" not in cand:
            cand, lead = cand.replace("(", "", 1), lead  # "(" opened a parenthesis in prose
        if _phone_ok(cand, m.start(), text):
            start = m.start() + lead
            add("PHONE", start, m.start() + len(cand))
    for rx in (_STREET, _STREET_EU, _UK_POSTCODE, _PO_BOX) if has_digits else ():
        for m in rx.finditer(text):
            add("ADDRESS", m.start(), m.end())
    for m in _GREETING.finditer(text):
        name = m.group(1)
        first = name.split()[0].split("-")[0]
        if first not in _NOT_NAMES:
            add("NAME", m.start(1), m.end(1))
    if names:
        # Known names as whole words; adjacent ones ("Ann Smith") become one finding.
        start = end = -1
        for w in _CAPITALISED.finditer(text):
            word = w.group(0)
            if word in names or word.removesuffix("'s") in names:
                if start >= 0 and text[end : w.start()].isspace():
                    end = w.end()
                    continue
                if start >= 0:
                    add("NAME", start, end)
                start, end = w.start(), w.end()
        if start >= 0:
            add("NAME", start, end)
    # Resolve overlaps: earlier start wins, then the longer span.
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    out: list[Finding] = []
    for f in found:
        if out and f.start < out[-1].end:
            continue
        out.append(f)
    return out


def identity(kind: str, text: str) -> str:
    """The form every mention of one identifier shares: a card's or phone's digits, an IBAN without
    spaces, a person's first name ("Ann" and "Ann Smith" are one person within a thread), anything
    else in lower case. One placeholder per identity (``Scrubber``, the serving guardrails)."""
    if kind in ("PHONE", "CARD"):
        return re.sub(r"\D", "", text)
    if kind == "IBAN":
        return text.lower().replace(" ", "")
    if kind == "NAME":
        return text.split()[0]
    return text.lower()


class Scrubber:
    """Replaces findings, consistently for one conversation: typed placeholders, or stand-ins.

    ``surrogates``: realistic stand-ins instead of placeholders (one ``Surrogates`` per
    conversation). ``keep``: findings to leave as written (the business's own names and
    addresses, counted in ``kept``).
    """

    def __init__(
        self,
        names: set[str] | frozenset[str] = frozenset(),
        *,
        surrogates: Surrogates | None = None,
        keep: Callable[[Finding], bool] | None = None,
    ) -> None:
        self.names = names
        self.surrogates = surrogates
        self.keep = keep
        self.placeholders: dict[tuple[str, str], str] = {}
        self.originals: dict[str, str] = {}  # placeholder -> the text it first replaced
        self.counts: dict[str, int] = {}
        self.findings: dict[str, int] = {}
        self.kept: Counter[str] = Counter()

    def _key(self, f: Finding) -> tuple[str, str]:
        return f.type, identity(f.type, f.text)

    def _placeholder(self, f: Finding) -> str:
        key = self._key(f)
        ph = self.placeholders.get(key)
        if ph is None:
            self.counts[f.type] = self.counts.get(f.type, 0) + 1
            ph = self.placeholders[key] = placeholder(f.type, self.counts[f.type])
            self.originals[ph] = f.text
        return ph

    def scrub(self, text: str) -> str:
        return self.scrub_both(text)[1]

    def scrub_both(self, text: str) -> tuple[str, str]:
        """(the text with placeholders, the text as this scrubber renders it).

        The placeholder form replaces every finding whatever the mode, so deduplication on
        it keeps the same examples whether a dataset gets placeholders or stand-ins (two
        copies of one mail differ only in their stand-ins)."""
        marked, rendered, _ = self.scrub_spans(text)
        return marked, rendered

    def scrub_spans(self, text: str) -> tuple[str, str, list[tuple[int, int, str]]]:
        """``scrub_both``, and where the rendered text holds a replacement: (start, end, type)."""
        marked: list[str] = []
        rendered: list[str] = []
        spans: list[tuple[int, int, str]] = []
        at = 0  # length of the rendered text so far
        pos = 0
        for f in find_pii(text, self.names):
            ph = self._placeholder(f)
            between = text[pos : f.start]
            marked += (between, ph)
            if self.keep is not None and self.keep(f):
                self.kept[f.type] += 1
                out = f.text
            else:
                self.findings[f.type] = self.findings.get(f.type, 0) + 1
                if self.surrogates is None:
                    out = ph
                else:
                    before = text[max(0, f.start - 12) : f.start]
                    out = self.surrogates.stand_in(f.type, self._key(f)[1], f.text, before)
                spans.append((at + len(between), at + len(between) + len(out), f.type))
            rendered += (between, out)
            at += len(between) + len(out)
            pos = f.end
        marked.append(text[pos:])
        rendered.append(text[pos:])
        return "".join(marked), "".join(rendered), spans
