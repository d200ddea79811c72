"""Guardrails on the native path: every API (OpenAI, Ollama, and later MCP and A2A) gets them.

    rails = Guardrails(load_policy(path), store, on_decision)
    guard = rails.guard(entry.name, entry.aliases)
    checked = guard.check(messages=messages)         # before the engine
    if checked.blocked: ...                          # refused: checked.refusal(), finish "content_filter"
    for chunk in guard.stream(engine.chat(checked.messages, placeholders=checked.placeholders)): ...

Before the model sees a prompt: a denied term, a harmful request (the safety classifier or a
judge model) or an off-topic one (``topics``) is refused; personal data (cards, IBANs, e-mail
addresses, phone numbers, secret-bearing URLs) becomes placeholders ("[CARD_1]") in every
message the model reads. On the answer: placeholders it repeats are given back (``pii =
"restore"``), personal data the conversation did not hold is redacted, and a denied term ends
the answer before any of it is sent (``finish_reason: "content_filter"``). Every decision is
counted (``freehold_guardrail_decisions_total{rail, action}``) and logged without the content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from freehold.data.pii import Scrubber
from freehold.engine.base import Chunk
from freehold.guardrails.policy import OFF, Policy, PolicySet, load_policy
from freehold.guardrails.stream import DenyFilter, Redactor

__all__ = ["OFF", "Checked", "Guard", "Guardrails", "Policy", "PolicySet", "load_policy"]

CONTENT_FILTER = "content_filter"  # the OpenAI finish_reason (and Ollama done_reason) of a stopped answer
log = logging.getLogger("freehold.guardrails")
Decision = Callable[[str, str], None]  # (rail, action): counted in /metrics


@dataclass
class Checked:
    """A request after the input rails: what the model may read, or why it is refused."""

    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    placeholders: dict[str, str] = field(default_factory=dict)  # "[CARD_1]" -> the card number
    known: set[tuple[str, str]] = field(default_factory=set)  # (type, normalised) the conversation held
    blocked: str | None = None  # the rail that refused it: deny | safety | topic
    reply: str = ""  # what the reader is told when it is refused


class _Replacer:
    """Personal data of ``types`` -> placeholders, one per identifier across the conversation: the
    data pipeline's ``Scrubber``, keeping every other kind as written."""

    def __init__(self, types: Sequence[str]) -> None:
        self.types = set(types)
        self.scrubber = Scrubber(keep=lambda f: f.type not in self.types)

    def __call__(self, text: str) -> str:
        return self.scrubber.scrub(text)

    @property
    def values(self) -> dict[str, str]:
        """"[CARD_1]" -> the text it replaced."""
        return {ph: self.scrubber.originals[ph] for (kind, _), ph in self.scrubber.placeholders.items()
                if kind in self.types}

    @property
    def known(self) -> set[tuple[str, str]]:
        """(type, identity) of what the conversation held."""
        return {key for key in self.scrubber.placeholders if key[0] in self.types}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


class Guard:
    """The rails of one policy for one request's model (``Guardrails.guard``)."""

    def __init__(self, policy: Policy, rails: Guardrails, model: str) -> None:
        self.policy = policy
        self.rails = rails
        self.model = model

    def _decide(self, rail: str, action: str) -> None:
        self.rails.count(rail, action)
        log.info("guardrail model=%s rail=%s action=%s", self.model, rail, action)

    def check(self, *, messages: Sequence[dict[str, Any]] | None = None, prompt: str | None = None) -> Checked:
        p = self.policy
        texts = [prompt or ""] if messages is None else [_text_of(m.get("content")) for m in messages
                                                         if m.get("role") in ("user", "tool")]
        last = texts[-1] if texts else ""
        deny = DenyFilter(p.deny)
        hit = next((h for h in (deny.found_in(t) for t in texts) if h), None)
        if hit is not None:
            self._decide("deny", "input_blocked")
            return Checked(blocked="deny", reply=p.denied)
        if p.safety != "off" and last.strip():
            harm = self.rails.judge(p.safety).score(last)
            if harm >= p.safety_threshold:
                self._decide("safety", "input_blocked")
                return Checked(blocked="safety", reply=p.refusal)
            self._decide("safety", "input_passed")
        if p.topics and last.strip() and not self.rails.on_topic(last, p.topics, p.topic_threshold):
            self._decide("topic", "input_blocked")
            return Checked(blocked="topic", reply=p.off_topic)
        replace_pii = _Replacer(p.pii_types)
        if p.pii == "off":  # the model reads it as written; what it held is still not redacted back
            for text in texts:
                replace_pii(text)
            return Checked(messages=list(messages) if messages is not None else None, prompt=prompt,
                           known=replace_pii.known)
        if messages is not None:
            out = [m if m.get("role") == "system" else {**m, "content": self._replace_in(m.get("content"), replace_pii)}
                   for m in messages]
            checked = Checked(messages=out)
        else:
            checked = Checked(prompt=replace_pii(prompt or ""))
        checked.known = replace_pii.known
        if replace_pii.values:
            self._decide("pii", "input_replaced")
            if p.pii == "restore":
                checked.placeholders = replace_pii.values
        return checked

    @staticmethod
    def _replace_in(content: Any, replace_pii: _Replacer) -> Any:
        """A message's content with personal data replaced: a string, or OpenAI's content parts."""
        if isinstance(content, str):
            return replace_pii(content)
        if isinstance(content, list):
            return [{**part, "text": replace_pii(part["text"])} if isinstance(part, dict)
                    and isinstance(part.get("text"), str) else part for part in content]
        return content

    def refuse(self, checked: Checked) -> Iterator[Chunk]:
        yield Chunk(checked.reply)
        yield Chunk("", finish_reason=CONTENT_FILTER)

    def stream(self, chunks: Iterator[Chunk], checked: Checked, raw: bool = False) -> Iterator[Chunk]:
        """``chunks`` through the output rails. ``raw``: a completion without the chat path, whose
        placeholders the engine did not resolve (given back here)."""
        from freehold.data.placeholders import PlaceholderGuard

        p = self.policy
        filters: list[Any] = []
        if raw and checked.prompt is not None and checked.placeholders:
            filters.append(PlaceholderGuard(values=checked.placeholders))
        redactor = Redactor(p.pii_types, checked.known) if p.redact_answers else None
        if redactor is not None:
            filters.append(redactor)
        deny = DenyFilter(p.deny) if p.deny else None
        if deny is not None:
            filters.append(deny)
        if not filters:
            yield from chunks
            return
        held: list[int] = []
        produced = 0
        try:
            for chunk in chunks:
                produced += len(chunk.token_ids)
                text = chunk.text
                for f in filters:
                    text = f.feed(text)
                if chunk.finish_reason is not None:
                    for i, f in enumerate(filters):  # flush each, through the filters after it
                        rest = f.flush()
                        for g in filters[i + 1:]:
                            rest = g.feed(rest)
                        text += rest
                if deny is not None and deny.hit is not None:
                    self._decide("deny", "output_stopped")
                    if text:
                        yield replace(chunk, text=text, finish_reason=None, token_ids=held + chunk.token_ids)
                    yield Chunk("", finish_reason=CONTENT_FILTER, prompt_tokens=chunk.prompt_tokens,
                                completion_tokens=chunk.completion_tokens or produced, grounding=chunk.grounding)
                    return
                if not text and chunk.finish_reason is None and chunk.logprobs is None:
                    held += chunk.token_ids
                    continue
                yield replace(chunk, text=text, token_ids=held + chunk.token_ids)
                held = []
        finally:
            if redactor is not None and redactor.redacted:
                self._decide("pii", "output_redacted")
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a stopped answer frees its decoding slot now


class Guardrails:
    """The server's policies, the judges they name (loaded once) and the decision counter."""

    def __init__(self, policies: PolicySet | None = None, store: Any = None,
                 on_decision: Decision | None = None) -> None:
        self.policies = policies or PolicySet()
        self.store = store
        self.on_decision = on_decision
        self._judges: dict[str, Any] = {}
        self._topic_vectors: dict[tuple[str, ...], Any] = {}

    def count(self, rail: str, action: str) -> None:
        if self.on_decision is not None:
            self.on_decision(rail, action)

    def guard(self, model: str, aliases: Sequence[str] = ()) -> Guard:
        return Guard(self.policies.for_model([model, *aliases]), self, model)

    def judge(self, spec: str) -> Any:
        from freehold.guardrails.classifier import load_judge

        if spec not in self._judges:
            self._judges[spec] = load_judge(spec, self.store)
        return self._judges[spec]

    def on_topic(self, text: str, topics: Sequence[str], threshold: float) -> bool:
        import numpy as np

        from freehold.guardrails.classifier import embedder, segments

        key = tuple(topics)
        if key not in self._topic_vectors:
            self._topic_vectors[key] = np.asarray(embedder().embed(list(topics)), dtype=np.float32)
        # The whole prompt and its last sentences: a question after a long greeting still counts.
        v = np.asarray(embedder().embed([text, *segments(text)]), dtype=np.float32)
        return bool(float((v @ self._topic_vectors[key].T).max()) >= threshold)

