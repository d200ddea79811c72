"""Training examples: chat rows -> token ids with an assistant-only loss mask, and the step plan.

Each conversation is rendered with the model's own chat template; only the tokens of the
assistant turns (their end-of-turn marker included, so the model learns to stop) carry a
loss. Spans are found by rendering each prefix of the conversation, which works for any
template that renders a conversation as the concatenation of its prefixes.

A conversation over the length limit is, by default (``--overlong turns``), cut after the
last whole assistant turn that fits: a long mail thread still teaches its first replies
instead of stopping the run.

Batches group examples of similar length (length bucketing), so almost no compute goes
to padding, and the plan is a pure function of (seed, epoch, lengths): a resumed run, or a
replay, rebuilds exactly the same batches without storing them.
"""

from __future__ import annotations

import bisect
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
    overlong: int = 0  # examples over the limit, before the policy applied
    longest: int = 0
    truncated: int = 0  # overlong examples cut to fit (cut_at_turn + cut_at_limit)
    cut_at_turn: int = 0  # ... after their last whole assistant turn that fits
    cut_at_limit: int = 0  # ... at the token limit (--overlong truncate, or no whole reply fits)
    dropped_overlong: int = 0  # overlong examples left out (drop, or nothing to learn left after the cut)
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
    return _encode(tokenizer, render, row)[0]


def _encode(tokenizer: Any, render: Any, row: dict[str, Any]) -> tuple[Example, list[int]]:
    """(the example, the token count through each assistant turn, in order)."""
    text, spans = assistant_spans(render, list(row["messages"]))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = list(enc["offset_mapping"])
    labels = []
    for tok, (start, end) in zip(ids, offsets, strict=True):
        # A token belongs to a turn when it starts inside it (byte-level BPE never merges
        # across the template's special tokens, so boundaries line up).
        inside = any(s <= start < e for s, e in spans) and end > start
        labels.append(tok if inside else IGNORE)
    starts = [start for start, _ in offsets]
    return Example(str(row["id"]), ids, labels), [bisect.bisect_left(starts, e) for _, e in spans]


def _cut_at_turn(tokenizer: Any, render: Any, row: dict[str, Any], through: list[int],
                 max_seq_len: int) -> Example | None:
    """The longest prefix of whole messages that ends with an assistant turn and fits, or None.

    ``through``: the token count through each assistant turn in the full encoding. The prefix
    is encoded as a conversation of its own (what the template renders for it), and keeps the
    row's id: it is the same example, shortened.
    """
    messages = list(row["messages"])
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    # Counts from the full text pick the candidate; re-encoding confirms it (a token could
    # straddle the cut with another tokenizer), else the next shorter one is tried.
    for index, n_tokens in reversed(list(zip(replies, through, strict=True))):
        if n_tokens > max_seq_len:
            continue
        ex = encode_example(tokenizer, render, {**row, "messages": messages[: index + 1]})
        if ex.n_tokens <= max_seq_len and ex.n_targets:
            return ex
    return None


def encode(rows: Iterable[dict[str, Any]], tokenizer: Any, render: Any, max_seq_len: int,
           overlong: str) -> tuple[list[Example], EncodeReport]:
    """Tokenize every row; apply the overlong policy (``error`` raises with counts).

    ``turns`` keeps the longest prefix of whole messages that ends with an assistant turn and
    fits; when not even the first reply fits it cuts at the token limit (the partial reply
    still teaches), as ``truncate`` always does; ``drop`` leaves the example out. An overlong
    example with nothing left to learn after the cut is dropped.
    """
    report = EncodeReport()
    out = []
    for row in rows:
        ex, through = _encode(tokenizer, render, row)
        report.examples += 1
        report.longest = max(report.longest, ex.n_tokens)
        if ex.n_tokens > max_seq_len:
            report.overlong += 1
            if overlong == "drop":
                report.dropped_overlong += 1
                continue
            if overlong in ("turns", "truncate"):
                shorter = _cut_at_turn(tokenizer, render, row, through, max_seq_len) if overlong == "turns" else None
                at_turn = shorter is not None
                if shorter is None:
                    shorter = Example(ex.id, ex.input_ids[:max_seq_len], ex.labels[:max_seq_len])
                if shorter.n_targets == 0:
                    report.dropped_overlong += 1
                    continue
                report.truncated += 1
                report.cut_at_turn += at_turn
                report.cut_at_limit += not at_turn
                ex = shorter
        if ex.n_targets == 0:
            report.dropped_no_target += 1
            continue
        report.tokens += ex.n_tokens
        report.target_tokens += ex.n_targets
        out.append(ex)
    if report.overlong and overlong == "error":
        raise UsageError(f"{report.overlong} of {report.examples} examples are longer than the "
                         f"{max_seq_len}-token limit (the longest is {report.longest} tokens)",
                         "use --overlong turns (cut each after its last assistant turn that fits) or --overlong "
                         "drop (leave them out), or raise --max-seq-len up to the model's context")
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
    """All steps of a run: epochs of ``plan_epoch``, cut at ``max_steps``.

    Each epoch reshuffles, and the greedy packing of a new order can give it a step more or
    fewer than epoch 0, so every epoch's own count is taken (``plan_epoch`` is pure and
    cheap) and steps map to epochs through their cumulative offsets. Epoch ``e``'s steps are
    always ``plan_epoch(..., e, ...)``, so a resume or a replay rebuilds the same ones.
    """

    def __init__(self, lengths: Sequence[int], seed: int, epochs: int, batch_tokens: int, grad_accum: int,
                 max_steps: int | None = None) -> None:
        self.lengths = list(lengths)
        self.seed, self.batch_tokens, self.grad_accum = seed, batch_tokens, grad_accum
        self._cache: dict[int, list[Step]] = {}
        self.epoch_steps: list[int] = []  # the real step count of each epoch the run reaches
        self.epoch_starts: list[int] = []  # steps before each epoch
        planned = 0
        for epoch in range(epochs):
            if max_steps and planned >= max_steps:
                break  # epochs past the cut are never run
            self.epoch_starts.append(planned)
            self.epoch_steps.append(len(self._epoch(epoch)))
            planned += self.epoch_steps[-1]
        self.total = min(planned, max_steps) if max_steps else planned

    def _epoch(self, epoch: int) -> list[Step]:
        if epoch not in self._cache:  # one epoch kept: steps are asked for in order
            self._cache = {epoch: plan_epoch(self.lengths, self.seed, epoch, self.batch_tokens, self.grad_accum)}
        return self._cache[epoch]

    def step(self, number: int) -> Step:
        """Micro-batches of optimizer step ``number`` (1-based)."""
        epoch = self.epoch_of(number)
        return self._epoch(epoch)[number - 1 - self.epoch_starts[epoch]]

    def epoch_of(self, number: int) -> int:
        """The epoch (0-based) that step ``number`` (1-based) belongs to."""
        if not 1 <= number <= self.total:
            raise IndexError(f"step {number} is outside this plan's steps 1..{self.total}")
        return bisect.bisect_right(self.epoch_starts, number - 1) - 1
