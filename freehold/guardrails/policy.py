"""The guardrails policy: one file for the server, with sections per model.

    # guardrails.toml (freehold serve --guardrails guardrails.toml)
    [default]
    pii = "restore"          # restore | replace | off
    deny = ["acme rival", "internal use only"]
    topics = ["orders, shipping and delivery", "returns, refunds, repairs and the warranty"]

    [models.acme-support]
    safety = "model:llama-guard3-1b"   # a stronger judge from the store, same interface

Without a file the default policy applies (``Policy()``): personal data replaced before the
model sees it and given back where the answer repeats it, new personal data in answers
redacted, no deny-list, no topic limit, and no safety classifier: the built-in one is a line
away (``safety = "builtin"``) but held out on other sources it flags too many safe prompts to
be on unasked (docs/guardrails.md has the figures).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.data.pii import TYPES
from freehold.errors import UsageError

PII_MODES = ("restore", "replace", "off")
# What a support bot must never pass to the model: checksummed or unambiguous identifiers.
# Names and postal addresses stay (an assistant greets the customer and ships to them);
# add "NAME" and "ADDRESS" to pii_types to replace them too.
DEFAULT_PII_TYPES = ("CARD", "IBAN", "EMAIL", "PHONE", "URL")


@dataclass(frozen=True)
class Policy:
    # restore: personal data in prompts becomes placeholders ([CARD_1]) before the model sees it,
    # and the answer's copies of them are given back to the reader; replace: the same, never given
    # back; off: prompts reach the model as written.
    pii: str = "restore"
    pii_types: tuple[str, ...] = DEFAULT_PII_TYPES
    redact_answers: bool = True  # personal data in an answer that the conversation did not hold
    deny: tuple[str, ...] = ()  # words and phrases refused on input and never streamed on output
    topics: tuple[str, ...] = ()  # what the assistant is for; a prompt on none of them is refused
    # Cosine similarity (all-MiniLM-L6-v2) of a prompt (or one of its last sentences) to its nearest
    # topic below which it is off topic. 0.12: with four topic lines for the sample shop it passes all
    # 42 questions of its mailbox and refuses 8 of 10 general requests (docs/guardrails.md).
    topic_threshold: float = 0.12
    # builtin: the classifier shipped with Freehold; model:NAME: a judge model in the store
    # (e.g. a Llama Guard GGUF); off.
    safety: str = "off"
    safety_threshold: float = 0.5  # probability of harm at which a prompt is refused
    refusal: str = "I can't help with that request."
    off_topic: str = "I can only help with questions about what this assistant is for."
    denied: str = "I can't discuss that."

    def problems(self) -> list[str]:
        out = []
        if self.pii not in PII_MODES:
            out.append(f"pii = {self.pii!r}: use one of {', '.join(PII_MODES)}")
        unknown = [t for t in self.pii_types if t not in TYPES]
        if unknown:
            out.append(f"pii_types {unknown}: the scrubber finds {', '.join(TYPES)}")
        if not (self.safety in ("builtin", "off") or self.safety.startswith("model:")):
            out.append(f"safety = {self.safety!r}: use builtin, off, or model:NAME (a judge model in the store)")
        for name in ("topic_threshold", "safety_threshold"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                out.append(f"{name} = {value}: give a number from 0 to 1")
        if any(not term.strip() for term in self.deny):
            out.append("deny holds an empty term")
        return out


OFF = Policy(pii="off", redact_answers=False, safety="off")  # every rail off: what --no-guardrails serves


@dataclass(frozen=True)
class PolicySet:
    """The server's policy and each model's overrides (by model name, tag optional, or alias)."""

    default: Policy = field(default_factory=Policy)
    models: dict[str, Policy] = field(default_factory=dict)
    source: str | None = None  # the file it came from

    def for_model(self, names: list[str]) -> Policy:
        for name in names:
            for key in (name, name.removesuffix(":latest")):
                if key in self.models:
                    return self.models[key]
        return self.default


_FIELDS = {f.name: f for f in dataclasses.fields(Policy)}


def _policy(raw: dict[str, Any], base: Policy, where: str, problems: list[str]) -> Policy:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        f = _FIELDS.get(key)
        if f is None:
            problems.append(f"{where}: unknown key {key!r} (known: {', '.join(_FIELDS)})")
            continue
        default = getattr(base, key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{where}: {key} must be a list of strings")
                continue
            value = tuple(v.upper() if key == "pii_types" else v for v in value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                problems.append(f"{where}: {key} must be true or false")
                continue
        elif isinstance(default, float):
            if not isinstance(value, int | float) or isinstance(value, bool):
                problems.append(f"{where}: {key} must be a number")
                continue
            value = float(value)
        elif not isinstance(value, str):
            problems.append(f"{where}: {key} must be a string")
            continue
        values[key] = value
    policy = dataclasses.replace(base, **values)
    problems += [f"{where}: {p}" for p in policy.problems()]
    return policy


def load_policy(path: Path | str | None) -> PolicySet:
    """The policy file at ``path`` (TOML: ``[default]`` and ``[models.NAME]`` sections); None: the
    default policy. Every problem in the file is reported at once."""
    if path is None:
        return PolicySet()
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"the guardrails policy {path} does not exist", "give the path of a TOML policy file "
                         "(docs/guardrails.md shows one)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"the guardrails policy {path} is not valid TOML: {exc}",
                         "fix the file (docs/guardrails.md shows its shape)") from None
    problems: list[str] = []
    unknown = [k for k in doc if k not in ("default", "models")]
    if unknown:
        problems.append(f"unknown sections {unknown}: use [default] and [models.NAME]")
    default = _policy(doc.get("default") or {}, Policy(), "[default]", problems)
    models = {}
    for name, raw in (doc.get("models") or {}).items():
        if not isinstance(raw, dict):
            problems.append(f"[models.{name}] must be a section")
            continue
        models[name] = _policy(raw, default, f"[models.{name}]", problems)
    if problems:
        raise UsageError(f"the guardrails policy {path} has {len(problems)} problem"
                         f"{'s' if len(problems) != 1 else ''}: " + "; ".join(problems),
                         "fix them and start the server again")
    return PolicySet(default, models, str(path))
