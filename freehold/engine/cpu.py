"""What this CPU and this llama.cpp build can do, and the load-time guards that keep known
llama.cpp crashes away from a user.

Two crashes are guarded here, both from a llama.cpp build that does not suit the CPU:

- **AMX.** A build compiled with ``-march=native`` on an Intel Xeon with AMX (Sapphire Rapids
  and later) registers llama.cpp's AMX weight-buffer type, repacks Q4_1/Q8_0 weights into it,
  and segfaults in the first matrix multiply (``ggml_backend_amx_mul_mat``; llama.cpp issue
  #20824, closed without a fix; reproduced on this project's Xeon with llama-cpp-python
  0.3.36). ``scripts/setup.sh`` compiles without AMX (``-mno-amx-*``), which keeps the other
  repacked kernels. A build that has AMX anyway (installed some other way) is loaded with
  ``use_extra_bufts = False``: no extra weight buffers at all, so slower but correct.
- **Instructions the CPU lacks.** A wheel compiled on another machine (pip's cache, a copied
  virtualenv) can use AVX-512 or AVX2 where this CPU has none: that is a SIGILL. We refuse
  with the fix instead.

``probe_decode`` runs a real one-token decode in a child process, so that ``freehold doctor``
reports a crash instead of dying of it.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.errors import DependencyError

# llama.cpp's names in llama_print_system_info -> the Linux /proc/cpuinfo flag each needs.
BUILD_TO_CPU_FLAG = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX2": "avx2", "F16C": "f16c", "FMA": "fma",
    "BMI2": "bmi2", "AVX_VNNI": "avx_vnni", "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8",
}
# The CPU flags worth showing a user: what llama.cpp and torch's bf16 path can use.
SHOWN_CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
                   "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str] | None:
    """The CPU's feature flags (Linux x86 ``flags`` / Arm ``Features``), None where unknown."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def cpu_model(cpuinfo: str | None = None) -> str:
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or platform.machine()


def parse_system_info(info: str) -> dict[str, str]:
    """``"CPU : SSE3 = 1 | AVX = 1 | ..."`` (llama_print_system_info) -> {"SSE3": "1", ...}."""
    features: dict[str, str] = {}
    for part in re.split(r"[|;]", info):
        if "=" not in part:
            continue
        name, _, value = part.rpartition("=")
        name = name.split(":")[-1].strip()  # the first entry carries the backend's "CPU :" prefix
        if name:
            features[name] = value.strip()
    return features


def build_features() -> dict[str, str]:
    """This llama.cpp build's compiled-in features."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise DependencyError("llama-cpp-python is not installed", "run 'bash scripts/setup.sh'") from exc
    return parse_system_info(llama_cpp.llama_print_system_info().decode("utf-8", "replace"))


@dataclass(frozen=True)
class Guard:
    """How to load weights on this CPU with this build, and why."""

    extra_buffers: bool  # llama.cpp's repacked weight buffers (use_extra_bufts)
    reason: str
    missing: tuple[str, ...] = field(default=())  # instructions the build uses and the CPU lacks


def decide(flags: frozenset[str] | None, build: Mapping[str, str]) -> Guard:
    """The guard's decision for a CPU (its flags, None where unknown) and a build's features."""
    on = {name for name, value in build.items() if value == "1"}
    if flags is None:
        return Guard(True, "CPU flags unknown here; llama.cpp's defaults apply")
    missing = tuple(sorted(name for name in on if name in BUILD_TO_CPU_FLAG and BUILD_TO_CPU_FLAG[name] not in flags))
    if missing:
        return Guard(False, "this llama.cpp build uses instructions this CPU lacks", missing)
    if "AMX_INT8" in on and "amx_int8" in flags:
        return Guard(False, "not repacked: this llama.cpp build has AMX kernels, which crash on this CPU "
                            "(llama.cpp #20824), so weights load plainly, correct but slower; "
                            "'bash scripts/setup.sh' rebuilds without AMX")
    return Guard(True, "repacked (Q4_0, Q8_0, ... where llama.cpp has kernels for this CPU); no AMX in this build")


def guard() -> Guard:
    return decide(cpu_flags(), build_features())


def check_build(g: Guard | None = None) -> Guard:
    """The guard for this machine; an error (instead of SIGILL) if the build cannot run here."""
    g = g or guard()
    if g.missing:
        from freehold.errors import EngineError

        raise EngineError(f"this llama.cpp build was compiled for a CPU with {', '.join(g.missing)}, "
                          "which this CPU lacks (a wheel built on another machine?)",
                          "rebuild it for this CPU: 'bash scripts/setup.sh' (or pip install --force-reinstall "
                          "--no-binary llama-cpp-python --no-cache-dir llama-cpp-python)")
    return g


def model_params(g: Guard | None = None) -> Any:
    """llama.cpp's default model parameters with the guard applied."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = check_build(g).extra_buffers
    return params


_patch_lock = threading.Lock()


@contextlib.contextmanager
def guarded_defaults() -> Iterator[None]:
    """While active, ``llama_cpp.Llama`` loads with the guarded model parameters.

    ``Llama`` builds its parameters from ``llama_model_default_params()`` and offers no
    argument for ``use_extra_bufts``, so the function it calls is swapped for the duration
    of one load (under a lock; nothing else calls it meanwhile).
    """
    import llama_cpp.llama_cpp as low

    g = check_build()
    if g.extra_buffers:
        yield
        return
    with _patch_lock:
        original = low.llama_model_default_params

        def guarded() -> Any:
            params = original()
            params.use_extra_bufts = False
            return params

        low.llama_model_default_params = guarded
        try:
            yield
        finally:
            low.llama_model_default_params = original


# -- a real decode in a child process -------------------------------------------------------

@dataclass
class Probe:
    ok: bool
    buffers: dict[str, float]  # weight-buffer type -> MiB, as llama.cpp reported loading them
    token: str = ""
    seconds: float = 0.0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_BUFFER = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")


def probe_decode(path: Path, threads: int, timeout: float = 120.0) -> Probe:
    """Load ``path`` and decode one token in a child process; a crash becomes a report."""
    return run_probe([sys.executable, "-m", "freehold.engine.llama", str(path), str(threads)], timeout)


def run_probe(cmd: list[str], timeout: float) -> Probe:
    """Run a probe command; it prints one JSON line ``{"token", "seconds"}`` when it succeeds."""
    try:  # the child loads with verbose=True, so llama.cpp logs its buffers on stderr
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Probe(False, {}, error=f"no token after {timeout:.0f} s")
    buffers = {m.group(1): float(m.group(2)) for m in _BUFFER.finditer(done.stderr)}
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return Probe(False, buffers, error=f"llama.cpp crashed ({name}) loading or decoding the model")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Probe(False, buffers, error=f"exit {done.returncode}: {tail}")
    result = json.loads(lines[-1])
    return Probe(True, buffers, token=result["token"], seconds=result["seconds"])
