"""Chat templates: the model's own Jinja template (from GGUF or tokenizer_config.json),
rendered in a sandbox the way Hugging Face transformers renders it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from freehold.errors import EngineError, NoChatTemplateError, UsageError

ROLES = ("system", "user", "assistant", "tool")


def validate_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise UsageError("messages must be a non-empty list", 'e.g. [{"role": "user", "content": "Hi"}]')
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise UsageError(f"message {i} must be an object with 'role' and 'content'",
                             'e.g. {"role": "user", "content": "Hi"}')
        if m["role"] not in ROLES:
            raise UsageError(f"message {i} has unknown role {m['role']!r}", f"use one of {', '.join(ROLES)}")
        content = m.get("content")
        if content is None:
            content = ""
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise UsageError(f"message {i} content must be a string", "send text content")
        out.append({**m, "content": content})
    return out


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: dt.datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise EngineError(f"the model's chat template does not compile: {exc}",
                          "fix the template ('freehold show NAME --template')") from exc


class ChatTemplate:
    def __init__(self, source: str, bos_token: str | None = None, eos_token: str | None = None) -> None:
        self.source = source
        self.bos_token = bos_token or ""
        self.eos_token = eos_token or ""
        self.template = _compile(source)

    def render(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True,
               tools: list[dict[str, Any]] | None = None, **extra: Any) -> str:
        from jinja2.exceptions import TemplateError

        try:
            return str(self.template.render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                            bos_token=self.bos_token, eos_token=self.eos_token,
                                            tools=tools, **extra))
        except TemplateError as exc:
            raise UsageError(f"the model's chat template rejected these messages: {exc}",
                             "check the roles and their order (e.g. some templates need user/assistant "
                             "to alternate)") from exc


# Chat templates for base models that ship none (Gemma 3 270M base): what 'freehold tune'
# teaches them, named by 'tune --template'. Each is the family's own turn format, so the
# special tokens the tokenizer already has mark the turns, and prefix-stable (a
# conversation's rendering starts with the rendering of its first turns), which training
# needs to mask everything but the replies.
FAMILY_TEMPLATES = {
    # Gemma's turn format (google/gemma-3 tokenizer_config.json): no system role, so a system
    # message opens the first user turn; the assistant is "model".
    "gemma": (
        "{{ bos_token }}"
        "{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
        "{% set turns = messages[1:] %}{% else %}{% set first = '' %}{% set turns = messages %}{% endif %}"
        "{% for message in turns %}"
        "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
        "{{ '<start_of_turn>' + role + '\n' + (first if loop.first else '') + message['content'] | trim"
        " + '<end_of_turn>\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"),
    # ChatML (Qwen, SmolLM): the tokens <|im_start|> and <|im_end|>.
    "chatml": (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
        "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
}
# Each family's turn markers: single tokens of its models' vocabularies.
FAMILY_MARKERS = {"gemma": ("<start_of_turn>", "<end_of_turn>"), "chatml": ("<|im_start|>", "<|im_end|>")}
# The family template a base model of an architecture gets when it has none.
ARCHITECTURE_TEMPLATES = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "qwen2": "chatml",
                          "qwen3": "chatml"}


def family_template(name: str) -> str:
    """The source of the named family template (``FAMILY_TEMPLATES``)."""
    try:
        return FAMILY_TEMPLATES[name]
    except KeyError:
        raise UsageError(f"there is no chat template named {name!r}",
                         f"use one of {', '.join(FAMILY_TEMPLATES)}, or a file with a Jinja template") from None


def no_template_error(model_name: str) -> NoChatTemplateError:
    return NoChatTemplateError(
        f"{model_name} is a base model with no chat template, so it cannot chat",
        f"use plain completion: 'freehold run {model_name} --raw \"Once upon a time\"', "
        "or import an instruction-tuned model")


def require_template(template: ChatTemplate | None, model_name: str) -> ChatTemplate:
    if template is None:
        raise no_template_error(model_name)
    return template
