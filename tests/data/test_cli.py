"""``freehold data`` end to end through the CLI entry point: exit codes, no tracebacks, files written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freehold.cli import main


def test_import_ls_show_export_rm(
    email_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = email_dir / "numpy-discussion-2001-11" / "2001-November.txt"
    assert main(["data", "import", str(archive), "-o", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "imported numpy:latest" in out and "inferred" in out
    assert main(["data", "ls", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["numpy:latest"] and rows[0]["examples"] > 0
    assert main(["data", "show", "numpy", "--seed", "3"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("── example") == 5 and "merkle root" in shown and "filtered:" in shown
    target = tmp_path / "numpy.jsonl"
    assert main(["data", "export", "numpy", "-o", str(target), "--split", "train"]) == 0
    first = json.loads(target.read_text().splitlines()[0])
    assert set(first) == {"id", "thread", "messages"}
    assert main(["data", "rm", "numpy"]) == 0
    assert main(["data", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("deleted numpy:latest\n")[-1]) == []


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["data", "import", "/no/such/archive.mbox", "-o", "x"], "does not exist"),
        (["data", "import", "__FILE__", "-o", "x", "--format", "pst"], "unknown format"),
        (["data", "import", "__FILE__", "-o", "x", "--pii", "maybe"], "unknown --pii mode"),
        (["data", "import", "__FILE__", "-o", "Bad Name!"], "invalid name"),
        (["data", "show", "missing"], "not found"),
        (["data", "export", "missing", "-o", "x.jsonl"], "not found"),
    ],
)
def test_bad_input_is_a_clear_error(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "table.csv"
    f.write_text("question,answer\nq,a\n")
    code = main([str(f) if a == "__FILE__" else a for a in argv])
    err = capsys.readouterr().err
    assert code != 0 and needle in err and "Traceback" not in err
