"""Training examples: chat rows -> token ids with an assistant-only loss mask, and the step plan.

Each conversation is rendered with the model's own chat template; only the tokens of the
assistant turns (their end-of-turn marker included, so the model learns to stop) carry a
loss. Spans are found by rendering each prefix of the conversation, which works for any
template that renders a conversation as the concatenation of its prefixes.

Batches group examples of similar length (length bucketing), so almost no compute goes
to padding, and the plan is a pure function of (seed, epoch, lengths): a resumed run, or a
replay, rebuilds exactly the same batches without storing them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from freehold.errors import TrainingError, UsageError

IGNORE = -100  # the label transformers and torch's cross_entropy skip


@dataclass(frozen=True)
class Example:
    id: str
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss is taken

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def n_targets(self) -> int:
        # The first token is never predicted; a label there would be shifted out.
        return sum(1 for t in self.labels[1:] if t != IGNORE)


@dataclass
class EncodeReport:
    examples: int = 0
    overlong: int = 0
    longest: int = 0
    truncated: int = 0
    dropped_overlong: int = 0
    dropped_no_target: int = 0
    tokens: int = 0
    target_tokens: int = 0
    bad_rows: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "bad_rows"}


def check_rows(rows: Sequence[dict[str, Any]], where: str) -> None:
    """Every row must be ``{"id", "messages": [{"role", "content"}...]}`` with an assistant turn."""
    problems: list[str] = []
    for n, row in enumerate(rows, 1):
        msgs = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(msgs, list) or not msgs:
            problems.append(f"row {n}: no 'messages' list")
        elif not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                     for m in msgs):
            problems.append(f"row {n}: each message needs a 'role' and a text 'content'")
        elif not any(m["role"] == "assistant" and m["content"].strip() for m in msgs):
            problems.append(f"row {n}: no assistant message to learn from")
        elif not isinstance(row.get("id"), str):
            problems.append(f"row {n}: no example 'id'")
        if len(problems) >= 5:
            break
    if problems:
        raise UsageError(f"{where} has rows of the wrong shape:\n  " + "\n  ".join(problems),
                         'each row must be {"id": ..., "messages": [{"role": "user"|"assistant"|"system", '
                         '"content": "..."}]}; rebuild it with \'freehold data import\'')


def assistant_spans(render: Any, messages: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
    """(full text, [(start, end) character spans of the assistant turns])."""
    full = render(messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render(messages[:i], True) if i else render([], True)
        through = render(messages[: i + 1], False)
        if not (full.startswith(through) and through.startswith(before)):
            raise TrainingError("the model's chat template does not render a conversation as the concatenation "
                                "of its prefixes, so assistant turns cannot be located for the loss",
                                "train a model whose template is prefix-stable (ChatML, Llama, Gemma templates are)")
        spans.append((len(before), len(through)))
    return full, spans


def encode_example(tokenizer: Any, render: Any, row: dict[str, Any]) -> Example:
    text, spans = assistant_spans(render, list(row["messages"]))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = []
    for tok, (start, end) in zip(ids, enc["offset_mapping"], strict=True):
        # A token belongs to a turn when it starts inside it (byte-level BPE never merges
        # across the template's special tokens, so boundaries line up).
        inside = any(s <= start < e for s, e in spans) and end > start
        labels.append(tok if inside else IGNORE)
    return Example(str(row["id"]), ids, labels)


def encode(rows: Iterable[dict[str, Any]], tokenizer: Any, render: Any, max_seq_len: int,
           overlong: str) -> tuple[list[Example], EncodeReport]:
    """Tokenize every row; apply the overlong policy (``error`` raises with counts)."""
    report = EncodeReport()
    out = []
    for row in rows:
        ex = encode_example(tokenizer, render, row)
        report.examples += 1
        report.longest = max(report.longest, ex.n_tokens)
        if ex.n_tokens > max_seq_len:
            report.overlong += 1
            if overlong == "drop":
                report.dropped_overlong += 1
                continue
            if overlong == "truncate":
                ex = Example(ex.id, ex.input_ids[:max_seq_len], ex.labels[:max_seq_len])
                report.truncated += 1
        if ex.n_targets == 0:
            report.dropped_no_target += 1
            continue
        report.tokens += ex.n_tokens
        report.target_tokens += ex.n_targets
        out.append(ex)
    if report.overlong and overlong == "error":
        raise UsageError(f"{report.overlong} of {report.examples} examples are longer than the "
                         f"{max_seq_len}-token limit (the longest is {report.longest} tokens)",
                         "add --overlong truncate (cut them at the limit) or --overlong drop (leave them out), "
                         "or raise --max-seq-len up to the model's context")
    return out, report


# -- the step plan -----------------------------------------------------------------------------

Step = list[list[int]]  # micro-batches of example indices


def micro_batches(order: Sequence[int], lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Greedy micro-batches whose padded size (rows x longest) stays within ``batch_tokens``."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = lengths[i]
        if current and (len(current) + 1) * max(longest, n) > batch_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def plan_epoch(lengths: Sequence[int], seed: int, epoch: int, batch_tokens: int, grad_accum: int) -> list[Step]:
    """The optimizer steps of one epoch, deterministic in (seed, epoch, lengths).

    Shuffle, then sort windows of examples by length so each micro-batch holds similar
    lengths (little padding) while the data stays mixed across the epoch; then shuffle the
    micro-batches so long and short ones alternate and group them ``grad_accum`` to a step.
    """
    rng = random.Random(f"freehold-tune:{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = 64 * grad_accum
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: (lengths[i], i))
        batches += micro_batches(chunk, lengths, batch_tokens)
    rng.shuffle(batches)
    return [batches[i:i + grad_accum] for i in range(0, len(batches), grad_accum)]


class Plan:
    """All steps of a run: epochs of ``plan_epoch``, cut at ``max_steps``."""

    def __init__(self, lengths: Sequence[int], seed: int, epochs: int, batch_tokens: int, grad_accum: int,
                 max_steps: int | None = None) -> None:
        self.lengths = list(lengths)
        self.seed, self.batch_tokens, self.grad_accum = seed, batch_tokens, grad_accum
        self.steps_per_epoch = len(plan_epoch(self.lengths, seed, 0, batch_tokens, grad_accum))
        total = self.steps_per_epoch * epochs
        self.total = min(total, max_steps) if max_steps else total
        self._cache: dict[int, list[Step]] = {}

    def step(self, number: int) -> Step:
        """Micro-batches of optimizer step ``number`` (1-based)."""
        epoch, index = divmod(number - 1, self.steps_per_epoch)
        if epoch not in self._cache:
            self._cache = {epoch: plan_epoch(self.lengths, self.seed, epoch, self.batch_tokens, self.grad_accum)}
        return self._cache[epoch][index]

    def epoch_of(self, number: int) -> int:
        return (number - 1) // self.steps_per_epoch
