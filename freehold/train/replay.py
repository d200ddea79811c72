"""The ledger's replayer for LoRA runs: ``freehold audit replay NAME --sample 1%``.

``factory`` (named ``freehold.train.replay:factory`` in each run's config record) rebuilds
the run's starting point from the store: the same base weights (checked by manifest
digest), the same dataset (checked by Merkle root), the same tokenization, seed and
thread count. ``run_step`` then performs a recorded step with ``StepRunner.step``, the
very function training used, on the recorded example ids, micro-batches and learning rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from freehold.errors import LedgerError
from freehold.train import checkpoint as ckpt
from freehold.train.config import TuneConfig
from freehold.train.data import Example, encode
from freehold.train.model import (
    StepRunner,
    apply_lora,
    load_adapter_state,
    load_base,
    set_rng_state,
    set_threads,
    trainable_state,
)


class LoraReplayer:
    def __init__(self, store: Any, config: Any) -> None:
        from freehold.engine.torch import hf_directory
        from freehold.store import MediaType
        from freehold.train.trainer import dataset_rows, render_fn

        p = config.payload
        missing = [k for k in ("config", "run_dir", "base_name", "base_digest", "dataset_name") if k not in p]
        if missing:
            raise LedgerError(f"run {p.get('run')}'s config record lacks {', '.join(missing)}",
                              "replay needs a run recorded by this version of 'freehold tune'")
        self.cfg = TuneConfig.from_dict(p["config"], device=(p.get("hyperparameters") or {}).get("device"))
        self.run_dir = Path(p["run_dir"])
        base = store.get(p["base_name"])
        if base.manifest_digest != p["base_digest"]:
            raise LedgerError(f"the base model {p['base_name']} in this store is not the one the run trained on",
                              "import the original base model under its recorded name")
        dataset = store.get(p["dataset_name"], kind="dataset")
        root = str(dataset.manifest.config.get("merkle_root"))
        recorded = next((r["digest"] for r in p.get("inputs", []) if r.get("kind") == "merkle"), None)
        if recorded and recorded != "sha256:" + root:
            raise LedgerError(f"dataset {p['dataset_name']} in this store has a different Merkle root than the run's",
                              "replay needs the dataset the run trained on")
        hyper = p.get("hyperparameters", {})
        hf_dir = hf_directory(store, base)
        set_threads(int(p.get("threads") or 1))
        device = "cpu" if hyper.get("device", "cpu") == "cpu" else str(hyper["device"])
        model, tokenizer = load_base(hf_dir, device)
        template = store.text_layer(base.manifest, MediaType.TEMPLATE) or ""
        examples, _ = encode(dataset_rows(store, dataset, "train"), tokenizer, render_fn(template, tokenizer),
                             int(hyper.get("max_seq_len") or 2048), self.cfg.overlong)
        self.by_id: dict[str, Example] = {e.id: e for e in examples}
        self.model = apply_lora(model, self.cfg, self.cfg.seed)
        self.runner = StepRunner(self.model, self.cfg, device)
        self.initial = {k: v.clone() for k, v in trainable_state(self.model).items()}

    def restore(self, checkpoint: Any) -> Mapping[str, Any]:
        import torch

        if checkpoint is None:
            with torch.no_grad():
                for name, param in self.model.named_parameters():
                    if name in self.initial:
                        param.copy_(self.initial[name])
            self.runner.optimizer = self.runner.new_optimizer()
            torch.manual_seed(self.cfg.seed + 1)  # as Trainer.build seeds the training RNG
            return trainable_state(self.model)
        path = ckpt.checkpoint_at(self.run_dir, int(checkpoint.payload["step"]))
        if path is None:
            raise LedgerError(f"checkpoint at step {checkpoint.payload['step']} is gone from {self.run_dir}",
                              "replay a span that starts after a checkpoint that still exists, or from the start")
        data = ckpt.load_checkpoint(path)
        load_adapter_state(self.model, data["adapter"])
        self.runner.optimizer.load_state_dict(data["optimizer"])
        set_rng_state(data["rng"])
        return trainable_state(self.model)

    def run_step(self, step: Any) -> tuple[Mapping[str, Any], float]:
        p = step.payload
        try:
            examples = [self.by_id[i] for i in p["example_ids"]]
        except KeyError as exc:
            raise LedgerError(f"step {p['step']} used example {exc.args[0]}, which is not in the dataset now",
                              "replay needs the dataset the run trained on") from exc
        sizes = p.get("micro_batches") or [len(examples)]
        batches, at = [], 0
        for n in sizes:
            batches.append(examples[at:at + n])
            at += n
        loss, _ = self.runner.step(batches, float(p["lr"]))
        return trainable_state(self.model), loss

    def checkpoint_state(self, checkpoint: Any) -> Mapping[str, Any] | None:
        path = ckpt.checkpoint_at(self.run_dir, int(checkpoint.payload["step"]))
        if path is None:
            return None
        # PEFT files drop the adapter name that parameter names carry.
        return ckpt.parameter_tensors(ckpt.load_checkpoint(path)["adapter"])


def factory(store: Any, config: Any, index: Any) -> LoraReplayer:
    """``ReplayTrainer`` factory named in the config records of 'freehold tune' runs."""
    return LoraReplayer(store, config)
