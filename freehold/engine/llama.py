"""The llama.cpp backend (llama-cpp-python), used for chat, serving and embeddings."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from freehold.engine.base import SamplingParams
from freehold.errors import EngineError, InvalidModelError


def _prepare_env() -> None:
    # llama.cpp's OpenMP workers synchronise hundreds of times per token. Spinning
    # (OMP_WAIT_POLICY=ACTIVE, or libgomp's default spin) collapses decode to a few tokens/s
    # whenever another process holds a core; sleeping at once (PASSIVE) costs some idle speed
    # but stays fast on a shared machine (docs/benchmarks.md). Set either variable to override.
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


@contextlib.contextmanager
def _quiet_stderr(quiet: bool = True) -> Iterator[None]:
    """Silence llama.cpp's C-level logging on fd 2 while loading (``quiet=False``: let it log,
    as ``--debug`` / FREEHOLD_DEBUG ask through ``LoadOptions.native_logs``)."""
    if not quiet:
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def decode_threads(threads: int) -> int:
    """Threads for one-token decode steps; ``threads`` is for prompts and batches.

    Decoding one token is a chain of small, memory-bound ops with a thread barrier after
    each; on 2 cores, 1 decode thread ran at 75 tokens/s idle and 76 with a busy core,
    where 2 threads gave 103 idle but 38 (spinning) or 39/48 (passive) (docs/benchmarks.md).
    llama.cpp uses ``n_threads_batch`` whenever a batch has more than one token, so prompts
    and the server's batched steps still use every thread.
    """
    return max(1, threads // 2)


def load_llama(path: Path, n_ctx: int, threads: int, embedding: bool = False, verbose: bool = False,
               native_logs: bool = False, **kwargs: Any) -> Any:
    """A ``llama_cpp.Llama`` over ``path``, loaded with this CPU's guard (engine/cpu.py)."""
    _prepare_env()
    try:
        import llama_cpp
    except ImportError as exc:
        from freehold.errors import DependencyError

        raise DependencyError("llama-cpp-python is not installed", "pip install llama-cpp-python") from exc
    from freehold.engine.cpu import guarded_defaults

    try:
        with _quiet_stderr(not (verbose or native_logs)), guarded_defaults():
            return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=decode_threads(threads),
                                   n_threads_batch=threads, embedding=embedding, verbose=verbose, **kwargs)
    except (ValueError, RuntimeError) as exc:
        raise InvalidModelError(f"llama.cpp could not load {path.name}: {exc}",
                                "the architecture may be unsupported by this llama.cpp build, or the file "
                                "is damaged ('freehold doctor' rehashes blobs)") from exc


def compile_grammar(gbnf: str | None) -> Any:
    """A llama.cpp grammar from GBNF text (None passes through)."""
    if gbnf is None:
        return None
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        with _quiet_stderr():
            return LlamaGrammar.from_string(gbnf, verbose=False)
    except ValueError as exc:
        from freehold.errors import UsageError

        raise UsageError(f"the output grammar is invalid: {exc}", "check the JSON schema") from exc


def json_grammar(schema: dict[str, Any] | None = None) -> str:
    """GBNF for any JSON object (schema None) or for one JSON schema."""
    import json

    from llama_cpp import llama_grammar

    from freehold.errors import UsageError

    if schema is None:
        return llama_grammar.JSON_GBNF
    # The converter fetches a "$ref" that is a URL: a request must not make the server go out.
    remote = [ref for ref in _refs(schema) if not ref.startswith("#")]
    if remote:
        raise UsageError(f"the JSON schema refers outside itself ({remote[0]})",
                         "use only local references (\"$ref\": \"#/$defs/...\")")
    try:
        gbnf = str(llama_grammar.json_schema_to_gbnf(json.dumps(schema)))
    except (ValueError, KeyError, TypeError, NotImplementedError, AssertionError, RecursionError) as exc:
        raise UsageError(f"unsupported JSON schema: {exc}", "simplify the schema (objects, arrays, strings, "
                         "numbers, booleans, enums)") from exc
    # The converter lets a string hold raw control characters (a newline), which JSON does not:
    # a model would write strings that never parse. llama.cpp's own converter excludes them.
    return gbnf.replace('char ::= [^"\\\\] |', 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |')


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


class LlamaScorer:
    """A llama.cpp context that keeps every position's logits (the ``Scorer`` protocol).

    The prefix shared with the previous call stays in the KV cache and only the rest is
    decoded: evaluation texts share openings (BBQ's three answers share their context, chat
    templates share their system turn), so most of a scoring pass is skipped."""

    def __init__(self, path: Path, n_ctx: int, threads: int) -> None:
        self.llm = load_llama(path, n_ctx, threads, logits_all=True)
        self.n_ctx = int(self.llm.n_ctx())
        self.lock = threading.Lock()

    def logits(self, tokens: Sequence[int]) -> Any:
        import numpy as np

        tokens = list(tokens)
        with self.lock:
            llm = self.llm
            shared = 0
            for a, b in zip(llm.input_ids[: llm.n_tokens], tokens, strict=False):
                if a != b:
                    break
                shared += 1
            if shared < len(tokens):
                llm.n_tokens = shared  # eval() drops the cache past n_tokens before decoding
                llm.eval(tokens[shared:])
            elif llm.n_tokens > len(tokens):
                llm.n_tokens = len(tokens)  # a shorter text: its rows are the cached prefix's
            return np.array(llm.scores[: len(tokens)], copy=True)

    def close(self) -> None:
        with self.lock, contextlib.suppress(Exception):
            self.llm.close()


class LlamaCppBackend:
    name = "llama.cpp"

    def __init__(self, path: Path, n_ctx: int, threads: int, native_logs: bool = False) -> None:
        self.path = path
        self.threads = threads
        self.llm = load_llama(path, n_ctx, threads, native_logs=native_logs)
        self.n_ctx = int(self.llm.n_ctx())
        self._vocab = self.llm._model.vocab
        self._embedder: Any = None
        self._scorer: Any = None
        # One Llama context serves one sequence at a time; the server's scheduler uses
        # the batch API instead. This lock makes direct use thread-safe.
        self.lock = threading.Lock()

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True))

    def token_bytes(self, token: int) -> bytes:
        return bytes(self.llm.detokenize([token]))

    def is_eog(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def special_token_text(self, which: str) -> str | None:
        token = self.llm.token_bos() if which == "bos" else self.llm.token_eos()
        if token is None or token < 0:
            return None
        return bytes(self.llm.detokenize([token], special=True)).decode("utf-8", errors="replace")

    def generate(self, tokens: Sequence[int], params: SamplingParams) -> Iterator[int]:
        with self.lock:
            self.llm.set_seed(params.seed if params.seed is not None else random.randrange(2**31))
            top_k = params.top_k
            if params.greedy:
                top_k = 1
            gen = self.llm.generate(list(tokens), top_k=top_k, top_p=params.top_p, min_p=params.min_p,
                                    temp=params.temperature, repeat_penalty=params.repeat_penalty, reset=True,
                                    grammar=None if params.grammar_triggers else compile_grammar(params.grammar))
            try:
                yield from gen
            finally:
                gen.close()

    def logits(self, tokens: Sequence[int]) -> Any:
        """Next-token logits after every position (numpy array [len(tokens), vocab])."""
        with self.lock:
            if self._scorer is None:
                self._scorer = LlamaScorer(self.path, self.n_ctx, self.threads)
        return self._scorer.logits(tokens)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        with self.lock:
            if self._embedder is None:
                self._embedder = load_llama(self.path, min(self.n_ctx, 2048), self.threads, embedding=True,
                                            pooling_type=1)  # mean pooling
            try:
                return [list(map(float, v)) for v in self._embedder.embed(list(texts), normalize=True)]
            except (ValueError, RuntimeError) as exc:
                raise EngineError(f"embedding failed: {exc}", "shorten the input") from exc

    def close(self) -> None:
        with self.lock:
            for obj in (self.llm, self._embedder, self._scorer):
                if obj is not None:
                    with contextlib.suppress(Exception):
                        obj.close()


def _probe_child(path: str, threads: int) -> None:
    """The one-token decode ``freehold.engine.cpu.probe_decode`` runs in a child process."""
    import time

    start = time.perf_counter()
    llm = load_llama(Path(path), n_ctx=256, threads=threads, verbose=True)
    out = llm.create_completion("The capital of France is", max_tokens=1, temperature=0.0)
    print(json.dumps({"token": out["choices"][0]["text"], "seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    _probe_child(sys.argv[1], int(sys.argv[2]))
