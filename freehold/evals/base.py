"""The eval-suite contract: one ``Suite`` protocol, the context a suite runs in, what it returns.

A suite is anything with a ``name``, a one-line ``description`` and ``run(ctx) ->
SuiteResult``. Built-ins (quality, safety, bias, languages) are registered with
``register_suite`` exactly as a third-party suite would be. A suite never writes to the
ledger itself: ``run_eval`` records every ``SuiteResult`` as one signed eval record citing
the model's weights and the digests of the data the suite read, so every number traces to
exact bytes on both sides.

Everything else Freehold says about a suite (its card section and limitations, its headline
scores, how two runs of it compare, which data it needs and why it was skipped) is read from
the suite object through ``suite_parts(name)``, never from a list of suite names: subclass
``BaseSuite`` to give your own suite those parts; a suite that only meets the protocol gets
``BaseSuite``'s defaults.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from freehold.errors import EvalError
from freehold.evals.runner import ItemCache, ModelRunner
from freehold.ledger import ref
from freehold.progress import ProgressFn, emit
from freehold.store import ModelEntry, Store

# The public sets the built-in suites read (XSTest, AdvBench, HarmBench, CrowS-Pairs, WinoBias,
# BBQ, UDHR), shipped as package data with their licences: written by scripts/package_eval_sets.py.
PACKAGED_SETS = Path(__file__).with_name("sets")


def packaged_sets() -> Path | None:
    """The folder of public eval sets inside the installed package (None if this install has none)."""
    return PACKAGED_SETS if (PACKAGED_SETS / "xstest").is_dir() else None


def public_sets() -> list[str]:
    """The folders of public sets the registered suites read (``BaseSuite.eval_sets``), in registry order."""
    return list(dict.fromkeys(s for name in SUITES for s in suite_parts(name).eval_sets))


def eval_data_hint() -> str:
    """What an --eval-data folder holds, for hints and help."""
    return "a folder holding " + ", ".join(f"{s}/" for s in public_sets())


@dataclass
class EvalContext:
    """What a suite may use. ``limit`` caps items per data source (None: all)."""

    store: Store
    runner: ModelRunner
    limit: int | None = None
    eval_data: Path | None = None  # the public sets: --eval-data DIR, else the packaged ones (packaged_sets())
    eval_data_given: bool = False  # named by --eval-data: safety then runs the public sets beside --prompts
    dataset: ModelEntry | None = None  # the held-out conversations for the quality suite
    # Which split of it: None = test, else validation; "all" for a dataset no model was tuned on
    # (e.g. a later quarter of the same list).
    split: str | None = None
    prompt_files: list[Path] = field(default_factory=list)  # the user's own safety prompt sets
    # A knowledge index for the quality suite: every prompt grounded in it as served (--knowledge)
    knowledge: str | None = None
    max_tokens: int = 96
    seed: int = 0
    progress: ProgressFn | None = None

    def cache(self, suite: str, data_digest: str, params: dict[str, Any]) -> ItemCache:
        return ItemCache.open(self.store.home, self.runner.digest, suite, data_digest,
                              {**params, "backend": self.runner.backend_name, "decoding": "greedy, repeat_penalty 1",
                               "served_decoding": self.runner.served_params})

    def sample(self, items: Sequence[Any], limit: int | None = None) -> list[Any]:
        """A seeded sample of at most ``limit`` items, kept in file order (so a larger --limit
        is a superset of a smaller one and reuses the cache)."""
        limit = self.limit if limit is None else limit
        if limit is None or len(items) <= limit:
            return list(items)
        order = list(range(len(items)))
        random.Random(self.seed).shuffle(order)  # a prefix of one seeded order: smaller limits are subsets
        return [items[i] for i in sorted(order[:limit])]

    def data_path(self, *parts: str, what: str) -> Path:
        if self.eval_data is None:
            raise EvalError(f"the {what} needs the public eval sets: this install has none packaged "
                            "(freehold/evals/sets) and no eval data folder was given",
                            f"reinstall freehold, or pass --eval-data DIR ({eval_data_hint()})")
        path = self.eval_data.joinpath(*parts)
        if not path.exists():
            raise EvalError(f"{path} is missing, so the {what} cannot run",
                            f"check --eval-data; it should contain {'/'.join(parts)}")
        return path

    def generate(self, cache: ItemCache, items: Sequence[tuple[str, list[dict[str, str]]]], status: str,
                 max_tokens: int | None = None, served: bool = False) -> dict[str, str | None]:
        """Replies for ``(key, messages)`` items, cached per key as each finishes (None: the
        prompt does not fit the model's context). Greedy, or with ``served`` the model's served
        sampling seeded per key (the same seed for every model, so comparisons are paired)."""
        todo = [(k, m) for k, m in items if k not in cache]
        total, done = len(items), len(items) - len(todo)
        emit(self.progress, status, total, done)
        if todo:
            def finished(i: int, text: str | None) -> None:
                nonlocal done
                cache.put(todo[i][0], text)
                done += 1
                emit(self.progress, status, total, done)

            seeds = [int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) for k, _ in todo] if served else None
            self.runner.chat_many([m for _, m in todo], max_tokens or self.max_tokens, on_done=finished, seeds=seeds)
        return {k: cache.get(k) for k, _ in items}

    def score(self, cache: ItemCache, items: Sequence[tuple[str, Callable[[], Any]]], status: str) -> dict[str, Any]:
        """Values of ``(key, compute)`` items (log-likelihoods and the like), cached per key."""
        total = len(items)
        done = sum(1 for k, _ in items if k in cache)
        emit(self.progress, status, total, done)
        for key, compute in items:
            if key in cache:
                continue
            cache.put(key, compute())
            done += 1
            emit(self.progress, status, total, done)
        return {k: cache.get(k) for k, _ in items}


@dataclass
class SuiteResult:
    """``scores``: flat numbers for the ledger and the model card's model-index (rounded once,
    here, so both show identical values). ``details``: tables, intervals, examples (in the
    report blob the eval record cites). ``data``: refs to every file the suite read."""

    suite: str
    scores: dict[str, float | int]
    data: list[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)
    dataset_name: str = ""  # for the card: which data the headline numbers are on
    items: dict[str, Any] = field(default_factory=dict)  # per-item results (for --against comparisons)

    def __post_init__(self) -> None:
        self.scores = {k: round(v, 4) if isinstance(v, float) else v for k, v in self.scores.items()}


@runtime_checkable
class Suite(Protocol):
    name: str
    description: str

    def run(self, ctx: EvalContext) -> SuiteResult: ...


@dataclass(frozen=True)
class DataGiven:
    """The data a run was given, known before any model loads (what ``BaseSuite.unavailable`` judges)."""

    dataset: ModelEntry | None  # --data
    eval_data: Path | None  # --eval-data DIR, else the packaged sets (None: neither)
    prompt_files: Sequence[Path] = ()  # --prompts


@dataclass(frozen=True)
class Unavailable:
    """Why a suite cannot run on the data given."""

    skipped: str  # shown when a run that did not name the suite leaves it out
    # Raised before any model loads when the run named the suite; None: it runs and its own error
    # (e.g. ``EvalContext.data_path``) says what is missing.
    error: EvalError | None = None


# Why a suite that needs the public sets is left out of a run that has none.
NO_EVAL_SETS = "this install has no packaged eval sets and no --eval-data DIR was given"


class BaseSuite:
    """The optional parts of a suite, with defaults; built-ins subclass it, a third-party suite may.

    Subclasses set ``name``, ``description`` and ``run`` as the ``Suite`` protocol asks."""

    name: str
    description: str
    title: str = ""  # heading on the model card and task name in its model-index (default: the name)
    default: bool = True  # runs when no --suite is named (if ``unavailable`` says it can)
    eval_sets: tuple[str, ...] = ()  # folders of an --eval-data DIR it reads (for hints and --help)
    needs_eval_sets: bool = False  # cannot run without them (a suite with its own fallback data can)
    lower_is_better: tuple[str, ...] = ()  # score-name endings where a drop is an improvement
    adversarial_testing: str = ""  # what it tests adversarially, for Annex XI 2.2 ("": nothing)

    def unavailable(self, given: DataGiven) -> Unavailable | None:
        """None when the suite can run on ``given``."""
        return Unavailable(NO_EVAL_SETS) if self.needs_eval_sets and given.eval_data is None else None

    def headline(self, scores: dict[str, Any]) -> list[str]:
        """The scores the terminal summary shows (every score is in --json and the ledger); [] shows all."""
        return []

    def compare(self, model: SuiteResult, base: SuiteResult, examples: int) -> dict[str, Any]:
        """More than the score differences, from the per-item results of both runs ({}: nothing)."""
        return {}

    def limitations(self, scores: dict[str, Any]) -> list[str]:
        """Sentences for the model card's Limitations, from this suite's latest scores."""
        return []


class _Plain(BaseSuite):
    """The defaults for a suite that is only a ``Suite`` or is no longer registered (a card can cite
    a record made by a suite this process does not load)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.description = ""
        self.title = name

    def run(self, ctx: EvalContext) -> SuiteResult:  # never called: only its parts are read
        raise EvalError(f"eval suite {self.name!r} is not registered", "register it with register_suite")


SUITES: dict[str, Suite] = {}


def suite_parts(name: str) -> BaseSuite:
    """The registered suite ``name`` when it is a ``BaseSuite``, else the defaults under its name."""
    suite = SUITES.get(name)
    if isinstance(suite, BaseSuite):
        return suite
    return _Plain(name)


def suite_title(name: str) -> str:
    return suite_parts(name).title or name


def register_suite(suite: Suite) -> Suite:
    """Add a suite (built-in or your own) under ``suite.name``; later registrations replace earlier."""
    if not isinstance(suite, Suite):
        raise EvalError(f"{suite!r} is not an eval suite", "give it a name, a description and run(ctx)")
    SUITES[suite.name] = suite
    return suite


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise EvalError(f"unknown eval suite {name!r}", f"choose from: {', '.join(sorted(SUITES))}") from None


# data references ------------------------------------------------------------------------------
def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def file_ref(path: Path, dataset: str, role: str = "data") -> dict[str, Any]:
    """A data reference naming the file and the eval set it belongs to (for the card's model-index)."""
    return ref(role, file_digest(path), filename=path.name, dataset=dataset)


def text_ref(store: Store, text: str, name: str, dataset: str) -> dict[str, Any]:
    """Store built-in eval data (templated probes) as a blob so verify can rehash what was cited."""
    layer = store.put_text(text)
    return ref("data", layer.digest, filename=name, dataset=dataset)


def combined_digest(refs: Sequence[dict[str, Any]]) -> str:
    h = hashlib.sha256("\n".join(sorted(r["digest"] for r in refs)).encode())
    return "sha256:" + h.hexdigest()
