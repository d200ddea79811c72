"""Shrinking (freehold.train.compress) on a tiny generated llama: the distillation losses against
their closed forms, pruning nothing changes nothing, pruned models load in llama.cpp with the
stated shapes, and healing lowers a pruned student's loss."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from freehold.errors import UsageError


def _softmax(x: np.ndarray, t: float) -> np.ndarray:
    z = x / t - (x / t).max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def test_kd_losses_match_their_closed_forms_with_masked_positions_left_out() -> None:
    import torch

    from freehold.train.compress import kd_loss

    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(2, 3, 7)) * 3, rng.normal(size=(2, 3, 7)) * 3
    mask = np.array([[1, 1, 0], [0, 1, 1]], dtype=bool)
    for temp in (1.0, 2.0):
        ps, pt = _softmax(s, temp), _softmax(t, temp)
        kl_ts = (pt * (np.log(pt) - np.log(ps))).sum(-1)
        kl_st = (ps * (np.log(ps) - np.log(pt))).sum(-1)
        m = (ps + pt) / 2
        jsd = 0.5 * (pt * (np.log(pt) - np.log(m))).sum(-1) + 0.5 * (ps * (np.log(ps) - np.log(m))).sum(-1)
        for kind, per in (("forward", kl_ts), ("reverse", kl_st), ("jsd", jsd)):
            got = float(kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(mask), kind, temp))
            assert got == pytest.approx(per[mask].mean() * temp**2, rel=1e-5), (kind, temp)
        assert (jsd <= math.log(2) + 1e-9).all()
    # What is masked does not count: change it wildly and the loss stays.
    s2 = s.copy()
    s2[~mask] = 100.0
    assert float(kd_loss(torch.tensor(s2), torch.tensor(t), torch.tensor(mask))) == pytest.approx(
        float(kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(mask))))
    assert float(kd_loss(torch.tensor(t), torch.tensor(t), torch.tensor(mask), "jsd")) == pytest.approx(0, abs=1e-6)
    with pytest.raises(UsageError, match="unknown distillation loss"):
        kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(mask), "kl")
    with pytest.raises(UsageError, match="mask is empty"):
        kd_loss(torch.tensor(s), torch.tensor(t), torch.zeros(2, 3, dtype=torch.bool))


@pytest.fixture
def four_layers(tmp_path: Path) -> Path:
    from freehold.testing import write_tiny_hf

    return write_tiny_hf(tmp_path / "teacher", n_layers=4, ffn=128)


def _model(path: Path):  # type: ignore[no-untyped-def]
    from freehold.train.model import load_base

    return load_base(path, "cpu")[0]


def _batches(n: int = 3, length: int = 24, seed: int = 0) -> list[tuple[object, object, object]]:
    import torch

    from freehold.testing import tiny_vocab

    vocab = len(tiny_vocab()[0])
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(3, vocab, (2, length), generator=g)
        mask = torch.ones_like(ids)
        mask[1, -5:] = 0  # padding
        out.append((ids, mask, mask.clone()))
    return out


def test_pruning_nothing_reproduces_the_teacher(four_layers: Path) -> None:
    import torch

    from freehold.train.compress import mlp_importance, prune_layers, prune_mlp

    teacher, student = _model(four_layers), _model(four_layers)
    batches = _batches()
    ids, mask, _ = batches[0]
    with torch.no_grad():
        before = teacher(input_ids=ids, attention_mask=mask).logits
        prune_layers(student, [])
        prune_mlp(student, mlp_importance(student, [(b[0], b[1]) for b in batches]), 128)
        after = student(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(before, after, atol=1e-4)


def test_depth_and_width_pruning_give_a_dense_model_llama_cpp_loads(four_layers: Path, tmp_path: Path) -> None:
    import gguf

    from freehold.export import logits_gap, write_gguf
    from freehold.train.compress import (
        block_influence,
        least_influential,
        mlp_importance,
        prune_layers,
        prune_mlp,
        save_student,
    )

    model = _model(four_layers)
    calib = [(b[0], b[1]) for b in _batches()]
    influence = block_influence(model, calib)
    assert len(influence) == 4 and all(0 <= x <= 2 for x in influence)
    drop = least_influential(influence, 2)
    assert drop == sorted(sorted(range(1, 3), key=lambda i: influence[i])[:2]) == [1, 2]
    assert least_influential([0.01, 0.1, 0.3, 0.05, 0.9], 2) == [1, 3]  # by influence; never the first or last
    with pytest.raises(UsageError, match="cannot drop 3 of 4"):
        least_influential(influence, 3)
    prune_layers(model, [2])
    prune_mlp(model, mlp_importance(model, calib), 64)
    assert model.config.num_hidden_layers == 3 and len(model.model.layers) == 3
    mlp = model.model.layers[0].mlp
    assert tuple(mlp.gate_proj.weight.shape) == (64, 64) and tuple(mlp.down_proj.weight.shape) == (64, 64)
    with pytest.raises(UsageError, match="multiple of 64"):
        prune_mlp(model, mlp_importance(model, calib), 48)
    student = save_student(model, four_layers, tmp_path / "student")
    out = write_gguf(student, None, tmp_path / "student.gguf", "f32")
    fields = gguf.GGUFReader(str(out)).fields
    assert int(fields["llama.block_count"].parts[-1][0]) == 3
    assert int(fields["llama.feed_forward_length"].parts[-1][0]) == 64
    gap = logits_gap(out, student, [1, 80, 81, 82, 83, 84, 85, 86], threads=1)  # llama.cpp runs it, the same way
    assert gap["argmax_agree"] == 1.0 and gap["max_abs"] < 1e-2, gap


def test_healing_lowers_a_pruned_students_loss(four_layers: Path) -> None:
    import torch

    from freehold.train.compress import heal, prune_layers

    torch.manual_seed(0)
    teacher, student = _model(four_layers), _model(four_layers)
    prune_layers(student, [1, 2])
    losses = heal(student, teacher, _batches(4), steps=40, lr=3e-3)
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_compress_a_store_model_the_student_knows_its_teacher(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """freehold compress on a 4-layer tiny llama: 2 layers dropped, healed a few steps, exported,
    imported with its lineage (teacher and dataset), measured beside the teacher; llama.cpp runs it."""

    import gguf

    from freehold.engine import SamplingParams, load_engine
    from freehold.home import import_model
    from freehold.ledger.ops import lineage, verify
    from freehold.store import MediaType
    from freehold.testing import import_orders, write_tiny_gguf
    from freehold.train.compress import compress_model

    teacher = import_model(store, write_tiny_gguf(tmp_path / "t.gguf", n_layers=4), "teacher")
    import_orders(store, tmp_path)
    with pytest.raises(UsageError, match="cannot drop 3 of 4"):
        compress_model("teacher", "orders", drop_layers=3, store=store)
    from freehold.jobs import submit  # the same as a job

    with pytest.raises(UsageError, match="unknown distillation loss"):
        submit(store, "compress", {"model": "teacher", "data": "orders", "loss": "kl"})
    assert submit(store, "compress", {"model": "teacher", "data": "orders", "drop_layers": 2}).state == "queued"
    entry = compress_model("teacher", "orders", drop_layers=2, heal_steps=6, lr=1e-3, store=store)
    assert entry.name == "teacher-small:latest"
    recipe = entry.manifest.source["recipe"]
    assert recipe["layers"] == [4, 2] and recipe["drop_layers"] == [1, 2] and len(recipe["influence"]) == 4
    assert entry.manifest.source["teacher"] == teacher.name and entry.manifest.source["dataset"] == "orders:latest"
    m = recipe["measured"]
    assert m["student"]["bytes"] < m["teacher"]["bytes"] and m["student"]["perplexity"] > 1
    assert 0 <= m["top1_agreement"] <= 1
    from freehold.train.compress import top1_agreement

    path_t = store.blob_path(teacher.manifest.layer(MediaType.GGUF).digest)
    texts = [[1, 80, 81, 82, 83, 84, 85], [1, 90, 91, 92, 93]]
    assert top1_agreement(path_t, path_t, texts, 1) == 1.0  # a model agrees with itself everywhere
    path = store.blob_path(entry.manifest.layer(MediaType.GGUF).digest)
    assert int(gguf.GGUFReader(str(path)).fields["llama.block_count"].parts[-1][0]) == 2
    graph = lineage(store, entry.name).to_dict()
    types = [n["type"] for n in graph["nodes"]]
    assert "import" in types and "dataset" in types  # the teacher's import and the data, upstream of the student
    head = next(n for n in graph["nodes"] if n["id"] == graph["head"])
    assert head["type"] == "export" and head["payload"]["params"]["teacher"] == teacher.manifest_digest
    assert verify(store, entry.name).ok
    from freehold.models import licence_info

    assert licence_info(store, entry)["name"] == licence_info(store, teacher)["name"] == "apache-2.0"
    engine = load_engine(entry.name, store=store, threads=1)  # llama.cpp serves the student
    assert engine.complete(engine.chat([{"role": "user", "content": "hi"}],
                                       SamplingParams(temperature=0, max_tokens=4))).completion_tokens > 0
    engine.close()
