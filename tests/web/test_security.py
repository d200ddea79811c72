"""Who may use the pages: a login on any server with keys (cookie, never the key), CSRF
checks on every change, uploads under a limit; and the pinned, local-only assets."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import Live
from tests.web.conftest import open_page


@pytest.fixture
def keyed(server_factory: Any) -> Any:
    with server_factory(api_keys=["s3cret"], max_upload_bytes=2000) as live:
        yield live


def test_a_server_with_keys_asks_people_to_log_in_and_scripts_for_the_key(keyed: Live, browser: Any) -> None:
    page_req = httpx.get(keyed.url + "/teach", headers={"Accept": "text/html"})
    assert page_req.status_code == 303 and page_req.headers["location"] == "/login?next=/teach"
    api = httpx.get(keyed.url + "/freehold/models")
    assert api.status_code == 401 and api.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(keyed.url + "/freehold/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    wrong = httpx.post(keyed.url + "/login", content="key=nope&next=/", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert wrong.status_code == 401 and "not one of this server's keys" in wrong.text

    for b in open_page(browser, keyed.url):
        page = b.go("/teach")
        assert page.url.endswith("/login?next=/teach")
        page.fill("input[name=key]", "s3cret")
        page.click("button[type=submit]")
        page.wait_for_url("**/teach")
        cookie = next(c for c in page.context.cookies() if c["name"] == "freehold_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != "s3cret"
        assert page.locator("#drop").count() == 1
        # The page's own change carries its CSRF token: deploying works from the page.
        page.goto(keyed.url + "/models/tiny:latest")
        page.click("#deploy")
        page.wait_for_selector("#snippets pre")
        b.shot("login-then-model")
        assert b.outside == [] and b.errors == []

        # The same cookie without the page's token (a form on another site) changes nothing.
        jar = {"freehold_session": cookie["value"]}
        forged = httpx.post(keyed.url + "/freehold/models/tiny:latest/deploy", cookies=jar)
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf"
        cross = httpx.post(keyed.url + "/freehold/models/tiny:latest/deploy", cookies=jar,
                           headers={"Origin": "https://evil.example", "X-Freehold-CSRF": "x"})
        assert cross.status_code == 403 and "another site" in cross.json()["error"]["message"]


def test_changes_from_another_site_are_refused_even_on_an_open_loopback_server(server_factory: Any) -> None:
    with server_factory() as live:
        cross = httpx.post(live.url + "/freehold/models/tiny:latest/deploy",
                           headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        assert not live.store.has("default")  # nothing changed
        ok = httpx.post(live.url + "/freehold/models/tiny:latest/deploy")  # a script on this machine
        assert ok.status_code == 200 and live.store.get("default").name == "tiny:latest"


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(keyed: Live) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    r = httpx.post(keyed.url + "/freehold/uploads", params={"filename": "big.mbox"}, headers=auth,
                   content=b"From a@b Mon Jan  1 00:00:00 2024\n" + b"x" * 5000)
    assert r.status_code == 400 and "limit" in r.json()["error"]["message"]
    uploads = keyed.store.home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    small = httpx.post(keyed.url + "/freehold/uploads", params={"filename": "../../etc/passwd.mbox"},
                       headers=auth, content=b"From a@b Mon Jan  1 00:00:00 2024\nFrom: a@b\n\nhi\n")
    assert small.status_code == 201
    path = Path(small.json()["path"])
    assert path.parent.parent == uploads and path.name == "passwd.mbox"  # the name never became a path
    hidden = httpx.post(keyed.url + "/freehold/uploads", params={"filename": "..\\.bashrc .mbox"},
                        headers=auth, content=b"From a@b Mon Jan  1 00:00:00 2024\nFrom: a@b\n\nhi\n")
    assert Path(hidden.json()["path"]).name == "bashrc_.mbox"


def test_assets_are_pinned_local_and_every_page_links_only_them() -> None:
    from freehold import web

    static = resources.files("freehold.web").joinpath("static")
    pins = json.loads(static.joinpath("ASSETS.json").read_text())
    for name, digest in pins.items():
        assert hashlib.sha256(static.joinpath(name).read_bytes()).hexdigest() == digest, (
            f"{name} changed: run scripts/pin_assets.py and review the change")
    assert set(pins) == {"app.css", "app.js"} == set(web.ASSETS)
    templates = resources.files("freehold.web").joinpath("templates")
    for t in templates.iterdir():
        text = t.read_text()
        assert "http://" not in text and "https://" not in text, t.name  # no CDN, font or script from outside
    assert "http" not in static.joinpath("app.css").read_text()
    assert "default-src 'self'" in web.CSP
