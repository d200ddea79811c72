"""Continuous batching on llama.cpp's batch API: the serving backend.

One scheduler thread owns a llama.cpp context with ``slots`` sequences sharing a unified
KV cache. Each step it builds one ``llama_batch`` holding the next token of every decoding
sequence plus chunks of waiting prompts, calls ``llama_decode`` once, and samples every
sequence from its own sampler chain. Requests join between steps and leave the moment
they finish or their consumer stops iterating (a closed HTTP stream frees its slot at
once). A new prompt goes to the free slot whose cached tokens share the longest prefix
with it, and only the rest is decoded (prompt-prefix reuse).

``BatchedLlamaBackend`` implements the engine's ``Backend`` protocol: ``generate`` is a
blocking iterator of token ids fed by the scheduler thread, so ``Engine`` (stop strings,
limits, UTF-8) works unchanged on top of it, from as many threads as there are clients.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.engine.base import SamplingParams, score_token
from freehold.engine.llama import _prepare_env, _quiet_stderr, decode_threads
from freehold.errors import EngineError, InvalidModelError, ServerBusyError

_DONE = object()


@dataclass
class _Request:
    tokens: list[int]
    params: SamplingParams
    grammar: Any = None
    out: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    slot: int = -1
    todo: list[int] = field(default_factory=list)  # tokens still to decode (prompt rest, or the last sample)
    sampler: Any = None
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class StepStats:
    batch_sequences: int
    batch_tokens: int
    seconds: float


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class BatchedLlamaBackend:
    name = "llama.cpp-batched"

    def __init__(self, path: Path, n_ctx: int, threads: int, slots: int = 8, max_queue: int = 64,
                 n_batch: int = 512, kv_tokens: int | None = None,
                 on_step: Callable[[StepStats], None] | None = None, native_logs: bool = False) -> None:
        _prepare_env()
        import llama_cpp
        from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaModel

        from freehold.engine.cpu import model_params

        self._llama = llama_cpp
        # llama.cpp logs through llama-cpp-python's logger, which prints every level until set:
        # decoding-time debug lines (a lazy grammar's "still awaiting trigger" per token) included.
        logging.getLogger("llama-cpp-python").setLevel(logging.DEBUG if native_logs else logging.ERROR)
        self.path = path
        self.slots = slots
        self.max_queue = max_queue
        self.n_batch = n_batch
        self.on_step = on_step
        try:
            with _quiet_stderr(not native_logs):
                self.model = LlamaModel(path_model=str(path), params=model_params(),
                                        verbose=False)
        except ValueError as exc:
            raise InvalidModelError(f"llama.cpp could not load {path.name}: {exc}",
                                    "the file may be damaged ('freehold doctor')") from exc
        self.n_ctx = min(n_ctx, self.model.n_ctx_train() or n_ctx)
        # The unified cache holds every sequence's tokens. Enough for all slots at full
        # context would be slots x n_ctx (8 x 4096 x 23 KB = 755 MB for SmolLM2); cap it,
        # and hold back new requests while it is full rather than failing them.
        self.kv_tokens = kv_tokens or max(self.n_ctx, min(slots * self.n_ctx, 16384))
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.kv_tokens
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = slots
        params.kv_unified = True
        params.n_threads = decode_threads(threads)  # a lone decoding sequence (see decode_threads)
        params.n_threads_batch = threads
        params.no_perf = True
        try:
            with _quiet_stderr(not native_logs):
                self.ctx = LlamaContext(model=self.model, params=params, verbose=False)
        except ValueError as exc:
            raise EngineError(f"cannot create a llama.cpp context of {self.kv_tokens} tokens: {exc}",
                              "lower --slots or FREEHOLD_CONTEXT") from exc
        self.memory = llama_cpp.llama_get_memory(self.ctx.ctx)
        self.batch = LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=False)
        self.n_vocab = self.model.n_vocab()
        self._cached: list[list[int]] = [[] for _ in range(slots)]  # tokens in KV per slot
        self._busy: list[_Request | None] = [None] * slots
        self._waiting: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._piece_cache: dict[int, bytes] = {}
        self._embedder: Any = None
        self._embed_lock = threading.Lock()
        self.reused_prefix_tokens = 0  # prompt tokens served from the KV cache (prefix reuse)
        self._thread = threading.Thread(target=self._loop, name=f"scheduler-{path.name[:20]}", daemon=True)
        self._thread.start()

    # Backend protocol ---------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return list(self.model.tokenize(text.encode("utf-8"), add_special, True))

    def _piece(self, token: int, special: bool) -> bytes:
        import ctypes

        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._llama.llama_token_to_piece(self.model.vocab, token, buf, size, 0, special)
            if n >= 0:
                return bytes(buf.raw[:n])
            size = -n  # buffer too small: llama.cpp says how much it needs

    def token_bytes(self, token: int) -> bytes:
        piece = self._piece_cache.get(token)
        if piece is None:
            piece = self._piece_cache[token] = self._piece(token, False)
        return piece

    def is_eog(self, token: int) -> bool:
        return bool(self._llama.llama_vocab_is_eog(self.model.vocab, token))

    def special_token_text(self, which: str) -> str | None:
        token = self.model.token_bos() if which == "bos" else self.model.token_eos()
        if token is None or token < 0:
            return None
        return self._piece(token, True).decode("utf-8", errors="replace")

    def generate(self, tokens: Sequence[int], params: SamplingParams) -> Iterator[int]:
        from freehold.engine.llama import compile_grammar

        req = self.submit(tokens, params, compile_grammar(params.grammar))
        try:
            while True:
                item = req.out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.cancel(req)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        from freehold.engine.llama import load_llama

        with self._embed_lock:
            if self._embedder is None:
                self._embedder = load_llama(self.path, min(self.n_ctx, 2048), 1, embedding=True, pooling_type=1)
            return [list(map(float, v)) for v in self._embedder.embed(list(texts), normalize=True)]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        for req in [*self._busy, *self._waiting]:
            if req is not None:
                req.out.put(EngineError("the model was unloaded", "retry the request"))
        with contextlib.suppress(Exception):
            self.batch.close()
            self.ctx.close()
            self.model.close()
        if self._embedder is not None:
            with contextlib.suppress(Exception):
                self._embedder.close()

    # scheduling ---------------------------------------------------------------------------
    @property
    def active(self) -> int:
        return sum(r is not None for r in self._busy)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def submit(self, tokens: Sequence[int], params: SamplingParams, grammar: Any = None) -> _Request:
        req = _Request(list(tokens), params, grammar)
        with self._cond:
            if self._closed:
                raise EngineError("the model is being unloaded", "retry the request")
            free = sum(r is None for r in self._busy)
            if len(self._waiting) >= self.max_queue + free:
                raise ServerBusyError(len(self._waiting))
            self._waiting.append(req)
            self._cond.notify()
        return req

    def cancel(self, req: _Request) -> None:
        if not req.cancelled:
            req.cancelled = True
            with self._cond:
                self._cond.notify()

    def _make_sampler(self, params: SamplingParams, grammar: Any) -> Any:
        from llama_cpp._internals import LlamaSampler

        s = LlamaSampler()
        if grammar is not None and params.grammar_triggers:
            s.add_grammar_lazy_patterns(self.model, grammar, list(params.grammar_triggers), [])
        elif grammar is not None:
            s.add_grammar(self.model, grammar)
        if params.repeat_penalty != 1.0:
            s.add_penalties(self.n_vocab, 64, params.repeat_penalty, 0.0, 0.0)
        if params.greedy:
            s.add_greedy()
            return s
        if params.top_k > 0:
            s.add_top_k(params.top_k)
        s.add_top_p(params.top_p, 1)
        s.add_min_p(params.min_p, 1)
        s.add_temp(params.temperature)
        s.add_dist(params.seed if params.seed is not None else random.randrange(2**31))
        return s

    def _admit(self) -> None:
        """Move waiting requests into free slots (called with the lock held)."""
        while self._waiting:
            free = [i for i, r in enumerate(self._busy) if r is None]
            if not free:
                return
            req = self._waiting[0]
            if req.cancelled:
                self._waiting.popleft()
                continue
            in_use = sum(len(self._cached[i]) for i, r in enumerate(self._busy) if r is not None)
            if in_use + len(req.tokens) > self.kv_tokens and self.active:
                return  # wait for the cache to drain

            shared = {i: _common_prefix(self._cached[i], req.tokens) for i in free}
            slot = max(free, key=lambda i: shared[i])
            keep = min(shared[slot], len(req.tokens) - 1)  # re-decode at least one token for logits
            self._llama.llama_memory_seq_rm(self.memory, slot, keep, -1)
            del self._cached[slot][keep:]
            self.reused_prefix_tokens += keep
            self._waiting.popleft()
            req.slot = slot
            req.todo = req.tokens[keep:]
            try:
                req.sampler = self._make_sampler(req.params, req.grammar)
            except Exception as exc:
                req.out.put(EngineError(f"cannot set up sampling: {exc}", "check the grammar or schema"))
                continue
            self._busy[slot] = req

    def _release(self, req: _Request) -> None:
        self._busy[req.slot] = None
        if req.sampler is not None:
            req.sampler.close()
            req.sampler = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._waiting and self.active == 0:
                    self._cond.wait()
                if self._closed:
                    return
                for req in self._busy:
                    if req is not None and req.cancelled:
                        req.out.put(_DONE)
                        self._release(req)
                self._admit()
                running = [r for r in self._busy if r is not None]
            if not running:
                continue
            try:
                self._step(running)
            except Exception as exc:
                for req in running:
                    req.out.put(EngineError(f"decoding failed: {exc}", "retry the request"))
                    self._llama.llama_memory_seq_rm(self.memory, req.slot, -1, -1)
                    self._cached[req.slot] = []
                    with self._cond:
                        self._release(req)

    def _step(self, running: list[_Request]) -> None:
        start = time.perf_counter()
        b = self.batch.batch
        n = 0
        sample_at: list[tuple[_Request, int]] = []
        # Decoding sequences first (one token each, so they never wait on long prompts),
        # then prompt chunks in the remaining room.
        order = sorted(running, key=lambda r: len(r.todo) > 1)
        taken: list[tuple[_Request, list[int]]] = []
        for req in order:
            room = self.n_batch - n
            if room <= 0:
                break
            take = req.todo[:room]
            pos0 = len(self._cached[req.slot])
            for j, tok in enumerate(take):
                b.token[n] = tok
                b.pos[n] = pos0 + j
                b.n_seq_id[n] = 1
                b.seq_id[n][0] = req.slot
                last = j == len(take) - 1 and len(take) == len(req.todo)
                b.logits[n] = last
                if last:
                    sample_at.append((req, n))
                n += 1
            taken.append((req, take))
        b.n_tokens = n
        rc = self._llama.llama_decode(self.ctx.ctx, b)
        if rc != 0:
            # 1 = no room in the KV cache: llama.cpp left it as it was. Fail the newest
            # request to make room; the others retry their tokens next step.
            victim = max(running, key=lambda r: r.enqueued)
            victim.out.put(EngineError("the server's KV cache is full", "retry, or start the server with a "
                                       "smaller context or fewer slots"))
            self._llama.llama_memory_seq_rm(self.memory, victim.slot, -1, -1)
            self._cached[victim.slot] = []
            with self._cond:
                self._release(victim)
            return
        for req, take in taken:
            self._cached[req.slot].extend(take)
            req.todo = req.todo[len(take):]
        for req, idx in sample_at:
            tok = int(req.sampler.sample(self.ctx, idx))
            if req.params.logprobs is not None:
                import numpy as np

                logits = np.ctypeslib.as_array(self._llama.llama_get_logits_ith(self.ctx.ctx, idx), (self.n_vocab,))
                req.out.put(score_token(logits, tok, req.params.logprobs))
            else:
                req.out.put(tok)
            if self.is_eog(tok) or len(self._cached[req.slot]) + 1 >= self.n_ctx:
                req.out.put(_DONE)
                with self._cond:
                    self._release(req)
            else:
                req.todo = [tok]
        if self.on_step is not None:
            self.on_step(StepStats(len(running), n, time.perf_counter() - start))
