"""``freehold eval`` and ``freehold card`` in process: exit codes, JSON, fix-it errors, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import freehold.cli.evals  # noqa: F401  (registers the commands)
from freehold.cli import main


@pytest.fixture(autouse=True)
def _no_bundled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("freehold.store.bundled.smollm2_path", lambda: None)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_then_card(capsys: pytest.CaptureFixture[str], tiny_gguf: Path, eval_data: Path, tmp_path: Path) -> None:
    assert run(capsys, "import", str(tiny_gguf), "--name", "tiny")[0] == 0
    code, out, err = run(capsys, "eval", "tiny", "--suite", "safety,languages", "--eval-data", str(eval_data),
                         "--limit", "1", "--max-tokens", "4", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [r["suite"] for r in report["runs"]] == ["safety", "languages"]
    code, out, err = run(capsys, "eval", "tiny", "--suite", "languages", "--eval-data", str(eval_data),
                         "--limit", "1")
    assert code == 0 and "languages" in out and "ledger record" in out and "eng_tokens_per_char" in out

    code, out, err = run(capsys, "card", "tiny", "-o", str(tmp_path / "card"), "--annex-xi")
    assert code == 0 and "README.md" in out and "ANNEX_XI.md" in out
    assert "Annex XI fields missing from the ledger" in err and "1.1.a" in err
    text = (tmp_path / "card" / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert {r["task"]["name"] for r in meta["model-index"][0]["results"]} == {"Safety (refusal)",
                                                                               "Languages (UDHR)"}


def test_errors_have_hints_and_exit_codes(capsys: pytest.CaptureFixture[str], tiny_gguf: Path,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(capsys, "import", str(tiny_gguf), "--name", "tiny")[0] == 0
    code, _, err = run(capsys, "eval", "tiny", "--suite", "speed")
    assert code == 1 and "unknown eval suite 'speed'" in err and "hint" in err and "Traceback" not in err
    code, _, err = run(capsys, "eval", "tiny", "--limit", "-1")
    assert code == 2 and "--limit must be 0 (every item) or positive" in err
    code, _, err = run(capsys, "eval", "tiny", "--suite", "safety", "--prompts", str(tmp_path / "missing.csv"))
    assert code == 1 and "does not exist" in err
    code, _, err = run(capsys, "eval", "ghost")
    assert code == 1 and "model 'ghost' not found" in err
    # An install without the packaged sets and no data given: the project's own templated bias
    # probes run; the rest say what to pass.
    monkeypatch.setattr("freehold.evals.run.packaged_sets", lambda: None)
    code, out, err = run(capsys, "eval", "tiny")
    assert code == 0 and "bias" in out
    assert "skipped safety" in err and "--eval-data" in err and "skipped quality" in err and "--data" in err


def test_eval_uses_the_packaged_sets_without_eval_data(capsys: pytest.CaptureFixture[str], tiny_gguf: Path,
                                                       freehold_home: Path) -> None:
    from freehold.evals.base import file_digest, packaged_sets
    from freehold.ledger import Ledger

    sets = packaged_sets()
    assert sets is not None
    assert run(capsys, "import", str(tiny_gguf), "--name", "tiny")[0] == 0
    code, out, err = run(capsys, "eval", "tiny", "--limit", "1", "--max-tokens", "4", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [r["suite"] for r in report["runs"]] == ["safety", "bias", "languages"]
    assert set(report["skipped"]) == {"quality"}
    cited = {(i["dataset"], i["filename"]): i["digest"] for r in Ledger.open(freehold_home).records()
             if r.type == "eval" for i in r.payload["inputs"] if i["role"] == "data"}
    public = {"xstest", "advbench", "harmbench", "crows-pairs", "winobias", "bbq", "udhr-multilingual"}
    assert public <= {dataset for dataset, _ in cited}
    for (dataset, filename), digest in cited.items():
        if dataset in public:  # every public file cited is the packaged copy, byte for byte
            [path] = (sets / dataset).rglob(filename)
            assert file_digest(path) == digest
