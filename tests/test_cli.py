"""The CLI end to end, in process: exit codes, JSON output, fix-it errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from freehold.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_models_show_run_rm(capsys: pytest.CaptureFixture[str], tiny_gguf: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Keep the bundled model out of this test (it is tested on its own).
    monkeypatch.setattr("freehold.store.bundled.smollm2_path", lambda: None)
    code, out, _ = run(capsys, "import", str(tiny_gguf), "--name", "tiny")
    assert code == 0 and "imported tiny:latest" in out
    code, out, _ = run(capsys, "models", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == ["tiny:latest"]
    assert rows[0]["architecture"] == "llama" and rows[0]["license"] == "apache-2.0"
    code, out, _ = run(capsys, "show", "tiny", "--json")
    doc = json.loads(out)
    assert doc["config"]["context_length"] == 512 and doc["chat_template"] is True
    assert doc["layers"][0]["digest"].startswith("sha256:")
    code, out, _ = run(capsys, "show", "tiny")
    assert code == 0 and "context length" in out and "Layers" in out
    code, out, err = run(capsys, "run", "tiny", "the cat", "-t", "0", "-n", "5", "--verbose")
    assert code == 0 and len(out) > 1  # the random tiny model may well answer with whitespace
    assert "output 5 tokens" in err
    code, out, _ = run(capsys, "rm", "tiny")
    assert code == 0 and "deleted 'tiny:latest'" in out
    code, out, _ = run(capsys, "models", "--json")
    assert json.loads(out) == []


def test_errors_are_one_line_with_a_hint(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("freehold.store.bundled.smollm2_path", lambda: None)
    run(capsys, "import", str(tiny_gguf), "--name", "tiny-model")
    code, _, err = run(capsys, "run", "tiny-modle", "hi")
    assert code == 1
    assert "model 'tiny-modle' not found" in err and "tiny-model:latest" in err
    assert "Traceback" not in err
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 20)
    code, _, err = run(capsys, "import", str(bad))
    assert code == 1 and "holds no tensors" in err and "hint" in err
    code, _, err = run(capsys, "import", str(tmp_path / "missing.gguf"))
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "import")
    assert code == 2 and "PATH or --bundled" in err


def test_base_model_chat_error_suggests_raw(capsys: pytest.CaptureFixture[str], tiny_base_gguf: Path) -> None:
    run(capsys, "import", str(tiny_base_gguf), "--name", "base")
    code, _, err = run(capsys, "run", "base", "hello")
    assert code == 1 and "base model" in err and "--raw" in err
    code, _, err = run(capsys, "run", "base", "hello", "--raw", "-t", "0", "-n", "4", "-v")
    assert code == 0 and "output 4 tokens" in err


def test_invalid_config_lists_every_problem(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREEHOLD_THREADS", "many")
    monkeypatch.setenv("FREEHOLD_CONTEXT", "-5")
    code, _, err = run(capsys, "models")
    assert code == 2
    assert "FREEHOLD_THREADS" in err and "FREEHOLD_CONTEXT" in err


def test_doctor_finds_a_corrupted_blob(capsys: pytest.CaptureFixture[str], tiny_gguf: Path,
                                       freehold_home: Path) -> None:
    run(capsys, "import", str(tiny_gguf), "--name", "tiny")
    code, out, _ = run(capsys, "doctor")
    assert code == 0 and "every blob matches" in out
    code, out, _ = run(capsys, "show", "tiny", "--json")
    digest = json.loads(out)["layers"][0]["digest"]
    blob = freehold_home / "blobs" / digest.replace(":", "-")
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    code, out, _ = run(capsys, "doctor")
    assert code == 1 and digest in out and "corrupt" in out


def test_env_lists_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    from freehold.config import ENV_VARS

    code, out, _ = run(capsys, "env", "--json")
    assert code == 0
    assert [r["name"] for r in json.loads(out)] == [v.name for v in ENV_VARS]
