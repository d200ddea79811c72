"""Formatting and batching: assistant-only loss, length limits, deterministic length-bucketed plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from freehold.errors import UsageError
from freehold.testing import CHATML, write_tiny_hf
from freehold.train.data import IGNORE, Plan, check_rows, encode, encode_example, micro_batches, plan_epoch
from freehold.train.trainer import render_fn


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write_tiny_hf(tmp_path_factory.mktemp("tok") / "hf"))


def _row(*turns: tuple[str, str]) -> dict:
    return {"id": "x", "messages": [{"role": r, "content": c} for r, c in turns]}


def test_loss_mask_covers_exactly_the_assistant_turns(tokenizer) -> None:  # type: ignore[no-untyped-def]
    render = render_fn(CHATML, tokenizer)
    row = _row(("system", "Be brief."), ("user", "Hi there"), ("assistant", "Hello!"), ("user", "Bye"),
               ("assistant", "See you."))
    ex = encode_example(tokenizer, render, row)
    learned = tokenizer.decode([t for t in ex.labels if t != IGNORE])
    # Both replies with their end-of-turn marker (so the model learns to stop), nothing else.
    assert learned == "Hello!<|im_end|>\nSee you.<|im_end|>\n"
    assert tokenizer.decode(ex.input_ids) == render(row["messages"], False)
    assert ex.n_targets == sum(t != IGNORE for t in ex.labels)


def test_overlong_examples_error_with_counts_or_are_truncated_or_dropped(tokenizer) -> None:  # type: ignore[no-untyped-def]
    render = render_fn(CHATML, tokenizer)
    rows = [_row(("user", "q"), ("assistant", "short")), _row(("user", "q"), ("assistant", "long " * 80))]
    with pytest.raises(UsageError) as err:
        encode(rows, tokenizer, render, 40, "error")
    assert "1 of 2 examples are longer than the 40-token limit" in err.value.message
    assert "--overlong truncate" in (err.value.hint or "")
    kept, report = encode(rows, tokenizer, render, 40, "truncate")
    assert len(kept) == 2 and report.truncated == 1 and max(e.n_tokens for e in kept) == 40
    kept, report = encode(rows, tokenizer, render, 40, "drop")
    assert len(kept) == 1 and report.dropped_overlong == 1


def test_rows_of_the_wrong_shape_are_reported_together() -> None:
    rows = [{"id": "a", "messages": "hi"}, {"id": "b", "messages": [{"role": "user", "content": "only a question"}]}]
    with pytest.raises(UsageError) as err:
        check_rows(rows, "dataset d")
    assert "row 1: no 'messages' list" in err.value.message
    assert "row 2: no assistant message" in err.value.message


def test_micro_batches_stay_within_the_token_budget() -> None:
    lengths = [10, 12, 50, 51, 52, 100, 9, 11]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = micro_batches(order, lengths, 120)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 120 or len(b) == 1


def test_plan_is_deterministic_covers_each_epoch_and_wastes_little_padding() -> None:
    import random

    rng = random.Random(1)
    lengths = [rng.randint(20, 300) for _ in range(200)]
    a = plan_epoch(lengths, seed=7, epoch=0, batch_tokens=1024, grad_accum=2)
    assert a == plan_epoch(lengths, seed=7, epoch=0, batch_tokens=1024, grad_accum=2)
    assert a != plan_epoch(lengths, seed=7, epoch=1, batch_tokens=1024, grad_accum=2)
    assert sorted(i for step in a for mb in step for i in mb) == list(range(200))
    padded = sum(len(mb) * max(lengths[i] for i in mb) for step in a for mb in step)
    assert sum(lengths) / padded > 0.9  # length bucketing: >90% of the compute is real tokens
    plan = Plan(lengths, 7, epochs=3, batch_tokens=1024, grad_accum=2, max_steps=None)
    assert plan.total == 3 * len(a) and plan.step(1) == a[0] and plan.epoch_of(len(a) + 1) == 1
    assert Plan(lengths, 7, 3, 1024, 2, max_steps=5).total == 5


def test_unknown_split_layers_count_as_training(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from freehold.train.trainer import dataset_rows
    from tests.train.conftest import chat_rows, make_dataset

    make_dataset(store, "d", {"train": chat_rows(3), "validation": chat_rows(2)}, tmp_path)
    entry = store.get("d", kind="dataset")
    assert len(dataset_rows(store, entry, "train")) == 3
    assert len(dataset_rows(store, entry, "validation")) == 2
    assert dataset_rows(store, entry, "test") == []
