"""``freehold tune``: LoRA fine-tuning with a live progress bar, and ``tune --status NAME``."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from freehold.cli import app
from freehold.cli.common import console, err_console, licence_note, open_store, print_json, progress_bar, settings
from freehold.errors import UsageError


@app.command("tune")
def tune_cmd(
    base: str | None = typer.Argument(None, help="Base model to fine-tune, e.g. smollm2."),
    data: str | None = typer.Option(None, "--data", "-d", help="Dataset name (from 'freehold data import')."),
    output: str | None = typer.Option(None, "--output", "-o", help="Name of the tuned model."),
    epochs: int | None = typer.Option(None, "--epochs", help="Passes over the training split [2]."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate [2e-4]."),
    lora_r: int | None = typer.Option(None, "--lora-r", help="LoRA rank [16]."),
    lora_alpha: int | None = typer.Option(None, "--lora-alpha", help="LoRA alpha [32]."),
    lora_dropout: float | None = typer.Option(None, "--lora-dropout", help="LoRA dropout [0]."),
    target_modules: str | None = typer.Option(None, "--target-modules",
                                              help="Comma-separated module names \\[q_proj,k_proj,v_proj,o_proj]."),
    max_seq_len: int | None = typer.Option(None, "--max-seq-len", help="Token limit per example \\[context, <=2048]."),
    overlong: str | None = typer.Option(
        None, "--overlong", help="Examples over --max-seq-len: turns (keep the whole turns that fit, ending on an "
        "assistant reply; cut inside the first reply if none fits), truncate (cut at the limit), drop, or error "
        "\\[turns]."),
    batch_tokens: int | None = typer.Option(None, "--batch-tokens",
                                            help="Padded tokens per micro-batch (the memory knob) [1024]."),
    grad_accum: int | None = typer.Option(None, "--grad-accum", help="Micro-batches per optimizer step [1]."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for LoRA init, data order and dropout [0]."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    eval_every: int | None = typer.Option(None, "--eval-every", help="Validation loss every N steps (0: off) [50]."),
    save_every: int | None = typer.Option(None, "--save-every", help="Checkpoint every N steps (0: end only) [50]."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads \\[physical cores]."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda \\[auto]."),
    precision: str | None = typer.Option(None, "--precision",
                                         help="auto, fp32 or bf16 (auto: bf16 where the hardware has it) \\[auto]."),
    quant: str | None = typer.Option(None, "--quant", help="GGUF type served by 'freehold run' \\[q8_0]."),
    knowledge: str | None = typer.Option(
        None, "--knowledge", "-k", help="Knowledge index (from 'freehold knowledge build'): train with each "
        "example's sources in its prompt, so answers state what the sources say. Serve it with --knowledge too."),
    template: str | None = typer.Option(
        None, "--template", help="Chat template to teach: gemma, chatml or a Jinja file. Default: the base's own; "
        "a base model with none (Gemma 3 270M) gets its family's."),
    license_: str | None = typer.Option(None, "--license", help="The tuned model's licence label; default: what "
                                        "the base and the data come under. It may add licences, never drop one."),
    no_ledger: bool = typer.Option(False, "--no-ledger", help="Do not write step records (no audit trail)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    status: str | None = typer.Option(None, "--status", help="Show where run NAME stands, and exit."),
    as_json: bool = typer.Option(False, "--json", help="With --status: print JSON."),
) -> None:
    """Fine-tune a model on a dataset with LoRA; the result is served by 'freehold run NAME'.

    Stop it with Ctrl-C (it checkpoints first) and continue with --resume.
    """
    if status is not None:
        _show_status(status, as_json)
        return
    if not base or not data or not output:
        raise UsageError("tune needs a base model, --data and -o",
                         "e.g. freehold tune smollm2 --data support -o acme-support")
    from freehold.train import StepInfo, TuneConfig, tune

    cfg = TuneConfig(base=base, dataset=data, output=output)
    cfg = cfg.with_overrides(
        epochs=epochs, lr=lr, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        target_modules=tuple(t.strip() for t in target_modules.split(",") if t.strip()) if target_modules else None,
        max_seq_len=max_seq_len, overlong=overlong, batch_tokens=batch_tokens, grad_accum=grad_accum, seed=seed,
        max_steps=max_steps, eval_every=eval_every, save_every=save_every, threads=threads, device=device,
        precision=precision, quant=quant.lower() if quant else None, ledger=False if no_ledger else None,
        knowledge=knowledge, template=template, license=license_)
    store = open_store()
    display = _StepDisplay()
    with progress_bar(transient=True, byte_units=False) as progress:

        def on_event(event: Any) -> None:
            step = StepInfo.of(event)
            if step is not None:
                display.update(step)  # steps are drawn by the step display
            elif event.status == "prepared":
                _print_prepared(event.detail or {})
                display.start()
            elif event.status != "training":
                progress(event)

        try:
            result = tune(cfg, store=store, settings=settings(), resume=resume, progress=on_event)
        finally:
            display.stop()
    console.print(f"[green]tuned[/] {result.entry.name} in {result.seconds / 60:.1f} min: {result.steps} steps, "
                  f"loss {_num(result.final_loss)}, validation {_num(result.val_loss)}")
    console.print(f"run directory: {result.run_dir} (loss.png, adapter/, checkpoints/)")
    licence_note(store, result.entry)
    console.print(f"try it: freehold run {result.entry.name}")


class _StepDisplay:
    """A rich bar: step, loss, tokens/s and ETA (on stderr, only on a terminal)."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def start(self) -> None:
        if not err_console.is_terminal:
            return
        self.bar = Progress(TextColumn("step {task.completed}/{task.total}"), BarColumn(),
                            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  {task.fields[rate]} tok/s"),
                            TimeRemainingColumn(), console=err_console)
        self.bar.start()
        self.task = self.bar.add_task("training", total=None, loss="-", val="-", rate="-")

    def update(self, info: Any) -> None:
        if self.bar is None or self.task is None:
            # Piped or logged: a plain line about every 5% of the run instead of a bar.
            if info.step == info.total or info.step % max(1, info.total // 20) == 0:
                eta = f", ~{info.eta_s / 60:.1f} min left" if info.eta_s else ""
                val = f", val {info.val_loss:.3f}" if info.val_loss is not None else ""
                err_console.print(f"step {info.step}/{info.total} loss {info.loss:.3f}{val}, "
                                  f"{info.tokens_per_s:.0f} tok/s{eta}", highlight=False)
            return
        fields: dict[str, Any] = {"loss": f"{info.loss:.3f}", "rate": f"{info.tokens_per_s:.0f}"}
        if info.val_loss is not None:
            fields["val"] = f"{info.val_loss:.3f}"
        self.bar.update(self.task, completed=info.step, total=info.total, **fields)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _print_prepared(d: dict[str, Any]) -> None:
    """The run's plan (``Session.summary()``), before the first step."""
    dropped = f", {d['dropped']} dropped" if d.get("dropped") else ""
    err_console.print(
        f"[bold]{d['output']}[/]: {d['examples']} examples ({d['target_tokens']} assistant of {d['tokens']} "
        f"tokens{dropped}), {d['steps']} steps, {d['device']} {d['precision']} x{d['threads']} threads, "
        f"~{d['memory_estimate'] / 1e9:.1f} GB" + (f", resuming from {d['resume_from']}" if d.get("resume_from")
                                                   else ""), highlight=False)
    if d.get("licence"):
        err_console.print(f"  licence: {d['licence']} (inherited from the base and the data)", highlight=False,
                          markup=False)
    for note in d.get("notes", []):
        err_console.print(f"  {note}", highlight=False, markup=False)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _show_status(name: str, as_json: bool) -> None:
    from freehold.train import run_status

    st = run_status(settings().home, name)
    if as_json:
        print_json(st)
        return
    eta = st.get("eta_s")
    rate = st.get("tokens_per_s")
    console.print(f"[bold]{st.get('name')}[/] ({st.get('run')}): [bold]{st['state']}[/] at step "
                  f"{st.get('step')}/{st.get('total')}", highlight=False)
    console.print(f"  loss {_num(st.get('loss'))}, validation {_num(st.get('val_loss'))}, "
                  f"{'-' if rate is None else f'{rate:.0f}'} tokens/s"
                  + (f", about {eta / 60:.1f} min left" if eta and st["state"] == "running" else ""), highlight=False)
    console.print(f"  last checkpoint: {st.get('checkpoint') or 'none yet'}; updated "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(time.time() - st['age_s']))}", highlight=False)
    if st.get("loss_curve"):
        console.print(f"  loss curve: {st['loss_curve']}", highlight=False)
    if st["state"] in ("stopped", "killed", "failed"):
        console.print("  continue it with the same 'freehold tune' command plus --resume", highlight=False)
    if st.get("model"):
        console.print(f"  model: {st['model']} (freehold run {st['model']})", highlight=False)
