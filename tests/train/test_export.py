"""GGUF export: tensors and metadata round-trip, logits match PyTorch, llama.cpp quantizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from freehold.errors import UsageError
from freehold.export import check_quant, export_model, logits_gap, write_gguf
from freehold.store import MediaType, Store

PROMPT = [1, 87, 72, 68, 87, 3, 2, 1, 65, 82, 76, 100, 120, 140]


def test_f32_export_reproduces_the_base_gguf_exactly(tiny_gguf: Path, tiny_hf: Path, tmp_path: Path) -> None:
    import gguf

    out = write_gguf(tiny_hf, tiny_gguf, tmp_path / "out.gguf", "f32")
    a, b = gguf.GGUFReader(str(tiny_gguf)), gguf.GGUFReader(str(out))
    # Every tensor, after the q/k permutation is re-applied, is bit-identical to the converter's.
    theirs = {t.name: np.asarray(t.data) for t in a.tensors}
    ours = {t.name: np.asarray(t.data) for t in b.tensors}
    assert theirs.keys() == ours.keys()
    for name in theirs:
        assert np.array_equal(theirs[name], ours[name]), name
    # Every metadata field (tokenizer.*, chat template, hyperparameters) is carried over.
    fields = [k for k in a.fields if not k.startswith("GGUF.")]
    assert fields and set(fields) <= set(b.fields)
    for key in fields:
        assert a.fields[key].contents() == b.fields[key].contents(), key


@pytest.mark.parametrize(("outtype", "tolerance"), [("f32", 1e-2), ("f16", 2e-2), ("q8_0", 0.5)])
def test_exported_logits_match_pytorch(tiny_gguf: Path, tiny_hf: Path, tmp_path: Path, outtype: str,
                                       tolerance: float) -> None:
    out = write_gguf(tiny_hf, tiny_gguf, tmp_path / f"{outtype}.gguf", outtype)
    gap = logits_gap(out, tiny_hf, PROMPT, threads=1)
    # Tolerances on logits of magnitude ~30: F32 differs only by kernel rounding (measured
    # ~3e-3), F16 by weight rounding, Q8_0 by 8-bit blocks; the greedy choice never changes.
    assert gap["scale"] > 5
    assert gap["max_abs"] < tolerance, gap
    assert gap["argmax_agree"] == 1.0, gap


def test_unknown_quant_is_a_usage_error_with_the_choices() -> None:
    with pytest.raises(UsageError) as err:
        check_quant("q3_xl")
    assert "q4_k_m" in (err.value.hint or "")
    assert check_quant("Q4_K_M") == "q4_k_m"


def test_export_model_quantizes_with_llama_cpp_and_records_lineage(store: Store, tiny_gguf: Path) -> None:
    import gguf

    from freehold.home import import_model
    from freehold.ledger import verify

    import_model(store, tiny_gguf, "tiny")
    entry = export_model("tiny", "q4_0", store=store)
    assert entry.name == "tiny:q4_0" and entry.manifest.source["from"] == "tiny:latest"
    path = store.blob_path(entry.manifest.layer(MediaType.GGUF).digest)
    types = {t.tensor_type for t in gguf.GGUFReader(str(path)).tensors}
    assert gguf.GGMLQuantizationType.Q4_0 in types
    assert store.text_layer(entry.manifest, MediaType.TEMPLATE)  # the chat template came along
    assert verify(store, "tiny:q4_0").ok
    with pytest.raises(UsageError, match="already exists"):
        export_model("tiny", "q4_0", store=store)


def test_hf_only_export_builds_the_converters_metadata(tiny_gguf: Path, tiny_hf: Path, tmp_path: Path) -> None:
    """No GGUF to copy from: hyperparameters and tokenizer come from the HF files, as llama.cpp's converter
    writes them (the tiny GGUF was written the converter's way)."""
    import gguf

    from freehold.engine.llama import LlamaCppBackend

    out = write_gguf(tiny_hf, None, tmp_path / "hf-only.gguf", "f32")
    a, b = gguf.GGUFReader(str(tiny_gguf)), gguf.GGUFReader(str(out))
    same = [k for k in a.fields if k.startswith(("tokenizer.", "llama.")) or k == "general.architecture"]
    assert len(same) > 15
    for key in same:
        assert a.fields[key].contents() == b.fields[key].contents(), key
    theirs = {t.name: np.asarray(t.data) for t in a.tensors}
    ours = {t.name: np.asarray(t.data) for t in b.tensors}
    assert theirs.keys() == ours.keys() and all(np.array_equal(theirs[n], ours[n]) for n in theirs)
    gap = logits_gap(out, tiny_hf, PROMPT, threads=1)
    assert gap["max_abs"] < 1e-2 and gap["argmax_agree"] == 1.0, gap
    import transformers

    text = "<|im_start|>the cat sat, then ate 12 fish!<|im_end|>"
    expected = transformers.AutoTokenizer.from_pretrained(tiny_hf).encode(text)
    llama = LlamaCppBackend(out, 64, 1)
    try:
        assert llama.tokenize(text, add_special=False) == expected
    finally:
        llama.close()


def test_hf_only_store_model_exports_and_unknown_tokenizers_are_refused(store: Store, tiny_hf: Path,
                                                                        tmp_path: Path) -> None:
    import json
    import shutil

    store.import_hf(tiny_hf, "tinyhf")
    entry = export_model("tinyhf", "q8_0", store=store)
    assert entry.info["architecture"] == "llama" and store.text_layer(entry.manifest, MediaType.TEMPLATE)
    odd = tmp_path / "odd"
    shutil.copytree(tiny_hf, odd)
    tj = json.loads((odd / "tokenizer.json").read_text())
    tj["pre_tokenizer"] = {"type": "Whitespace"}
    (odd / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(UsageError, match="pre-tokenizer") as err:
        write_gguf(odd, None, tmp_path / "odd.gguf", "f32")
    assert "GGUF" in (err.value.hint or "")
    tj["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "use_regex": True}
    (odd / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(UsageError, match="add_prefix_space"):  # HF would add a space llama.cpp does not
        write_gguf(odd, None, tmp_path / "odd.gguf", "f32")
    assert not (tmp_path / "odd.gguf").exists() or (tmp_path / "odd.gguf").stat().st_size == 0


def test_pick_takes_the_fastest_within_the_budget_else_the_most_faithful() -> None:
    from freehold.export.choose import Measured, pick

    ref = Measured("f32", 100, 10.0, 10.0)
    measured = [Measured("q4_0", 30, 50.0, 10.8), Measured("q4_1", 32, 40.0, 10.3), Measured("q8_0", 60, 30.0, 10.05)]
    best, why = pick(ref, measured, 1.05)
    assert best.quant == "q4_1" and "fastest" in why and "10.500" in why  # q4_0 is faster but over budget
    assert pick(ref, measured, 1.10)[0].quant == "q4_0"
    best, why = pick(ref, measured, 1.001)
    assert best.quant == "q8_0" and "no type was within" in why


def test_quant_auto_measures_each_type_and_records_why(store: Store, tiny_gguf: Path, tmp_path: Path) -> None:

    import gguf

    from freehold.export.choose import CANDIDATES, Measured, pick
    from freehold.home import import_model
    from freehold.ledger.chain import Ledger
    from freehold.testing import import_orders

    import_model(store, tiny_gguf, "tiny")
    import_orders(store, tmp_path, rows=80)
    with pytest.raises(UsageError, match="needs a dataset"):
        export_model("tiny", "auto", store=store)
    with pytest.raises(UsageError, match="budget"):
        export_model("tiny", "auto", store=store, data="orders", budget=0.9)
    from freehold.jobs import submit  # the same as a job (the web app and MCP start exports as jobs)

    with pytest.raises(UsageError, match="needs a dataset"):
        submit(store, "export", {"model": "tiny", "quant": "auto"})
    assert submit(store, "export", {"model": "tiny", "quant": "auto", "data": "orders"}).state == "queued"

    entry = export_model("tiny", "auto", store=store, data="orders")
    choice = entry.manifest.source["quant_choice"]
    assert entry.name == f"tiny:{choice['chose']}" and entry.manifest.source["quant"] == choice["chose"]
    assert [m["quant"] for m in choice["candidates"]] == list(CANDIDATES) and choice["reference"]["quant"] == "f32"
    assert all(m["tokens_per_s"] > 0 and m["perplexity"] > 1 for m in [choice["reference"], *choice["candidates"]])
    assert choice["held_out_tokens"] > 100 and choice["data"] == "orders:latest"
    # The choice follows from the figures recorded with it.
    best, why = pick(Measured(**choice["reference"]), [Measured(**m) for m in choice["candidates"]], choice["budget"])
    assert best.quant == choice["chose"] and why == choice["why"]
    path = store.blob_path(entry.manifest.layer(MediaType.GGUF).digest)
    assert path.stat().st_size == next(m["bytes"] for m in choice["candidates"] if m["quant"] == choice["chose"])
    assert gguf.GGUFReader(str(path)).tensors  # a loadable GGUF of that type
    record = [r for r in Ledger.open(store.home).records() if r.type == "export"][-1]
    assert record.payload["params"]["quant_choice"]["chose"] == choice["chose"]
