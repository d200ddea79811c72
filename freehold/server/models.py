"""Loaded models: load on demand, keep alive while used, unload when idle or over the limit."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from freehold.config import Settings
from freehold.engine import Engine, load_engine
from freehold.engine.batched import BatchedLlamaBackend, StepStats
from freehold.errors import InvalidModelError
from freehold.guardrails import Guardrails
from freehold.store import MediaType, ModelEntry, Store


@dataclass
class Loaded:
    engine: Engine
    backend: BatchedLlamaBackend
    last_used: float
    keep_alive: float
    in_use: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def expires_at(self) -> float:
        return self.last_used + self.keep_alive


class ModelManager:
    def __init__(self, store: Store, settings: Settings, *, slots: int = 8, max_queue: int = 64,
                 keep_alive: float = 300.0, max_loaded: int = 2, knowledge: str | None = None,
                 on_step: Callable[[StepStats], None] | None = None, declared_use: str | None = None,
                 guardrails: Guardrails | None = None, tool_servers: Any = None) -> None:
        self.store = store
        # The MCP servers a chat may run tools on (freehold.agents.mcp_client.ToolServers; None: none)
        self.tool_servers = tool_servers
        # What the server is used for (``serve --declare-use``): a model whose licence forbids it
        # is not served, nor one whose restrictive licence nobody here accepted (freehold.licences).
        self.declared_use = declared_use
        self.guardrails = guardrails or Guardrails(store=store)  # the policy every request goes through
        self.knowledge = knowledge  # the index chats are grounded in unless a request says otherwise
        self.settings = settings
        self.slots = slots
        self.max_queue = max_queue
        self.keep_alive = keep_alive
        self.max_loaded = max_loaded
        self.on_step = on_step
        self._loaded: dict[str, Loaded] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="model-reaper", daemon=True)
        self._reaper.start()

    def resolve(self, name: str) -> ModelEntry:
        return self.store.get(name)

    @contextlib.contextmanager
    def use(self, name: str, keep_alive: float | None = None) -> Iterator[Engine]:
        """Borrow a loaded engine for one request (loading it first if needed)."""
        entry = self.resolve(name)
        with self._lock:
            loaded = self._loaded.get(entry.name)
            if loaded is None:
                loaded = self._load(entry)
            loaded.in_use += 1
            if keep_alive is not None:
                loaded.keep_alive = keep_alive
        try:
            yield loaded.engine
        finally:
            with self._lock:
                loaded.in_use -= 1
                loaded.last_used = time.time()

    def _load(self, entry: ModelEntry) -> Loaded:
        from freehold.models import check_servable

        if entry.manifest.layer(MediaType.GGUF) is None:  # before anything is unloaded to make room
            raise InvalidModelError(f"{entry.name} has no GGUF weights to serve",
                                    f"export it first: 'freehold export {entry.name}'")
        check_servable(self.store, entry, self.declared_use)  # every API's requests and embeddings
        # Make room: unload idle models, least recently used first.
        while len(self._loaded) >= self.max_loaded:
            idle = [m for m in self._loaded.items() if m[1].in_use == 0]
            if not idle:
                break  # all busy: go over the limit rather than fail a request
            victim = min(idle, key=lambda kv: kv[1].last_used)[0]
            self._unload(victim)
        engine = load_engine(entry, store=self.store, settings=self.settings, slots=self.slots,
                             max_queue=self.max_queue, on_step=self.on_step)
        loaded = Loaded(engine, cast(BatchedLlamaBackend, engine.backend), time.time(), self.keep_alive)
        self._loaded[entry.name] = loaded
        return loaded

    def _unload(self, name: str) -> None:
        loaded = self._loaded.pop(name, None)
        if loaded is not None:
            loaded.engine.close()

    def unload(self, name: str) -> bool:
        entry = self.resolve(name)
        with self._lock:
            present = entry.name in self._loaded
            self._unload(entry.name)
            return present

    def loaded(self) -> list[tuple[str, Loaded]]:
        with self._lock:
            return sorted(self._loaded.items())

    def queue_depth(self) -> int:
        with self._lock:
            return sum(m.backend.queued for m in self._loaded.values())

    def active_sequences(self) -> int:
        with self._lock:
            return sum(m.backend.active for m in self._loaded.values())

    def _reap(self) -> None:
        while not self._stop.wait(1.0):
            now = time.time()
            with self._lock:
                for name, m in list(self._loaded.items()):
                    if m.in_use == 0 and now >= m.expires_at:
                        self._unload(name)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            for name in list(self._loaded):
                self._unload(name)
