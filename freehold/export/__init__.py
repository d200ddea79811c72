"""Export: store models -> GGUF files llama.cpp serves, written and quantized by the project.

    export_model("acme-support", "q4_k_m")   # -> store model acme-support:q4_k_m, ledger export record
    export_gguf(hf_dir, base_gguf, out, "q4_k_m")   # the same, file to file
    logits_gap(gguf_path, hf_dir, tokens)    # round-trip check: max |logit difference|

The weights come from the model's full-precision (or dequantised) safetensors; the metadata
(tokenizer, chat template, hyperparameters) from a GGUF of the same model, so what llama.cpp
sees matches the base bit for bit except the tensors. F32/F16/Q8_0 are written by
``writer.write_gguf``; other types are quantized from an F32 (small models) or F16
intermediate by llama.cpp (``quantize.quantize_gguf``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from freehold.config import Settings, load_settings
from freehold.errors import InvalidModelError, UsageError
from freehold.export.quantize import QUANTS, check_quant, quantize_gguf
from freehold.export.writer import SUPPORTED, WRITE_TYPES, write_gguf
from freehold.progress import ProgressFn, emit
from freehold.store import Manifest, MediaType, ModelEntry, Store

__all__ = ["QUANTS", "SUPPORTED", "WRITE_TYPES", "export_gguf", "export_model", "logits_gap", "metadata_gguf",
           "quantize_gguf", "write_gguf"]

# Above this many weight bytes (fp32) the intermediate is F16, halving temporary disk; below,
# F32 so the only rounding is the final quantization.
F32_INTERMEDIATE_LIMIT = 4_000_000_000


def export_gguf(hf_dir: Path, template_gguf: Path | None, out: Path, quant: str, *, chat_template: str | None = None,
                threads: int | None = None, progress: ProgressFn | None = None, license: str | None = None) -> Path:
    """Write ``hf_dir`` as a GGUF of type ``quant`` at ``out`` (``license``: its ``general.license``)."""
    q = check_quant(quant)
    if QUANTS[q] is None or q == "q8_0":
        # The gguf package's Q8_0 is the reference implementation; no second pass needed.
        return write_gguf(hf_dir, template_gguf, out, q, chat_template, progress, license)
    size = sum(p.stat().st_size for p in hf_dir.glob("*.safetensors"))
    inter = "f32" if size <= F32_INTERMEDIATE_LIMIT else "f16"
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        staged = write_gguf(hf_dir, template_gguf, Path(tmp) / f"model-{inter}.gguf", inter, chat_template, progress,
                            license)
        emit(progress, f"quantizing to {q}")
        return quantize_gguf(staged, out, q, threads)


def metadata_gguf(store: Store, entry: ModelEntry) -> Path | None:
    """A GGUF of ``entry``'s own model to take tokenizer and hyperparameters from; None for a model
    that only exists as Hugging Face files (the writer then builds the metadata from those)."""
    layer = entry.manifest.layer(MediaType.GGUF)
    digest = layer.digest if layer else entry.manifest.source.get("gguf_metadata")
    if not digest:
        return None
    if not store.blob_path(digest).exists():
        raise InvalidModelError(f"the GGUF {entry.name} was made from is missing from the store",
                                "run 'freehold doctor', or re-import the model")
    return store.blob_path(digest)


def export_model(name: str, quant: str = "q4_k_m", *, output: str | None = None, store: Store | None = None,
                 settings: Settings | None = None, progress: ProgressFn | None = None,
                 license: str | None = None, data: str | None = None, budget: float | None = None) -> ModelEntry:
    """Export store model ``name`` to a ``quant`` GGUF, import it as ``output`` (default NAME:QUANT)
    with a ledger ``export`` record linking the two. The export is under its source's licence
    (``license`` may add to it, never drop any: freehold.licences.check_relabel).

    ``quant="auto"``: every candidate type is made and measured here on the held-out text of
    dataset ``data`` (``freehold.export.choose``); the fastest within ``budget`` x the
    full-precision perplexity is kept, with what was measured in its manifest and record."""
    import dataclasses

    from freehold.engine.torch import hf_directory
    from freehold.export.choose import DEFAULT_BUDGET, check_budget
    from freehold.home import commit_recorded, open_store
    from freehold.ledger import Record, Recorder, layer_refs
    from freehold.licences import inherit
    from freehold.store.names import format_name, parse_name

    settings = settings or load_settings()
    store = store or open_store(settings)
    auto = quant.lower() == "auto"
    q = "auto" if auto else check_quant(quant)
    if auto:
        if not data:
            raise UsageError("--quant auto measures each type's perplexity on held-out text, and needs a dataset",
                             "pass --data DATASET (one made with 'freehold data import'; its test split is used)")
        check_budget(budget if budget is not None else DEFAULT_BUDGET)
        store.get(data, kind="dataset")  # a missing dataset fails now, not after the full-precision export
    entry = store.get(name)
    base_name, _ = parse_name(entry.name)

    def free(target: str) -> str:
        target_name, target_tag = parse_name(target)
        if store.has(format_name(target_name, target_tag or "latest")):
            raise UsageError(f"a model named {target} already exists",
                             f"choose another name with -o, or remove it with 'freehold rm {target}'")
        return target

    target = free(output) if output else (free(format_name(base_name, q)) if not auto else format_name(base_name, q))
    licence = inherit(store, target, models=[entry], label=license)
    template_gguf = metadata_gguf(store, entry)
    hf_dir = hf_directory(store, entry, progress)
    chat_template = store.text_layer(entry.manifest, MediaType.TEMPLATE)
    choice: dict[str, Any] | None = None
    with store.temp_dir("export") as tmp:
        if auto:
            out, choice = _choose(store, hf_dir, template_gguf, Path(tmp), data or "", chat_template, settings,
                                  licence.expression, budget if budget is not None else DEFAULT_BUDGET, progress)
            q = choice["chose"]
            if not output:
                target = free(format_name(base_name, q))
        else:
            out = export_gguf(hf_dir, template_gguf, Path(tmp) / f"{base_name}-{q}.gguf", q,
                              chat_template=chat_template, threads=settings.threads, progress=progress,
                              license=licence.expression)
        source = {"type": "export", "from": entry.name, "from_manifest": entry.manifest_digest, "quant": q,
                  **{k: v for k, v in entry.manifest.source.items() if k in ("base", "dataset", "run", "knowledge")},
                  "licence_from": licence.sources, **({"quant_choice": choice} if choice else {})}
        params = store.text_layer(entry.manifest, MediaType.PARAMS)  # an export samples like its source
        staged = store.stage_gguf(out, target, source=source, params=json.loads(params) if params else None,
                                  progress=progress)
        staged = dataclasses.replace(staged, layers=staged.layers + licence.layers(store, [entry]))
    weights = [r for r in layer_refs(entry.manifest, "model") if r["media_type"] in MediaType.WEIGHTS]

    def record(rec: Recorder, m: Manifest) -> Record:
        return rec.record_export(
            m.name, inputs=weights, outputs=layer_refs(m, "gguf"), method=f"gguf/{q}",
            params={"writer": "freehold.export",
                    "quantizer": "llama.cpp" if (QUANTS[q] and q != "q8_0") or choice else "gguf",
                    **({"quant_choice": choice} if choice else {})},
            license=licence.expression)

    return licence.apply_naming(store, commit_recorded(store, staged, record))


def _choose(store: Store, hf_dir: Path, template_gguf: Path | None, tmp: Path, data: str, chat_template: str | None,
            settings: Settings, license: str | None, budget: float, progress: ProgressFn | None
            ) -> tuple[Path, dict[str, Any]]:
    """The full-precision export, then every candidate made from it and measured (``choose``)."""
    from freehold.engine.chat import ChatTemplate
    from freehold.engine.llama import load_llama
    from freehold.export.choose import choose, held_out_text

    size = sum(p.stat().st_size for p in hf_dir.glob("*.safetensors"))
    inter = "f32" if size <= F32_INTERMEDIATE_LIMIT else "f16"
    staged = write_gguf(hf_dir, template_gguf, tmp / f"model-{inter}.gguf", inter, chat_template, progress, license)
    vocab = load_llama(staged, 64, settings.threads, vocab_only=True)
    try:
        texts = held_out_text(store, data, ChatTemplate(chat_template) if chat_template else None,
                              lambda text: list(vocab.tokenize(text.encode(), add_bos=True, special=True)))
    finally:
        vocab.close()
    out, report = choose(staged, lambda s, t, q: quantize_gguf(s, t, q, settings.threads), texts, tmp,
                         settings.threads, budget, reference=inter, progress=progress)
    report["data"] = store.get(data, kind="dataset").name
    staged.unlink(missing_ok=True)
    return out, report


def logits_gap(gguf_path: Path, hf_dir: Path, tokens: Sequence[int], threads: int = 2) -> dict[str, Any]:
    """Run ``tokens`` through llama.cpp (the GGUF) and transformers (``hf_dir``); compare logits.

    Returns ``{"max_abs": ..., "scale": max |logit|, "argmax_agree": fraction of positions}``.
    """
    import numpy as np

    from freehold.engine.llama import LlamaScorer
    from freehold.engine.torch import TorchBackend

    llama = LlamaScorer(gguf_path, max(64, len(tokens) + 8), threads)
    torch_backend = TorchBackend(hf_dir, max(64, len(tokens) + 8), threads, device="cpu")
    try:
        a = np.asarray(llama.logits(list(tokens)), dtype=np.float64)
        b = np.asarray(torch_backend.logits(list(tokens)), dtype=np.float64)
    finally:
        llama.close()
        torch_backend.close()
    if a.shape != b.shape:
        raise InvalidModelError(f"logit shapes differ: {a.shape} (GGUF) vs {b.shape} (PyTorch)",
                                "the export lost or added vocabulary entries")
    return {"max_abs": float(np.abs(a - b).max()), "scale": float(np.abs(b).max()),
            "argmax_agree": float((a.argmax(-1) == b.argmax(-1)).mean())}
