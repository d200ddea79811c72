"""The model side of training: load the base, apply LoRA, run one optimizer step.

``StepRunner.step`` is the single place where weights change. The training loop and the
ledger's replay both call it, so a replayed step does exactly the arithmetic of the
original one (same micro-batches, same order, same learning rate).

Speed on a CPU comes from four choices: no compute on padding (micro-batches of similar
length, right-padded, no attention mask needed under a causal mask), the vocabulary
projection applied only at the assistant positions that carry a loss (the LM head is a
fifth of SmolLM2's FLOPs and its logits most of the activation memory), one thread per
physical core, and bf16 autocast where the CPU has bf16 matmul instructions (avx512_bf16,
AMX: bf16 matmuls ran 2-3x the fp32 rate on a 2-core EPYC, a whole step 1.5x) with fp32
elsewhere (without those instructions bf16 is emulated and far slower).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from freehold.config import cpu_has_bf16
from freehold.errors import DependencyError, InvalidModelError, TrainingError, UsageError
from freehold.train.config import TuneConfig
from freehold.train.data import IGNORE, Example


def imports() -> tuple[Any, Any, Any]:
    try:
        import peft
        import torch
        import transformers
    except ImportError as exc:
        raise DependencyError(f"training needs PyTorch, transformers and peft ({exc.name} is missing)",
                              "pip install torch==2.13.0 transformers peft") from exc
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # our own progress display owns the terminal
    return torch, transformers, peft


def choose_device(requested: str) -> str:
    torch, _, _ = imports()
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but PyTorch sees no CUDA GPU",
                            "leave --device at auto to train on the CPU")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def choose_precision(requested: str, device: str) -> str:
    """The precision a run trains in: what was asked, or for auto the faster one on this hardware."""
    if requested != "auto":
        return requested
    if device == "cuda":
        torch, _, _ = imports()
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def set_threads(threads: int) -> None:
    torch, _, _ = imports()
    torch.set_num_threads(threads)


def load_base(hf_dir: Path, device: str) -> tuple[Any, Any]:
    """(model in float32 on ``device``, fast tokenizer) from a transformers directory."""
    torch, transformers, _ = imports()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
        model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    except (ValueError, OSError, KeyError) as exc:
        raise InvalidModelError(f"transformers cannot load the base model: {exc}",
                                "check that the base is a causal language model transformers supports") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError("the base model's tokenizer has no fast (Rust) version, which training needs to "
                            "locate assistant tokens", "use a model with a tokenizer.json")
    model.config.use_cache = False
    return model.to(device), tokenizer


def apply_lora(model: Any, cfg: TuneConfig, seed: int) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter; its initial weights depend only on ``seed``."""
    torch, _, peft = imports()
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in cfg.target_modules if t not in names]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if isinstance(m, torch.nn.Linear)} - {"lm_head"})
        raise UsageError(f"--target-modules {', '.join(missing)} not found in this model",
                          f"its linear layers are: {', '.join(linear)}")
    torch.manual_seed(seed)
    config = peft.LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                             target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers API deprecated in v5
        return peft.get_peft_model(model, config)


def trainable_state(model: Any) -> dict[str, Any]:
    """The trainable tensors by name (what the ledger's weight digests cover)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def adapter_state(model: Any) -> dict[str, Any]:
    """The adapter in PEFT's file naming (``adapter_model.safetensors``)."""
    _, _, peft = imports()
    return {k: v.detach().cpu().contiguous() for k, v in peft.get_peft_model_state_dict(model).items()}


def load_adapter_state(model: Any, tensors: dict[str, Any]) -> None:
    _, _, peft = imports()
    result = peft.set_peft_model_state_dict(model, tensors)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise TrainingError(f"the checkpoint's adapter does not fit this model ({unexpected[0]} ...)",
                            "resume with the same base model and --lora-r/--target-modules")


def count_parameters(model: Any) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def lr_at(step: int, total: int, peak: float, warmup_ratio: float) -> float:
    """Linear warmup then cosine decay to 10% of the peak (a pure function: nothing to restore)."""
    warmup = max(1, math.ceil(total * warmup_ratio)) if warmup_ratio > 0 else 0
    if step <= warmup:
        return peak * step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


class StepRunner:
    """Forward, backward and the AdamW update for LoRA weights."""

    def __init__(self, model: Any, cfg: TuneConfig, device: str) -> None:
        torch, _, _ = imports()
        self.torch = torch
        self.model = model
        self.cfg = cfg
        self.device = device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = self.new_optimizer()
        base = model.get_base_model()
        self.decoder = base.get_decoder()
        self.head = base.get_output_embeddings()
        # Models that rescale logits (softcapping) go through the full forward instead.
        self.direct = self.decoder is not None and self.head is not None and not getattr(
            base.config, "final_logit_softcapping", None)
        self.base = base

    def new_optimizer(self) -> Any:
        # foreach=False: the plain per-parameter loop, whose arithmetic does not depend on how
        # tensors are grouped; LoRA tensors are few and small, so it costs nothing measurable.
        # On CUDA the fused kernel instead: one launch for all tensors (GPU runs are not bit-exact anyway).
        cuda = self.device == "cuda"
        return self.torch.optim.AdamW(self.params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay,
                                      betas=(0.9, 0.999), eps=1e-8, foreach=False if not cuda else None,
                                      fused=True if cuda else None)

    def _autocast(self) -> Any:
        torch = self.torch
        if self.cfg.precision == "bf16":
            return torch.autocast("cuda" if self.device == "cuda" else "cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def collate(self, examples: Sequence[Example]) -> tuple[Any, Any]:
        torch = self.torch
        width = max(e.n_tokens for e in examples)
        ids = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
        for row, e in enumerate(examples):
            ids[row, : e.n_tokens] = torch.tensor(e.input_ids)
            labels[row, : e.n_tokens] = torch.tensor(e.labels)
        return ids.to(self.device), labels.to(self.device)

    def loss_sum(self, examples: Sequence[Example]) -> Any:
        """Summed cross-entropy over the assistant tokens of one micro-batch."""
        torch = self.torch
        ids, labels = self.collate(examples)
        targets = labels[:, 1:]
        mask = targets != IGNORE
        with self._autocast():
            if self.direct:
                # Right padding under a causal mask: real tokens never attend to the padding,
                # so no attention mask is needed and SDPA takes its fast causal path.
                hidden = self.decoder(input_ids=ids, use_cache=False).last_hidden_state
                logits = self.head(hidden[:, :-1][mask])
            else:
                logits = self.base(input_ids=ids, use_cache=False).logits[:, :-1][mask]
        return torch.nn.functional.cross_entropy(logits.float(), targets[mask], reduction="sum")

    def step(self, batches: Sequence[Sequence[Example]], lr: float) -> tuple[float, int]:
        """One optimizer step over ``batches`` (micro-batches); returns (mean loss, tokens)."""
        torch = self.torch
        self.model.train()
        n_targets = sum(e.n_targets for mb in batches for e in mb)
        total = 0.0
        for mb in batches:
            loss = self.loss_sum(mb)
            (loss / n_targets).backward()
            total += float(loss.detach())
        if self.cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm, foreach=False)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        mean = total / n_targets
        if not math.isfinite(mean):
            raise TrainingError(f"the loss became {mean}", "lower --lr (e.g. --lr 1e-4) and --resume")
        return mean, sum(e.n_tokens for mb in batches for e in mb)

    def eval_loss(self, examples: Sequence[Example], batch_tokens: int) -> float:
        from freehold.train.data import micro_batches

        torch = self.torch
        self.model.eval()
        order = sorted(range(len(examples)), key=lambda i: examples[i].n_tokens)
        total, n = 0.0, 0
        with torch.no_grad():
            for mb in micro_batches(order, [e.n_tokens for e in examples], batch_tokens):
                batch = [examples[i] for i in mb]
                total += float(self.loss_sum(batch))
                n += sum(e.n_targets for e in batch)
        self.model.train()
        return total / max(1, n)


def rng_state() -> dict[str, Any]:
    torch, _, _ = imports()
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch, _, _ = imports()
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

