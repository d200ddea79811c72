"""A client for a running Freehold server, with the same streaming API as ``Engine``.

``freehold run`` and ``chat`` use it when a server answers at ``FREEHOLD_HOST`` (as
``ollama`` does), so a model already loaded there is not loaded a second time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from freehold.config import Settings
from freehold.engine import Chunk, Completion, SamplingParams, complete
from freehold.engine.base import MODEL_DEFAULTS
from freehold.errors import FreeholdError, from_dict


def server_alive(url: str, timeout: float = 0.3) -> bool:
    try:
        r = httpx.get(url + "/api/version", timeout=timeout)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and "version" in r.json()


class RemoteEngine:
    """Streams from a Freehold server through its Ollama API (NDJSON); a ``ChatEngine``."""

    def __init__(self, url: str, model: str, api_key: str | None = None) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        show = self._post_json("/api/show", {"model": model})
        tags = {m["model"] for m in httpx.get(url + "/api/tags", headers=self.headers, timeout=10).json()["models"]}
        self.name = next((t for t in tags if t == model or t.split(":")[0] == model), model)
        self.has_template = bool(show.get("template"))
        self.n_ctx = int(next((v for k, v in show.get("model_info", {}).items() if k.endswith("context_length")
                               and v), 0) or 0)

    def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        r = httpx.post(self.url + path, json=body, headers=self.headers, timeout=30)
        if r.status_code >= 400:
            raise _error(r)
        return r.json()

    def _options(self, params: SamplingParams) -> dict[str, Any]:
        # Knobs the caller left unset are not sent, so the server applies the model's own defaults.
        opts: dict[str, Any] = {k: getattr(params, k) for k in MODEL_DEFAULTS if k not in params.unset}
        if params.seed is not None:
            opts["seed"] = params.seed
        if params.stop:
            opts["stop"] = list(params.stop)
        if params.max_tokens is not None:
            opts["num_predict"] = params.max_tokens
        return opts

    def _stream(self, path: str, body: dict[str, Any]) -> Iterator[Chunk]:
        with httpx.stream("POST", self.url + path, json=body, headers=self.headers, timeout=None) as r:
            if r.status_code >= 400:
                r.read()
                raise _error(r)
            for line in r.iter_lines():
                if not line:
                    continue
                data = json.loads(line)
                text = data.get("message", {}).get("content", "") if "message" in data else data.get("response", "")
                if data.get("done"):
                    yield Chunk(text or "", [], data.get("done_reason") or "stop", data.get("prompt_eval_count", 0),
                                data.get("eval_count", 0), grounding=data.get("grounding"))
                    return
                yield Chunk(text)

    def chat(self, messages: Sequence[dict[str, Any]], params: SamplingParams | None = None, *,
             knowledge: str | None = None) -> Iterator[Chunk]:
        """``knowledge``: ground the answer in this index (None: the server's choice; "none": off)."""
        params = (params or SamplingParams.given()).validate()
        body = {"model": self.name, "messages": list(messages), "stream": True, "options": self._options(params)}
        if knowledge is not None:
            body["knowledge"] = knowledge
        return self._stream("/api/chat", body)

    def generate(self, prompt: str, params: SamplingParams | None = None) -> Iterator[Chunk]:
        params = (params or SamplingParams.given()).validate()
        return self._stream("/api/generate", {"model": self.name, "prompt": prompt, "raw": True, "stream": True,
                                              "options": self._options(params)})

    def complete(self, chunks: Iterator[Chunk]) -> Completion:
        return complete(chunks)

    def close(self) -> None:
        pass


def _error(r: httpx.Response) -> FreeholdError:
    """The server's error as the same class it raised (its ``freehold`` object carries the code)."""
    try:
        body = r.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    own = body.get("freehold") if isinstance(body, dict) else None
    if own is None and isinstance(error, dict):  # the OpenAI shape nests it
        own = error.get("freehold")
    if isinstance(own, dict):
        return from_dict(own, r.status_code)
    message = error.get("message") if isinstance(error, dict) else error
    return from_dict({"message": message or r.text or f"HTTP {r.status_code}"}, r.status_code)


def connect(settings: Settings, model: str) -> RemoteEngine | None:
    """A RemoteEngine when a server is running and not disabled, else None."""
    if settings.no_server:
        return None
    url = settings.server_url
    if not server_alive(url):
        return None
    return RemoteEngine(url, model, next(iter(settings.api_keys), None))
