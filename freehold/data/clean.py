"""Keep only what a message adds: strip quoted text, attributions, signatures, footers.

``strip_reply(text, sender_name)`` is the one entry point. It works line by line (no regex
over the whole body, so a 700 KB line of ``>`` stays linear) in three passes:

1. find the first *cut*: a line after which everything is someone else's text or boiler
   plate (an Outlook ``From:/Sent:`` header block, ``-----Original Message-----``, an
   attribution such as ``On ... wrote:`` that is *not* followed by ``>`` quoting, a
   ``-- `` signature delimiter, a mailing-list footer, a legal disclaimer);
2. drop quoted lines (``>``) and the attribution lines that introduce them, keeping the
   text between them, so inline answers survive;
3. trim a trailing signature block: a valediction (``Thanks,``, ``Best regards``), the
   sender's own name, a ``-Name`` sign-off or a "Sent from my phone" line, when only short
   lines follow it.
"""

from __future__ import annotations

import re

# Attribution lines in the languages mail clients commonly emit. Matched against one line
# or up to three joined lines, because clients wrap long attributions.
_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    r"On\b.{0,300}\b(?:wrote|writes)\s*:"  # On Mon, 1 Jan, Ann <a@b> wrote:
    r"|.{0,200}\b(?:wrote|writes)\s*:"  # Ann Smith <a@b> wrote:
    r"|Am\b.{0,300}\bschrieb.{0,200}:"  # German
    r"|Le\b.{0,300}\ba\s+écrit\s*:"  # French
    r"|.{0,300}\ba\s+écrit\s*:"
    r"|El\b.{0,300}\bescribió\s*:"  # Spanish
    r"|Op\b.{0,300}\bschreef.{0,200}:"  # Dutch
    r"|Il\b.{0,300}\bha\s+scritto\s*:"  # Italian
    r"|Em\b.{0,300}\bescreveu\s*:"  # Portuguese
    r"|(?:Den|På)\b.{0,300}\bskrev.{0,200}:"  # Swedish / Danish / Norwegian
    r"|.{0,300}\bnapisał(?:\(a\))?\s*:"  # Polish
    r"|.{0,300}\bнаписал(?:\(а\)|а)?\s*:"  # Russian
    r"|.{0,300}\bkirjoitti\s*:"  # Finnish
    r"|.{0,300}\s(?:yazdı|έγραψε|napsal|írta)\s*:"  # Turkish, Greek, Czech, Hungarian
    r")\s*$",
    re.IGNORECASE,
)
# Any language: a short line with a time or an address that ends in ':' (the archive may
# have mangled the words, "? Mon, 11 Dec 2023 ... Ann <a at b> ?????:"). Only trusted when
# quoted text follows, so "At 10:30 I ran:" before unquoted code is kept.
_GENERIC_ATTRIBUTION = re.compile(r"^.{0,200}(?:\d{1,2}:\d{2}|<[^<>\s]+>|\S@\S|\sat\s\S+\.\w+).{0,120}:\s*$")
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*[-_=]*\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|"
    r"Messaggio originale|Oorspronkelijk bericht|Opprinnelig melding|Ursprungligt meddelande|"
    r"Forwarded message|Begin forwarded message|Weitergeleitete Nachricht)\s*[-_=:]*\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(?:From|Von|De|Van|Från|Fra|Od|Da|От)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(?:Sent|Date|To|Cc|Subject|Gesendet|Datum|An|Betreff|Envoyé|Objet|À|Enviado|Asunto|"
    r"Para|Verzonden|Aan|Onderwerp|Skickat|Ämne|Till|Wysłano|Temat|Data|Oggetto|Inviato)\s*:\*?",
    re.IGNORECASE,
)
_SIG_DELIMITER = re.compile(r"^(?:--|-- |—|___)\s*$")
_LIST_FOOTER = re.compile(r"^_{10,}\s*$")
_SEPARATOR = re.compile(r"^\s*[-_=*~]{2,}\s*$")
# "Ann wrote:" alone may be prose ("the docs wrote:"); a date, address or a known
# language opener makes it an attribution even when no quoted text follows.
_STRONG = re.compile(r"\d|@|<|\bat\b|^\s*(?:On|Am|Le|El|Op|Il|Em|Den|På)\b")
_FOOTER_TEXT = re.compile(
    r"^\s*(?:Reply to this email directly|You are receiving this because|You received this message because|"
    r"To unsubscribe from this group|---?\s*You received this|Unsubscribe:|"
    r"\S+ mailing list\s*$|\S+ at \S+ mailing list)",
    re.IGNORECASE,
)
_DISCLAIMER = re.compile(
    r"^\s*(?:CONFIDENTIALITY NOTICE|DISCLAIMER|IMPORTANT NOTICE|PRIVILEGED AND CONFIDENTIAL|"
    r"This (?:e-?mail|message|communication)(?: and any (?:files|attachments)[^.]*)? (?:is|are|may be) "
    r"(?:intended|confidential|strictly confidential|privileged)|"
    r"The information (?:contained )?in this (?:e-?mail|message|communication)|"
    r"If you (?:are not|have received this) (?:the intended recipient|(?:e-?mail|message) in error)|"
    r"Please (?:do not|don't) print this|Please consider the environment before printing|"
    r"Este (?:mensaje|correo)|Por favor,? no imprima|Ce (?:message|courriel) (?:et|est|peut)|"
    r"Diese (?:E-?Mail|Nachricht) (?:enthält|kann|ist)|Questo messaggio|Dit bericht|Denna e-?post)",
    re.IGNORECASE,
)
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(?:(?:Sent|Envoyé|Gesendet|Enviado|Inviato|Verzonden) (?:from|with|via|de|von|desde|da|vanaf)"
    r"(?: (?:my|mon|meinem|mi|il mio|mijn|a|an))?(?: [\w\-.]+){1,5}(?: \(\S+\))?"
    r"|Von meinem \S+(?: \S+){0,3} gesendet|Get Outlook for \S+)\s*\.?\s*$",
    re.IGNORECASE,
)
_VALEDICTION = re.compile(
    r"^\s*(?:thanks?(?: (?:a lot|so much|again|in advance))?|many thanks|thank you(?: (?:very much|all))?|"
    r"cheers|best(?: wishes| regards)?|kind(?:est)? regards|warm(?:est)? regards|regards|"
    r"sincerely(?: yours)?|yours(?: sincerely| truly)?|all the best|br|mvh|"
    r"mit freundlichen grüßen|viele grüße|grüße|gruß|cordialement|saludos|un saludo|"
    r"cordiali saluti|saluti|met vriendelijke groet|groeten|hälsningar|с уважением)\s*[,!.]*\s*$",
    re.IGNORECASE,
)
_SIGNOFF_NAME = re.compile(r"^\s*[-–~]\s?[A-Z][\w'.-]*(?:\s[A-Z][\w'.-]*){0,3}\s*$")
_QUOTED = re.compile(r"^\s*>")
# Notes list archives write into bodies: pipermail's attachment stubs, R's HTML marker.
_ARCHIVE_STUB = re.compile(
    r"^-{5,} ?next part ?-{5,}\s*$|^An? (?:non-text )?attachment was scrubbed", re.IGNORECASE
)
_ARCHIVE_NOTE = re.compile(r"^\s*\[\[(?:alternative HTML version deleted|elided [^\]]*|dropped:\d+)\]\]\s*$")
# A signature block is short: contact lines, titles, names. A long line means prose.
_SIG_LINE_MAX = 80
_SIG_MAX_LINES = 14


def is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _attribution_at(lines: list[str], i: int) -> tuple[int, bool]:
    """(lines spanned 1-3, strong) of an attribution starting at ``lines[i]``; (0, False) if none."""
    line = lines[i]
    if is_quoted(line) or len(line) > 400:
        return 0, False
    # Cheap pre-check: every attribution ends in ':' within its (at most 3) lines.
    if not any(ln.rstrip().endswith(":") for ln in lines[i : i + 3]):
        return 0, False
    joined = line.strip()
    # A wrapped attribution starts with a date, an address or a known opener; without
    # this, prose ending just before "On ... wrote:" would be swallowed into it.
    max_span = 3 if _STRONG.search(joined) else 1
    for span in range(1, max_span + 1):
        if span > 1:
            if (
                i + span - 1 >= len(lines)
                or not lines[i + span - 1].strip()
                or is_quoted(lines[i + span - 1])
            ):
                return 0, False
            joined += " " + lines[i + span - 1].strip()
        if _ATTRIBUTION.match(joined):
            return span, bool(_STRONG.search(joined))
        if _GENERIC_ATTRIBUTION.match(joined):
            nxt = _next_nonblank(lines, i + span)
            if nxt is not None and is_quoted(nxt):
                return span, False
    return 0, False


def _header_block_at(lines: list[str], i: int) -> bool:
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = [ln for ln in lines[i + 1 : i + 5] if ln.strip()][:3]
    return any(_HEADER_NEXT.match(ln) for ln in following)


def _next_nonblank(lines: list[str], i: int) -> str | None:
    for ln in lines[i:]:
        if ln.strip():
            return ln
    return None


def _cut_index(lines: list[str], stop_at_attributions: bool = True) -> int:
    """Index of the first line that starts someone else's text or boiler plate."""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or is_quoted(line):
            continue
        if _ORIGINAL_MESSAGE.match(line) or _header_block_at(lines, i):
            return i
        span, strong = _attribution_at(lines, i) if stop_at_attributions else (0, False)
        if span:
            nxt = _next_nonblank(lines, i + span)
            # Quoted text after an attribution is handled by the quote pass (inline replies
            # keep what lies between quotes); unquoted text after it is the original message.
            if (nxt is None or not is_quoted(nxt)) and (strong or nxt is None):
                return i
            continue
        if _SIG_DELIMITER.match(line) and i > 0:
            return i
        if (
            _LIST_FOOTER.match(line)
            or _FOOTER_TEXT.match(line)
            or _DISCLAIMER.match(line)
            or _ARCHIVE_STUB.match(line)
        ):
            return i
    return len(lines)


def _drop_quotes(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if is_quoted(line):
            i += 1
            continue
        span, _strong = _attribution_at(lines, i)
        if span:
            nxt = _next_nonblank(lines, i + span)
            if nxt is not None and is_quoted(nxt):
                i += span
                continue
        out.append(line)
        i += 1
    return out


def _name_tokens(sender_name: str | None) -> list[str]:
    if not sender_name:
        return []
    name = sender_name.split("@")[0] if "@" in sender_name else sender_name
    tokens = [t for t in re.split(r"[\s,.'\"()_]+", name) if len(t) >= 2]
    return [t.lower() for t in tokens]


def _contact_block(lines: list[str], after: list[int]) -> bool:
    """Lines after a separator that read like contact details, not a delimited log or table."""
    # A second separator means the first opened a block (a pasted log); sentences mean prose.
    return not any(
        _SEPARATOR.match(lines[j]) or (len(lines[j].strip()) > 50 and "://" not in lines[j]) for j in after
    )


def _signature_start(lines: list[str], sender_name: str | None) -> int:
    """Index where a trailing signature block begins, or len(lines)."""
    nonblank = [i for i, ln in enumerate(lines) if ln.strip()]
    if len(nonblank) < 2:
        return len(lines)
    names = _name_tokens(sender_name)
    tail = nonblank[-_SIG_MAX_LINES:]
    for pos, i in enumerate(tail):
        if i == nonblank[0]:
            continue  # never strip the whole message
        after = tail[pos:]
        # Contact lines with links may be long; prose lines may not.
        if any(
            len(lines[j].strip()) > _SIG_LINE_MAX and "://" not in lines[j] and "<" not in lines[j]
            for j in after[1:]
        ):
            continue
        line = lines[i].strip()
        if (
            _VALEDICTION.match(line)
            or _MOBILE_SIGNATURE.match(line)
            or _SIGNOFF_NAME.match(line)
            or (_SEPARATOR.match(line) and _contact_block(lines, after[1:]))
        ):
            return i
        first_word = re.split(r"[\s,]+", line.lower(), maxsplit=1)[0].strip(".-")
        if names and len(line) <= _SIG_LINE_MAX and first_word in names:
            return i
    return len(lines)


def _tidy(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if _ARCHIVE_NOTE.match(line):
            continue
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def strip_reply(text: str, sender_name: str | None = None, keep_quotes: bool = False) -> str:
    """What the author of ``text`` wrote themself: no quotes, signature or footer.

    ``keep_quotes`` is for a thread's first message: there is no earlier message to quote,
    so '>' lines are cited logs or console output, and part of the question.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if keep_quotes:
        lines = lines[: _cut_index(lines, stop_at_attributions=False)]
        return _tidy(lines[: _signature_start(lines, sender_name)])
    lines = lines[: _cut_index(lines)]
    lines = _drop_quotes(lines)
    lines = lines[: _signature_start(lines, sender_name)]
    return _tidy(lines)
