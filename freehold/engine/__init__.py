"""Inference over store models: one ``Engine`` API above swappable backends.

    engine = load_engine("smollm2")                       # llama.cpp backend
    for chunk in engine.chat([{"role": "user", "content": "Hi"}], SamplingParams()):
        print(chunk.text, end="")

Backends (``Backend`` protocol in engine/base.py): ``llama`` (llama.cpp, GGUF) and
``torch`` (transformers; GGUF dequantised once, or safetensors). The engine renders the
model's chat template, enforces the context limit (a clear error, never silent
truncation), handles stop strings and limits, and reports usage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, cast

from freehold.config import ServerOptions, Settings, load_settings
from freehold.engine.base import Backend, Chunk, SamplingParams, ScoredToken, Scorer, StopScanner
from freehold.engine.chat import ChatTemplate, require_template, validate_messages
from freehold.errors import ContextOverflowError, InvalidModelError, UsageError
from freehold.progress import ProgressFn
from freehold.store import MediaType, ModelEntry, Store

__all__ = ["BACKENDS", "Backend", "BackendKind", "ChatEngine", "Chunk", "Completion", "Engine", "LoadOptions",
           "SamplingParams", "Scorer", "load_engine", "load_scorer", "model_params", "register_backend"]

@dataclass
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token: float
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        decode = self.seconds - self.time_to_first_token
        return (self.completion_tokens - 1) / decode if decode > 0 and self.completion_tokens > 1 else 0.0


class ChatEngine(Protocol):
    """What 'run' and 'chat' stream from: a model loaded here (``Engine``) or one a running
    server holds (``freehold.client.RemoteEngine``)."""

    name: str

    @property
    def n_ctx(self) -> int: ...

    @property
    def has_template(self) -> bool: ...

    def chat(self, messages: Sequence[dict[str, Any]], params: SamplingParams | None = None) -> Iterator[Chunk]: ...

    def generate(self, prompt: str, params: SamplingParams | None = None) -> Iterator[Chunk]: ...

    def complete(self, chunks: Iterator[Chunk]) -> Completion: ...

    def close(self) -> None: ...


class Engine:
    def __init__(self, backend: Backend, entry: ModelEntry, template_source: str | None,
                 params: dict[str, Any] | None = None) -> None:
        self.backend = backend
        self.entry = entry
        self.name = entry.name
        self.params = params or {}  # the model's sampling defaults (its params layer), under each request's
        self.template = (ChatTemplate(template_source, backend.special_token_text("bos"),
                                      backend.special_token_text("eos")) if template_source else None)

    @property
    def n_ctx(self) -> int:
        return self.backend.n_ctx

    @property
    def has_template(self) -> bool:
        return self.template is not None

    def close(self) -> None:
        self.backend.close()

    # prompts ------------------------------------------------------------------------------
    def render_chat(self, messages: Sequence[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        template = require_template(self.template, self.name)
        return template.render(validate_messages(list(messages)), add_generation_prompt=True, tools=tools)

    def tokenize_prompt(self, text: str) -> list[int]:
        # A template that writes the BOS token itself must not get a second one.
        bos = self.template.bos_token if self.template else ""
        add_special = not (bos and text.startswith(bos))
        return self.backend.tokenize(text, add_special=add_special)

    def check_context(self, n_prompt: int) -> None:
        if n_prompt >= self.n_ctx:
            raise ContextOverflowError(n_prompt, self.n_ctx)

    # generation ---------------------------------------------------------------------------
    def stream_tokens(self, tokens: list[int], params: SamplingParams) -> Iterator[Chunk]:
        params = params.under(self.params).validate()
        n_prompt = len(tokens)
        if n_prompt == 0:
            raise UsageError("the prompt is empty", "give a prompt")
        self.check_context(n_prompt)
        budget = self.n_ctx - n_prompt
        if params.max_tokens is not None:
            budget = min(budget, params.max_tokens)
        scanner = StopScanner(params.stop)
        produced = 0
        finish = "length"
        if budget > 0:
            gen = self.backend.generate(tokens, params)
            try:
                for token in gen:
                    if self.backend.is_eog(token):
                        finish = "stop"
                        break
                    produced += 1
                    text = scanner.feed(self.backend.token_bytes(token))
                    if scanner.stopped:
                        finish = "stop"
                        if text:
                            yield Chunk(text, [token], logprobs=self._logprobs(token, params))
                        break
                    if text or params.logprobs is not None:
                        yield Chunk(text, [token], logprobs=self._logprobs(token, params))
                    if produced >= budget:
                        break
            finally:
                close = getattr(gen, "close", None)
                if close:
                    close()
        tail = "" if scanner.stopped else scanner.flush()
        yield Chunk(tail, [], finish, n_prompt, produced)

    def _logprobs(self, token: int, params: SamplingParams) -> list[dict[str, Any]] | None:
        if params.logprobs is None:
            return None
        if not isinstance(token, ScoredToken):
            raise UsageError(f"the {self.backend.name} backend does not report logprobs",
                             "use the server ('freehold serve') or --backend torch")

        def entry(tok: int, lp: float) -> dict[str, Any]:
            raw = self.backend.token_bytes(tok)
            return {"token": raw.decode("utf-8", errors="replace"), "logprob": lp, "bytes": list(raw)}

        return [{**entry(token, token.logprob),
                 "top_logprobs": [entry(t, lp) for t, lp in token.top[: params.logprobs]]}]

    def generate(self, prompt: str, params: SamplingParams | None = None) -> Iterator[Chunk]:
        """Raw completion of ``prompt`` (no chat template)."""
        return self.stream_tokens(self.tokenize_prompt(prompt), params or SamplingParams.given())

    def chat(self, messages: Sequence[dict[str, Any]], params: SamplingParams | None = None,
             tools: list[dict[str, Any]] | None = None,
             placeholders: Mapping[str, str] | None = None) -> Iterator[Chunk]:
        """``placeholders``: what placeholders in ``messages`` stand for (the serving guardrails'
        replacements), given back where the answer repeats them; any other placeholder is dropped."""
        return guard_placeholders(self.generate(self.render_chat(messages, tools), params), messages, placeholders)

    def complete(self, chunks: Iterator[Chunk]) -> Completion:
        return complete(chunks)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        for text in texts:
            self.check_context(len(self.backend.tokenize(text)))
        return self.backend.embed(texts)


def guard_placeholders(chunks: Iterator[Chunk], messages: Sequence[dict[str, Any]],
                       values: Mapping[str, str] | None = None) -> Iterator[Chunk]:
    """``chunks`` with the data scrubber's placeholders ("[NAME_1]") resolved or dropped.

    A model tuned on a placeholder dataset writes them; a reader must never see one. A name
    becomes the customer's where the conversation shows it, anything else goes, and text that
    may begin one is held until it is clear; a greeting of a name the conversation does not
    show loses the name (freehold.data.placeholders)."""
    from freehold.data.placeholders import PlaceholderGuard, conversation_name, conversation_words

    guard = PlaceholderGuard(conversation_name(messages), conversation_words(messages), values)
    held: list[int] = []  # token ids of chunks whose text is held back, given with the next one
    try:
        for chunk in chunks:
            text = guard.feed(chunk.text)
            if chunk.finish_reason is not None:
                text += guard.flush()
            elif not text and chunk.logprobs is None:
                held += chunk.token_ids
                continue
            yield replace(chunk, text=text, token_ids=held + chunk.token_ids)
            held = []
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()  # a client that stops reading frees the backend now, not at garbage collection


def complete(chunks: Iterator[Chunk]) -> Completion:
    """Drain a chunk stream into one Completion with timings (any engine, local or remote)."""
    start = time.perf_counter()
    first: float | None = None
    parts = []
    last = Chunk("")
    for chunk in chunks:
        if first is None and chunk.text:
            first = time.perf_counter() - start
        parts.append(chunk.text)
        last = chunk
    total = time.perf_counter() - start
    return Completion("".join(parts), last.finish_reason or "stop", last.prompt_tokens,
                      last.completion_tokens, first if first is not None else total, total)


def model_params(store: Store, entry: ModelEntry) -> dict[str, Any]:
    """A model's params layer (Ollama's): its own sampling defaults, e.g. ``{"temperature": 0.2}``."""
    text = store.text_layer(entry.manifest, MediaType.PARAMS)
    return json.loads(text) if text else {}


@dataclass(frozen=True)
class LoadOptions:
    slots: int | None = None  # > 0: a batched backend serving that many sequences at once
    max_queue: int = ServerOptions.max_queue
    on_step: Callable[[Any], None] | None = None
    progress: ProgressFn | None = None
    native_logs: bool = False  # let llama.cpp log while loading (Settings.debug)


@dataclass(frozen=True)
class BackendKind:
    """One way to run store models, registered in ``BACKENDS`` under its name."""

    name: str
    help: str
    load: Callable[[Store, ModelEntry, int, int, LoadOptions], Backend]
    scorer: Callable[[Store, ModelEntry, Engine, int, int], Scorer]


def _gguf_path(store: Store, entry: ModelEntry) -> Path:
    gguf = entry.manifest.layer(MediaType.GGUF)
    if gguf is None:
        raise InvalidModelError(f"{entry.name} has no GGUF weights for llama.cpp",
                                f"export it ('freehold export {entry.name}'), or use the PyTorch backend "
                                "(--backend torch)")
    return store.blob_path(gguf.digest)


def _load_llama(store: Store, entry: ModelEntry, n_ctx: int, threads: int, options: LoadOptions) -> Backend:
    if options.slots:  # many sequences at once: the server's and the evals' continuous batching
        from freehold.engine.batched import BatchedLlamaBackend

        return BatchedLlamaBackend(_gguf_path(store, entry), n_ctx, threads, slots=options.slots,
                                   max_queue=options.max_queue, on_step=options.on_step,
                                   native_logs=options.native_logs)
    from freehold.engine.llama import LlamaCppBackend

    return LlamaCppBackend(_gguf_path(store, entry), n_ctx, threads, native_logs=options.native_logs)


def _llama_scorer(store: Store, entry: ModelEntry, engine: Engine, window: int, threads: int) -> Scorer:
    from freehold.engine.llama import LlamaScorer

    return LlamaScorer(_gguf_path(store, entry), window, threads)  # its own context keeps every position's logits


def _load_torch(store: Store, entry: ModelEntry, n_ctx: int, threads: int, options: LoadOptions) -> Backend:
    from freehold.engine.torch import TorchBackend, hf_directory

    return TorchBackend(hf_directory(store, entry, options.progress), n_ctx, threads)


def _torch_scorer(store: Store, entry: ModelEntry, engine: Engine, window: int, threads: int) -> Scorer:
    if isinstance(engine.backend, Scorer):
        return engine.backend  # the loaded model scores as it is: no second copy
    return cast(Scorer, _load_torch(store, entry, window, threads, LoadOptions()))


BACKENDS: dict[str, BackendKind] = {}


def register_backend(kind: BackendKind) -> None:
    BACKENDS[kind.name] = kind


register_backend(BackendKind("llama", "llama.cpp over the model's GGUF", _load_llama, _llama_scorer))
register_backend(BackendKind("torch", "PyTorch/transformers (a GGUF is dequantised once)", _load_torch,
                             _torch_scorer))


def backend_kind(name: str) -> BackendKind:
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}", f"choose one of: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def load_engine(name: str | ModelEntry, *, store: Store | None = None, backend: str = "llama",
                settings: Settings | None = None, threads: int | None = None, context: int | None = None,
                slots: int | None = None, max_queue: int = ServerOptions.max_queue,
                on_step: Callable[[Any], None] | None = None, progress: ProgressFn | None = None) -> Engine:
    """Load a store model for inference: the one loader behind ``freehold run``, the server
    (``slots``: continuous batching) and the evals."""
    kind = backend_kind(backend)
    settings = settings or load_settings()
    from freehold.home import open_store

    store = store or open_store(settings)
    entry = name if isinstance(name, ModelEntry) else store.get(name)
    trained_ctx = int(entry.info.get("context_length") or settings.context)
    n_ctx = min(context or settings.context, trained_ctx)
    impl = kind.load(store, entry, n_ctx, threads or settings.threads,
                     LoadOptions(slots, max_queue, on_step, progress, native_logs=settings.debug))
    return Engine(impl, entry, store.text_layer(entry.manifest, MediaType.TEMPLATE), model_params(store, entry))


def load_scorer(store: Store, entry: ModelEntry, engine: Engine, *, backend: str = "llama", window: int,
                threads: int) -> Scorer:
    """Logits at every position for ``entry`` (loaded as ``engine`` by ``backend``), at most ``window``
    tokens: evaluation's perplexity and choice scoring."""
    return backend_kind(backend).scorer(store, entry, engine, window, threads)
