"""Formatting and batching: assistant-only loss, length limits, deterministic length-bucketed plans."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freehold.errors import UsageError
from freehold.testing import CHATML, write_tiny_hf
from freehold.train.data import IGNORE, Plan, check_rows, encode, encode_example, micro_batches, plan_epoch
from freehold.train.trainer import render_fn


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(write_tiny_hf(tmp_path_factory.mktemp("tok") / "hf"))


def _row(*turns: tuple[str, str], id: str = "x") -> dict:
    return {"id": id, "messages": [{"role": r, "content": c} for r, c in turns]}


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
    assert "--overlong turns" in (err.value.hint or "") and "--overlong drop" in (err.value.hint or "")
    full = encode_example(tokenizer, render, rows[1])
    kept, report = encode(rows, tokenizer, render, 40, "truncate")
    assert len(kept) == 2 and report.truncated == report.cut_at_limit == 1 and max(e.n_tokens for e in kept) == 40
    assert kept[1].input_ids == full.input_ids[:40]  # truncate: the same tokens as before "turns" existed
    kept, report = encode(rows, tokenizer, render, 40, "drop")
    assert len(kept) == 1 and report.dropped_overlong == 1


def test_overlong_threads_are_cut_after_the_last_assistant_turn_that_fits(tokenizer) -> None:  # type: ignore[no-untyped-def]
    render = render_fn(CHATML, tokenizer)
    thread = _row(("system", "Be brief."), ("user", "Is it red?"), ("assistant", "Yes, red."),
                  ("user", "And the lid?"), ("assistant", "Blue."), ("user", "Why? " * 30),
                  ("assistant", "Because " * 40), id="thread-1")
    msgs = thread["messages"]
    first, second = (encode_example(tokenizer, render, {**thread, "messages": msgs[:n]}) for n in (3, 5))
    full = encode_example(tokenizer, render, thread)
    assert first.n_tokens < second.n_tokens < second.n_tokens + 10 < full.n_tokens
    limit = second.n_tokens + 10  # room for two replies, not for the third question and reply

    (kept,), report = encode([thread], tokenizer, render, limit, "turns")
    # The two whole replies, each with its end-of-turn marker; not a token of the third turn.
    assert (kept.input_ids, kept.labels) == (second.input_ids, second.labels)
    assert kept.id == "thread-1"  # the same example, shortened
    assert tokenizer.decode([t for t in kept.labels if t != IGNORE]) == "Yes, red.<|im_end|>\nBlue.<|im_end|>\n"
    assert tokenizer.decode(kept.input_ids) == render(msgs[:5], False)
    assert (report.overlong, report.truncated, report.cut_at_turn, report.cut_at_limit) == (1, 1, 1, 0)
    assert report.tokens == kept.n_tokens and report.target_tokens == kept.n_targets

    (kept,), report = encode([thread], tokenizer, render, second.n_tokens - 1, "turns")
    assert kept.input_ids == first.input_ids and report.cut_at_turn == 1  # only the first reply fits whole

    # Not even the first reply fits: cut inside it at the limit, the partial reply still has targets.
    limit = first.n_tokens - 3
    (kept,), report = encode([thread], tokenizer, render, limit, "turns")
    assert kept.input_ids == full.input_ids[:limit] and kept.n_tokens == limit and kept.n_targets > 0
    assert (report.cut_at_turn, report.cut_at_limit, report.dropped_overlong) == (0, 1, 0)

    # The limit ends before the first reply starts: nothing left to learn, so it is dropped.
    kept_list, report = encode([thread], tokenizer, render, 8, "turns")
    assert kept_list == [] and report.dropped_overlong == 1 and report.truncated == 0


def test_the_default_policy_cuts_at_turns() -> None:
    from freehold.train.config import TuneConfig

    assert TuneConfig("b", "d", "o").overlong == "turns"


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
    counts = [len(plan_epoch(lengths, 7, e, 1024, 2)) for e in range(3)]
    assert plan.epoch_steps == counts and plan.total == sum(counts)
    assert plan.step(1) == a[0] and plan.epoch_of(len(a)) == 0 and plan.epoch_of(len(a) + 1) == 1
    assert Plan(lengths, 7, 3, 1024, 2, max_steps=5).total == 5


def test_a_later_epoch_that_packs_to_fewer_steps_is_planned_by_its_own_count() -> None:
    """Issue 11: epoch 0 packs to 37 steps and epoch 1 to 36, so the old plan (2 x 37 = 74
    steps) asked epoch 1 for a 37th step that does not exist, and raised at step 74."""
    lengths = [(i * 7) % 30 + 1 for i in range(65)]
    epoch0, epoch1 = (plan_epoch(lengths, seed=0, epoch=e, batch_tokens=40, grad_accum=1) for e in (0, 1))
    assert (len(epoch0), len(epoch1)) == (37, 36)  # the old assumption (equal counts) fails here
    plan = Plan(lengths, 0, epochs=2, batch_tokens=40, grad_accum=1)
    assert plan.total == 73 and plan.epoch_steps == [37, 36]
    assert [plan.step(n) for n in range(1, 74)] == epoch0 + epoch1
    assert plan.epoch_of(37) == 0 and plan.epoch_of(38) == 1 and plan.epoch_of(73) == 1
    with pytest.raises(IndexError):
        plan.step(74)


@st.composite
def _lengths(draw: st.DrawFn) -> list[int]:
    # Sizes past one sorting window (64 x grad-accum) are where epochs pack differently.
    n, longest = draw(st.integers(1, 300)), draw(st.integers(1, 700))
    return draw(st.lists(st.integers(1, longest), min_size=n, max_size=n))


@settings(max_examples=150, deadline=None)
@given(lengths=_lengths(), seed=st.integers(0, 2**31), epochs=st.integers(1, 4), batch_tokens=st.integers(8, 2048),
       grad_accum=st.integers(1, 3), max_steps=st.none() | st.integers(1, 400))
def test_every_planned_step_exists_and_each_epoch_uses_each_example_once(
        lengths: list[int], seed: int, epochs: int, batch_tokens: int, grad_accum: int, max_steps: int | None) -> None:
    # Some examples are longer than batch_tokens alone (prepare raises the budget to the
    # longest, but the plan must cope either way): they get a micro-batch of their own.
    plan = Plan(lengths, seed, epochs, batch_tokens, grad_accum, max_steps)
    planned = sum(len(plan_epoch(lengths, seed, e, batch_tokens, grad_accum)) for e in range(epochs))
    assert plan.total == (min(planned, max_steps) if max_steps else planned)
    steps = [plan.step(n) for n in range(1, plan.total + 1)]
    epochs_of = [plan.epoch_of(n) for n in range(1, plan.total + 1)]
    for step in steps:
        assert 1 <= len(step) <= grad_accum and all(step)
        assert all(0 <= i < len(lengths) for mb in step for i in mb)
        assert all(len(mb) == 1 or len(mb) * max(lengths[i] for i in mb) <= batch_tokens for mb in step)
    # epoch_of: starts at 0, never goes back, never skips an epoch, and agrees with the offsets.
    assert epochs_of[0] == 0 and all(0 <= b - a <= 1 for a, b in itertools.pairwise(epochs_of))
    for epoch, start in enumerate(plan.epoch_starts):
        own = plan_epoch(lengths, seed, epoch, batch_tokens, grad_accum)
        span = steps[start:start + len(own)]
        assert span == own[:len(span)] and set(epochs_of[start:start + len(span)]) == {epoch}
        if start + len(own) <= plan.total:  # a full epoch: every example exactly once
            assert sorted(i for step in span for mb in step for i in mb) == list(range(len(lengths)))
    for outside in (0, plan.total + 1):
        with pytest.raises(IndexError):
            plan.step(outside)
    # A resume rebuilds the plan from scratch and continues at a checkpoint, e.g. an epoch boundary.
    for start in plan.epoch_starts:
        resumed = Plan(lengths, seed, epochs, batch_tokens, grad_accum, max_steps)
        assert [resumed.step(n) for n in range(start + 1, plan.total + 1)] == steps[start:]


def test_unknown_split_layers_count_as_training(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from freehold.train.trainer import dataset_rows
    from tests.train.conftest import chat_rows, make_dataset

    make_dataset(store, "d", {"train": chat_rows(3), "validation": chat_rows(2)}, tmp_path)
    entry = store.get("d", kind="dataset")
    assert len(dataset_rows(store, entry, "train")) == 3
    assert len(dataset_rows(store, entry, "validation")) == 2
    assert dataset_rows(store, entry, "test") == []
