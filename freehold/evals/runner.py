"""The model under evaluation: greedy generation (batched or one at a time), token log-probs,
and the per-item cache that lets an interrupted suite resume.

Generation on llama.cpp goes through the serving scheduler (``BatchedLlamaBackend``): one
worker thread per slot calls ``Engine.chat`` and llama.cpp decodes all slots in one batch,
which is several times faster than one prompt after another on a CPU (measured in
benchmarks/bench_eval_throughput.py). Log-probs come from a second llama.cpp context made
with ``logits_all`` and kept for the whole run (``LlamaCppBackend.logits`` loads one per
call); on PyTorch both come from the one model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from freehold.config import Settings, load_settings
from freehold.engine import Engine, SamplingParams, load_engine
from freehold.engine.base import Scorer
from freehold.errors import ContextOverflowError, EngineError, InvalidModelError
from freehold.ledger import ref
from freehold.store import MediaType, ModelEntry, Store

# A scoring window of 1024 tokens keeps llama.cpp's logits_all buffer at n_ctx x vocab x 4
# bytes = 200 MB for SmolLM2 (49k vocabulary); longer items are scored over their last window.
SCORE_WINDOW = 1024


def weights_refs(entry: ModelEntry) -> list[dict[str, Any]]:
    """Ledger references to a model's weight layers (GGUF and/or safetensors): what evals cite."""
    refs = [ref("model", la.digest, media_type=la.media_type, name=entry.name)
            for la in entry.manifest.layers if la.media_type in MediaType.WEIGHTS]
    if not refs:
        raise InvalidModelError(f"{entry.name} has no weights layer to evaluate",
                                "re-import the model with 'freehold import'")
    return refs


def model_digest(entry: ModelEntry) -> str:
    """One digest naming the exact weights (the first weights layer), used for cache keys."""
    return str(weights_refs(entry)[0]["digest"])


class ModelRunner:
    """Generation and scoring for one store model. Close it (or use ``with``) to free memory."""

    def __init__(self, store: Store, name: str | ModelEntry, *, backend: str = "llama", batch: int = 8,
                 settings: Settings | None = None, threads: int | None = None) -> None:
        self.store = store
        self.settings = settings or load_settings()
        self.entry = name if isinstance(name, ModelEntry) else store.get(name)
        self.name = self.entry.name
        self.backend_name = backend
        self.batch = max(1, batch)
        self.threads = threads or self.settings.threads
        self.digest = model_digest(self.entry)
        self.refs = weights_refs(self.entry)
        self._engine: Engine | None = None
        self._scorer: Scorer | None = None
        self._lock = threading.Lock()

    # lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> ModelRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._scorer is not None and self._scorer is not getattr(self._engine, "backend", None):
            with contextlib.suppress(Exception):
                self._scorer.close()  # its own context; a backend that scores closes with the engine
        self._scorer = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            # llama.cpp with continuous batching evaluates ``batch`` conversations at once.
            batched = self.backend_name == "llama" and self.batch > 1
            self._engine = load_engine(self.entry, store=self.store, backend=self.backend_name, settings=self.settings,
                                       threads=self.threads, slots=self.batch if batched else None)
        return self._engine

    @property
    def has_template(self) -> bool:
        return self.store.text_layer(self.entry.manifest, MediaType.TEMPLATE) is not None

    # generation ---------------------------------------------------------------------------
    @property
    def served_params(self) -> dict[str, Any]:
        """The sampling a request that sets nothing gets when this model is served: its params
        layer over the global defaults (what a user of 'freehold run' or the API sees)."""
        from freehold.engine import model_params

        p = SamplingParams.given().under(model_params(self.store, self.entry))
        return {"temperature": p.temperature, "top_p": p.top_p, "top_k": p.top_k, "min_p": p.min_p,
                "repeat_penalty": p.repeat_penalty}

    def chat_many(self, conversations: Sequence[Sequence[dict[str, str]]], max_tokens: int,
                  on_done: Callable[[int, str | None], None] | None = None, *,
                  seeds: Sequence[int] | None = None) -> list[str | None]:
        """Replies to each conversation, in order; None for a prompt longer than the context
        (counted as skipped by the suites, not fatal). ``on_done(i, text)`` fires as each finishes
        (from worker threads), so callers can cache results the moment they exist.

        Without ``seeds``: pure greedy (no repeat penalty), deterministic and the same on every
        backend. With ``seeds`` (one per conversation): the model's served sampling
        (``served_params``), each reply seeded, so two models get the same random stream per item."""
        engine = self.engine
        greedy = SamplingParams(temperature=0.0, repeat_penalty=1.0, max_tokens=max_tokens, seed=0)
        served = SamplingParams(**self.served_params, max_tokens=max_tokens) if seeds is not None else None
        results: list[str | None] = [None] * len(conversations)

        def one(i: int) -> None:
            messages = list(conversations[i])
            params = greedy if served is None or seeds is None else dataclasses.replace(served, seed=seeds[i])
            text: str | None
            try:
                if not self.has_template:
                    # A base model has no chat template: continue the raw text of the last turn.
                    prompt = "\n\n".join(m["content"] for m in messages) + "\n"
                    text = engine.complete(engine.generate(prompt, params)).text
                else:
                    text = engine.complete(engine.chat(messages, params)).text
            except ContextOverflowError:
                text = None
            results[i] = text
            if on_done is not None:
                with self._lock:
                    on_done(i, text)

        workers = self.batch if isinstance(engine.backend, _batched_type()) else 1
        if workers == 1:
            for i in range(len(conversations)):
                one(i)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for future in [pool.submit(one, i) for i in range(len(conversations))]:
                    future.result()
        return results

    # scoring ------------------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return self.engine.backend.tokenize(text, add_special=add_special)

    def render_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
        template = self.engine.template
        if template is None:
            return "\n\n".join(m["content"] for m in messages)
        from freehold.engine.chat import validate_messages

        return template.render(validate_messages(list(messages)), add_generation_prompt=add_generation_prompt)

    def _logits(self, tokens: Sequence[int]) -> Any:
        if self._scorer is None:
            from freehold.engine import load_scorer

            self._scorer = load_scorer(self.store, self.entry, self.engine, backend=self.backend_name,
                                       window=self.window, threads=self.threads)
        return self._scorer.logits(tokens)

    @property
    def window(self) -> int:
        if self.backend_name == "torch":
            return min(SCORE_WINDOW, self.engine.n_ctx)
        trained = int(self.entry.info.get("context_length") or SCORE_WINDOW)
        return min(SCORE_WINDOW, trained)

    def token_logprobs(self, tokens: Sequence[int]) -> list[float]:
        """log p(tokens[i] | tokens[:i]) for i >= 1 (len(tokens) - 1 values), in nats."""
        from freehold.evals.metrics import log_softmax_rows

        if len(tokens) < 2:
            return []
        if len(tokens) > self.window:
            raise EngineError(f"{len(tokens)} tokens do not fit the {self.window}-token scoring window",
                              "score shorter texts")
        logp: Any = log_softmax_rows(self._logits(tokens))
        return [float(logp[i - 1, tokens[i]]) for i in range(1, len(tokens))]

    def score_continuation(self, context: str, continuation: str) -> tuple[float, int]:
        """(sum of log-probs, token count) of ``continuation`` after ``context``."""
        ctx = self.tokenize(context, add_special=True) if context else self.tokenize("", add_special=True)
        full = self.tokenize(context + continuation, add_special=True)
        # Tokenisation can merge across the boundary; score every token past the shared prefix.
        start = 0
        while start < min(len(ctx), len(full)) and ctx[start] == full[start]:
            start += 1
        start = max(start, 1)
        if len(full) > self.window:
            full = full[-self.window:]
            start = max(1, start - (len(full) - self.window))
        lps = self.token_logprobs(full)
        picked = lps[start - 1:]
        return (sum(picked), len(picked))


def _batched_type() -> type:
    from freehold.engine.batched import BatchedLlamaBackend

    return BatchedLlamaBackend


class ItemCache:
    """Per-item results of one suite on one model and one data digest, appended as JSON lines.

    Lives under ``$FREEHOLD_HOME/evals/cache/<model>/<suite>-<data>-<params>.jsonl``. Each
    finished item is flushed at once, so an interrupted run loses at most the items in flight
    and the next run skips everything already there. A torn last line is ignored.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: dict[str, Any] = {}
        if path.is_file():
            with path.open("rb") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # the line being written when the run stopped
                    self.items[row["key"]] = row["value"]
        self.resumed = len(self.items)
        self._file: Any = None

    @classmethod
    def open(cls, home: Path, model_digest: str, suite: str, data_digest: str, params: dict[str, Any]) -> ItemCache:
        pkey = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
        path = (home / "evals" / "cache" / model_digest.removeprefix("sha256:")[:16]
                / f"{suite}-{data_digest.removeprefix('sha256:')[:16]}-{pkey}.jsonl")
        return cls(path)

    def __contains__(self, key: str) -> bool:
        return key in self.items

    def get(self, key: str) -> Any:
        return self.items.get(key)

    def put(self, key: str, value: Any) -> None:
        self.items[key] = value
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        self._file.write(json.dumps({"key": key, "value": value}, ensure_ascii=False).encode() + b"\n")
        # flush, not fsync: a killed process keeps what was flushed; only a power cut loses the tail.
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
