"""A live server on 127.0.0.1 (uvicorn in a thread) serving the tiny model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from freehold.config import load_settings
from freehold.server import ServerOptions, create_app
from freehold.store import Store


@dataclass
class Live:
    url: str
    app: object
    store: Store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])




def serve_app(app: object, port: int) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread until the generator is closed; yields its URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            httpx.get(url + "/health", timeout=1)
            break
        except httpx.HTTPError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def start_server(options: ServerOptions, store: Store) -> Iterator[Live]:
    app = create_app(options, load_settings(), store)
    for url in serve_app(app, options.port):
        yield Live(url, app, store)


@pytest.fixture
def live(store: Store, tiny_gguf: Path, tiny_base_gguf: Path) -> Iterator[Live]:
    store.import_gguf(tiny_gguf, "tiny")
    store.import_gguf(tiny_base_gguf, "tiny-base")
    yield from start_server(ServerOptions(port=_free_port(), slots=4, max_queue=8), store)


@pytest.fixture
def server_factory(store: Store, tiny_gguf: Path):  # type: ignore[no-untyped-def]
    """Start a server with custom options: ``with server_factory(api_keys=[...]) as live``."""
    import contextlib

    store.import_gguf(tiny_gguf, "tiny")

    @contextlib.contextmanager
    def make(**kwargs: object) -> Iterator[Live]:
        yield from start_server(ServerOptions(port=_free_port(), **kwargs), store)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="module")
def live_shared(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path, tiny_base_gguf: Path) -> Iterator[Live]:
    """One server for a whole module of read-only tests (e.g. the bad-request table)."""
    import dataclasses

    home = tmp_path_factory.mktemp("shared-home")
    settings = dataclasses.replace(load_settings(), home=home)
    store = Store.open(settings)
    store.import_gguf(tiny_gguf, "tiny")
    store.import_gguf(tiny_base_gguf, "tiny-base")
    options = ServerOptions(port=_free_port(), slots=4, max_queue=8)
    app = create_app(options, settings, store)
    for url in serve_app(app, options.port):
        yield Live(url, app, store)
