"""Tool calls on the native path (freehold.engine.tools): one parser for every API, streamed or
not; the tools shown to templates that know them and to those that do not; arguments held to
the tool's schema by a grammar (whole, or lazily once a call opens)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from freehold.engine import Chunk, Engine
from freehold.engine.base import SamplingParams
from freehold.engine.chat import ChatTemplate
from freehold.engine.tools import (
    ToolCall,
    ToolCallParser,
    ToolFormat,
    check_tools,
    grammar,
    prepare,
    tool_format,
    tool_use,
    with_tool_calls,
)
from freehold.errors import UsageError
from freehold.store import MediaType, Store
from freehold.testing import CHATML

from .conftest import Live, _free_port, start_server

# A Hermes/Qwen-style template: tools listed in the system turn, calls as <tool_call> JSON.
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nYou may call these tools:\n{% for t in tools %}{{ t | tojson }}\n"
    "{% endfor %}Reply with <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function | tojson }}</tool_call>{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Lisbon", "Porto"]}},
                   "required": ["city"]}}}
CLOCK = {"type": "function", "function": {
    "name": "get_time", "description": "The time in a timezone",
    "parameters": {"type": "object", "properties": {"hours_ahead": {"type": "integer"}},
                   "required": ["hours_ahead"]}}}
HERMES, GENERIC, LLAMA3 = ToolFormat("hermes", True), ToolFormat("generic", False), ToolFormat("llama3", True)


def _run(parser: ToolCallParser, text: str, size: int) -> tuple[str, list[ToolCall]]:
    items: list[str | ToolCall] = []
    for i in range(0, len(text), size):
        items += parser.feed(text[i:i + size])
    items += parser.finish()
    return "".join(i for i in items if isinstance(i, str)), [i for i in items if isinstance(i, ToolCall)]


def test_the_parser_finds_the_same_calls_however_the_text_is_split() -> None:
    text = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lisbon"}}\n</tool_call>\n'
            '<tool_call>{"name": "get_time", "arguments": {"hours_ahead": 2}}</tool_call>')
    for size in range(1, 15):
        rest, calls = _run(ToolCallParser(HERMES), text, size)
        assert rest.strip() == "Let me check.", size
        assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Lisbon"}),
                                                           ("get_time", {"hours_ahead": 2})], size
    # What is not a call is given back as text, never dropped.
    assert _run(ToolCallParser(HERMES), "a <tool_call>{broken</tool_call> b", 3) == (
        "a <tool_call>{broken</tool_call> b", [])
    assert _run(ToolCallParser(HERMES), "ends in <tool_", 1) == ("ends in <tool_", [])
    assert _run(ToolCallParser(HERMES), "1 < 2 and <b>bold</b>", 2) == ("1 < 2 and <b>bold</b>", [])
    # A model that stops inside a call (EOS before the closing tag) still made the call.
    rest, calls = _run(ToolCallParser(HERMES), '<tool_call>{"name": "get_time", "arguments": {}}', 4)
    assert rest == "" and calls[0].name == "get_time"
    # The result markup a small model echoes from the conversation is not shown, nor leading blank lines.
    for size in range(1, 9):
        assert _run(ToolCallParser(GENERIC), "\n<tool_response>\nShipped on 2 December\n</tool_response>", size) == (
            "Shipped on 2 December", []), size
    # Llama 3.x: the whole reply is the call, "parameters" for arguments; prose is prose.
    rest, calls = _run(ToolCallParser(LLAMA3), ' {"name": "get_weather", "parameters": {"city": "Porto"}}', 5)
    assert rest == "" and (calls[0].name, calls[0].arguments) == ("get_weather", {"city": "Porto"})
    assert _run(ToolCallParser(LLAMA3), "It is {sunny} today", 4) == ("It is {sunny} today", [])


def test_chunks_carry_the_calls_and_the_reply_ends_tool_calls() -> None:
    pieces = ["Sure", " <tool", "_call>{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": \"Porto\"}}</tool_",
              "call>"]
    chunks = [Chunk(p, [i]) for i, p in enumerate(pieces)] + [Chunk("", [], "stop", 10, 5)]
    out = list(with_tool_calls(iter(chunks), HERMES))
    assert "".join(c.text for c in out) == "Sure "
    assert [c.name for ch in out for c in ch.tool_calls or []] == ["get_weather"]
    assert out[-1].finish_reason == "tool_calls" and out[-1].completion_tokens == 5
    assert sorted(t for c in out for t in c.token_ids) == list(range(5))  # held tokens are not lost
    plain = list(with_tool_calls(iter([Chunk("hello", [1]), Chunk("", [], "stop", 3, 1)]), HERMES))
    assert plain[-1].finish_reason == "stop" and "".join(c.text for c in plain) == "hello"


def test_templates_get_the_tools_their_way() -> None:
    assert tool_format(CHATML) == GENERIC and tool_format(TOOLS_TEMPLATE) == HERMES
    assert tool_format('{{ "<|python_tag|>" }}{% for t in tools %}{% endfor %}').name == "llama3"
    convo = [{"role": "system", "content": "You are Maya."}, {"role": "user", "content": "Weather in Porto?"},
             {"role": "assistant", "content": "", "tool_calls": [
                 {"id": "c1", "type": "function",
                  "function": {"name": "get_weather", "arguments": "{\"city\": \"Porto\"}"}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
             {"role": "tool", "tool_call_id": "c2", "content": "14:00"}]
    # A template with no tools: they go in the system message, calls and results in Hermes markup.
    generic = prepare(convo, [WEATHER], GENERIC)
    assert generic[0]["content"].startswith("You are Maya.\n\n") and '"get_weather"' in generic[0]["content"]
    call = '{"name": "get_weather", "arguments": {"city": "Porto"}}'
    assert generic[2] == {"role": "assistant", "content": f"<tool_call>\n{call}\n</tool_call>"}
    results = "<tool_response>\nsunny\n</tool_response>\n<tool_response>\n14:00\n</tool_response>"
    assert generic[3] == {"role": "user", "content": results}
    assert len(generic) == 4 and "tool_calls" not in ChatTemplate(CHATML).render(generic)
    # A template that knows tools: the calls with their arguments as objects, as HF templates read them.
    native = prepare(convo, [WEATHER], HERMES)
    assert native[2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Porto"}}
    rendered = ChatTemplate(TOOLS_TEMPLATE).render(native, tools=[WEATHER])
    assert '"get_weather"' in rendered and '{"name": "get_weather", "arguments": {"city": "Porto"}}' in rendered
    # Without a system message one is added.
    assert prepare(convo[1:2], [WEATHER], GENERIC)[0]["role"] == "system"


def test_bad_tools_are_refused_with_every_problem() -> None:
    with pytest.raises(UsageError) as err:
        check_tools([{"type": "function", "function": {}}, {"type": "retrieval"}, WEATHER, WEATHER,
                     {"type": "function", "function": {"name": "f", "parameters": "x"}}])
    message = str(err.value)
    assert "tool 0 needs function.name" in message and "tool 1 must be" in message
    assert "'get_weather' is listed twice" in message and "parameters must be a JSON schema" in message
    with pytest.raises(UsageError, match="not among the tools"):
        tool_use(CHATML, [WEATHER], {"type": "function", "function": {"name": "launch"}})
    assert tool_use(CHATML, [WEATHER], "none") is None
    assert check_tools([{"type": "function", "function": {"name": "ping"}}])[0]["function"]["parameters"] == {
        "type": "object", "properties": {}}


def test_the_call_grammar_compiles_for_every_format() -> None:
    from freehold.engine.llama import compile_grammar, json_grammar

    for fmt in (HERMES, GENERIC, LLAMA3):
        text = grammar(check_tools([WEATHER, CLOCK]), fmt)
        assert compile_grammar(text) is not None
        assert ('"<tool_call>"' in text) == (not fmt.bare_json)
    # JSON strings hold no raw control characters (the converter's own rule lets a newline in).
    assert '[^"\\\\\\x7F\\x00-\\x1F]' in json_grammar({"type": "object", "properties": {"a": {"type": "string"}}})
    # A schema the converter cannot express still gives a grammar (any object for the arguments).
    odd = {"type": "function", "function": {"name": "odd", "parameters": {"$ref": "#/nowhere"}}}
    assert compile_grammar(grammar(check_tools([odd]), HERMES)) is not None
    # A reference to a URL is never fetched (the converter would): refused, or any object for a tool.
    far = {"type": "object", "properties": {"x": {"$ref": "http://127.0.0.1:9/schema.json"}}}
    with pytest.raises(UsageError, match="refers outside itself"):
        json_grammar(far)
    remote = {"type": "function", "function": {"name": "remote", "parameters": far}}
    assert 'remote' in grammar(check_tools([remote]), HERMES)


def test_a_lazy_grammar_holds_only_from_its_trigger(store: Store, tiny_gguf: Path) -> None:
    """llama.cpp's lazy grammar in the serving backend: free text, then the grammar from the trigger on."""
    from freehold.engine.batched import BatchedLlamaBackend

    entry = store.import_gguf(tiny_gguf, "tiny")
    backend = BatchedLlamaBackend(store.blob_path(entry.manifest.weights[0].digest), 512, 1, slots=1)
    engine = Engine(backend, entry, store.text_layer(entry.manifest, MediaType.TEMPLATE))
    try:
        greedy = SamplingParams(temperature=0, max_tokens=24)
        free = engine.complete(engine.generate("the cat", greedy)).text
        letters = [ch for ch in free if ch.isalpha()]
        assert len(letters) >= 3, free
        trigger = letters[2]  # a character the model writes anyway, after some free text
        before = free[: free.index(trigger)]
        lazy = SamplingParams(temperature=0, max_tokens=24, grammar=f'root ::= "{trigger}" "=" [0-9] [0-9]',
                              grammar_triggers=(f"[\\s\\S]*?({trigger})[\\s\\S]*",))
        out = engine.complete(engine.generate("the cat", lazy)).text
        assert out.startswith(before)
        tail = out[len(before):]
        assert len(tail) == 4 and tail[:2] == f"{trigger}=" and tail[2:].isdigit(), (free, out)
    finally:
        backend.close()


@pytest.fixture
def tools_server(store: Store, tmp_path: Path) -> Live:  # type: ignore[misc]
    from freehold.server import ServerOptions
    from freehold.testing import write_tiny_gguf

    long = {"ctx": 2048}  # the tools' descriptions fill a 512-token context
    store.import_gguf(write_tiny_gguf(tmp_path / "tools.gguf", chat_template=TOOLS_TEMPLATE, **long), "tiny-tools")
    store.import_gguf(write_tiny_gguf(tmp_path / "plain.gguf", **long), "tiny")  # ChatML: no tools in it
    yield from start_server(ServerOptions(port=_free_port(), slots=2), store)


def _check_call(name: str, arguments: dict[str, object]) -> None:
    assert name in ("get_weather", "get_time")
    if name == "get_weather":
        assert arguments in ({"city": "Lisbon"}, {"city": "Porto"})  # the schema's enum
    else:
        assert set(arguments) == {"hours_ahead"} and isinstance(arguments["hours_ahead"], int)


def test_streamed_tool_call_deltas_reassemble_into_the_same_call(tools_server: Live) -> None:
    """Through the official openai client: streamed deltas == the non-streamed message, on both
    kinds of template; the tiny model's random weights call a tool only because the grammar makes it."""
    c = openai.OpenAI(base_url=tools_server.url + "/v1", api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "weather in Porto?"}]
    for model in ("tiny-tools", "tiny"):
        for choice in ("required", {"type": "function", "function": {"name": "get_time"}}):
            kwargs = dict(model=model, messages=messages, tools=[WEATHER, CLOCK], tool_choice=choice,
                          max_tokens=120, temperature=0)
            whole = c.chat.completions.create(**kwargs)  # type: ignore[call-overload]
            assert whole.choices[0].finish_reason == "tool_calls", whole
            call = whole.choices[0].message.tool_calls[0]
            _check_call(call.function.name, json.loads(call.function.arguments))
            if isinstance(choice, dict):
                assert call.function.name == "get_time"
            with c.chat.completions.stream(**kwargs) as s:  # type: ignore[call-overload]
                final = s.get_final_completion()
            streamed = final.choices[0].message.tool_calls[0]
            assert (streamed.function.name, json.loads(streamed.function.arguments)) == (
                call.function.name, json.loads(call.function.arguments))
            assert final.choices[0].finish_reason == "tool_calls"


def test_ollama_tool_calls_come_from_the_same_parser(tools_server: Live) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "time?"}], "tools": [WEATHER, CLOCK],
            "tool_choice": "required", "options": {"temperature": 0, "num_predict": 120}}
    whole = httpx.post(tools_server.url + "/api/chat", json={**body, "stream": False}, timeout=60).json()
    calls = whole["message"]["tool_calls"]
    assert whole["done_reason"] == "stop" and len(calls) == 1
    _check_call(calls[0]["function"]["name"], calls[0]["function"]["arguments"])  # an object, not text
    with httpx.stream("POST", tools_server.url + "/api/chat", json=body, timeout=60) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    streamed = [c for line in lines for c in line["message"].get("tool_calls", [])]
    assert streamed == calls and lines[-1]["done"] is True
    # The tool's result goes back in, and the model answers (here: the prompt carries it).
    follow = {**body, "stream": False, "tool_choice": "none", "options": {"num_predict": 2}, "messages": [
        *body["messages"], whole["message"], {"role": "tool", "content": "RESULT-MARKER 14:00"}]}
    r = httpx.post(tools_server.url + "/api/chat", json=follow, timeout=60)
    assert r.status_code == 200 and "tool_calls" not in r.json()["message"]
    shown = httpx.post(tools_server.url + "/api/show", json={"model": "tiny"}).json()
    assert "tools" in shown["capabilities"]


def test_tools_render_through_a_template_that_supports_them(tools_server: Live) -> None:
    c = openai.OpenAI(base_url=tools_server.url + "/v1", api_key="x", max_retries=0)
    sizes = {}
    for tools in (None, [WEATHER]):
        r = c.chat.completions.create(model="tiny-tools", messages=[{"role": "user", "content": "weather?"}],
                                      tools=tools or openai.NOT_GIVEN, max_tokens=4,  # type: ignore[arg-type]
                                      temperature=0)
        assert r.usage is not None
        sizes[bool(tools)] = r.usage.prompt_tokens
    assert sizes[True] > sizes[False] + 40  # the tool list is in the prompt
    r = httpx.post(tools_server.url + "/v1/chat/completions", json={
        "model": "tiny", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})
    assert r.status_code == 400 and "tool 0 must be" in r.json()["error"]["message"]
