"""Tool calls: how a model is shown its tools and writes its calls, one streaming parser over
what it writes, and the grammar that keeps a call's arguments to the tool's JSON schema.

Every API gets its tool calls from here (``server.native``), streamed or not:

- A template that renders ``tools`` itself (Qwen 2.5/3, Hermes, SmolLM3: calls written as
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; Llama 3.1/3.2: a bare
  ``{"name": ..., "parameters": {...}}`` reply) gets the tools and the conversation's calls and
  results in the shape Hugging Face templates read (``tool_calls[].function.arguments`` as an
  object, ``role: tool`` results).
- A template that knows no tools (SmolLM2, Gemma 3, the family templates) gets them the way
  llama.cpp's server does for such models: described in the system message, with the Hermes
  markup to call them, which small instruction models have seen most; earlier calls and results
  are written into the turns in that markup.

Grammar: with ``tool_choice`` "required" or a named function the whole reply is held to a call
of the allowed tools (their ``parameters`` schemas); with "auto" the same grammar is *lazy*:
free text until the model opens a call, then the call must parse (llama.cpp's trigger patterns).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from freehold.engine.base import Chunk, SamplingParams
from freehold.errors import UsageError

OPEN, CLOSE = "<tool_call>", "</tool_call>"
# The result markup the conversation shows the model; a small model echoes it in its answer,
# and a reader must not see it (the text between the tags is kept).
RESULT_OPEN, RESULT_CLOSE = "<tool_response>", "</tool_response>"
ECHOES = (RESULT_OPEN + "\n", "\n" + RESULT_CLOSE, RESULT_OPEN, RESULT_CLOSE)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def openai(self, index: int | None = None) -> dict[str, Any]:
        """OpenAI's shape: arguments as JSON text (with ``index`` for a streamed delta)."""
        out: dict[str, Any] = {"id": self.id, "type": "function",
                               "function": {"name": self.name, "arguments": json.dumps(self.arguments)}}
        return out if index is None else {"index": index, **out}

    def ollama(self) -> dict[str, Any]:
        """Ollama's shape: arguments as an object."""
        return {"function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ToolFormat:
    """How one chat template takes tools and how its model writes calls."""

    name: str  # "hermes" | "llama3" | "generic"
    native: bool  # the template renders the tool list itself

    @property
    def bare_json(self) -> bool:
        return self.name == "llama3"


def tool_format(template_source: str | None) -> ToolFormat:
    source = template_source or ""
    if "tools" not in source:
        return ToolFormat("generic", native=False)
    if "<tool_call>" not in source and ("<|python_tag|>" in source or '"parameters"' in source):
        return ToolFormat("llama3", native=True)
    return ToolFormat("hermes", native=True)


# requests ---------------------------------------------------------------------------------
def check_tools(tools: Any) -> list[dict[str, Any]]:
    """The request's tool list, normalised to ``{"type": "function", "function": {...}}``; every
    problem is reported at once."""
    if not isinstance(tools, list):
        raise UsageError("tools must be a list", 'e.g. [{"type": "function", "function": {"name": "f", ...}}]')
    problems: list[str] = []
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or tool.get("type", "function") != "function":
            problems.append(f"tool {i} must be {{\"type\": \"function\", \"function\": {{...}}}}")
            continue
        name = fn.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
            problems.append(f"tool {i} needs function.name: 1-64 letters, digits, _ . : or -")
            continue
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            problems.append(f"tool {i} ({name}): function.parameters must be a JSON schema object")
            continue
        out.append({"type": "function", "function": {**fn, "parameters": params}})
    names = [t["function"]["name"] for t in out]
    problems += [f"tool {n!r} is listed twice" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise UsageError("the tools are not valid: " + "; ".join(problems),
                         "each tool: {\"type\": \"function\", \"function\": {\"name\": ..., \"description\": ..., "
                         "\"parameters\": {JSON schema}}}")
    return out


def chosen(tools: list[dict[str, Any]], tool_choice: Any) -> tuple[list[dict[str, Any]], bool]:
    """(the tools the model may call, whether it must call one) for OpenAI's ``tool_choice``."""
    if tool_choice in (None, "auto"):
        return tools, False
    if tool_choice == "required":
        return tools, True
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        picked = [t for t in tools if t["function"]["name"] == name]
        if picked:
            return picked, True
        raise UsageError(f"tool_choice names {name!r}, which is not among the tools",
                         f"name one of {', '.join(t['function']['name'] for t in tools)}")
    raise UsageError(f"unknown tool_choice {tool_choice!r}",
                     'use "auto", "none", "required" or {"type": "function", "function": {"name": ...}}')


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            return {"_raw": value}
    return value if isinstance(value, dict) else {"_value": value}


def _call_json(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function", call)
    return {"name": fn.get("name", ""), "arguments": _arguments(fn.get("arguments", {}))}


_GENERIC_PROMPT = (
    "You can call functions to answer. They are described by these JSON schemas:\n<tools>\n{tools}\n</tools>\n"
    "To call one, reply with only a JSON object inside <tool_call></tool_call> tags:\n"
    '<tool_call>\n{{"name": "<function name>", "arguments": {{<its arguments>}}}}\n</tool_call>\n'
    "A function's result comes back inside <tool_response></tool_response> tags; use it to answer. "
    "If no function is needed, answer in plain text.")


def prepare(messages: Sequence[dict[str, Any]], tools: list[dict[str, Any]], fmt: ToolFormat
            ) -> list[dict[str, Any]]:
    """The conversation as this template can read it, with the tools and earlier calls in it."""
    out: list[dict[str, Any]] = []
    results_open = False  # the last turn written holds tool results, so the next ones join it
    for m in messages:
        calls = m.get("tool_calls") or []
        if fmt.native:
            if calls:
                m = {**m, "tool_calls": [{"id": c.get("id") or f"call_{i}", "type": "function",
                                          "function": _call_json(c)} for i, c in enumerate(calls)]}
            out.append(m)
            continue
        is_result = m["role"] == "tool"
        if m["role"] == "assistant" and calls:
            written = "\n".join(f"{OPEN}\n{json.dumps(_call_json(c))}\n{CLOSE}" for c in calls)
            out.append({"role": "assistant", "content": "\n".join(p for p in (m.get("content") or "", written) if p)})
        elif is_result:
            result = f"{RESULT_OPEN}\n{m.get('content') or ''}\n{RESULT_CLOSE}"
            if results_open:
                out[-1] = {**out[-1], "content": out[-1]["content"] + "\n" + result}
            else:
                out.append({"role": "user", "content": result})
        else:
            out.append(m)
        results_open = is_result
    if fmt.native:
        return out
    described = _GENERIC_PROMPT.format(tools="\n".join(json.dumps(t) for t in tools))
    if out and out[0]["role"] == "system":
        return [{**out[0], "content": f"{out[0]['content']}\n\n{described}"}, *out[1:]]
    return [{"role": "system", "content": described}, *out]


# grammar ----------------------------------------------------------------------------------
def grammar(tools: list[dict[str, Any]], fmt: ToolFormat) -> str:
    """GBNF for one or more calls of ``tools``, each call's arguments held to its schema."""
    from freehold.engine.llama import json_grammar

    key = "parameters" if fmt.bare_json else "arguments"

    def alternative(tool: dict[str, Any]) -> dict[str, Any]:
        fn = tool["function"]
        return {"type": "object", "properties": {"name": {"const": fn["name"]}, key: fn["parameters"]},
                "required": ["name", key], "additionalProperties": False}

    try:
        body = json_grammar({"oneOf": [alternative(t) for t in tools]})
    except UsageError:  # a schema the converter cannot express: the arguments are any object
        body = json_grammar({"oneOf": [{**alternative(t), "properties": {
            "name": {"const": t["function"]["name"]}, key: {"type": "object"}}} for t in tools]})
    body = re.sub(r"^root ::=", "tool-call ::=", body, flags=re.M)
    if fmt.bare_json:
        return body + '\nroot ::= tool-call\n'
    return body + f'\nroot ::= {json.dumps(OPEN)} "\\n"? tool-call "\\n"? {json.dumps(CLOSE)}\n'


def lazy_triggers(fmt: ToolFormat) -> tuple[str, ...]:
    """llama.cpp trigger patterns (whole-output regexes; the grammar applies from group 1)."""
    return (r"^\s*(\{\s*\"name\")[\s\S]*",) if fmt.bare_json else (r"[\s\S]*?(<tool_call>)[\s\S]*",)


# one request ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolUse:
    """The tools of one chat request, for one template."""

    tools: list[dict[str, Any]]
    fmt: ToolFormat
    required: bool = False

    @property
    def template_tools(self) -> list[dict[str, Any]] | None:
        """What the template's ``tools`` variable gets (None: the tools are in the system message)."""
        return self.tools if self.fmt.native else None

    def messages(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return prepare(messages, self.tools, self.fmt)

    def params(self, params: SamplingParams) -> SamplingParams:
        """``params`` with the call grammar: held from the start when a call is required, lazy
        otherwise; a request's own grammar (a response format) is left alone."""
        if params.grammar is not None:
            return params
        return replace(params, grammar=grammar(self.tools, self.fmt),
                       grammar_triggers=() if self.required else lazy_triggers(self.fmt))

    def parse(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        return with_tool_calls(chunks, self.fmt)


def tool_use(template_source: str | None, tools: Any, tool_choice: Any = None) -> ToolUse | None:
    """The request's tools for this template, or None when it has none (or ``tool_choice`` "none")."""
    if not tools or tool_choice == "none":
        return None
    checked = check_tools(tools)
    allowed, required = chosen(checked, tool_choice)
    return ToolUse(allowed, tool_format(template_source), required)


# parsing ----------------------------------------------------------------------------------
def _parse_call(text: str, fmt: ToolFormat) -> ToolCall | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    return ToolCall(data["name"], _arguments(data.get("arguments", data.get("parameters", {}))))


class ToolCallParser:
    """Splits a model's streamed text into plain text and tool calls.

    Text that may be the start of a call is held back until it is clear (at most the length
    of the opening tag); a call is given when it closes, or at the end if the model stopped
    inside it. A block that does not parse as a call is given back as text, never dropped."""

    def __init__(self, fmt: ToolFormat) -> None:
        self.fmt = fmt
        self.calls: list[ToolCall] = []
        self._buf = ""
        self._inside = False
        self._started = False  # bare JSON: whether the first visible character has been seen
        self._spoke = False  # whether any text or call has been given yet

    def feed(self, text: str) -> list[str | ToolCall]:
        return self._lead(self._feed(text))

    def _lead(self, items: list[str | ToolCall]) -> list[str | ToolCall]:
        """No reply opens with blank lines (what is left where echoed markup was taken out)."""
        out: list[str | ToolCall] = []
        for item in items:
            if isinstance(item, str) and not self._spoke:
                item = item.lstrip()
                if not item:
                    continue
            self._spoke = True
            out.append(item)
        return out

    def _feed(self, text: str) -> list[str | ToolCall]:
        self._buf += text
        out: list[str | ToolCall] = []
        if self.fmt.bare_json:
            if not self._started and self._buf.strip():
                self._started = True
                self._inside = self._buf.lstrip().startswith(("{", "<|python_tag|>"))
            if self._started and not self._inside:
                out.append(self._buf)
                self._buf = ""
            return out
        while True:
            if not self._inside:
                at = self._buf.find(OPEN)
                if at < 0:
                    keep = max(_partial_suffix(self._buf, m) for m in (OPEN, *ECHOES))
                    if len(self._buf) > keep:
                        out.append(_unechoed(self._buf[: len(self._buf) - keep]))
                        self._buf = self._buf[len(self._buf) - keep:]
                    return out
                if at:
                    out.append(_unechoed(self._buf[:at]))
                self._buf = self._buf[at + len(OPEN):]
                self._inside = True
            end = self._buf.find(CLOSE)
            if end < 0:
                return out
            out.append(self._call_or_text(self._buf[:end], closed=True))
            self._buf = self._buf[end + len(CLOSE):]
            self._inside = False

    def finish(self) -> list[str | ToolCall]:
        return self._lead(self._finish())

    def _finish(self) -> list[str | ToolCall]:
        rest, self._buf = self._buf, ""
        if not self._inside:
            rest = _unechoed(rest)
            return [rest] if rest else []
        self._inside = False
        if self.fmt.bare_json:
            body = rest.strip().removeprefix("<|python_tag|>")
            items = [p for p in re.split(r"\s*;\s*(?=\{)", body) if p.strip()]
            calls = [_parse_call(p, self.fmt) for p in items]
            if items and all(calls):
                self.calls += [c for c in calls if c]
                return list(c for c in calls if c)
            return [rest]
        return [self._call_or_text(rest, closed=False)]

    def _call_or_text(self, body: str, closed: bool) -> str | ToolCall:
        call = _parse_call(body.strip(), self.fmt)
        if call is None:
            return OPEN + body + (CLOSE if closed else "")
        self.calls.append(call)
        return call


def _unechoed(text: str) -> str:
    for tag in ECHOES:
        text = text.replace(tag, "")
    return text


def _partial_suffix(text: str, marker: str) -> int:
    """The length of the longest end of ``text`` that begins ``marker``."""
    for n in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


def with_tool_calls(chunks: Iterator[Chunk], fmt: ToolFormat) -> Iterator[Chunk]:
    """``chunks`` with tool calls taken out of the text into ``Chunk.tool_calls``; a reply that
    made a call ends with ``finish_reason`` "tool_calls"."""
    parser = ToolCallParser(fmt)
    held: list[int] = []
    try:
        for chunk in chunks:
            items = parser.feed(chunk.text)
            if chunk.finish_reason is not None:
                items += parser.finish()
            text = "".join(i for i in items if isinstance(i, str))
            calls = [i for i in items if isinstance(i, ToolCall)]
            if chunk.finish_reason is None and not text and not calls and chunk.logprobs is None:
                held += chunk.token_ids
                continue
            finish = chunk.finish_reason
            if finish == "stop" and parser.calls:
                finish = "tool_calls"
            yield replace(chunk, text=text, token_ids=held + chunk.token_ids, tool_calls=calls or None,
                          finish_reason=finish)
            held = []
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()
