"""The fine-tuning configuration: one dataclass of every choice a run depends on.

Defaults come first, then flags (``TuneConfig.with_overrides``); ``validate`` reports every
problem at once. The resolved config is written beside the run (``runs/NAME/config.json``)
and into the ledger's ``config`` record, so a run can be resumed and replayed from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from freehold.errors import UsageError

# What to do with an example over --max-seq-len. "turns" (the default: one long mail thread
# must not block a run) keeps the whole turns that fit, ending on an assistant reply; it is
# a policy of its own rather than a new "truncate", because a resume or a replay re-encodes
# with the saved policy, and runs saved with "truncate" must get the same tokens again.
OVERLONG_POLICIES = ("turns", "truncate", "drop", "error")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
# LoRA on the attention projections: the usual choice for style/format tunes, and the
# smallest set that moves a chat model measurably (1.84M params on SmolLM2-135M at r=16).
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TuneConfig:
    base: str
    dataset: str
    output: str
    epochs: int = 2
    lr: float = 2e-4  # the common LoRA learning rate; higher diverges on small models
    lora_r: int = 16
    lora_alpha: int = 32  # alpha = 2r keeps the adapter's scale at 2 whatever r is
    # 0 by default: on a CPU, LoRA dropout's random masks cost ~8% of each step (measured on
    # SmolLM2, 2 threads); raise it (0.05-0.1) for very small datasets that overfit.
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    max_seq_len: int | None = None  # None: the model's context, at most 2048
    # Padded tokens per micro-batch: the memory knob. Examples are grouped by length, so
    # nearly all of these are real tokens.
    batch_tokens: int = 1024
    grad_accum: int = 1  # micro-batches per optimizer step
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    max_steps: int | None = None
    eval_every: int = 50  # validation loss every N steps (0: off)
    save_every: int = 50  # checkpoint every N steps (0: only at the end and on signals)
    threads: int | None = None  # None: the settings' thread count (physical cores)
    overlong: str = "turns"  # see OVERLONG_POLICIES
    device: str = "auto"
    # Matmul precision. auto: bf16 autocast on CUDA and on CPUs with bf16 instructions
    # (avx512_bf16 / AMX: measured 1.5x faster per step than fp32 on a 2-core EPYC, loss
    # within 0.1%), fp32 elsewhere. Trainable LoRA weights and the optimizer stay fp32.
    precision: str = "auto"
    quant: str = "q8_0"  # the served GGUF; q8_0 keeps a short tune's effect, q4 may erase it
    # A knowledge index: train on the dataset with each row's sources in its prompt (the
    # grounded dataset freehold.knowledge.ground_dataset makes), so the model learns to read
    # them; serve it with the same index (freehold run NAME --knowledge KB).
    knowledge: str | None = None
    # The chat template to teach: a family name (gemma, chatml) or a Jinja file. None: the
    # base's own, or for a base model that has none (Gemma 3 270M) its family's.
    template: str | None = None
    # The tuned model's licence label; None: what it inherits from the base and the dataset
    # (freehold.licences.inherit). A label that drops an inherited licence is refused.
    license: str | None = None
    ledger: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        problems = []
        positive = {"epochs": self.epochs, "lora_r": self.lora_r, "lora_alpha": self.lora_alpha,
                    "batch_tokens": self.batch_tokens, "grad_accum": self.grad_accum}
        for name, value in positive.items():
            if value <= 0:
                problems.append(f"--{name.replace('_', '-')} must be positive, got {value}")
        for name, opt in {"max_seq_len": self.max_seq_len, "max_steps": self.max_steps,
                          "threads": self.threads}.items():
            if opt is not None and opt <= 0:
                problems.append(f"--{name.replace('_', '-')} must be positive, got {opt}")
        if not self.lr > 0 or self.lr > 1:
            problems.append(f"--lr must be in (0, 1], got {self.lr}")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.eval_every < 0 or self.save_every < 0:
            problems.append("--eval-every and --save-every must be 0 (off) or positive")
        if self.overlong not in OVERLONG_POLICIES:
            problems.append(f"--overlong must be one of {', '.join(OVERLONG_POLICIES)}, got {self.overlong!r}")
        if self.device not in DEVICES:
            problems.append(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not self.target_modules:
            problems.append("--target-modules names no module")
        if self.max_seq_len is not None and self.batch_tokens < self.max_seq_len:
            problems.append(f"--batch-tokens ({self.batch_tokens}) is below --max-seq-len ({self.max_seq_len}): "
                            "the longest example would not fit in a micro-batch")
        from freehold.export.quantize import QUANTS

        if self.quant not in QUANTS:
            problems.append(f"--quant must be one of {', '.join(QUANTS)}, got {self.quant!r}")
        if problems:
            raise UsageError("invalid tuning options:\n  " + "\n  ".join(problems), "fix the options above")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], device: str | None = None) -> TuneConfig:
        """The config saved with a run; ``device`` is the device it resolved to (for old runs)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        # Runs saved before the option trained under bf16 autocast on CUDA and in fp32 on the CPU.
        values.setdefault("precision", "bf16" if device == "cuda" else "fp32")
        if "target_modules" in values:
            values["target_modules"] = tuple(values["target_modules"])
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> TuneConfig:
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def hyperparameters(self) -> dict[str, Any]:
        """What the ledger's config record holds (everything but names and switches)."""
        d = self.to_dict()
        for key in ("base", "dataset", "output", "ledger", "extra", "threads", "seed"):
            d.pop(key)
        return d
