"""``freehold knowledge`` through the CLI entry point: build, show, search, add, ls, rm; errors without tracebacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from freehold.cli import main
from tests.knowledge.conftest import MAILBOX, POLICIES


def test_build_show_search_add_rm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "import", str(MAILBOX), "-o", "acme", "--ours", "acme-outdoor.example"]) == 0
    page = tmp_path / "acme-policies.md"
    shutil.copy(POLICIES, page)
    capsys.readouterr()
    assert main(["knowledge", "build", "acme-kb", "--data", "acme", "--docs", str(page)]) == 0
    out = capsys.readouterr().out
    assert "indexed acme-kb:latest (version 1)" in out and "new       document" in out
    assert main(["knowledge", "show", "acme-kb"]) == 0
    shown = capsys.readouterr().out
    assert "[current]" in shown and "sqlite-fts5" in shown
    assert main(["knowledge", "search", "acme-kb", "Is a broken zip covered by the warranty?", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 4 and {"id", "title", "source", "text", "score", "similarity"} <= set(hits[0])
    assert main(["knowledge", "search", "acme-kb", "What is the capital of France?"]) == 0
    assert "nothing relevant" in capsys.readouterr().out
    page.write_text(page.read_text(encoding="utf-8") + "\n## Gift cards\n\nGift cards never expire.\n")
    assert main(["knowledge", "show", "acme-kb"]) == 0
    assert "[changed]" in capsys.readouterr().out
    assert main(["knowledge", "add", "acme-kb", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["committed"] and added["version"] == 2 and added["embedded"] == 1
    assert main(["knowledge", "add", "acme-kb"]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert main(["knowledge", "ls", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["name"] == "acme-kb:latest" and row["sources"] == 2
    assert main(["knowledge", "rm", "acme-kb", "--source", str(page)]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["knowledge", "rm", "acme-kb"]) == 0
    assert "deleted acme-kb:latest" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["knowledge", "build", "kb"], "nothing to index"),
        (["knowledge", "build", "kb", "--docs", "/no/such/file.md"], "no such file"),
        (["knowledge", "build", "kb", "--data", "absent"], "dataset 'absent' not found"),
        (["knowledge", "search", "absent", "question"], "knowledge 'absent' not found"),
    ],
)
def test_errors_are_one_line_with_a_hint(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert needle in err and "hint:" in err and "Traceback" not in err
