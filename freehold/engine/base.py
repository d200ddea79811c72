"""The engine contract: sampling parameters, streamed chunks, and the Backend protocol.

A backend only turns prompt tokens into sampled token ids (and texts into embeddings);
``Engine`` (engine/__init__.py) owns everything above that once for all backends: chat
templates, incremental UTF-8 decoding, stop strings, token limits and finish reasons.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from freehold.errors import UsageError

if TYPE_CHECKING:
    from freehold.engine.tools import ToolCall

# The knobs a model's params layer (MediaType.PARAMS, Ollama's "params") may set for requests
# that leave them out; anything else in the layer is ignored.
MODEL_DEFAULTS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty")


@dataclass(frozen=True)
class SamplingParams:
    # Global defaults, for models whose params layer does not set a knob: llama.cpp's
    # (common_params_sampling: temp 0.80, top_k 40, top_p 0.95, min_p 0.05) with Ollama's
    # repeat penalty (api.DefaultOptions: repeat_penalty 1.1 over the last 64 tokens; llama.cpp
    # leaves it off). Ollama's own top_p is 0.9 and it has no min_p.
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None  # None: until end-of-sequence or the context is full
    grammar: str | None = None  # GBNF that constrains output (JSON mode, JSON schema); llama.cpp only
    # Lazy grammar: free output until it matches one of these patterns (a tool call opening),
    # then the grammar holds from the pattern's first group on. A help, not a promise: a
    # backend without lazy grammars decodes freely.
    grammar_triggers: tuple[str, ...] = ()
    logprobs: int | None = None  # None: off; n >= 0: each token's log-probability and the n most likely
    # Knobs the request left out, so the model's params layer may set them (``under``). Built by
    # ``given``; a SamplingParams constructed directly has none: every value is final.
    unset: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def given(cls, **values: Any) -> SamplingParams:
        """The parameters a request gave (None: not given, so the model's default, else the global one), validated."""
        given = {k: v for k, v in values.items() if v is not None}
        return cls(**given, unset=frozenset(k for k in MODEL_DEFAULTS if k not in given)).validate()

    def under(self, model_params: Mapping[str, Any]) -> SamplingParams:
        """These parameters over a model's defaults: each knob the request left out takes the model's value.
        A request's explicit values always win."""
        fill = {k: type(getattr(self, k))(model_params[k]) for k in self.unset if k in model_params}
        return replace(self, **fill, unset=frozenset()).validate() if self.unset else self

    def validate(self) -> SamplingParams:
        problems = []
        if not 0 <= self.temperature <= 5:
            problems.append(f"temperature must be between 0 and 5, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            problems.append(f"top_k must be >= 0, got {self.top_k}")
        if not 0 <= self.min_p <= 1:
            problems.append(f"min_p must be in [0, 1], got {self.min_p}")
        if self.repeat_penalty <= 0:
            problems.append(f"repeat_penalty must be > 0, got {self.repeat_penalty}")
        if self.max_tokens is not None and self.max_tokens < 0:
            problems.append(f"max_tokens must be >= 0, got {self.max_tokens}")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            problems.append(f"top logprobs must be between 0 and 20, got {self.logprobs}")
        if len(self.stop) > 16 or any(not s for s in self.stop):
            problems.append("stop takes at most 16 non-empty strings")
        if problems:
            raise UsageError("invalid sampling parameters: " + "; ".join(problems),
                             "fix the values above")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class ScoredToken(int):
    """A sampled token id that also carries its log-probability and the top alternatives."""

    logprob: float
    top: list[tuple[int, float]]

    def __new__(cls, token: int, logprob: float, top: list[tuple[int, float]]) -> ScoredToken:
        obj = super().__new__(cls, token)
        obj.logprob = logprob
        obj.top = top
        return obj


def score_token(logits: Any, token: int, n_top: int) -> ScoredToken:
    """Log-softmax of raw next-token logits -> the chosen token's logprob and the top n."""
    import numpy as np

    x = np.asarray(logits, dtype=np.float64)
    m = x.max()
    lse = m + np.log(np.exp(x - m).sum())
    top: list[tuple[int, float]] = []
    if n_top > 0:
        idx = np.argpartition(-x, n_top - 1)[:n_top]
        idx = idx[np.argsort(-x[idx])]
        top = [(int(i), float(x[i] - lse)) for i in idx]
    return ScoredToken(token, float(x[token] - lse), top)


@dataclass
class Chunk:
    """One piece of streamed output. The last chunk has ``finish_reason`` and usage."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "stop" (EOS or stop string) | "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: list[dict[str, Any]] | None = None  # OpenAI-style entries, when asked for
    # On the last chunk of a grounded answer: {"knowledge", "found", "citations"} (knowledge.grounding)
    grounding: dict[str, Any] | None = None
    tool_calls: list[ToolCall] | None = None  # calls completed in this chunk (engine.tools)
    # On the last chunk of a reply that ran tools on MCP servers: each call, its result, its time
    tool_runs: list[dict[str, Any]] | None = None


@runtime_checkable
class Backend(Protocol):
    """What an inference backend provides. Implementations: llama.cpp, PyTorch."""

    name: str
    n_ctx: int

    def tokenize(self, text: str, add_special: bool = True) -> list[int]: ...

    def token_bytes(self, token: int) -> bytes: ...

    def is_eog(self, token: int) -> bool: ...

    def special_token_text(self, which: str) -> str | None:
        """'bos' or 'eos' as text, for chat templates."""
        ...

    def generate(self, tokens: Sequence[int], params: SamplingParams) -> Iterator[int]:
        """Yield sampled token ids after ``tokens``, until the caller stops iterating."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def close(self) -> None: ...


@runtime_checkable
class Scorer(Protocol):
    """Next-token logits at every position of a text: what evaluation (perplexity, choice
    scoring) and distillation need. ``logits(tokens)`` is a numpy array [len(tokens), vocab]."""

    def logits(self, tokens: Sequence[int]) -> Any: ...

    def close(self) -> None: ...


class StopScanner:
    """Incremental detokenizer that cuts output at stop strings.

    Text that might be the start of a stop string is held back until it is clear, so a
    stop string never leaks into streamed output.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""
        self.stopped = False

    def feed(self, data: bytes) -> str:
        self.pending += self.decoder.decode(data)
        if not self.stops:
            out, self.pending = self.pending, ""
            return out
        hits = [(self.pending.find(s), s) for s in self.stops if s in self.pending]
        if hits:
            pos = min(h[0] for h in hits)
            out = self.pending[:pos]
            self.pending = ""
            self.stopped = True
            return out
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold:]
        return out

    def flush(self) -> str:
        out = self.pending + self.decoder.decode(b"", final=True)
        self.pending = ""
        return out
