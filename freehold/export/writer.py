"""Writing a GGUF file from Hugging Face weights, with the ``gguf`` package.

The base model's GGUF is the template: every metadata field (architecture hyperparameters,
every ``tokenizer.*`` field, the chat template, licence) is copied from it, so llama.cpp
tokenizes and formats the exported model exactly as it did the base. Only the tensors come
from the (fine-tuned, merged) safetensors:

- names are mapped with ``gguf.TensorNameMap`` (the converter's own table);
- llama.cpp's q/k row permutation is re-applied (transformers undoes it on load, for llama);
- Gemma's RMSNorm weights get their +1 back (transformers subtracts it on load);
- a tied ``lm_head`` is skipped; tensors the HF side lacks (e.g. ``rope_freqs``) are copied
  from the base GGUF.

Norms and other 1-D tensors stay F32, as llama.cpp's converter writes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from freehold.errors import InvalidModelError, UsageError
from freehold.progress import ProgressFn, emit

WRITE_TYPES = ("f32", "f16", "q8_0")
# Architectures whose HF <-> GGUF tensor transforms we know (transformers' GGUF loader
# undoes exactly these); anything else could export silently wrong weights.
SUPPORTED = ("llama", "qwen2", "qwen3", "gemma2", "gemma3")
_SKIP_FIELDS = ("GGUF.", "general.architecture", "general.file_type", "general.quantization_version",
                "split.")


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp's convert_hf_to_gguf LlamaModel.permute (rotary halves -> interleaved pairs).
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _hf_tensors(hf_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    from safetensors import safe_open

    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise InvalidModelError(f"no safetensors weights in {hf_dir}", "export a model with full-precision weights")
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():  # noqa: SIM118 - safe_open has no __iter__
                yield name, st.get_tensor(name).float().numpy()


def _field_value(field: Any) -> tuple[Any, Any, Any]:
    import gguf

    vtype = field.types[0]
    sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
    return field.contents(), vtype, sub


def write_gguf(hf_dir: Path, template_gguf: Path | None, out: Path, outtype: str = "f16",
               chat_template: str | None = None, progress: ProgressFn | None = None,
               license: str | None = None) -> Path:
    """Write ``hf_dir``'s weights as a GGUF with ``template_gguf``'s metadata (or, with None, metadata
    built from the Hugging Face files themselves: ``hf_meta``). ``license``: the licence expression
    the file states (``general.license``), e.g. what a derivative inherited; None keeps the template's."""
    import gguf

    from freehold.export.hf_meta import hf_arch, hf_metadata

    if outtype not in WRITE_TYPES:
        raise UsageError(f"the GGUF writer writes {', '.join(WRITE_TYPES)}, not {outtype}",
                         "quantize other types with freehold.export.quantize_gguf")
    hf_config = json.loads((hf_dir / "config.json").read_text())
    config = hf_config.get("text_config", hf_config)
    reader = gguf.GGUFReader(str(template_gguf)) if template_gguf is not None else None
    arch = str(reader.fields["general.architecture"].contents()) if reader is not None else hf_arch(hf_config)
    if arch not in SUPPORTED:
        raise UsageError(f"exporting {arch} models to GGUF is not supported yet",
                         f"supported architectures: {', '.join(SUPPORTED)}")
    n_layers = int(config["num_hidden_layers"])
    n_head, n_kv = int(config["num_attention_heads"]), int(config.get("num_key_value_heads") or
                                                            config["num_attention_heads"])
    model_arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    names = gguf.get_tensor_name_map(model_arch, n_layers)
    base_tensors = {t.name: t for t in reader.tensors} if reader is not None else None

    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    writer = gguf.GGUFWriter(str(out), arch)
    if reader is None:
        hf_metadata(hf_dir, hf_config, writer, chat_template)
    else:
        for key, field in reader.fields.items():
            if key.startswith(_SKIP_FIELDS) or (chat_template and key == gguf.Keys.Tokenizer.CHAT_TEMPLATE):
                continue
            if license and key.startswith(gguf.Keys.General.LICENSE):  # .name and .link describe the old one
                continue
            value, vtype, sub = _field_value(field)
            writer.add_key_value(key, value, vtype, sub_type=sub)
        if chat_template:
            writer.add_chat_template(chat_template)
    if license:
        writer.add_license(license)
    writer.add_file_type(file_type)
    if outtype == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    hf = list(_hf_tensors(hf_dir))
    has_head = any(n == "lm_head.weight" for n, _ in hf)
    tied = bool(config.get("tie_word_embeddings", False)) or (
        "output.weight" not in base_tensors if base_tensors is not None else not has_head)
    written: set[str] = set()
    for done, (hf_name, data) in enumerate(hf, 1):
        if hf_name == "lm_head.weight" and tied:
            continue
        name = names.get_name(hf_name.replace("model.language_model.", "model."), try_suffixes=(".weight", ".bias"))
        if name is None:
            raise InvalidModelError(f"cannot place tensor {hf_name} in a {arch} GGUF",
                                    "the model has layers the base architecture does not (is it the same family?)")
        if arch == "llama" and name.endswith("attn_q.weight"):
            data = _permute(data, n_head)
        elif arch == "llama" and name.endswith("attn_k.weight"):
            data = _permute(data, n_kv)
        elif arch.startswith("gemma") and name.endswith("norm.weight"):
            data = data + 1.0
        if base_tensors is not None and name not in base_tensors:
            raise InvalidModelError(f"tensor {name} (from {hf_name}) is not in the base GGUF",
                                    "export with the GGUF of the model these weights were tuned from")
        encoded, raw_dtype = _encode(data, outtype)
        writer.add_tensor(name, encoded, raw_dtype=raw_dtype)
        written.add(name)
        emit(progress, "writing GGUF", len(hf), done)
    for name, t in (base_tensors or {}).items():
        if name not in written:
            # Tensors llama.cpp computes at conversion time (rope frequencies) that HF lacks.
            if t.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
                raise InvalidModelError(f"the weights have no tensor for {name}",
                                        "export the full model, not a subset of its layers")
            writer.add_tensor(name, np.asarray(t.data).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _encode(data: np.ndarray, outtype: str) -> tuple[np.ndarray, Any]:
    import gguf

    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim < 2 or outtype == "f32":
        return data, None
    q8 = gguf.GGMLQuantizationType.Q8_0
    if outtype == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[q8][0] == 0:
        return gguf.quants.quantize(data, q8), q8
    return data.astype(np.float16), None  # f16, and rows Q8_0 blocks do not divide (llama.cpp's fallback too)
