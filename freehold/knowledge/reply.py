"""Drafting a reply to an incoming mail: the support workflow.

    mail = read_mail(Path("incoming.eml"))            # what the customer wrote (quotes stripped)
    draft = draft_reply(engine, mail, index, params)   # index: a KnowledgeIndex or None
    draft.text, draft.grounding                        # the reply, and what it cites

The mail is read like an imported one (freehold.data: headers decoded, the quoted earlier
messages, signature and footer left out), so the model sees what it was tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freehold.data.clean import strip_reply
from freehold.data.message import Message, parse_message
from freehold.data.thread import REPLY_SUBJECT
from freehold.errors import UsageError
from freehold.knowledge.grounding import answer
from freehold.knowledge.index import KnowledgeIndex


@dataclass(frozen=True)
class Mail:
    subject: str
    sender: str
    sender_name: str
    text: str  # what the sender wrote in this message

    def messages(self) -> list[dict[str, Any]]:
        """The conversation a model answers: the mail, signed with the sender's name when it
        is not (mail shows it in the From line; the reply may greet them by it)."""
        text = self.text
        first = self.sender_name.split()[0] if self.sender_name.split() else ""
        lines = text.splitlines()
        if first and "@" not in first and first not in (lines[-1] if lines else ""):
            text = f"{text}\n\n{first}"
        return [{"role": "user", "content": text}]

    @property
    def reply_subject(self) -> str:
        return self.subject if REPLY_SUBJECT.match(self.subject) else f"Re: {self.subject}".strip()


def parse_mail(raw: bytes, where: str = "the mail") -> Mail:
    """One RFC 5322 message (an .eml file's bytes) as a ``Mail``; a clear error when it is not one."""
    m = parse_message(raw)
    if isinstance(m, str) or not isinstance(m, Message):
        raise UsageError(f"{where} is not a readable e-mail ({m})",
                         "give an .eml file (in a mail program: 'Save as' or 'Download message')")
    first = not m.in_reply_to and not m.references and not REPLY_SUBJECT.match(m.subject)
    text = strip_reply(m.body, m.sender_name or m.sender, keep_quotes=first).strip()
    if not text:
        raise UsageError(f"{where} has no text of its own to answer (only quotes, a signature or nothing)",
                         "give the customer's message")
    return Mail(m.subject, m.sender, m.sender_name, text)


def read_mail(path: Path) -> Mail:
    try:
        raw = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", "check the path") from exc
    return parse_mail(raw, str(path))


@dataclass(frozen=True)
class Draft:
    mail: Mail
    text: str
    grounding: dict[str, Any] | None  # {"knowledge", "found", "citations"} when knowledge was used
    finish_reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"to": self.mail.sender, "subject": self.mail.reply_subject, "draft": self.text,
                "grounding": self.grounding, "finish_reason": self.finish_reason,
                "in_reply_to": {"subject": self.mail.subject, "from": self.mail.sender, "text": self.mail.text}}


def draft_reply(engine: Any, mail: Mail, index: KnowledgeIndex | None, params: Any = None,
                on_text: Any = None, guard: Any = None) -> Draft:
    """A reply to ``mail`` by ``engine`` (grounded in ``index`` when given); ``on_text(piece)``
    sees the text as it streams. ``guard``: the server's guardrails for this model
    (freehold.guardrails.Guard): the mail's personal data is replaced before the model reads it."""
    messages = mail.messages()
    if guard is not None:
        checked = guard.check(messages=messages)
        if checked.blocked:
            chunks = guard.refuse(checked)
        else:
            inner = (answer(engine, index, checked.messages, params, placeholders=checked.placeholders)
                     if index is not None else engine.chat(checked.messages, params, placeholders=checked.placeholders))
            chunks = guard.stream(inner, checked)
    else:
        chunks = answer(engine, index, messages, params) if index is not None else engine.chat(messages, params)
    parts: list[str] = []
    last = None
    for chunk in chunks:
        if chunk.text:
            parts.append(chunk.text)
            if on_text is not None:
                on_text(chunk.text)
        last = chunk
    return Draft(mail, "".join(parts).strip(), getattr(last, "grounding", None),
                 getattr(last, "finish_reason", None) or "stop")
