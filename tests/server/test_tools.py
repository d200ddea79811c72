"""Tools: accepted where the chat template renders them; tool calls parsed from model output."""

from __future__ import annotations

import json
from pathlib import Path

import openai

from freehold.server.native import parse_tool_calls
from freehold.store import Store

from .conftest import _free_port, start_server

# A Hermes/Qwen-style template: tools listed in the system turn, calls as <tool_call> JSON.
TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nYou may call these tools:\n{% for t in tools %}{{ t | tojson }}\n"
    "{% endfor %}Reply with <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}


def test_parse_tool_calls() -> None:
    text = 'Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Lisbon"}}</tool_call>'
    rest, calls = parse_tool_calls(text)
    assert rest == "Let me check."
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Lisbon"}
    assert parse_tool_calls("no calls here") == ("no calls here", [])
    assert parse_tool_calls("<tool_call>{broken</tool_call>")[1] == []


def test_tools_render_through_a_template_that_supports_them(store: Store, tmp_path: Path) -> None:
    from freehold.engine.chat import ChatTemplate
    from freehold.server import ServerOptions
    from freehold.testing import write_tiny_gguf

    rendered = ChatTemplate(TOOLS_TEMPLATE).render([{"role": "user", "content": "weather?"}], tools=[WEATHER])
    assert '"name": "get_weather"' in rendered
    store.import_gguf(write_tiny_gguf(tmp_path / "tools.gguf", chat_template=TOOLS_TEMPLATE), "tiny-tools")
    for live in start_server(ServerOptions(port=_free_port(), slots=2), store):
        c = openai.OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0)
        r = c.chat.completions.create(model="tiny-tools", messages=[{"role": "user", "content": "weather?"}],
                                      tools=[WEATHER], max_tokens=4, temperature=0)  # type: ignore[list-item]
        assert r.usage is not None and r.usage.prompt_tokens > 40  # the tool list is in the prompt
