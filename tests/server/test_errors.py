"""Bad requests: each is a 4xx in its API's one error shape, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Live

LONG = "the cat " * 400  # over the tiny model's 512-token context

# (method, path, body or raw bytes, expected status)
BAD: list[tuple[str, str, object, int]] = [
    ("POST", "/v1/chat/completions", b"{not json", 400),
    ("POST", "/v1/chat/completions", b"", 400),
    ("POST", "/v1/chat/completions", [], 400),
    ("POST", "/v1/chat/completions", {}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny"}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": []}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": "hi"}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"content": "x"}]}, 400),
    ("POST", "/v1/chat/completions", {"model": 42, "messages": [{"role": "user", "content": "x"}]}, 400),
    ("POST", "/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404),
    ("POST", "/v1/chat/completions", {"model": "", "messages": [{"role": "user", "content": "x"}]}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                      "temperature": "hot"}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                      "temperature": 9}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                      "top_p": 0}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                      "max_tokens": -1}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                      "n": 3}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                      "stop": 5}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                      "response_format": {"type": "xml"}}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                      "response_format": {"type": "json_schema", "json_schema": {}}}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": LONG}]}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny-base", "messages": [{"role": "user", "content": "x"}]}, 400),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                                      "tools": [{"type": "function", "function": {}}]}, 400),
    ("POST", "/v1/completions", {"model": "tiny"}, 400),
    ("POST", "/v1/completions", {"model": "tiny", "prompt": ["a", "b"]}, 400),
    ("POST", "/v1/completions", {"model": "tiny", "prompt": LONG}, 400),
    ("POST", "/v1/embeddings", {"model": "tiny"}, 400),
    ("POST", "/v1/embeddings", {"model": "tiny", "input": []}, 400),
    ("POST", "/v1/embeddings", {"model": "tiny", "input": [""]}, 400),
    ("POST", "/v1/embeddings", {"model": "ghost", "input": "x"}, 404),
    ("POST", "/v1/responses", {"model": "tiny", "input": "x", "max_output_tokens": 0}, 400),
    ("GET", "/v1/models/ghost", None, 404),
    ("GET", "/v1/nothing-here", None, 404),
    ("DELETE", "/v1/models", None, 405),
    ("POST", "/api/chat", b"{oops", 400),
    ("POST", "/api/chat", {"messages": [{"role": "user", "content": "x"}]}, 400),
    ("POST", "/api/chat", {"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404),
    ("POST", "/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "format": "yaml"}, 400),
    ("POST", "/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                           "options": {"temperature": -1}}, 400),
    ("POST", "/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "x"}],
                           "keep_alive": "soon"}, 400),
    ("POST", "/api/generate", {"model": "tiny", "prompt": LONG}, 400),
    ("POST", "/api/generate", {"model": "tiny", "prompt": 7}, 400),
    ("POST", "/api/embed", {"model": "tiny", "input": []}, 400),
    ("POST", "/api/show", {}, 400),
    ("POST", "/api/show", {"model": "ghost"}, 404),
    ("GET", "/api/chat", None, 405),
]


@pytest.mark.parametrize("method,path,body,status", BAD, ids=[f"{m} {p} #{i}" for i, (m, p, _, _) in enumerate(BAD)])
def test_bad_request(live_shared: Live, method: str, path: str, body: object, status: int) -> None:
    kwargs: dict[str, object] = {}
    if isinstance(body, bytes):
        kwargs = {"content": body, "headers": {"Content-Type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    live = live_shared
    r = httpx.request(method, live.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    err = r.json()["error"]
    if path.startswith("/api/"):
        assert isinstance(err, str) and err
    else:
        assert set(err) - {"freehold"} == {"message", "type", "param", "code"} and err["message"]
    if "freehold" in (err if isinstance(err, dict) else r.json()):  # a Freehold error: its code travels
        own = (err if isinstance(err, dict) else r.json())["freehold"]
        assert set(own) == {"code", "message", "hint", "details"} and own["code"]
    assert httpx.get(live.url + "/health").json()["status"] == "ok"


def test_context_overflow_states_the_limit(live: Live) -> None:
    r = httpx.post(live.url + "/v1/chat/completions",
                   json={"model": "tiny", "messages": [{"role": "user", "content": LONG}]})
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "context_length_exceeded"
    assert "512 tokens" in err["message"]


def test_oversize_body_is_413(server_factory) -> None:  # type: ignore[no-untyped-def]
    with server_factory(max_body_bytes=1000) as live:
        r = httpx.post(live.url + "/v1/chat/completions",
                       json={"model": "tiny", "messages": [{"role": "user", "content": "x" * 5000}]})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        r = httpx.post(live.url + "/api/chat", json={"model": "tiny", "messages": [{"role": "user",
                                                                                     "content": "x" * 5000}]})
        assert r.status_code == 413 and "limit" in r.json()["error"]
        assert httpx.get(live.url + "/health").status_code == 200
