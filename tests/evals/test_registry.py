"""A suite registered from outside the package is picked up everywhere a suite is named: the
default run and its skip reasons, the comparison with a base, the model card, Annex XI and the
CLI's help and summary, with no edit to those modules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import freehold.cli.evals  # noqa: F401  (registers the commands)
from freehold.cli import main
from freehold.errors import EvalError
from freehold.evals import SUITES, BaseSuite, DataGiven, EvalContext, SuiteResult, Unavailable, run_eval, write_card
from freehold.store import Store


class Echo(BaseSuite):
    """Tokens of a fixed text; needs a file named by the test (``Echo.needs``) to exist."""

    name = "echo"
    description = "tokens of a fixed text"
    title = "Echo check"
    eval_sets = ("echo-set",)
    lower_is_better = ("_tokens",)
    adversarial_testing = "echo red-teaming"
    needs: Path | None = None

    def unavailable(self, given: DataGiven) -> Unavailable | None:
        if self.needs is None or self.needs.exists():
            return None
        return Unavailable("no echo file", EvalError("the echo suite needs its file", "create it"))

    def headline(self, scores: dict[str, Any]) -> list[str]:
        return ["hello_tokens"]

    def compare(self, model: SuiteResult, base: SuiteResult, examples: int) -> dict[str, Any]:
        return {"echo_items": sorted(set(model.items) & set(base.items))}

    def limitations(self, scores: dict[str, Any]) -> list[str]:
        return [f"Echo counted {scores['hello_tokens']} tokens."]

    def run(self, ctx: EvalContext) -> SuiteResult:
        n = len(ctx.runner.tokenize("hello"))
        return SuiteResult(self.name, {"hello_tokens": n, "other": 1}, [], items={"hello": {"n": n}})


@pytest.fixture
def echo() -> Iterator[Echo]:
    suite = Echo()
    SUITES["echo"] = suite  # as register_suite does; popped after so no other test sees it
    yield suite
    SUITES.pop("echo")


def test_a_registered_suite_runs_by_default_and_compares(store: Store, tiny: str, tmp_path: Path, echo: Echo,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("freehold.evals.run.packaged_sets", lambda: None)  # only bias and echo can run
    report = run_eval(tiny, against=tiny, limit=1, max_tokens=4, store=store)
    assert [r.result.suite for r in report.runs] == ["bias", "echo"]
    cmp = report.comparison["echo"]
    assert cmp["echo_items"] == ["hello"]
    assert cmp["scores"]["hello_tokens"]["lower_is_better"] is True
    assert cmp["scores"]["other"]["lower_is_better"] is False

    echo.needs = tmp_path / "missing"
    report = run_eval(tiny, limit=1, max_tokens=4, store=store)
    assert report.skipped["echo"] == "no echo file" and "echo" not in [r.result.suite for r in report.runs]
    with pytest.raises(EvalError, match="the echo suite needs its file"):
        run_eval(tiny, suites="echo", store=store)


def test_a_registered_suite_is_on_the_card_and_in_annex_xi(store: Store, tiny: str, tmp_path: Path,
                                                           echo: Echo) -> None:
    # Not yet tested adversarially: the hint names every suite that would test it.
    untested = write_card(tiny, output=tmp_path / "untested", annex_xi=True, store=store)
    assert "2.2" in untested.missing
    assert "--suite safety,echo" in (tmp_path / "untested" / "ANNEX_XI.md").read_text(encoding="utf-8")

    run_eval(tiny, suites="echo", store=store)
    result = write_card(tiny, output=tmp_path / "card", annex_xi=True, store=store)
    text = result.path.read_text(encoding="utf-8")
    assert "### Echo check" in text and "name: Echo check" in text
    tokens = result.metadata["model-index"][0]["results"][0]["metrics"][0]["value"]
    assert f"- Echo counted {tokens} tokens." in text
    doc = json.loads((tmp_path / "card" / "annex_xi.json").read_text())
    assert doc["fields"]["2.2"]["value"].startswith("echo red-teaming (ledger record ")
    assert "2.2" not in result.missing


def test_a_registered_suite_is_in_the_cli_help_and_summary(capsys: pytest.CaptureFixture[str], tiny_gguf: Path,
                                                           echo: Echo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("freehold.store.bundled.smollm2_path", lambda: None)
    monkeypatch.setenv("COLUMNS", "200")  # one help line per option
    main(["eval", "--help"])
    out = capsys.readouterr().out
    assert "quality, safety, bias, languages, echo" in out and "echo-set/" in out
    assert main(["import", str(tiny_gguf), "--name", "tiny"]) == 0
    assert main(["eval", "tiny", "--suite", "echo"]) == 0
    out = capsys.readouterr().out
    assert "hello_tokens" in out and "other" not in out  # the headline, not every score
