"""The pages in a real browser: catalog, model page, chat, jobs, settings, and the whole
"teach it" journey (drop a mailbox, preview, learn with a live loss chart, cancel, resume,
deploy, chat), with every request outside the server blocked and recorded."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Live

from .conftest import Browsing

MAILBOX = Path(__file__).resolve().parents[2] / "examples" / "acme-support.mbox"


def _clean(web: Browsing) -> None:
    assert web.outside == [], f"a page tried to reach outside the server: {web.outside}"
    assert web.errors == [], f"script errors: {web.errors}"


def test_catalog_model_page_chat_jobs_and_settings(web: Browsing, site: Live) -> None:
    page = web.go("/")
    cards = page.locator(".card.model")
    assert cards.count() == 2
    tiny = page.locator(".card.model", has_text="tiny:latest").first
    assert "apache-2.0" in tiny.locator(".badge.licence").inner_text()
    assert "permissive" in (tiny.locator(".badge.licence").get_attribute("class") or "")
    fit = tiny.locator(".badge.fit").inner_text()
    assert re.search(r"(fits|tight|too big) · ~\d+ tokens/s", fit), fit
    base = page.locator(".card.model", has_text="tiny-base").first
    assert "licence unknown" in base.inner_text() and "base model (no chat)" in base.inner_text()
    page.fill("#search", "tiny-base")
    assert page.locator(".card.model:visible").count() == 1
    web.shot("catalog")

    page = web.go("/models/tiny:latest")
    assert page.locator(".lineage svg").count() == 1 and "import" in page.locator(".lineage").inner_text()
    page.click("#verify")
    page.wait_for_selector("#action-status.good", timeout=90_000)
    assert "verified" in page.inner_text("#action-status")
    page.click("#deploy")
    page.wait_for_selector("#snippets pre")
    assert 'model="default"' in page.inner_text("#snippets")
    web.shot("model")

    page = web.go("/chat")
    assert page.locator("#chat-model").input_value() == "tiny:latest"  # the deployed model opens the chat
    page.fill("#chat-input", "the cat")
    with page.expect_response("**/v1/chat/completions") as streamed:
        page.click("#send")
    assert streamed.value.status == 200 and "data: " in streamed.value.text()
    page.wait_for_selector('.column[data-role="main"] .msg.assistant[data-done="1"]')
    answer = page.locator('.column[data-role="main"] .msg.assistant').inner_text()
    assert not answer.startswith("Error"), answer  # the tiny model's words are random, possibly blank
    assert page.locator(".msg.user").inner_text() == "the cat"
    # The support workflow: drop a customer's mail, get a draft to edit and copy.
    page.set_input_files("#reply-file", str(MAILBOX.parent / "customer-question.eml"))
    page.wait_for_selector("#reply-draft:visible")
    head = page.inner_text("#reply-draft .reply-head")
    assert head == "To: oliver.bennett@example.net · Subject: Re: Broken zip on my backpack", head
    web.shot("chat")

    page = web.go("/models/ghost")  # a link to a model that was removed: a page that says so
    assert "model 'ghost' not found" in page.inner_text("h1") and "freehold models" in page.inner_text("main")

    page = web.go("/jobs")
    page.wait_for_selector("#jobs-table tbody tr")
    assert "verify" in page.inner_text("#jobs-table") and "done" in page.inner_text("#jobs-table")
    assert "verified tiny:latest: 2 records" in page.inner_text("#jobs-table")  # said in words, not as JSON
    web.shot("jobs")
    page = web.go("/settings")
    assert "Signing identity" in page.inner_text("main") and "ed25519:" in page.inner_text("main")
    rails = page.inner_text("#guardrails")
    assert "the default policy" in rails and "given back in the answer" in rails and "CARD" in rails
    agents = page.inner_text("#agents")
    assert "assistant (default) on the deployed model" in agents and "/a2a/NAME" in agents
    assert page.get_attribute("#agents a", "href") == "/a2a/assistant/.well-known/agent-card.json"
    assert "/mcp" in page.inner_text("#mcp")
    web.shot("settings")
    _clean(web)


def test_teach_journey_drop_preview_learn_cancel_resume_deploy_chat(web: Browsing, site: Live,
                                                                    tmp_path: Path) -> None:
    page = web.go("/teach")
    mailbox = tmp_path / "support.mbox"
    shutil.copy(MAILBOX, mailbox)
    page.fill("#dataset-name", "shop")
    page.fill("#ours", "acme-outdoor.example")
    page.set_input_files("#file", str(mailbox))  # what dropping the file on the page does
    page.wait_for_selector("#preview .conversation", timeout=120_000)
    preview = page.inner_text("#preview")
    assert "conversations to learn from" in preview and "Customer:" in preview and "You:" in preview
    assert "names, addresses and numbers replaced" in preview
    marks = page.locator("#preview .conversation mark.pii")
    assert marks.count() >= 3  # the stand-ins are highlighted where the import replaced names
    assert marks.first.get_attribute("title", timeout=5000).endswith("replaced")
    page.set_input_files("#docs-file", str(MAILBOX.parent / "acme-policies.md"))  # the shop's policy page
    page.wait_for_selector("#docs-list li:has-text('markdown')")
    assert page.locator("#use-knowledge").is_checked()  # answers from the mail and documents by default
    web.shot("teach-preview")

    page.select_option("#base", "tiny:latest")
    page.fill("#output", "shop-assistant")
    page.click("details.advanced summary")
    page.fill("#epochs", "40")
    page.fill("#lr", "0.003")
    page.click("#tune")
    # The loss chart grows as the tune's events arrive (polled from here: the pages' CSP allows no eval).
    deadline = time.monotonic() + 120
    while len((page.get_attribute("#loss-chart polyline", "points") or "").split()) < 3:
        assert time.monotonic() < deadline, page.inner_text("#tune-progress")
        page.wait_for_timeout(100)
    web.shot("teach-learning")
    page.click("#tune-cancel")
    page.wait_for_selector("#tune-resume:visible", timeout=120_000)
    assert "cancelled" in page.inner_text("#tune-progress")
    points_before = len(page.get_attribute("#loss-chart polyline", "points").split())
    page.click("#tune-resume")
    page.wait_for_selector("#tune-progress .status.good", timeout=300_000)
    assert "learned: shop-assistant" in page.inner_text("#tune-progress")
    assert len(page.get_attribute("#loss-chart polyline", "points").split()) > points_before
    page.click("#evaluate")  # the quality suite on the held-out mail, against the base
    page.wait_for_selector("#eval-result table", timeout=300_000)
    result = page.inner_text("#eval-result")
    assert "quality" in result and "tiny:latest" in result and "lower is better" in result, result
    assert re.search(r"Better than tiny:latest on \d+ of \d+ scores", result), result
    page.click("#deploy")
    page.wait_for_selector("#snippets pre")
    web.shot("teach-deployed")
    _clean(web)

    # Its page draws where it came from, each dataset linking to its own page.
    page = web.go("/models/shop-assistant:latest")
    links = [a.get_attribute("href") for a in page.locator(".lineage a").all()]
    assert "/models/tiny:latest" in links and "/datasets/shop:latest" in links, links
    assert not any("-kb" in link and link.startswith("/models/") for link in links)  # an index is no model
    page = web.go("/datasets/shop:latest")
    assert page.locator(".conversation mark.pii").count() >= 3 and "Left out" in page.inner_text("main")
    web.shot("dataset")
    run = next(link for link in links if link.startswith("/runs/"))
    page = web.go(run)  # the run: its loss per step from the ledger's step records, what it trained on
    assert len((page.get_attribute(".chart polyline", "points") or "").split()) >= 10
    assert "shop.shop-assistant-kb" in page.inner_text("main") and "tiny:latest" in page.inner_text("main")
    web.shot("run")
    page = web.go(next(link for link in links if link.startswith("/knowledge/")))
    assert "acme-policies.md" in page.inner_text("main") and "document" in page.inner_text("main")
    web.shot("knowledge")
    _clean(web)

    # The deployed model answers through the OpenAI API by its new name, "default".
    r = httpx.post(site.url + "/v1/chat/completions", timeout=60, json={
        "model": "default", "max_tokens": 8, "messages": [{"role": "user", "content": "Is my zip covered?"}]})
    assert r.status_code == 200 and r.json()["model"].startswith("shop-assistant")
    page = web.go("/chat")
    assert page.locator("#chat-model").input_value() == "shop-assistant:latest"
    assert page.locator("#compare").is_checked()  # a tuned model opens beside its base
    page.fill("#chat-input", "Is my zip covered?")
    page.click("#send")
    page.wait_for_selector('.column[data-role="base"] .msg.assistant[data-done="1"]')
    page.wait_for_selector('.column[data-role="main"] .msg.assistant[data-done="1"]')
    sources = page.inner_text('.column[data-role="main"] .msg.assistant .sources')
    assert sources.startswith("Sources: [1]") and "Warranty" in sources, sources  # it answers from its index
    web.shot("chat-side-by-side")
    _clean(web)


def test_a_mail_that_is_not_one_is_a_clear_400(site: Live) -> None:
    r = httpx.post(site.url + "/freehold/reply", params={"model": "tiny"}, content=b"\x00\x01 not a mail")
    assert r.status_code == 400 and "not a readable e-mail" in r.json()["error"]["message"], r.text
    r = httpx.post(site.url + "/freehold/reply", params={"model": "ghost"},
                   content=(MAILBOX.parent / "customer-question.eml").read_bytes())
    assert r.status_code == 404


@pytest.mark.parametrize("name,body,why", [
    ("notes.txt", b"hello", "not a file Freehold can learn from"),
    ("broken.mbox", b"\x00\x01garbage that is no mail", "cannot tell what kind of file"),
    ("empty.csv", b"", "is empty"),
    ("evil.zip", None, "outside itself"),
])
def test_a_bad_upload_is_a_clear_400_and_leaves_nothing(site: Live, tmp_path: Path, name: str,
                                                        body: bytes | None, why: str) -> None:
    if body is None:
        import zipfile

        with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
            z.writestr("../../escape.eml", "From: a@b\n\nhi")
        body = (tmp_path / "evil.zip").read_bytes()
    r = httpx.post(f"{site.url}/freehold/uploads", params={"filename": name}, content=body)
    assert r.status_code == 400 and why in r.json()["error"]["message"], r.text
    uploads = site.store.home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    assert not (site.store.home.parent / "escape.eml").exists()


def test_a_flagged_model_is_marked_and_deploys_only_when_a_person_insists(web: Browsing, site: Live) -> None:
    from freehold.audits import attach

    attach(site.store, "tiny-base", "flag", "high", "writes customers' card numbers back to them")
    page = web.go("/")
    card = page.locator(".card.model", has_text="tiny-base").first
    assert card.locator(".badge.flagged").count() == 1
    page = web.go("/models/tiny-base:latest")
    assert page.locator(".head .badge.flagged").count() == 1
    assert "card numbers" in page.inner_text("table.audits") and "this machine" in page.inner_text("table.audits")
    page.click("#deploy")
    page.wait_for_selector("#deploy-anyway")
    assert "open high-severity flag" in page.inner_text("#action-status")
    assert page.locator("#snippets pre").count() == 0  # not deployed yet
    page.click("#deploy-anyway")
    page.wait_for_selector("#snippets pre")
    web.shot("model-flagged")
    _clean(web)


def test_a_restricted_model_is_deployed_once_its_terms_are_accepted_on_its_page(web: Browsing, site: Live,
                                                                                tmp_path: Path) -> None:
    from freehold.home import import_model
    from freehold.ledger import Ledger
    from freehold.testing import write_tiny_gguf

    import_model(site.store, write_tiny_gguf(tmp_path / "g.gguf", seed=4, license="gemma"), "local-gemma")
    page = web.go("/models/local-gemma:latest")
    assert "Gemma Terms of Use" in page.inner_text("#licence") and "§3.2" in page.inner_text("#licence")
    page.click("#deploy")
    page.wait_for_selector("#action-status.bad")
    assert "served only once its licence is accepted" in page.inner_text("#action-status")
    assert page.locator('#action-status a[href$="#licence"]').count() == 1
    page.click("#accept-licence")
    page.wait_for_selector("#licence-accepted")
    web.shot("model-licence")
    accepted = [r for r in Ledger.open(site.store.home).records() if r.type == "licence"][-1].payload
    assert accepted["model"] == "local-gemma:latest" and accepted["via"] == "web" and accepted["by"]
    page.click("#deploy")
    page.wait_for_selector("#snippets pre")
    _clean(web)


def test_browse_another_registry_filter_accept_a_licence_and_pull(web: Browsing, site: Live, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from freehold.audits import attach
    from freehold.config import ServerOptions, load_settings
    from freehold.home import import_model
    from freehold.registry import push
    from freehold.store import Store
    from freehold.testing import write_tiny_gguf
    from tests.server.conftest import _free_port, start_server

    reg_store = Store.open(dataclasses.replace(load_settings(), home=tmp_path / "registry"))
    import_model(site.store, write_tiny_gguf(tmp_path / "g.gguf", seed=3, license="gemma"), "tiny-gemma")
    attach(site.store, "tiny-base", "flag", "high", "answers in a made-up language")
    for live in start_server(ServerOptions(port=_free_port(), registry=True, push_keys=["k"], jobs=False), reg_store):
        host = live.url.removeprefix("http://")
        for name, repo in (("tiny", "acme/tiny:v1"), ("tiny-base", "acme/base:v1"), ("tiny-gemma", "acme/gemma:v1")):
            push(site.store, name, f"{host}/{repo}", key="k")
        page = web.go(f"/registry?at={host}")
        cards = page.locator(".card.remote")
        assert cards.count() == 3
        assert page.locator(".card.remote .lineage svg").count() == 3  # each carries its signed lineage
        assert "import" in (page.locator(".card.remote .lineage").first.text_content() or "")
        flagged = page.locator(".card.remote", has_text="acme/base:v1")
        assert flagged.locator(".badge.flagged").count() == 1
        page.select_option("#filter-audit", "flagged")
        assert page.locator(".card.remote:visible").count() == 1
        page.select_option("#filter-audit", "")
        page.select_option("#filter-licence", "restricted")
        assert page.locator(".card.remote:visible").count() == 1
        gemma = page.locator(".card.remote", has_text="acme/gemma:v1")
        assert gemma.locator("button.pull").is_disabled()  # its terms come first
        assert "restrict use" in gemma.locator(".terms summary").inner_text()
        web.shot("registry")
        gemma.locator("input.accept").check()
        gemma.locator("button.pull").click()
        page.wait_for_selector('.card.remote .status.good a[href*="acme%2Fgemma"]', timeout=60_000)
        assert site.store.has("acme/gemma:v1")
        page.click('.card.remote .status.good a[href*="acme%2Fgemma"]')  # a name with a slash has its page
        page.wait_for_selector("h1")
        assert page.inner_text("h1") == "acme/gemma:v1" and "gemma · restricts use" in page.inner_text(".head")
        page.click("#deploy")
        page.wait_for_selector("#snippets pre")
        # And back: push a model from its page to the registry (a push job here).
        page = web.go("/models/tiny:latest")
        page.click("details.push summary")
        page.fill("#push-target", f"{host}/acme/from-the-page:v1")
        monkeypatch.setenv("FREEHOLD_REGISTRY_KEY", "k")  # the job's process reads it from its environment
        page.click("#push-form button")
        page.wait_for_selector("#action-status.good", timeout=60_000)
        assert "pushed to" in page.inner_text("#action-status") and reg_store.has("acme/from-the-page:v1")
        page = web.go("/registry?at=127.0.0.1:1")  # nothing listens there: said on the page
        assert "cannot reach the registry" in page.inner_text(".status.bad")
    reg_store.close()
    _clean(web)
