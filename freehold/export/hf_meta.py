"""GGUF metadata for a model that exists only as Hugging Face files (no GGUF to copy it from).

What llama.cpp's ``convert_hf_to_gguf.py`` writes for the simple decoder families, done with
the ``gguf`` package: the hyperparameters from ``config.json``, and a GPT-2-style BPE
tokenizer (tokens with their types, merges, special ids, the chat template) from the
tokenizer files. llama.cpp also needs the name of the pre-tokenizer (how text is split
before BPE); it is read from ``tokenizer.json``'s ``pre_tokenizer`` and must be one whose
llama.cpp name is known here, otherwise the export stops rather than write a model that
tokenizes differently from the one that was trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from freehold.errors import InvalidModelError, UsageError

# HF architectures whose GGUF keys and tensor layout this module writes.
HF_ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}

# Pre-tokenizer regexes llama.cpp knows by name (from its convert_hf_to_gguf.py).
_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")


def _pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    normalizer = tokenizer_json.get("normalizer") or {}

    def unknown(what: str) -> UsageError:
        return UsageError(f"this model's {what} has no llama.cpp equivalent known to Freehold, so a GGUF could "
                          "tokenize differently from the trained model",
                          "import the base model's GGUF (freehold import FILE.gguf) and tune or export from it")

    if normalizer and normalizer.get("type") != "NFC":
        raise unknown(f"normalizer ({json.dumps(normalizer)[:120]})")
    level = steps[-1] if kinds and kinds[-1] == "ByteLevel" else {}
    if level.get("add_prefix_space"):
        raise unknown("pre-tokenizer (ByteLevel with add_prefix_space: llama.cpp adds no space)")
    if kinds == ["ByteLevel"] and level.get("use_regex", True):
        return "gpt-2"  # GPT-2's own split regex inside ByteLevel
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and level.get("use_regex", True):
        return "smollm"  # GPT-2's split, each digit on its own
    split = steps[0]
    if (kinds == ["Split", "ByteLevel"] and not level.get("use_regex", True)
            and split.get("behavior", "Isolated") == "Isolated" and not split.get("invert")):
        regex = (split.get("pattern") or {}).get("Regex")
        if regex == _LLAMA3_REGEX:
            return "llama-bpe"
        if regex == _QWEN2_REGEX:
            return "qwen2"
    raise unknown(f"pre-tokenizer ({json.dumps(pre)[:200]})")


def _looks_special(token: str) -> bool:
    """Added tokens some models leave unmarked that are control tokens all the same (llama.cpp's rule)."""
    return (token in ("<pad>", "<mask>") or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<unused") and token.endswith(">")))


def _tokens(hf_dir: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """Token texts and llama.cpp token types for ids 0..vocab_size-1 (convert_hf_to_gguf's get_vocab_base)."""
    import gguf
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif reverse[i] in added:
            special = (decoder[i].special if i in decoder else False) or _looks_special(reverse[i])
            tokens.append(reverse[i])
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def hf_arch(config: dict[str, Any]) -> str:
    """The GGUF architecture name for the model of ``config`` (its config.json), if this module can describe it."""
    hf_name = (config.get("architectures") or ["?"])[0]
    arch = HF_ARCHITECTURES.get(hf_name)
    if arch is None:
        raise UsageError(f"exporting {hf_name} models without a GGUF of them is not supported yet",
                         f"supported without a GGUF: {', '.join(HF_ARCHITECTURES)}; or import the model's GGUF")
    return arch


def hf_metadata(hf_dir: Path, config: dict[str, Any], writer: Any, chat_template: str | None = None) -> None:
    """Write ``hf_dir``'s hyperparameters (``config``, its config.json) and tokenizer into ``writer``,
    a GGUFWriter for ``hf_arch(config)``. ``chat_template`` overrides the one in the tokenizer files."""
    import gguf
    # transformers 4 writes rope_theta / rope_scaling at the top; 5 nests them in rope_parameters.
    rope = {**(config.get("rope_scaling") or {}), **(config.get("rope_parameters") or {})}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type != "default":
        raise UsageError(f"this model uses RoPE scaling ({rope_type}), which the HF-only export does not write",
                         "import the model's GGUF and export from it")
    rope_theta = float(config.get("rope_theta") or rope.get("rope_theta") or 10000.0)
    tj_path = hf_dir / "tokenizer.json"
    if not tj_path.exists():
        raise InvalidModelError(f"{hf_dir} has no tokenizer.json", "export a model saved with a fast tokenizer")
    tokenizer_json = json.loads(tj_path.read_text())
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise UsageError("only byte-level BPE tokenizers (GPT-2 style) can be written without a GGUF",
                         "import the model's GGUF and export from it")
    pre = _pre_tokenizer_name(tokenizer_json)

    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    vocab_size = int(config.get("vocab_size") or len(model.get("vocab", {})))
    writer.add_name(str(config.get("_name_or_path") or config.get("_model_name_or_path") or hf_dir.name))
    writer.add_context_length(int(config.get("max_position_embeddings") or 2048))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_rope_freq_base(rope_theta)
    writer.add_rope_dimension_count(int(config.get("head_dim") or hidden // heads))
    if config.get("head_dim"):  # as the converter does: models whose head size is not hidden / heads need it
        writer.add_key_length(int(config["head_dim"]))
        writer.add_value_length(int(config["head_dim"]))
    writer.add_vocab_size(vocab_size)
    tokens, types = _tokens(hf_dir, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(hf_dir, load_merges=True, n_vocab=vocab_size)
    if chat_template:
        special.chat_template = chat_template
    if not special.merges:
        raise InvalidModelError(f"{tj_path} has no BPE merges", "export a model saved with its full tokenizer")
    special.add_to_gguf(writer, quiet=True)
