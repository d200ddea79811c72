"""The LoRA training run: every check before work starts, then the loop.

``prepare`` resolves the base and dataset, tokenizes, and checks everything that can go
wrong before a minute is spent (unknown names, empty or malformed data, examples over
the length limit, not enough memory), reporting each with a fix. ``Trainer.train`` runs
the steps: one ledger ``step`` record each, validation every N steps, an atomic
checkpoint every N steps, at the end and on SIGINT/SIGTERM. A resumed run restores the
adapter, optimizer, RNG and step, and rebuilds the same data order from the seed, so it
ends with the same bits as an uninterrupted run (same machine and thread count).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freehold.config import Settings, load_settings
from freehold.engine.chat import ARCHITECTURE_TEMPLATES, FAMILY_MARKERS, FAMILY_TEMPLATES, family_template
from freehold.errors import FreeholdError, ModelNotFoundError, TrainingError, TrainingInterrupted, UsageError
from freehold.progress import Progress, ProgressFn, emit
from freehold.store import MediaType, ModelEntry, Store
from freehold.train import checkpoint as ckpt
from freehold.train.config import TuneConfig
from freehold.train.data import EncodeReport, Example, Plan, check_rows, encode
from freehold.train.model import (
    StepRunner,
    adapter_state,
    apply_lora,
    choose_device,
    choose_precision,
    count_parameters,
    load_adapter_state,
    load_base,
    lr_at,
    rng_state,
    set_rng_state,
    set_threads,
    trainable_state,
)

REPLAYER = "freehold.train.replay:factory"
# Validation on at most this many held-out examples: enough for a stable number, small
# enough that evaluating every N steps costs a few percent of the run.
MAX_EVAL_EXAMPLES = 64


@dataclass
class StepInfo:
    """A tune's "training" progress event, typed: what a display shows after each step."""

    step: int
    total: int
    epoch: int
    loss: float
    lr: float
    tokens_per_s: float
    eta_s: float | None
    val_loss: float | None = None

    @classmethod
    def of(cls, event: Progress) -> StepInfo | None:
        """The step an event reports, or None for an event of another stage."""
        d = event.detail or {}
        if event.status != "training" or "loss" not in d or event.completed is None or event.total is None:
            return None
        return cls(event.completed, event.total, int(d["epoch"]), float(d["loss"]), float(d["lr"]),
                   float(d["tokens_per_s"]), event.eta_s, d.get("val_loss"))


@dataclass
class Session:
    """Everything ``prepare`` resolved and checked."""

    store: Store
    cfg: TuneConfig
    run: str
    run_dir: Path
    base: ModelEntry
    dataset: ModelEntry
    dataset_root: str
    hf_dir: Path
    template: str
    max_seq_len: int
    examples: list[Example]
    val_examples: list[Example]
    report: EncodeReport
    plan: Plan
    device: str
    threads: int
    resume_from: Path | None
    memory_estimate: int
    model: Any = None
    tokenizer: Any = None
    runner: StepRunner | None = None
    initial_weights: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What the run is about to do, for its "prepared" progress event: counts, steps, device,
        memory, and notes a person should read before it starts."""
        r = self.report
        notes = []
        if r.overlong:
            done = [f"{n} {what}" for n, what in ((r.cut_at_turn, "cut after their last assistant turn that fits"),
                                                  (r.cut_at_limit, "cut at the limit"),
                                                  (r.dropped_overlong, "dropped")) if n]
            notes.append(f"{r.overlong} example{'s' if r.overlong != 1 else ''} over the {self.max_seq_len}-token "
                         f"limit (--overlong {self.cfg.overlong}): {', '.join(done)}")
        if "template_note" in self.extra:
            notes.append(f"{self.extra['template_note']} (--template to choose another)")
        licence = self.extra.get("licence")
        if licence is not None and licence.alias:
            notes.append(f"its licence ({licence.expression}) requires a derivative's name to begin with "
                         f"\"{licence.alias.split('-')[0].capitalize()}\": it will also answer to {licence.alias}")
        if "saved_total_steps" in self.extra:
            notes.append(f"{self.extra['saved_total_steps']} steps were planned when the run started; its epochs "
                         f"really have {'+'.join(map(str, self.plan.epoch_steps))}")
        return {"output": self.cfg.output, "run": self.run, "examples": len(self.examples),
                "target_tokens": r.target_tokens, "tokens": r.tokens,
                "dropped": r.dropped_overlong + r.dropped_no_target, "steps": self.plan.total,
                "device": self.device, "precision": self.cfg.precision, "threads": self.threads,
                "memory_estimate": self.memory_estimate,
                "resume_from": self.resume_from.name if self.resume_from else None,
                "template_note": self.extra.get("template_note"),
                "licence": licence.expression if licence is not None else None, "notes": notes}


# -- inputs ----------------------------------------------------------------------------------

def resolve_base(store: Store, name: str) -> ModelEntry:
    try:
        return store.get(name)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(name, exc.close, hint=exc.hint if exc.close else
                                 "run 'freehold models' to list base models, or import one with "
                                 "'freehold import FILE.gguf --name NAME'") from None


def dataset_rows(store: Store, entry: ModelEntry, split: str) -> list[dict[str, Any]]:
    """Rows of one split ([] when the dataset has none). Layers without a split annotation count as
    training data."""
    from freehold.data.rows import read_rows

    return list(read_rows(store, entry.manifest, split))


def render_fn(template_source: str, tokenizer: Any) -> Callable[[list[dict[str, Any]], bool], str]:
    from freehold.engine.chat import ChatTemplate

    template = ChatTemplate(template_source, tokenizer.bos_token, tokenizer.eos_token)
    return lambda messages, gen: template.render(messages, add_generation_prompt=gen)


def estimate_memory(hf_dir: Path, cfg: TuneConfig, n_targets_max: int) -> int:
    """Peak bytes for training, from the weights' size, model shape and micro-batch size.

    Calibrated on SmolLM2-135M (2 threads, fp32): weights + activations kept for the backward
    pass (about 40 floats per hidden unit per token per layer with LoRA on attention) +
    logits at the loss positions + the runtime's own ~0.6 GB.
    """
    config = json.loads((hf_dir / "config.json").read_text())
    config = config.get("text_config", config)
    weights = sum(p.stat().st_size for p in hf_dir.glob("*.safetensors"))
    hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    ffn, vocab = int(config.get("intermediate_size") or 4 * hidden), int(config["vocab_size"])
    activations = cfg.batch_tokens * layers * (24 * hidden + 4 * ffn) * 4
    logits = min(cfg.batch_tokens, n_targets_max) * vocab * 4 * 3
    return int(weights + activations + logits + 600e6)


def free_memory(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def new_run_id(output: str) -> str:
    from freehold.store.names import parse_name

    name, _ = parse_name(output)
    return f"tune-{name}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def prepare(store: Store, cfg: TuneConfig, *, settings: Settings | None = None, resume: bool = False,
            progress: ProgressFn | None = None) -> Session:
    """Resolve, load and check everything; raise before any training work on a problem."""
    from freehold.engine.torch import hf_directory
    from freehold.store.names import parse_name

    settings = settings or load_settings()
    parse_name(cfg.output)
    root = ckpt.run_dir(store.home, cfg.output)
    saved: dict[str, Any] | None = None
    if resume:
        if not (root / "config.json").is_file():
            raise UsageError(f"there is no run named {cfg.output} to resume",
                             f"start it without --resume: freehold tune BASE --data DATASET -o {cfg.output}")
        saved = ckpt.read_json(root / "config.json")
        cfg = _resumed_config(saved, cfg)
        status = _read_status(root)
        if status.get("state") == "done":
            raise UsageError(f"run {cfg.output} already finished", f"its model is served by: freehold run "
                                                                   f"{status.get('model', cfg.output)}")
    else:
        cfg.validate()
        if (root / "config.json").is_file():
            status = _read_status(root)
            state = status.get("state", "unknown")
            if state == "done" and not store.has(str(status.get("model", cfg.output))):
                # its model was removed ('freehold rm'): the finished run's checkpoints serve nothing
                shutil.rmtree(root)
        if (root / "config.json").is_file():
            raise UsageError(f"a run named {cfg.output} already exists ({state})",
                             "add --resume to continue it, or choose another -o NAME")
        if store.has(cfg.output):
            raise UsageError(f"a model named {cfg.output} already exists",
                             f"choose another -o NAME, or remove it with 'freehold rm {cfg.output}'")

    base = resolve_base(store, cfg.base)
    dataset = store.get(cfg.dataset, kind="dataset")
    from freehold.licences import inherit

    licence = inherit(store, cfg.output, models=[base], datasets=[dataset], label=cfg.license)
    if saved is not None and saved["base_digest"] != base.manifest_digest:
        raise UsageError(f"{cfg.base} changed since the run started", "resume needs the same base model")
    template, family = chat_template_for(store, base, cfg.template)
    hf_dir = hf_directory(store, base, progress)
    emit(progress, "tokenizing")
    import transformers

    transformers.logging.set_verbosity_error()
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    if family:
        _check_markers(family, tokenizer, base.name)
    if cfg.knowledge:
        from freehold.knowledge.grounding import ground_dataset

        dataset = ground_dataset(store, dataset.name, cfg.knowledge,
                                 lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                                 tokenizer=base.manifest_digest, progress=progress)
    rows = dataset_rows(store, dataset, "train")
    if not rows:
        raise UsageError(f"dataset {dataset.name} has no training examples",
                         "check it with 'freehold data show NAME'; import more data with 'freehold data import'")
    check_rows(rows, f"dataset {dataset.name}")
    val_rows = dataset_rows(store, dataset, "validation")[:MAX_EVAL_EXAMPLES]
    check_rows(val_rows, f"dataset {dataset.name} (validation split)")
    root_hex = str(dataset.manifest.config.get("merkle_root") or "")
    if len(root_hex) != 64:
        raise UsageError(f"dataset {dataset.name} has no Merkle root in its manifest",
                         "re-import it with 'freehold data import', which records one")
    if saved is not None and saved.get("dataset_root") not in (None, root_hex):
        raise UsageError(f"dataset {dataset.name} changed since the run started (its Merkle root differs)",
                         "resume needs the same data; start a new run with another -o NAME")
    context = int(base.info.get("context_length") or 2048)
    max_seq_len = cfg.max_seq_len or min(context, 2048)
    if max_seq_len > context:
        raise UsageError(f"--max-seq-len {max_seq_len} is over {base.name}'s {context}-token context",
                         f"use --max-seq-len {context} or less")
    render = render_fn(template, tokenizer)
    examples, report = encode(rows, tokenizer, render, max_seq_len, cfg.overlong)
    if not examples:
        raise UsageError(f"no example of {dataset.name} has assistant tokens left to learn from "
                         f"({report.dropped_overlong} over the length limit, {report.dropped_no_target} "
                         "without an assistant reply)",
                         "raise --max-seq-len" + (", or use --overlong turns" if cfg.overlong == "drop" else ""))
    val_examples, _ = encode(val_rows, tokenizer, render, max_seq_len, "drop")
    batch_tokens = max(cfg.batch_tokens, max(e.n_tokens for e in examples))
    if batch_tokens != cfg.batch_tokens:
        cfg = cfg.with_overrides(batch_tokens=batch_tokens)  # the longest example must fit a micro-batch
    plan = Plan([e.n_tokens for e in examples], cfg.seed, cfg.epochs, cfg.batch_tokens, cfg.grad_accum,
                cfg.max_steps)

    device = choose_device(cfg.device)
    cfg = cfg.with_overrides(precision=choose_precision(cfg.precision, device))
    threads = cfg.threads or settings.threads
    need = estimate_memory(hf_dir, cfg, max(e.n_targets for e in examples))
    have = free_memory(device)
    if need > have:
        smaller = max(max(e.n_tokens for e in examples), cfg.batch_tokens // 2)
        hint = (f"lower --batch-tokens to {smaller} and raise --grad-accum to {cfg.grad_accum * 2} (same step "
                "size), lower --max-seq-len, or close other programs" if smaller < cfg.batch_tokens else
                "lower --max-seq-len (overlong examples are cut to fit it), or close other programs")
        raise TrainingError(f"this run needs about {need / 1e9:.1f} GB of memory but {have / 1e9:.1f} GB is free",
                            hint)

    resume_from = ckpt.latest_checkpoint(root) if resume else None
    run = saved["run"] if saved else new_run_id(cfg.output)
    extra: dict[str, Any] = {"licence": licence}
    if family and not cfg.template:
        extra["template_note"] = f"{base.name} has no chat template: it learns the {family} turn format"
    if saved is not None and saved.get("total_steps") not in (None, plan.total):
        # Planned before each epoch's own step count was taken (issue 11): say why the total moved.
        extra["saved_total_steps"] = saved["total_steps"]
    return Session(store, cfg, run, root, base, dataset, root_hex, hf_dir, template, max_seq_len, examples,
                   val_examples, report, plan, device, threads, resume_from, need, tokenizer=tokenizer,
                   extra=extra)


_RESUMABLE_CHANGES = {"max_steps", "eval_every", "save_every", "quant", "device", "ledger"}


def _resumed_config(saved: dict[str, Any], given: TuneConfig) -> TuneConfig:
    """The saved config, with the few options that may change between sessions taken from flags."""
    cfg = TuneConfig.from_dict(saved["config"], device=saved.get("device"))
    given_d, saved_d = given.to_dict(), cfg.to_dict()
    defaults = TuneConfig(given.base, given.dataset, given.output).to_dict()
    changed = {k for k, v in given_d.items() if v != defaults.get(k) and v != saved_d.get(k)}
    changed -= {"base", "dataset", "output"}
    blocked = sorted(changed - _RESUMABLE_CHANGES)
    if blocked:
        raise UsageError(f"--resume continues the run with its saved settings; these differ: {', '.join(blocked)}",
                         "drop those options, or start a new run with another -o NAME")
    if given.base != cfg.base or given.dataset != cfg.dataset:
        raise UsageError(f"run {cfg.output} was started on {cfg.base} with {cfg.dataset}",
                         f"resume with: freehold tune {cfg.base} --data {cfg.dataset} -o {cfg.output} --resume")
    return cfg.with_overrides(**{k: given_d[k] for k in changed & _RESUMABLE_CHANGES})


def chat_template_for(store: Store, base: ModelEntry, requested: str | None) -> tuple[str, str | None]:
    """The chat template a tune teaches, and its family when it is a family template:
    ``requested`` (a family name or a Jinja file), else the base's own, else its
    architecture's family template (a base model such as Gemma 3 270M has none: it learns
    the turns from the training rows)."""
    if requested:
        path = Path(requested).expanduser()
        if requested not in FAMILY_TEMPLATES and path.is_file():
            return path.read_text(encoding="utf-8"), None
        return family_template(requested), requested
    own = store.text_layer(base.manifest, MediaType.TEMPLATE)
    if own:
        return own, None
    family = ARCHITECTURE_TEMPLATES.get(str(base.info.get("architecture", "")))
    if family is None:
        raise UsageError(f"{base.name} has no chat template, so conversations cannot be formatted for it",
                         f"name one: freehold tune {base.name} --template chatml (or gemma, or a Jinja file)")
    return FAMILY_TEMPLATES[family], family


def _check_markers(family: str, tokenizer: Any, base_name: str) -> None:
    """A family template's turn markers must be single tokens of the base's vocabulary, or
    the model learns to spell them out."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in FAMILY_MARKERS[family] if t not in vocab]
    if missing:
        raise UsageError(f"{base_name}'s tokenizer has no {', '.join(missing)} token, which the {family} chat "
                         "template uses", "choose the template of the model's family with --template (gemma, "
                         "chatml) or a file")


def _read_status(root: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((root / "status.json").read_text()))
    except (OSError, ValueError):
        return {}


# -- the loop --------------------------------------------------------------------------------

class _Signals:
    """SIGINT/SIGTERM ask the loop to checkpoint and stop after the current step; a second
    SIGINT stops at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for signum, old in self._old.items():
                signal.signal(signum, old)


class Trainer:
    def __init__(self, session: Session, progress: ProgressFn | None = None) -> None:
        self.s = session
        self.cfg = session.cfg
        self.progress = progress
        self.metrics: list[dict[str, Any]] = []
        self.step = 0
        self.recorder: Any = None
        self.adapter_config: dict[str, Any] = {}
        self._saved_step = 0  # the step of the newest checkpoint (or the resumed one)
        # While a step runs: (its number, RNG state and optimizer update counts before it).
        self._updating: tuple[int, dict[str, Any], tuple[float, ...]] | None = None

    # setup --------------------------------------------------------------------------------
    def build(self) -> None:
        """Load the base, add LoRA (seeded), and restore a checkpoint when resuming."""
        s = self.s
        set_threads(s.threads)
        emit(self.progress, "loading model")
        model, tokenizer = load_base(s.hf_dir, s.device)
        s.model = apply_lora(model, self.cfg, self.cfg.seed)
        s.tokenizer = tokenizer
        s.runner = StepRunner(s.model, self.cfg, s.device)
        cfg_obj = s.model.peft_config["default"]
        # PEFT's own file shape: sets as sorted lists (json cannot hold a set).
        self.adapter_config = {k: sorted(v) if isinstance(v, set) else v for k, v in cfg_obj.to_dict().items()}
        self.adapter_config["base_model_name_or_path"] = s.base.name
        s.initial_weights = _digest(trainable_state(s.model))
        # The training RNG (LoRA dropout) starts from the seed whatever model init consumed.
        import torch

        torch.manual_seed(self.cfg.seed + 1)
        if s.resume_from is not None:
            self.restore(s.resume_from)

    def restore(self, path: Path) -> None:
        s = self.s
        assert s.model is not None and s.runner is not None
        data = ckpt.load_checkpoint(path)
        load_adapter_state(s.model, data["adapter"])
        s.runner.optimizer.load_state_dict(data["optimizer"])
        set_rng_state(data["rng"])
        self.step = int(data["state"]["step"])
        self.metrics = [m for m in data["state"].get("metrics", []) if m.get("step", 0) <= self.step]

    # recording ----------------------------------------------------------------------------
    def _ledger(self) -> Any:
        if not self.cfg.ledger:
            return None
        if self.recorder is None:
            from freehold.ledger import Ledger, Recorder

            self.recorder = Recorder(Ledger.open(self.s.store.home))
        return self.recorder

    def record_config(self) -> None:
        from freehold.ledger import MERKLE, layer_refs, ref

        rec = self._ledger()
        if rec is None:
            return
        s = self.s
        base_refs = [r for r in layer_refs(s.base.manifest, "base") if r["media_type"] in MediaType.WEIGHTS]
        total, trainable = count_parameters(s.model)
        rec.record_config(
            s.run,
            base=base_refs,
            dataset=[ref("dataset", "sha256:" + s.dataset_root, MERKLE, name=s.dataset.name)],
            architecture={"base": s.base.name, "architecture": s.base.info.get("architecture"),
                          "parameters": total, "trainable_parameters": trainable, "adapter": "lora",
                          "target_modules": list(self.cfg.target_modules)},
            hyperparameters={**self.cfg.hyperparameters(), "max_seq_len": s.max_seq_len,
                             "total_steps": s.plan.total, "device": s.device},
            seed=self.cfg.seed,
            threads=s.threads,
            initial_weights=s.initial_weights,
            replayer=REPLAYER,
            extra={"run_dir": str(s.run_dir), "base_name": s.base.name, "base_digest": s.base.manifest_digest,
                   "dataset_name": s.dataset.name, "config": self.cfg.to_dict(),
                   "examples": s.report.to_dict(), "epoch_steps": s.plan.epoch_steps},
        )

    def write_run_config(self) -> None:
        s = self.s
        s.run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.write_json_atomic(s.run_dir / "config.json", {
            "run": s.run, "config": self.cfg.to_dict(), "base": s.base.name, "base_digest": s.base.manifest_digest,
            "dataset": s.dataset.name, "dataset_root": s.dataset_root, "max_seq_len": s.max_seq_len,
            "total_steps": s.plan.total, "epoch_steps": s.plan.epoch_steps, "threads": s.threads,
            "device": s.device, "examples": s.report.to_dict(), "memory_estimate": s.memory_estimate,
        })

    def write_status(self, state: str, **extra: Any) -> None:
        last: dict[str, Any] = next((m for m in reversed(self.metrics) if "loss" in m), {})
        val = next((m["val_loss"] for m in reversed(self.metrics) if "val_loss" in m), None)
        ckpt.write_json_atomic(self.s.run_dir / "status.json", {
            "run": self.s.run, "name": self.cfg.output, "state": state, "step": self.step,
            "total": self.s.plan.total, "loss": last.get("loss"), "val_loss": val,
            "tokens_per_s": last.get("tokens_per_s"), "eta_s": last.get("eta_s"), "pid": os.getpid(),
            "updated": time.time(), "checkpoint": (ckpt.latest_checkpoint(self.s.run_dir) or Path("")).name or None,
            **extra,
        })

    def save(self) -> Path:
        """Atomic checkpoint of the current step, recorded in the ledger."""
        s = self.s
        assert s.model is not None and s.runner is not None
        adapter = adapter_state(s.model)
        rec = self._ledger()
        weights = _digest(trainable_state(s.model)) if rec is not None else None
        # The record names the weights the step record holds (parameter names); the file must
        # hash to them once PEFT's adapter name is put back, which is what 'freehold audit
        # verify' recomputes. Checked before writing, so a naming change in PEFT stops the run
        # at its first checkpoint instead of failing every later verify.
        if weights is not None and _digest(ckpt.parameter_tensors(adapter)) != weights:
            raise TrainingError(
                f"the adapter tensors to checkpoint at step {self.step} do not hash to the trained weights "
                f"(names such as {sorted(adapter)[0]!r} no longer map to the model's parameters)",
                "install the peft version freehold was tested with (see pyproject.toml), "
                "or train without the ledger (--no-ledger)")
        path = ckpt.save_checkpoint(
            s.run_dir, self.step, adapter=adapter, adapter_config=self.adapter_config,
            optimizer=s.runner.optimizer.state_dict(), rng=rng_state(),
            state={"step": self.step, "run": s.run, "metrics": self.metrics})
        if rec is not None and weights is not None:
            from freehold.ledger import ref

            layer = s.store.put_file_blob(path / ckpt.ADAPTER_FILE, MediaType.ADAPTER,
                                          f"checkpoints/{path.name}/{ckpt.ADAPTER_FILE}")
            rec.record_checkpoint(s.run, self.step, weights=weights,
                                  outputs=[ref("adapter", layer.digest, media_type=layer.media_type,
                                               filename=layer.annotations["filename"],
                                               adapter_name=ckpt.ADAPTER_NAME)])
        _plot_quietly(s.run_dir, self.metrics)
        return path

    # the loop -----------------------------------------------------------------------------
    def train(self) -> None:
        """Run the remaining steps, each reported as a "training" event (``StepInfo.of`` reads
        it). Any failure leaves a checkpoint of the last sane step and surfaces as a
        ``FreeholdError`` naming ``--resume`` (see ``_failed``)."""
        s = self.s
        if not (s.run_dir / "config.json").is_file():  # a fresh run (not a resume)
            self.write_run_config()
            self.record_config()
        self.write_status("running")
        total = s.plan.total
        pace = _Pace(self.step, total)
        self._saved_step, self._updating = self.step, None  # a resume starts at its checkpoint
        stop = _Signals()
        try:
            with stop.installed():
                while self.step < total:
                    step = self.step + 1
                    loss, lr, n_tokens = self._update(step)
                    entry = self._log_step(step, loss, lr, n_tokens, pace)
                    emit(self.progress, "training", total, step, eta_s=entry["eta_s"],
                         detail={k: entry[k] for k in _STEP_DETAIL if k in entry})
                    self._checkpoint_if_due(step, stop.received)
                    self._stop_if_asked(step, stop.received)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, as asked
            self.write_status("stopped")
            raise
        except TrainingInterrupted:
            raise
        except Exception as exc:
            raise self._failed(exc, total) from exc

    def _update(self, step: int) -> tuple[float, float, int]:
        """One optimizer step and its ledger record; (loss, learning rate, tokens)."""
        s = self.s
        assert s.runner is not None
        # What the weights were before this step, to tell after a failure inside it whether
        # they moved and to checkpoint the RNG as it was.
        self._updating = (step, rng_state(), _optimizer_steps(s.runner.optimizer))
        batches = [[s.examples[i] for i in mb] for mb in s.plan.step(step)]
        lr = lr_at(step, s.plan.total, self.cfg.lr, self.cfg.warmup_ratio)
        loss, n_tokens = s.runner.step(batches, lr)
        rec = self._ledger()
        if rec is not None:
            rec.record_step(s.run, step, example_ids=[e.id for mb in batches for e in mb], lr=lr,
                            loss=loss, weights=_digest(trainable_state(s.model)),
                            extra={"micro_batches": [len(mb) for mb in batches], "tokens": n_tokens})
        # Only now is the step done: its weights are recorded, so a checkpoint may name it.
        self.step, self._updating = step, None
        return loss, lr, n_tokens

    def _log_step(self, step: int, loss: float, lr: float, n_tokens: int, pace: _Pace) -> dict[str, Any]:
        """The step's metrics row (with the validation loss when one is due), kept for the
        status file, the checkpoint and the loss plot."""
        s = self.s
        rate, eta = pace.after(step, n_tokens)
        entry: dict[str, Any] = {"step": step, "epoch": s.plan.epoch_of(step), "loss": loss, "lr": lr,
                                 "tokens": n_tokens, "tokens_per_s": rate, "eta_s": eta, "time": time.time()}
        if self.cfg.eval_every and s.val_examples and (step % self.cfg.eval_every == 0 or step == s.plan.total):
            assert s.runner is not None
            entry["val_loss"] = s.runner.eval_loss(s.val_examples, self.cfg.batch_tokens)
        self.metrics.append(entry)
        return entry

    def _checkpoint_if_due(self, step: int, signal_received: int | None) -> None:
        """A checkpoint every ``save_every`` steps, at the last step, and when a signal asks to stop."""
        if signal_received is not None or step == self.s.plan.total or (
                self.cfg.save_every and step % self.cfg.save_every == 0):
            self.save()
            self._saved_step = step
        self.write_status("running" if step < self.s.plan.total else "finishing")

    def _stop_if_asked(self, step: int, signal_received: int | None) -> None:
        total = self.s.plan.total
        if signal_received is not None and step < total:
            self.write_status("stopped", signal=signal_received)
            name = signal.Signals(signal_received).name
            raise TrainingInterrupted(f"stopped by {name} at step {step} of {total}; checkpoint saved",
                                      f"continue with: {self._resume_command()}")

    def _resume_command(self) -> str:
        return f"freehold tune {self.cfg.base} --data {self.cfg.dataset} -o {self.cfg.output} --resume"

    def _failed(self, exc: Exception, total: int) -> FreeholdError:
        """Checkpoint what can be kept after ``exc``, and the one-line error to show for it."""
        failed_at = self._updating[0] if self._updating else self.step
        kept = self._checkpoint_after_failure()
        with contextlib.suppress(Exception):  # the status must not hide the error itself
            self.write_status("failed", error=f"{type(exc).__name__}: {_first_line(exc)}")
        resume = f"resume with: {self._resume_command()}"
        if isinstance(exc, FreeholdError):  # already says what is wrong and how to fix it
            exc.message = f"{exc.message} (at step {failed_at} of {total}; {kept})"
            if "--resume" not in (exc.hint or ""):
                exc.hint = f"{exc.hint}; then {resume}" if exc.hint else resume
            return exc
        memory = isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
        return TrainingError(
            f"training failed at step {failed_at} of {total}: {type(exc).__name__}: {_first_line(exc)}; {kept}",
            ("lower --batch-tokens and raise --grad-accum as much (same step size), then " if memory else "")
            + f"{resume} (add --debug to see the traceback)")

    def _checkpoint_after_failure(self) -> str:
        """Save the last complete step when that is safe; say what a resume will start from."""
        s = self.s
        assert s.runner is not None
        import torch

        since = ckpt.latest_checkpoint(s.run_dir)
        fallback = f"a resume starts from {since.name}" if since else "a resume starts from the beginning"
        if self.step == self._saved_step:
            return f"no step completed since the last checkpoint, {fallback}"
        if self._updating is not None:
            _, rng, before = self._updating
            if _optimizer_steps(s.runner.optimizer) != before:  # the update ran, but the step is not recorded
                return f"the failing step had already changed the weights, so no checkpoint was saved; {fallback}"
            set_rng_state(rng)  # as after the last complete step: dropout of the failed attempt undone
            s.runner.optimizer.zero_grad(set_to_none=True)
        if not all(bool(torch.isfinite(p).all()) for p in s.runner.params):
            return f"the weights are not finite, so no checkpoint was saved; {fallback}"
        try:
            path = self.save()
        except Exception as save_exc:
            why = f"{type(save_exc).__name__}: {_first_line(save_exc)}"
            return f"the checkpoint could not be saved either ({why}); {fallback}"
        self._saved_step = self.step
        return f"checkpoint {path.name} saved"


_STEP_DETAIL = ("epoch", "loss", "val_loss", "lr", "tokens", "tokens_per_s")  # a step's figures in its event


class _Pace:
    """Tokens per second and the time left, over the steps this process has run."""

    def __init__(self, first_step: int, total: int) -> None:
        self.first_step, self.total = first_step, total
        self.started = time.perf_counter()
        self.tokens = 0

    def after(self, step: int, n_tokens: int) -> tuple[float, float]:
        self.tokens += n_tokens
        elapsed = time.perf_counter() - self.started
        rate = self.tokens / elapsed if elapsed > 0 else 0.0
        return rate, elapsed / (step - self.first_step) * (self.total - step)


def _optimizer_steps(optimizer: Any) -> tuple[float, ...]:
    """Each parameter's update count: what changes when ``optimizer.step()`` has run, even in part."""
    return tuple(float(state["step"]) for state in optimizer.state.values() if "step" in state)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 300 else line[:297] + "..."


def _digest(state: dict[str, Any]) -> str:
    from freehold.ledger import weights_digest

    return weights_digest(state)


def _plot_quietly(root: Path, metrics: list[dict[str, Any]]) -> None:
    from freehold.train.status import plot_losses

    with contextlib.suppress(Exception):  # a missing font or backend must never stop training
        plot_losses(metrics, root / "loss.png")
