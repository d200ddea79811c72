"""A live server over a store with the tiny model, and Debian's chromium driven by Playwright.

The browser is launched by path (``playwright install`` cannot download one here); the test
setup installs it (scripts/setup.sh test). Every request a page makes to anywhere but the
server is blocked and recorded, so a page that reaches outside fails its test.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from freehold.config import ServerOptions
from freehold.store import Store
from tests.server.conftest import Live, _free_port, server_factory, start_server  # noqa: F401 - fixtures

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh test installs it: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@dataclass
class Browsing:
    page: Any
    url: str
    outside: list[str] = field(default_factory=list)  # requests a page tried to send elsewhere
    errors: list[str] = field(default_factory=list)  # uncaught script errors

    def go(self, path: str) -> Any:
        self.page.goto(self.url + path)
        return self.page

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        out = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(out), full_page=True)
        return out


@pytest.fixture
def site(store: Store, tiny_gguf: Path, tiny_base_gguf: Path) -> Iterator[Live]:
    from freehold.home import import_model

    import_model(store, tiny_gguf, "tiny")
    import_model(store, tiny_base_gguf, "tiny-base")
    yield from start_server(ServerOptions(port=_free_port(), slots=2, max_queue=8), store)


def open_page(browser: Any, url: str) -> Iterator[Browsing]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    b = Browsing(page, url)
    host = url.split("//", 1)[1]

    def guard(route: Any) -> None:
        if route.request.url.split("//", 1)[-1].startswith(host):
            route.continue_()
        else:
            b.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page.on("pageerror", lambda e: b.errors.append(str(e)))
    page.set_default_timeout(60_000)
    try:
        yield b
    finally:
        context.close()


@pytest.fixture
def web(browser: Any, site: Live) -> Iterator[Browsing]:
    yield from open_page(browser, site.url)
