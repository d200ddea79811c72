"""Reading and validating model files: GGUF and Hugging Face (config.json + safetensors).

Validation happens before anything is written to the store, so a corrupt or truncated
file is refused with a clear error and leaves the store untouched.
"""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any

from freehold.errors import InvalidModelError

GGUF_MAGIC = b"GGUF"

# Quantization name for each ggml tensor type id (gguf.GGMLQuantizationType).
_FIX_HINT = "re-download or re-export the file; 'freehold import' only accepts complete files"


def _gguf():
    import gguf  # imported lazily: it pulls numpy and takes ~0.2 s

    return gguf


def _field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None:
        return None
    try:
        return f.contents()
    except Exception:
        return None


def read_gguf_info(path: Path) -> dict[str, Any]:
    """Read and validate a GGUF file's metadata; raise InvalidModelError when unusable."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise InvalidModelError(f"cannot read {path}: {exc.strerror}", "check the path") from exc
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise InvalidModelError(f"{path} is not a GGUF file (bad magic bytes)",
                                "pass a .gguf model file; Hugging Face directories are imported by "
                                "giving the directory path")
    version = struct.unpack("<I", head[4:8])[0]
    if version not in (2, 3):
        raise InvalidModelError(f"{path}: unsupported GGUF version {version}", "convert it with a "
                                "current llama.cpp (GGUF v3)")
    gguf = _gguf()
    try:
        reader = gguf.GGUFReader(str(path), "r")
    except Exception as exc:
        raise InvalidModelError(f"{path} is damaged or truncated: {exc}", _FIX_HINT) from exc
    if not reader.tensors:
        raise InvalidModelError(f"{path} holds no tensors", _FIX_HINT)
    end = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
    if end > size:
        raise InvalidModelError(f"{path} is truncated: tensor data needs {end} bytes, the file has {size}",
                                _FIX_HINT)
    arch = _field(reader, "general.architecture")
    if not arch:
        raise InvalidModelError(f"{path} has no general.architecture field", _FIX_HINT)

    def arch_field(name: str) -> Any:
        return _field(reader, f"{arch}.{name}")

    file_type = _field(reader, "general.file_type")
    quant: str | None = None
    if file_type is not None:
        try:
            quant = gguf.LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            quant = None
    if quant is None or quant == "GUESSED":
        counts = Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) > 1)
        quant = counts.most_common(1)[0][0] if counts else "unknown"
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    info: dict[str, Any] = {
        "format": "gguf",
        "gguf_version": version,
        "architecture": arch,
        "family": _field(reader, "general.basename") or arch,
        "general_name": _field(reader, "general.name"),
        "size_label": _field(reader, "general.size_label"),
        "finetune": _field(reader, "general.finetune"),
        "license": _field(reader, "general.license"),
        "quantization": quant.upper(),
        "parameters": n_params,
        "tensors": len(reader.tensors),
        "context_length": arch_field("context_length"),
        "embedding_length": arch_field("embedding_length"),
        "block_count": arch_field("block_count"),
        "head_count": arch_field("attention.head_count"),
        "head_count_kv": arch_field("attention.head_count_kv"),
        "vocab_size": arch_field("vocab_size"),
        "tokenizer": _field(reader, "tokenizer.ggml.model"),
        "chat_template": _field(reader, "tokenizer.chat_template"),
        "bos_token_id": _field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _field(reader, "tokenizer.ggml.eos_token_id"),
    }
    if info["vocab_size"] is None:
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        if tokens is not None:
            info["vocab_size"] = len(tokens.data)
    return {k: v for k, v in info.items() if v is not None}


# ---------------------------------------------------------------------------------------
# Hugging Face directories

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "vocab.txt", "added_tokens.json", "generation_config.json",
                   "chat_template.jinja", "chat_template.json")
LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "license.txt")


def _safetensors_header(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise InvalidModelError(f"{path} is truncated (no safetensors header)", _FIX_HINT)
            n = struct.unpack("<Q", raw)[0]
            if n > min(size - 8, 100 << 20):
                raise InvalidModelError(f"{path} is not a valid safetensors file (header length {n})",
                                        _FIX_HINT)
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        raise InvalidModelError(f"{path} is not a valid safetensors file: {exc}", _FIX_HINT) from exc
    end = 8 + n + max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
                      default=0)
    if end > size:
        raise InvalidModelError(f"{path} is truncated: needs {end} bytes, has {size}", _FIX_HINT)
    return header


def _license_from_readme(readme: Path) -> dict[str, str]:
    """The card's ``license``, ``license_name`` and ``license_link`` (the last two say which licence
    when ``license`` is ``other``, as Hugging Face's cards for Llama and Gemma do)."""
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    m = re.match(r"^---\s*\n(.*?)\n---", text, re.S)
    if not m:
        return {}
    out = {}
    for key in ("license", "license_name", "license_link"):
        found = re.search(rf"^{key}:\s*(\S+)", m.group(1), re.M)
        if found:
            out[key] = found.group(1).strip("'\"")
    return out


def read_hf_info(directory: Path) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
    """Validate a Hugging Face model directory; return (info, [(file, media type)])."""
    if not directory.is_dir():
        raise InvalidModelError(f"{directory} is not a directory", "pass a Hugging Face model directory")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise InvalidModelError(f"{directory} has no config.json",
                                "a Hugging Face model directory needs config.json, *.safetensors and "
                                "tokenizer files")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidModelError(f"{config_path} is not valid JSON: {exc}", _FIX_HINT) from exc
    weights = sorted(directory.glob("*.safetensors"))
    if not weights:
        hint = ("convert .bin weights to safetensors first" if list(directory.glob("*.bin"))
                else "the directory must hold model weights as *.safetensors")
        raise InvalidModelError(f"{directory} has no .safetensors weights", hint)
    files: list[tuple[Path, str]] = [(config_path, "application/vnd.freehold.hf.config+json")]
    n_params = 0
    dtypes: Counter[str] = Counter()
    for w in weights:
        header = _safetensors_header(w)
        for key, value in header.items():
            if key == "__metadata__":
                continue
            count = 1
            for dim in value["shape"]:
                count *= int(dim)
            n_params += count
            dtypes[value["dtype"]] += count
        files.append((w, "application/vnd.freehold.model.safetensors"))
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        files.append((index, "application/vnd.freehold.model.safetensors.index+json"))
    tokenizer_files = [directory / n for n in TOKENIZER_FILES if (directory / n).is_file()]
    if not any(p.name in ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt") for p in tokenizer_files):
        raise InvalidModelError(f"{directory} has no tokenizer files",
                                "copy tokenizer.json (or tokenizer.model) and tokenizer_config.json "
                                "from the original model")
    files.extend((p, "application/vnd.freehold.tokenizer") for p in tokenizer_files)
    chat_template = None
    tok_config = directory / "tokenizer_config.json"
    if tok_config.is_file():
        try:
            chat_template = json.loads(tok_config.read_text(encoding="utf-8")).get("chat_template")
        except ValueError:
            chat_template = None
    if (directory / "chat_template.jinja").is_file():
        chat_template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
    if isinstance(chat_template, list):  # named templates: take the default one
        chat_template = next((t.get("template") for t in chat_template if t.get("name") == "default"), None)
    card = _license_from_readme(directory / "README.md")
    license_id = card.get("license")
    if license_id in (None, "other") and (card.get("license_name") or card.get("license_link")):
        license_id = card.get("license_name") or card.get("license_link")
    license_file = next((directory / n for n in LICENSE_FILES if (directory / n).is_file()), None)
    arch_list = config.get("architectures") or []
    info: dict[str, Any] = {
        "format": "safetensors",
        "architecture": config.get("model_type", arch_list[0] if arch_list else "unknown"),
        "hf_architectures": arch_list,
        "family": config.get("model_type"),
        "parameters": n_params,
        "quantization": (dtypes.most_common(1)[0][0] if dtypes else "unknown").upper(),
        "context_length": config.get("max_position_embeddings"),
        "embedding_length": config.get("hidden_size"),
        "block_count": config.get("num_hidden_layers"),
        "head_count": config.get("num_attention_heads"),
        "head_count_kv": config.get("num_key_value_heads"),
        "vocab_size": config.get("vocab_size"),
        "chat_template": chat_template,
        "license": license_id,
        "license_link": card.get("license_link"),
        "license_file": str(license_file) if license_file else None,
    }
    return {k: v for k, v in info.items() if v is not None}, files
