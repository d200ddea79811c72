"""Tiny generated models for tests and benchmarks (no downloads).

``write_tiny_hf`` and ``write_tiny_gguf`` write the *same* random llama-architecture model
(2 layers, 64 dims, a byte-level BPE vocabulary of 256 bytes + a few merges + ChatML
specials) as a Hugging Face directory and as a GGUF file, so both backends can be
compared on identical weights. The GGUF is written the way llama.cpp's converter writes
it, including the q/k row permutation that transformers undoes on load.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from freehold.engine.chat import FAMILY_TEMPLATES

if TYPE_CHECKING:
    from freehold.ledger import Record
    from freehold.store import ModelEntry, Store

CHATML = FAMILY_TEMPLATES["chatml"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGE_PAIRS = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("a", "n"), ("e", "r"), ("o", "n"),
               ("Ġ", "a"), ("r", "e"), ("Ġ", "s")]


@lru_cache(maxsize=1)
def _byte_chars() -> list[str]:
    # GPT-2's bytes_to_unicode: printable stand-ins for all 256 bytes.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs, strict=True))
    return [chr(table[b]) for b in range(256)]


def tiny_vocab() -> tuple[list[str], list[str]]:
    """(tokens in id order, merges 'a b'). Specials first, like SmolLM2."""
    tokens = list(SPECIALS) + _byte_chars() + ["".join(p) for p in MERGE_PAIRS]
    return tokens, [f"{a} {b}" for a, b in MERGE_PAIRS]


def tiny_config(n_layers: int = 2, dim: int = 64, n_heads: int = 4, n_kv_heads: int = 2,
                ffn: int = 128, ctx: int = 512) -> dict[str, Any]:
    tokens, _ = tiny_vocab()
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
        "intermediate_size": ffn, "num_hidden_layers": n_layers, "num_attention_heads": n_heads,
        "num_key_value_heads": n_kv_heads, "head_dim": dim // n_heads, "max_position_embeddings": ctx,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": len(tokens), "tie_word_embeddings": True,
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "hidden_act": "silu",
        "torch_dtype": "float32", "attention_bias": False, "mlp_bias": False,
    }


def tiny_weights(config: dict[str, Any], seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights in Hugging Face naming and layout (float32)."""
    rng = np.random.default_rng(seed)
    d, f, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    hd = config["head_dim"]
    kv = config["num_key_value_heads"] * hd

    def w(*shape: int, scale: float = 0.08) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    out = {"model.embed_tokens.weight": w(v, d, scale=0.5), "model.norm.weight": np.ones(d, np.float32)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out |= {
            p + "input_layernorm.weight": np.ones(d, np.float32),
            p + "post_attention_layernorm.weight": np.ones(d, np.float32),
            p + "self_attn.q_proj.weight": w(d, d), p + "self_attn.k_proj.weight": w(kv, d),
            p + "self_attn.v_proj.weight": w(kv, d), p + "self_attn.o_proj.weight": w(d, d),
            p + "mlp.gate_proj.weight": w(f, d), p + "mlp.up_proj.weight": w(f, d),
            p + "mlp.down_proj.weight": w(d, f),
        }
    return out


def write_tiny_hf(directory: Path, seed: int = 0, **config_overrides: Any) -> Path:
    """A Hugging Face model directory: config.json, model.safetensors, tokenizer files."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_config(**config_overrides)
    (directory / "config.json").write_text(json.dumps(config, indent=1))
    save_file(tiny_weights(config, seed), str(directory / "model.safetensors"), metadata={"format": "pt"})
    tokens, _ = tiny_vocab()
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=list(MERGE_PAIRS))
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "chat_template": CHATML,
        "add_bos_token": False, "model_max_length": config["max_position_embeddings"],
    }, indent=1))
    (directory / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    return directory


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp's convert_hf_to_gguf LlamaModel.permute: rotary halves -> interleaved.
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path: Path, seed: int = 0, f16: bool = False, chat_template: str | None = CHATML,
                    license: str | None = "apache-2.0", **config_overrides: Any) -> Path:
    """The same model as ``write_tiny_hf`` as a GGUF file readable by llama.cpp and transformers."""
    import gguf

    config = tiny_config(**config_overrides)
    weights = tiny_weights(config, seed)
    tokens, merges = tiny_vocab()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("Tiny Llama")
    w.add_basename("tiny")
    w.add_size_label("0.1M")
    if license:
        w.add_license(license)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_head_count_kv(config["num_key_value_heads"])
    w.add_rope_dimension_count(config["head_dim"])
    w.add_rope_freq_base(config["rope_theta"])
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(0)
    w.add_add_bos_token(False)
    if chat_template:
        w.add_chat_template(chat_template)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    per_layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
                 "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for hf_name, tensor in weights.items():
        if hf_name in names:
            name = names[hf_name]
        else:
            _, _, idx, *rest = hf_name.split(".")
            module = ".".join(rest[:-1])
            name = f"blk.{idx}.{per_layer[module]}.weight"
            if module == "self_attn.q_proj":
                tensor = _permute(tensor, config["num_attention_heads"])
            elif module == "self_attn.k_proj":
                tensor = _permute(tensor, config["num_key_value_heads"])
        if f16 and tensor.ndim == 2:
            tensor = tensor.astype(np.float16)
        w.add_tensor(name, tensor)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def point_at(store: Store, name: str, record: Record, kind: str = "model") -> ModelEntry:
    """Re-point an entry's manifest at another ledger record, as a tampered or hand-edited store
    would (tests of verify). Real writers commit once, through ``freehold.home.commit_recorded``."""
    entry = store.get(name, kind)
    manifest = entry.manifest.with_lineage(ledger_head=record.hash, ledger_record=record.number)
    return store.commit(kind, entry.name, manifest)


def import_orders(store: Any, directory: Path, rows: int = 60, name: str = "orders") -> Any:
    """A small chat dataset in the store (customers asking where their order is), with held-out
    splits: for tests that need a user's data (perplexity, calibration, healing)."""
    from freehold.config import load_settings
    from freehold.data import import_dataset

    path = directory / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps({"messages": [
        {"role": "user", "content": f"What is the status of order {i}?"},
        {"role": "assistant", "content": f"Order {i} shipped on {i % 28 + 1} December."}]}) for i in range(rows)))
    return import_dataset([path], name, store=store, settings=load_settings())
