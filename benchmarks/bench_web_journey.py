"""The whole journey in the browser against the same journey from Python, in one run: a fresh
store -> drop the sample mailbox and its policy page -> learn to answer from them (SmolLM2,
the page's defaults) -> compare with the base -> deploy -> a chat answer. Prints the wall
time of each side, their ratio, and the number of user actions the browser needed (goal,
issue 14: <= 10 actions, <= the CLI + 10%).

    .venv/bin/python benchmarks/bench_web_journey.py          # ~10 min on 2 cores

Needs Debian's chromium and Playwright (scripts/setup.sh test). The CLI side calls the same
library functions the commands do (import_dataset, build_knowledge, tune, run_eval, the
engine and knowledge.answer), with the page's settings: --ours acme-outdoor.example, the mail
and examples/acme-policies.md indexed, 3 epochs, lr 5e-4 with --knowledge, the quality suite
on the dataset against the base. Each side gets its own fresh FREEHOLD_HOME.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MAILBOX = REPO / "examples" / "acme-support.mbox"
POLICIES = REPO / "examples" / "acme-policies.md"
QUESTION = "The zip on my Summit 45L backpack broke after two trips. Is that covered?"


def cli_journey(home: Path) -> float:
    from freehold.config import load_settings
    from freehold.data.dataset import import_dataset
    from freehold.engine import SamplingParams, load_engine
    from freehold.evals.run import run_eval
    from freehold.home import open_store
    from freehold.knowledge import answer, build_knowledge, load_index
    from freehold.train import TuneConfig, tune

    settings = load_settings({"FREEHOLD_HOME": str(home)})
    started = time.perf_counter()
    store = open_store(settings)
    import_dataset([MAILBOX], "shop", ours=["acme-outdoor.example"], store=store)
    build_knowledge("shop-kb", datasets=["shop"], documents=[POLICIES], store=store)
    tune(TuneConfig("smollm2", "shop", "shop-assistant", epochs=3, lr=5e-4, knowledge="shop-kb"), store=store,
         settings=settings)
    run_eval("shop-assistant", suites=["quality"], data="shop", against="smollm2", store=store, settings=settings)
    store.add_alias("default", "shop-assistant")
    engine = load_engine("default", store=store, settings=settings)
    reply = engine.complete(answer(engine, load_index(store, "shop-kb"), [{"role": "user", "content": QUESTION}],
                                   SamplingParams.given()))
    engine.close()
    seconds = time.perf_counter() - started
    print(f"cli answer: {reply.text[:200]!r}", flush=True)
    store.close()
    return seconds


def web_journey(home: Path) -> tuple[float, int, str]:
    from playwright.sync_api import sync_playwright

    from freehold.config import ServerOptions, load_settings
    from freehold.home import open_store
    from freehold.server import create_app
    from tests.server.conftest import _free_port, serve_app
    from tests.web.conftest import chromium_path

    settings = load_settings({"FREEHOLD_HOME": str(home)})
    port = _free_port()
    started = time.perf_counter()
    app = create_app(ServerOptions(port=port), settings, open_store(settings))
    actions = 0
    for url in serve_app(app, port):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
            page = browser.new_page()
            page.set_default_timeout(1_800_000)

            def act(what: str, *args: Any, page: Any = page) -> None:
                nonlocal actions
                actions += 1
                getattr(page, what)(*args)

            act("goto", url + "/teach")
            act("fill", "#ours", "acme-outdoor.example")
            act("set_input_files", "#file", str(MAILBOX))  # dropping the file
            page.wait_for_selector("#preview .conversation")
            act("set_input_files", "#docs-file", str(POLICIES))
            page.wait_for_selector("#docs-list li:has-text('markdown')")
            act("click", "#tune")  # the page's defaults: SmolLM2, 3 passes, lr 5e-4
            page.wait_for_selector("#tune-progress .status.good")
            act("click", "#evaluate")
            page.wait_for_selector("#eval-result table")
            act("click", "#deploy")
            page.wait_for_selector("#snippets pre")
            page.screenshot(path=str(REPO / "build" / "journey-teach.png"), full_page=True)
            act("goto", url + "/chat")
            act("fill", "#chat-input", QUESTION)
            act("click", "#send")
            page.wait_for_selector('.column[data-role="main"] .msg.assistant[data-done="1"]')
            answer = page.inner_text('.column[data-role="main"] .msg.assistant')
            seconds = time.perf_counter() - started
            page.screenshot(path=str(REPO / "build" / "journey-chat.png"), full_page=True)  # both in build/
            browser.close()
    return seconds, actions, answer


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    root = Path(tempfile.mkdtemp(prefix="freehold-journey-"))
    try:
        web_s, actions, answer = web_journey(root / "web")
        print(f"web answer: {answer[:200]!r}", flush=True)
        cli_s = cli_journey(root / "cli")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"browser journey {web_s / 60:.1f} min in {actions} user actions; the same from Python "
          f"{cli_s / 60:.1f} min; ratio {web_s / cli_s:.2f} (goal <= 1.10, <= 10 actions)")


if __name__ == "__main__":
    main()
