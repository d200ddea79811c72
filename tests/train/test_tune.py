"""End to end on the tiny model: loss falls, the result is complete, replayable and served."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from freehold.errors import ModelNotFoundError, NoChatTemplateError, TrainingError, UsageError
from freehold.store import MediaType, Store
from freehold.train import StepInfo
from tests.train.conftest import chat_rows, make_dataset, served_answer, tiny_config

BASE_PARAMS = {"temperature": 0.3, "top_p": 0.85}  # the base's sampling defaults: a tune inherits them


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Any:
    """One tiny fine-tune shared by the tests below (its own home, passed explicitly)."""
    from freehold.config import load_settings
    from freehold.home import commit_recorded, import_record
    from freehold.train import tune

    home = tmp_path_factory.mktemp("tuned-home")
    settings = load_settings({"FREEHOLD_HOME": str(home)})
    store = Store.open(settings)
    staged = store.stage_gguf(tiny_gguf, "tiny", params=BASE_PARAMS)
    commit_recorded(store, staged, import_record(staged))
    make_dataset(store, "colours", {"train": chat_rows(48), "validation": chat_rows(8, seed=3)}, home / "ds")
    events: list[Any] = []
    result = tune(tiny_config(), store=store, settings=settings, progress=events.append)
    steps = [s for s in map(StepInfo.of, events) if s is not None]
    assert [e.status for e in events].index("prepared") < [e.status for e in events].index("training")
    yield store, result, steps
    store.close()


def test_loss_falls_and_the_result_names_base_dataset_and_run(tuned: Any) -> None:
    store, result, steps = tuned
    assert len(steps) == result.steps > 20 and steps[-1].epoch == 1  # two epochs ran
    assert steps[-1].loss < 0.5 * steps[0].loss
    vals = [s.val_loss for s in steps if s.val_loss is not None]
    assert vals[-1] < 0.6 * vals[0]  # held-out loss falls too
    entry = store.get("tiny-tuned")
    src = entry.manifest.source
    assert src["base"] == "tiny:latest" and src["dataset"] == "colours:latest" and src["run"] == result.run
    kinds = {layer.media_type for layer in entry.manifest.layers}
    assert {MediaType.GGUF, MediaType.SAFETENSORS, MediaType.TEMPLATE} <= kinds
    assert (result.run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    status = json.loads((result.run_dir / "status.json").read_text())
    assert status["state"] == "done" and status["model"] == "tiny-tuned:latest"
    from freehold.engine import model_params

    assert model_params(store, entry) == BASE_PARAMS  # served like its base unless a request says otherwise


def test_adapter_is_a_peft_adapter_equal_to_the_merged_model(tuned: Any) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from freehold.engine.torch import hf_directory

    store, result, _ = tuned
    base = AutoModelForCausalLM.from_pretrained(hf_directory(store, store.get("tiny")), dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, result.run_dir / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(hf_directory(store, store.get("tiny-tuned")),
                                                  dtype=torch.float32).eval()
    ids = torch.tensor([[1, 50, 60, 70, 80, 2]])
    with torch.no_grad():
        a, b = with_adapter(input_ids=ids).logits, merged(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4)
    plain = AutoModelForCausalLM.from_pretrained(hf_directory(store, store.get("tiny")), dtype=torch.float32).eval()
    with torch.no_grad():
        assert not torch.allclose(a, plain(input_ids=ids).logits, atol=1e-2)  # the adapter changed something


def test_gguf_export_matches_pytorch_and_serves(tuned: Any) -> None:
    from freehold.engine.torch import hf_directory
    from freehold.export import logits_gap

    store, _, _ = tuned
    entry = store.get("tiny-tuned")
    gguf = store.blob_path(entry.manifest.layer(MediaType.GGUF).digest)
    tokens = [1, 87, 72, 68, 87, 3, 2, 1, 65, 82, 76]
    gap = logits_gap(gguf, hf_directory(store, entry), tokens, threads=1)
    # F32 export: llama.cpp vs PyTorch differ only by kernel rounding (~3e-3 on logits ~30).
    assert gap["max_abs"] < 1e-2 and gap["argmax_agree"] == 1.0, gap
    assert served_answer(store, "tiny-tuned").completion_tokens > 0
    from freehold.engine import model_params
    from freehold.export import export_model

    small = export_model("tiny-tuned", "q8_0", store=store)
    assert model_params(store, small) == BASE_PARAMS  # an export samples like its source


def test_replay_of_sampled_steps_is_bit_exact_and_verify_passes(tuned: Any) -> None:
    from freehold.ledger import replay, verify

    store, _, _ = tuned
    reports = replay(store, "tiny-tuned", sample=0.25)
    assert reports and all(r.bit_exact for r in reports), [r.summary() for r in reports]
    report = verify(store, "tiny-tuned")
    assert report.ok, report.problems


def test_every_problem_is_reported_before_training_starts(tiny_store: Store, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    from freehold.train import prepare, trainer

    with pytest.raises(ModelNotFoundError):
        prepare(tiny_store, tiny_config(base="nope"))
    with pytest.raises(ModelNotFoundError):
        prepare(tiny_store, tiny_config(dataset="nope"))
    make_dataset(tiny_store, "empty", {"train": []}, tmp_path / "e")
    with pytest.raises(UsageError, match="no training examples"):
        prepare(tiny_store, tiny_config(dataset="empty"))
    with pytest.raises(UsageError) as err:
        prepare(tiny_store, tiny_config(lr=-1, lora_r=0, overlong="chop"))
    assert "--lr" in err.value.message and "--lora-r" in err.value.message and "--overlong" in err.value.message
    with pytest.raises(UsageError, match="longer than the 20-token limit"):
        prepare(tiny_store, tiny_config(max_seq_len=20, batch_tokens=256, overlong="error"))
    monkeypatch.setattr(trainer, "free_memory", lambda device: 10_000_000)
    with pytest.raises(TrainingError) as mem:
        prepare(tiny_store, tiny_config())
    assert "GB of memory" in mem.value.message and "lower --batch-tokens to " in (mem.value.hint or "")


def test_cli_tune_status_and_errors_exit_cleanly(tiny_store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    import freehold.cli.export
    import freehold.cli.tune  # noqa: F401 - registers the commands
    from freehold.cli import main

    args = ["tune", "tiny", "--data", "colours", "-o", "cli-tuned", "--max-steps", "3", "--quant", "f32",
            "--threads", "1", "--lora-r", "4", "--batch-tokens", "256"]
    assert main(args) == 0
    assert "tuned cli-tuned:latest" in capsys.readouterr().out
    assert main(["tune", "--status", "cli-tuned"]) == 0
    assert "done at step 3/3" in capsys.readouterr().out
    assert main(args) == 2  # the run exists: a clear error, not a second run
    assert "--resume" in capsys.readouterr().err
    assert main(["tune", "nope", "--data", "colours", "-o", "x"]) == 1
    err = capsys.readouterr().err
    assert "model 'nope' not found" in err and "Traceback" not in err
    assert main(["export", "cli-tuned", "--quant", "q4_k_m"]) == 0
    assert "cli-tuned:q4_k_m" in capsys.readouterr().out
    assert main(["run", "cli-tuned:q4_k_m", "What colour is item 1?", "-t", "0", "--max-tokens", "4"]) == 0
    # removing the model frees its name: the finished run's checkpoints go, a new run starts
    assert main(["rm", "cli-tuned", "cli-tuned:q4_k_m"]) == 0
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err
    assert "tuned cli-tuned:latest" in capsys.readouterr().out


def test_a_base_model_without_a_chat_template_learns_one(tiny_store: Store, tiny_base_gguf: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import freehold.cli.tune  # noqa: F401 - registers the command
    from freehold.cli import main
    from freehold.engine import SamplingParams, load_engine
    from freehold.engine.chat import FAMILY_TEMPLATES

    tiny_store.import_gguf(tiny_base_gguf, "tinybase")
    args = ["tune", "tinybase", "--data", "colours", "-o", "base-tuned", "--max-steps", "2", "--quant", "f32",
            "--threads", "1", "--lora-r", "4", "--batch-tokens", "256"]
    assert main(args) == 2  # a llama with no template: which turn format is not guessed
    err = capsys.readouterr().err
    assert "no chat template" in err and "--template chatml" in err
    assert main([*args, "--template", "vicuna"]) == 2
    assert "no chat template named 'vicuna'" in capsys.readouterr().err
    assert main([*args, "--template", "chatml"]) == 0, capsys.readouterr().err
    entry = tiny_store.get("base-tuned")
    assert tiny_store.text_layer(entry.manifest, MediaType.TEMPLATE) == FAMILY_TEMPLATES["chatml"]
    question = [{"role": "user", "content": "What colour is item 1?"}]
    for name, chats in (("tinybase", False), ("base-tuned", True)):  # the tuned model chats, its base cannot
        engine = load_engine(name, store=tiny_store)
        try:
            if chats:
                assert engine.render_chat(question).startswith("<|im_start|>user\nWhat colour is item 1?<|im_end|>")
                list(engine.chat(question, SamplingParams.given(temperature=0, max_tokens=4)))
            else:
                with pytest.raises(NoChatTemplateError):
                    list(engine.chat(question, SamplingParams.given(temperature=0, max_tokens=4)))
        finally:
            engine.close()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_precision_trains_is_recorded_and_replays_bit_exact(tiny_store: Store, precision: str) -> None:
    from freehold.ledger import replay
    from freehold.train import tune

    events: list[Any] = []
    result = tune(tiny_config(output=f"p-{precision}", precision=precision, max_steps=12), store=tiny_store,
                  progress=events.append)
    steps = [s for s in map(StepInfo.of, events) if s is not None]
    assert steps[-1].loss < 0.9 * steps[0].loss
    assert json.loads((result.run_dir / "config.json").read_text())["config"]["precision"] == precision
    reports = replay(tiny_store, f"p-{precision}", sample=0.25)
    assert reports and all(r.bit_exact for r in reports), [r.summary() for r in reports]


def test_auto_precision_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from freehold.train import TuneConfig, model

    monkeypatch.setattr(model, "cpu_has_bf16", lambda: True)
    assert model.choose_precision("auto", "cpu") == "bf16" and model.choose_precision("fp32", "cpu") == "fp32"
    monkeypatch.setattr(model, "cpu_has_bf16", lambda: False)
    assert model.choose_precision("auto", "cpu") == "fp32"
    old = tiny_config().to_dict()
    del old["precision"]  # a run saved before the option existed trained in fp32
    assert TuneConfig.from_dict(old).precision == "fp32"
    assert TuneConfig.from_dict(old, device="cuda").precision == "bf16"  # old CUDA runs used bf16 autocast
    with pytest.raises(UsageError, match="--precision"):
        tiny_config(precision="fp16").validate()


def test_a_base_with_only_hugging_face_files_tunes_exports_and_serves(tiny_store: Store, tiny_hf: Path) -> None:
    """No GGUF anywhere in the base's manifest: the tuned model's GGUF metadata comes from the HF files."""
    from freehold.home import import_model
    from freehold.train import tune

    import_model(tiny_store, tiny_hf, "tinyhf")
    assert tiny_store.get("tinyhf").manifest.layer(MediaType.GGUF) is None
    result = tune(tiny_config(base="tinyhf", output="tinyhf-tuned", max_steps=6, quant="q8_0"), store=tiny_store)
    entry = tiny_store.get("tinyhf-tuned")
    assert entry.manifest.source["base"] == "tinyhf:latest" and entry.manifest.layer(MediaType.GGUF) is not None
    assert result.steps == 6
    assert served_answer(tiny_store, "tinyhf-tuned", max_tokens=6).completion_tokens > 0
