"""One email, parsed defensively: headers decoded, the text body chosen, noise flagged.

``parse_message(raw)`` never raises on bad input: it returns a ``Message`` or a skip
reason (a short string counted by the importer). Undecodable bytes and unknown charsets
fall back to UTF-8 then cp1252 with replacement; HTML-only bodies are converted to text;
attachments are skipped and counted on the message.
"""

from __future__ import annotations

import email.utils
import html
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message as EmailMessage
from email.parser import BytesParser
from email.policy import compat32
from html.parser import HTMLParser

# The obfuscations pipermail archives apply to addresses: "ann at example.org" and
# R's "ann @end|ng |rom example@org" (dots become "@" after the domain marker).
_R_OBFUSCATED = re.compile(r"^\s*(\S+)\s+@end\|ng\s+\|rom\s+(\S+)\s*$")
_AT_OBFUSCATED = re.compile(r"^\s*(\S+)\s+at\s+(\S+)\s*$")
_NAME_ADDR = re.compile(r'^\s*"?([^"<>@]*?)"?\s*<([^<>\s@]+@[^<>\s@]+)>\s*$')
_ADDR_PAREN = re.compile(r"^\s*([^()<>]*?)\s*\(([^()]*)\)\s*$")
_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|antw|ref|rif|r|fw|fwd|wg|tr|rv|enc|odp|pd)\s*(?:\[\d+\])?\s*[:：]\s*|\[[^\]]{1,40}\]\s*)+",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[- ]?(?:reply|response|antwort)|out of (?:the )?office|abwesenheit|"
    r"absence|away from (?:my|the) office|undeliver(?:ed|able)|delivery status notification|"
    r"mail delivery (?:failed|failure|system)|returned mail|failure notice|vacation)",
    re.IGNORECASE,
)
_NEWSLETTER_HEADERS = ("list-unsubscribe",)


@dataclass
class Message:
    """The fields threading, role assignment and filtering need, plus the raw text body."""

    message_id: str
    in_reply_to: str | None
    references: list[str]
    subject: str
    date: float | None
    sender: str  # normalised address (lower case); "" when unknown
    sender_name: str
    body: str
    attachments: int = 0
    auto_reason: str | None = None  # auto-reply / bounce / newsletter, when flagged
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def thread_subject(self) -> str:
        return normalise_subject(self.subject)


def normalise_subject(subject: str) -> str:
    """Subject without Re:/AW:/SV:/Fwd: prefixes and list tags, lower-cased, spaces folded."""
    return " ".join(_SUBJECT_PREFIX.sub("", subject or "").split()).lower()


def decode_bytes(data: bytes, charset: str | None) -> str:
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    # cp1252 covers most mislabelled Western mail; replacement keeps the rest readable.
    return data.decode("cp1252", errors="replace")


def decode_header_value(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    try:
        parts = decode_header(text)
        try:
            text = str(make_header(parts))
        except (LookupError, UnicodeDecodeError, ValueError):
            # An unknown charset in one encoded word: decode each word on its own.
            text = "".join(decode_bytes(c, cs) if isinstance(c, bytes) else c for c, cs in parts)
    except (LookupError, UnicodeDecodeError, ValueError, TypeError):
        pass
    return " ".join(text.replace("\ufffd", "?").split())


def normalise_address(raw: str) -> tuple[str, str]:
    """(address, display name) from a From: header, undoing pipermail obfuscation."""
    # The common shapes are matched directly; email.utils.parseaddr is slow and only needed
    # for the rest (groups, quoting, odd comments).
    m = _NAME_ADDR.match(raw)
    paren = None if m else _ADDR_PAREN.match(raw)
    if m:
        name, addr = m.group(1), m.group(2)
    elif paren:
        addr, name = paren.group(1), paren.group(2)
    else:
        name, addr = email.utils.parseaddr(raw)
    if "@" not in addr or "@end|ng" in raw:
        # "ann at example.org (Ann Smith)" or R's "ann @end|ng |rom example@org (Ann Smith)"
        addr_part, name_part = (paren.group(1), paren.group(2)) if paren else (raw, name)
        r = _R_OBFUSCATED.match(addr_part)
        a = _AT_OBFUSCATED.match(addr_part)
        if r:
            addr = f"{r.group(1)}@{r.group(2)}"  # the obfuscation is lossy: keep it as an id
        elif a:
            addr = f"{a.group(1)}@{a.group(2)}"
        name = name_part or name
    return addr.strip().strip("<>").lower(), name.strip().strip('"')


class _HTMLText(HTMLParser):
    """HTML to plain text: block tags become line breaks, blockquotes become '>' lines."""

    _BLOCK: frozenset[str] = frozenset(
        {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "pre"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.quote = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag == "blockquote":
            self.quote += 1
            self.parts.append("\n")
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote":
            self.quote = max(0, self.quote - 1)
            self.parts.append("\n")
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.quote:
            data = "\n".join("> " + ln if ln.strip() else ln for ln in data.split("\n"))
        self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _HTMLText()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # html.parser is lenient; anything left is noise, not a reason to fail
        return re.sub(r"<[^>]+>", " ", html.unescape(markup))
    lines = [
        " ".join(ln.replace("\xa0", " ").split()) if not ln.startswith(">") else ln.rstrip()
        for ln in "".join(parser.parts).split("\n")
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _part_text(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset()
    return decode_bytes(payload, charset)


def extract_body(msg: EmailMessage) -> tuple[str, int]:
    """(text body, attachments skipped). Prefers text/plain; HTML-only is converted."""
    plain: list[str] = []
    htmls: list[str] = []
    attachments = 0
    parts = list(msg.walk()) if msg.is_multipart() else [msg]
    for part in parts:
        if part.is_multipart():
            continue
        ctype = (part.get_content_type() or "text/plain").lower()
        disposition = (part.get("Content-Disposition") or "").lower()
        if "attachment" in disposition or (part.get_filename() and not ctype.startswith("text/")):
            attachments += 1
            continue
        if ctype == "text/plain":
            plain.append(_part_text(part))
        elif ctype == "text/html":
            htmls.append(_part_text(part))
        elif not ctype.startswith("text/") and ctype not in ("message/delivery-status", "message/rfc822"):
            attachments += 1
    if plain:
        return "\n\n".join(plain), attachments
    if htmls:
        return "\n\n".join(html_to_text(h) for h in htmls), attachments
    return "", attachments


def _timestamp(value: str) -> float | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        import datetime as dt

        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _ids(value: str) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", value) or (
        [value.strip()] if value.strip() and " " not in value.strip() else []
    )


def _auto_reason(msg: EmailMessage, subject: str, sender: str) -> str | None:
    auto = (msg.get("Auto-Submitted") or "").lower()
    if auto and auto != "no":
        return "auto_reply"
    if (
        msg.get("X-Autoreply")
        or msg.get("X-Autorespond")
        or msg.get("X-Auto-Response-Suppress", "").lower() == "all"
    ):
        return "auto_reply"
    ctype = (msg.get_content_type() or "").lower()
    report = msg.get_param("report-type") or ""
    if ctype == "multipart/report" or (isinstance(report, str) and "delivery-status" in report):
        return "bounce"
    local = sender.split("@")[0]
    if local in ("mailer-daemon", "postmaster") or local.startswith(
        ("mailer-daemon", "no-reply", "noreply", "donotreply", "do-not-reply")
    ):
        return "bounce" if "daemon" in local or local == "postmaster" else "auto_reply"
    if _AUTO_SUBJECT.match(subject):
        low = subject.lower()
        return (
            "bounce"
            if any(w in low for w in ("undeliver", "delivery", "returned", "failure"))
            else "out_of_office"
        )
    precedence = (msg.get("Precedence") or "").lower()
    if precedence == "bulk" or (
        msg.get("List-Unsubscribe") and not msg.get("List-Post") and not msg.get("List-Id")
    ):
        return "newsletter"
    return None


def parse_message(raw: bytes) -> Message | str:
    """A ``Message``, or the reason it was skipped (never raises on malformed input)."""
    try:
        msg = BytesParser(policy=compat32).parsebytes(raw)
    except Exception:  # the stdlib parser is lenient; anything it cannot take is counted
        return "unparseable"
    keys = {k.lower() for k in msg.keys()}  # noqa: SIM118 (Message is not a dict)
    if not keys & {"from", "subject", "message-id", "date"}:
        return "missing_headers"
    try:
        subject = decode_header_value(msg.get("Subject"))
        sender, sender_name = normalise_address(decode_header_value(msg.get("From")))
        body, attachments = extract_body(msg)
    except Exception:  # a broken MIME tree must cost one message, not the import
        return "undecodable"
    if not body.strip():
        return "empty_body"
    message_id = "".join(_ids(str(msg.get("Message-ID") or msg.get("Message-Id") or ""))[:1])
    parents = _ids(str(msg.get("In-Reply-To") or ""))
    in_reply_to = parents[0] if parents else None
    references = _ids(str(msg.get("References") or ""))
    return Message(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        subject=subject,
        date=_timestamp(str(msg.get("Date") or "")),
        sender=sender,
        sender_name=sender_name,
        body=body.replace("\r\n", "\n"),
        attachments=attachments,
        auto_reason=_auto_reason(msg, subject, sender),
    )
