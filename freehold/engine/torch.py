"""The PyTorch/transformers backend: the same store model, in full precision, for training
and evaluation (and generation when a model has no GGUF).

A GGUF model is dequantised by transformers once (about 24 s for SmolLM2) and saved into
the store as a *derived* safetensors artefact, so later loads take seconds.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from freehold.engine.base import SamplingParams, score_token
from freehold.errors import DependencyError, EngineError, InvalidModelError
from freehold.progress import ProgressFn, emit
from freehold.store.manifest import Manifest, MediaType

if TYPE_CHECKING:
    from freehold.store import ModelEntry, Store

DERIVED_HF = "hf-safetensors-f32"


def _link_layers(store: Store, manifest: Manifest, target: Path) -> Path:
    """A directory of symlinks named as the original files, pointing at the blobs."""
    target.mkdir(parents=True, exist_ok=True)
    for layer in manifest.layers:
        filename = layer.annotations.get("filename")
        if layer.media_type == MediaType.TEMPLATE or not filename or "/" in filename:
            continue
        link = target / filename
        blob = store.blob_path(layer.digest).resolve()
        if link.is_symlink() and link.resolve() == blob:
            continue
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(blob, link)
    return target


def hf_directory(store: Store, entry: ModelEntry, progress: ProgressFn | None = None) -> Path:
    """A transformers-loadable directory for a store model (converting a GGUF once)."""
    cache = store.home / "cache" / "hf"
    if entry.manifest.layer(MediaType.SAFETENSORS) is not None:
        return _link_layers(store, entry.manifest, cache / entry.manifest_digest[7:23])
    gguf = entry.manifest.layer(MediaType.GGUF)
    if gguf is None:
        raise InvalidModelError(f"{entry.name} has no weights the PyTorch backend can load",
                                "import a GGUF file or a Hugging Face safetensors directory")
    derived = store.derived(gguf.digest, DERIVED_HF)
    if derived is None:
        derived = convert_gguf_to_hf(store, gguf.digest, entry, progress)
    return _link_layers(store, derived, cache / gguf.digest[7:23])


def convert_gguf_to_hf(store: Store, gguf_digest: str, entry: ModelEntry,
                       progress: ProgressFn | None = None) -> Manifest:
    torch, transformers = _imports()
    emit(progress, f"dequantising {entry.name} for PyTorch (once)")
    blob = store.blob_path(gguf_digest)
    with store.temp_dir("dequantise") as tmp_s:
        tmp = Path(tmp_s)
        os.symlink(blob.resolve(), tmp / "model.gguf")
        try:
            tok = transformers.AutoTokenizer.from_pretrained(tmp, gguf_file="model.gguf")
            model = transformers.AutoModelForCausalLM.from_pretrained(tmp, gguf_file="model.gguf",
                                                                      dtype=torch.float32)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise InvalidModelError(f"transformers cannot load {entry.name}'s GGUF: {exc}",
                                    "this architecture or quantization may not be supported by "
                                    "transformers' GGUF loader; import the Hugging Face weights instead") from exc
        # save_pretrained refuses a model that still claims to be quantized.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        out = tmp / "hf"
        model.save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
        del model
        layers = []
        for f in sorted(out.iterdir()):
            media = (MediaType.SAFETENSORS if f.suffix == ".safetensors" else
                     MediaType.HF_CONFIG if f.name == "config.json" else MediaType.TOKENIZER)
            layers.append(store.put_file_blob(f, media))
        manifest = Manifest("derived", f"{entry.name}#{DERIVED_HF}", {"source_digest": gguf_digest,
                                                                      "dtype": "float32"}, layers,
                            {"type": "dequantised", "from": gguf_digest})
        store.put_derived(gguf_digest, DERIVED_HF, manifest)
        shutil.rmtree(out, ignore_errors=True)
        return manifest


def _imports() -> tuple[Any, Any]:
    # transformers' GGUF loader draws its own tqdm bar; Freehold reports progress itself.
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise DependencyError("PyTorch and transformers are needed for this",
                              "pip install torch==2.13.0 transformers") from exc
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # Freehold draws its own progress
    return torch, transformers


class TorchBackend:
    name = "pytorch"

    def __init__(self, directory: Path, n_ctx: int, threads: int, device: str | None = None) -> None:
        torch, transformers = _imports()
        self.torch = torch
        torch.set_num_threads(threads)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
        except (ValueError, OSError, KeyError) as exc:
            raise InvalidModelError(f"transformers cannot load {directory}: {exc}",
                                    "check the model's config.json and tokenizer files") from exc
        self.model.to(self.device).eval()
        limit = getattr(self.model.config, "max_position_embeddings", None) or n_ctx
        self.n_ctx = min(n_ctx, int(limit))
        self._byte_cache: dict[int, bytes] = {}

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special)["input_ids"])

    def token_bytes(self, token: int) -> bytes:
        cached = self._byte_cache.get(token)
        if cached is None:
            # Decoding a token alone loses the leading space of SentencePiece pieces;
            # decode it after a fixed prefix token and strip the prefix instead.
            tok = self.tokenizer
            piece = tok.convert_ids_to_tokens(token)
            if isinstance(piece, str) and piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
                cached = bytes([int(piece[3:5], 16)])
            else:
                text = tok.convert_tokens_to_string([piece]) if isinstance(piece, str) else ""
                if isinstance(piece, str) and piece.startswith("▁"):
                    text = " " + text.lstrip(" ")
                cached = text.encode("utf-8")
            self._byte_cache[token] = cached
        return cached

    def is_eog(self, token: int) -> bool:
        eos = self.tokenizer.eos_token_id
        gen_cfg = getattr(self.model, "generation_config", None)
        extra = getattr(gen_cfg, "eos_token_id", None) if gen_cfg is not None else None
        ids = {eos} | (set(extra) if isinstance(extra, list) else {extra})
        return token in ids

    def special_token_text(self, which: str) -> str | None:
        return self.tokenizer.bos_token if which == "bos" else self.tokenizer.eos_token

    def _sample(self, logits: Any, params: SamplingParams, history: list[int], gen: Any) -> int:
        torch = self.torch
        logits = logits.float()
        if params.repeat_penalty != 1.0 and history:
            idx = torch.tensor(sorted(set(history[-64:])), device=logits.device)
            vals = logits[idx]
            logits[idx] = torch.where(vals > 0, vals / params.repeat_penalty, vals * params.repeat_penalty)
        if params.greedy:
            return int(torch.argmax(logits))
        if params.top_k > 0:
            kth = torch.topk(logits, min(params.top_k, logits.shape[-1])).values[-1]
            logits = torch.where(logits < kth, torch.full_like(logits, -float("inf")), logits)
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.min_p > 0:
            probs = torch.where(probs < probs.max() * params.min_p, torch.zeros_like(probs), probs)
        if params.top_p < 1:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, 0) - sorted_p < params.top_p
            mask = torch.zeros_like(probs, dtype=torch.bool)
            mask[order[keep]] = True
            probs = torch.where(mask, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
        return int(torch.multinomial(probs.cpu(), 1, generator=gen))

    def generate(self, tokens: Sequence[int], params: SamplingParams) -> Iterator[int]:
        if params.grammar is not None and not params.grammar_triggers:
            from freehold.errors import UsageError

            raise UsageError("grammar-constrained output needs the llama.cpp backend", "use --backend llama")
        torch = self.torch
        gen = torch.Generator().manual_seed(params.seed if params.seed is not None else
                                            int.from_bytes(os.urandom(4), "little"))
        history = list(tokens)
        ids = torch.tensor([history], device=self.device)
        past = None
        # transformers 5 renamed past_key_values to cache; support both.
        cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        with torch.inference_mode():
            while True:
                out = self.model(input_ids=ids, use_cache=True, **{cache_arg: past})
                past = out.get(cache_arg)
                logits = out.logits[0, -1]
                token = self._sample(logits.clone(), params, history, gen)
                history.append(token)
                yield (score_token(logits.float().cpu().numpy(), token, params.logprobs)
                       if params.logprobs is not None else token)
                ids = torch.tensor([[token]], device=self.device)

    def logits(self, tokens: Sequence[int]) -> Any:
        torch = self.torch
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([list(tokens)], device=self.device))
        return out.logits[0].float().cpu().numpy()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        torch = self.torch
        vectors = []
        with torch.inference_mode():
            for text in texts:
                ids = torch.tensor([self.tokenize(text)], device=self.device)
                if ids.shape[1] > self.n_ctx:
                    raise EngineError(f"input is {ids.shape[1]} tokens, over the {self.n_ctx}-token context",
                                      "shorten the input")
                hidden = self.model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
                v = hidden.mean(0)
                vectors.append((v / v.norm()).tolist())
        return vectors

    def close(self) -> None:
        self.model = None
