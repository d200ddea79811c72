"""Quantization with llama.cpp's own quantizer (``llama_model_quantize`` via llama-cpp-python).

The ``gguf`` package writes F32, F16 and Q8_0 itself but has no K-quants, so every other
type goes through llama.cpp: the same code that reads the file at serving time, choosing
per-tensor types (Q4_K_M keeps some tensors at Q6_K) exactly as ``llama-quantize`` does.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from freehold.errors import DependencyError, TrainingError, UsageError

# Export type -> llama.cpp file type constant (None: written directly by our GGUF writer).
QUANTS: dict[str, str | None] = {
    "f32": None,
    "f16": None,
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
}


def check_quant(quant: str) -> str:
    q = quant.lower()
    if q not in QUANTS:
        raise UsageError(f"unknown quantization {quant!r}", f"choose one of: {', '.join(QUANTS)}")
    return q


def quantize_gguf(source: Path, target: Path, quant: str, threads: int | None = None) -> Path:
    """Quantize a F32/F16 GGUF into ``target`` with llama.cpp."""
    q = check_quant(quant)
    ftype_name = QUANTS[q]
    if ftype_name is None:
        raise UsageError(f"{q} is written directly, not quantized", "use write_gguf(..., outtype=...)")
    try:
        import llama_cpp
    except ImportError as exc:
        raise DependencyError("quantizing needs llama-cpp-python", "pip install llama-cpp-python") from exc
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.nthread = threads or 0  # 0: llama.cpp uses every hardware thread
    with _quiet() as log:
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if rc != 0 or not target.is_file():
        tail = " ".join(log.read_text(errors="replace").split()[-40:])
        raise TrainingError(f"llama.cpp could not quantize {source.name} to {q} (code {rc}): {tail}",
                            "check free disk space; try --quant q8_0, which every tensor shape supports")
    return target


@contextlib.contextmanager
def _quiet() -> Iterator[Path]:
    """llama.cpp logs every tensor on the C side: send fds 1 and 2 to a file while it runs."""
    with tempfile.NamedTemporaryFile(prefix="freehold-quantize-", suffix=".log", delete=False) as log:
        path = Path(log.name)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    fd = os.open(path, os.O_WRONLY)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield path
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (*saved, fd):
            os.close(f)
        path_copy = path
        atexit.register(lambda: path_copy.unlink(missing_ok=True))
