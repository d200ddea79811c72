"""Training speed: `freehold tune`'s loop vs transformers Trainer + PEFT, same model, data, LoRA, threads.

    .venv/bin/python benchmarks/bench_tune_speed.py                  # all sides, then the summary
    .venv/bin/python benchmarks/bench_tune_speed.py --side trainer   # one side (each < 5 min on 2 cores)
    .venv/bin/python benchmarks/bench_tune_speed.py --summary

Data: question/answer pairs from the R-package-devel archive (../shared/data/email), tokenized
once with freehold's assistant-only labels and given to both sides, truncated at --seq tokens.
Peer: Trainer with per-device batch --batch (padded to the longest in the batch by
DataCollatorForSeq2Seq, the usual setup), the same LoraConfig, fp32, the same threads.
Ours: batch_tokens = batch x seq (the same padded-token budget per micro-batch). Sides:
``ours`` (with ledger step records), ``ours-noledger``, ``trainer``. Each side runs in its own
process (peak RSS is that process's) and times steps 2..N (step 1 warms up).
Results are appended to $BENCH_HOME/results.jsonl; --summary prints ratios and the
extrapolated wall time for 1,000 conversations x 2 epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
HOME = Path(os.environ.get("BENCH_HOME", "/tmp/freehold-bench-tune"))
ARCHIVE = REPO.parent / "shared" / "data" / "email" / "r-package-devel"


def setup(n: int) -> None:
    """The store (bundled SmolLM2, dequantised once) and the dataset, built once."""
    from freehold.config import load_settings
    from freehold.engine.torch import hf_directory
    from freehold.home import open_store
    from tests.train.conftest import email_conversations, make_dataset

    store = open_store(load_settings({"FREEHOLD_HOME": str(HOME)}))
    hf_directory(store, store.get("smollm2"))
    try:
        store.get(f"email{n}", kind="dataset")
    except Exception:
        rows = email_conversations(ARCHIVE / "2023q4.txt", n) + email_conversations(ARCHIVE / "2024q1.txt", n)
        make_dataset(store, f"email{n}", {"train": rows[:n], "validation": rows[n:n + 32]}, HOME / "ds")


def _session(args: argparse.Namespace, ledger: bool) -> Any:
    from freehold.config import load_settings
    from freehold.train import TuneConfig, prepare

    settings = load_settings({"FREEHOLD_HOME": str(HOME)})
    from freehold.home import open_store

    store = open_store(settings)
    cfg = TuneConfig(base="smollm2", dataset=f"email{args.examples}", output=f"bench-{time.time_ns()}",
                     max_steps=args.steps, max_seq_len=args.seq, overlong="truncate",
                     batch_tokens=args.batch * args.seq, eval_every=0, save_every=0, threads=args.threads,
                     ledger=ledger, lora_r=16, lora_alpha=32, lora_dropout=0.0, precision=args.precision)
    return prepare(store, cfg, settings=settings)


def run_ours(args: argparse.Namespace, ledger: bool) -> dict[str, Any]:
    import freehold.ledger.records as records
    from freehold.train import Trainer
    from freehold.train import trainer as trainer_module

    # Time the ledger's share directly too: step-time differences of ~0.1% drown in noise.
    spent = [0.0]

    def timed(fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[0] += time.perf_counter() - start
        return wrapper

    records.Recorder.record_step = timed(records.Recorder.record_step)  # type: ignore[method-assign]
    trainer_module._digest = timed(trainer_module._digest)
    session = _session(args, ledger)
    times: list[float] = []
    trainer = Trainer(session, lambda event: times.append(time.perf_counter()) if event.status == "training" else None)
    trainer.build()
    trainer.train()
    tokens = [m["tokens"] for m in trainer.metrics]
    return {"tokens": sum(tokens[1:]), "seconds": times[-1] - times[0], "steps": len(times) - 1,
            "ledger_seconds_per_step": spent[0] / len(times),
            "examples_per_step": sum(len(mb) for s in range(1, session.plan.total + 1)
                                     for mb in session.plan.step(s)) / session.plan.total,
            "avg_tokens_per_example": session.report.tokens / max(1, len(session.examples))}


def _hf_side(args: argparse.Namespace, session: Any) -> tuple[Any, Any, Any, Any]:
    """The peer's model, data, collator and arguments: the usual Trainer + PEFT recipe."""
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    model = transformers.AutoModelForCausalLM.from_pretrained(session.hf_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, bias="none",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                             task_type="CAUSAL_LM"))
    data = [{"input_ids": e.input_ids, "labels": e.labels} for e in session.examples]
    collator = transformers.DataCollatorForSeq2Seq(session.tokenizer, padding=True, label_pad_token_id=-100)
    targs = transformers.TrainingArguments(
        output_dir=str(HOME / "trainer-out"), per_device_train_batch_size=args.batch, max_steps=args.steps,
        learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=1, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, bf16=args.trainer_precision == "bf16", dataloader_num_workers=0, seed=0,
        disable_tqdm=True, remove_unused_columns=False)
    return model, data, collator, targs


def run_trainer(args: argparse.Namespace) -> dict[str, Any]:
    import transformers

    session = _session(args, ledger=False)  # the same tokenized examples, nothing trained
    model, data, collator, targs = _hf_side(args, session)
    times: list[float] = []
    tokens: list[int] = []

    class Timed(transformers.Trainer):
        def compute_loss(self, model: Any, inputs: Any, *a: Any, **k: Any) -> Any:
            tokens.append(int(inputs["attention_mask"].sum()))
            return super().compute_loss(model, inputs, *a, **k)

    class Clock(transformers.TrainerCallback):
        def on_step_end(self, *a: Any, **k: Any) -> None:
            times.append(time.perf_counter())

    Timed(model=model, args=targs, train_dataset=data, data_collator=collator, callbacks=[Clock()]).train()
    return {"tokens": sum(tokens[1:]), "seconds": times[-1] - times[0], "steps": len(times) - 1,
            "examples_per_step": args.batch}


def run_paired(args: argparse.Namespace) -> dict[str, Any]:
    """Both in one process, alternating step by step, so load from other programs on a shared
    machine hits both alike: after each Trainer step, a callback runs one of ours."""
    import transformers

    from freehold.ledger import weights_digest
    from freehold.train import Trainer
    from freehold.train.model import lr_at, trainable_state

    session = _session(args, ledger=True)
    ours = Trainer(session)
    ours.build()
    ours.write_run_config()
    ours.record_config()
    model, data, collator, targs = _hf_side(args, session)
    theirs: list[tuple[int, float]] = []
    mine: list[tuple[int, float]] = []
    pending: list[int] = []
    clock = [0.0]

    class Counted(transformers.Trainer):
        def compute_loss(self, model: Any, inputs: Any, *a: Any, **k: Any) -> Any:
            pending.append(int(inputs["attention_mask"].sum()))
            return super().compute_loss(model, inputs, *a, **k)

    class Alternate(transformers.TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            clock[0] = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            theirs.append((pending.pop(), time.perf_counter() - clock[0]))
            step = len(mine) + 1
            batches = [[session.examples[i] for i in mb] for mb in session.plan.step(step)]
            lr = lr_at(step, session.plan.total, ours.cfg.lr, ours.cfg.warmup_ratio)
            start = time.perf_counter()
            loss, n = session.runner.step(batches, lr)
            ours._ledger().record_step(session.run, step, example_ids=[e.id for mb in batches for e in mb], lr=lr,
                                       loss=loss, weights=weights_digest(trainable_state(session.model)))
            mine.append((n, time.perf_counter() - start))

    Counted(model=model, args=targs, train_dataset=data, data_collator=collator, callbacks=[Alternate()]).train()

    def rate(pairs: list[tuple[int, float]]) -> float:
        return sum(n for n, _ in pairs[1:]) / sum(t for _, t in pairs[1:])

    return {"tokens": 0, "seconds": 1.0, "steps": len(mine) - 1, "ours_tokens_per_s": rate(mine),
            "ours_precision": session.cfg.precision,
            "trainer_tokens_per_s": rate(theirs), "ours_s_per_step": sum(t for _, t in mine[1:]) / (len(mine) - 1),
            "trainer_s_per_step": sum(t for _, t in theirs[1:]) / (len(theirs) - 1)}


def summary() -> None:
    rows = [json.loads(line) for line in (HOME / "results.jsonl").read_text().splitlines()]
    latest = {r["side"]: r for r in rows}
    paired = latest.pop("paired", None)
    for side, r in latest.items():
        print(f"{side:14s} {r['tokens'] / r['seconds']:7.1f} tokens/s  {r['seconds'] / r['steps']:6.1f} s/step  "
              f"peak RSS {r['rss_gb']:.2f} GB  ({r['steps']} timed steps, load {r['load']})")
    if "ours" in latest and "trainer" in latest:
        o, t = latest["ours"], latest["trainer"]
        print(f"speed ours/trainer: {(o['tokens'] / o['seconds']) / (t['tokens'] / t['seconds']):.2f}x; "
              f"peak RSS ours/trainer: {o['rss_gb'] / t['rss_gb']:.2f}")
        per_conv = o.get("avg_tokens_per_example", 300)
        for tokens in (per_conv, 300):
            hours = 1000 * tokens * 2 / (o["tokens"] / o["seconds"]) / 3600
            print(f"extrapolated: 1,000 conversations x {tokens:.0f} tokens x 2 epochs = {hours:.2f} h at ours' rate")
    if "ours" in latest and latest["ours"].get("ledger_seconds_per_step"):
        o = latest["ours"]
        print(f"ledger records (weights digest + signed, fsynced step record): "
              f"{o['ledger_seconds_per_step'] * 1000:.1f} ms/step = "
              f"{o['ledger_seconds_per_step'] / (o['seconds'] / o['steps']) * 100:.2f}% of the step")
    if paired:
        print(f"paired (alternating steps in one process, {paired['steps']} timed steps each, ours "
              f"{paired.get('ours_precision', 'fp32')} vs trainer {paired.get('trainer_precision', 'fp32')}, load "
              f"{paired['load']}): ours {paired['ours_tokens_per_s']:.1f} tokens/s "
              f"({paired['ours_s_per_step']:.1f} s/step), trainer {paired['trainer_tokens_per_s']:.1f} tokens/s "
              f"({paired['trainer_s_per_step']:.1f} s/step): "
              f"{paired['ours_tokens_per_s'] / paired['trainer_tokens_per_s']:.2f}x")
    if "ours" in latest and "ours-noledger" in latest:
        a, b = latest["ours"], latest["ours-noledger"]
        print(f"step time with/without ledger records: {(a['seconds'] / a['steps']) / (b['seconds'] / b['steps']):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=("ours", "ours-noledger", "trainer", "paired"))
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--examples", type=int, default=128)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="freehold tune's --precision (auto: bf16 on CPUs with bf16 instructions)")
    parser.add_argument("--trainer-precision", choices=("fp32", "bf16"), default="fp32",
                        help="the peer's: fp32 (Trainer's default) or bf16 (TrainingArguments(bf16=True))")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.summary:
        summary()
        return 0
    if args.child:
        if args.side == "paired":
            result = run_paired(args)
        elif args.side == "trainer":
            result = run_trainer(args)
        else:
            result = run_ours(args, ledger=args.side == "ours")
        result |= {"side": args.side, "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                   "load": round(os.getloadavg()[0], 2), "threads": args.threads, "seq": args.seq,
                   "batch": args.batch, "precision": args.precision, "trainer_precision": args.trainer_precision}
        with (HOME / "results.jsonl").open("a") as f:
            f.write(json.dumps(result) + "\n")
        return 0
    setup(args.examples)
    for side in [args.side] if args.side else ["paired", "ours", "trainer", "ours-noledger"]:
        cmd = [sys.executable, __file__, "--child", "--side", side, "--steps", str(args.steps), "--examples",
               str(args.examples), "--seq", str(args.seq), "--batch", str(args.batch), "--threads", str(args.threads),
               "--precision", args.precision, "--trainer-precision", args.trainer_precision]
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
