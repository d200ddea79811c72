"""`freehold run` uses a running server when there is one, like ollama."""

from __future__ import annotations

import httpx
import pytest

from freehold.cli import main

from .conftest import Live


def test_run_goes_through_a_running_server(live: Live, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FREEHOLD_HOST", live.url.removeprefix("http://"))
    monkeypatch.setenv("FREEHOLD_NO_SERVER", "0")
    assert main(["run", "tiny", "the cat", "-t", "0", "-n", "5", "-v"]) == 0
    _, err = capsys.readouterr()
    assert "output 5 tokens" in err
    metrics = httpx.get(live.url + "/metrics").text
    assert 'path="/api/chat",status="200"' in metrics
    # errors from the server come back as the same fix-it errors
    assert main(["run", "tiny-base", "hello"]) == 1
    assert "chat template" in capsys.readouterr().err
    assert main(["run", "ghost", "hello"]) == 1
    assert "not found" in capsys.readouterr().err


def test_server_errors_come_back_as_the_same_class(live: Live) -> None:
    from freehold.client import RemoteEngine
    from freehold.errors import ModelNotFoundError, NoChatTemplateError

    with pytest.raises(ModelNotFoundError) as missing:
        RemoteEngine(live.url, "tinny")
    assert missing.value.name == "tinny" and "tiny:latest" in missing.value.close  # the close names travel too
    base = RemoteEngine(live.url, "tiny-base")
    assert not base.has_template
    with pytest.raises(NoChatTemplateError) as no_template:
        base.complete(base.chat([{"role": "user", "content": "hi"}]))
    assert "--raw" in (no_template.value.hint or "")


def test_remote_context_overflow_keeps_the_numbers(live: Live) -> None:
    from freehold.client import RemoteEngine
    from freehold.engine import SamplingParams
    from freehold.errors import ContextOverflowError

    remote = RemoteEngine(live.url, "tiny")
    with pytest.raises(ContextOverflowError) as exc:
        remote.complete(remote.chat([{"role": "user", "content": "the cat " * 400}], SamplingParams()))
    assert exc.value.n_ctx == 512 and exc.value.n_prompt > 512
