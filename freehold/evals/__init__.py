"""Evaluation bound to the weights: quality, safety, bias and languages, recorded in the ledger,
written up as a Hugging Face model card.

    from freehold.evals import run_eval, write_card
    report = run_eval("acme-support", suites=["quality", "safety"], data="support", against="smollm2",
                      limit=50)  # eval_data=DIR: your own copies of the public sets
    card = write_card("acme-support", annex_xi=True)      # README.md (+ ANNEX_XI.md) from the ledger

Parts: ``base`` (the ``Suite`` protocol, context, registry), ``runner`` (batched generation,
log-probs, the resumable per-item cache), ``metrics``, ``refusal`` (the classifier and its
measured accuracy), the suites ``quality``, ``safety``, ``bias``, ``languages``, and
``card`` (model card and EU AI Act Annex XI documentation).
"""

from __future__ import annotations

from freehold.evals import bias as _bias  # noqa: F401  (registers the suite)
from freehold.evals import languages as _languages  # noqa: F401
from freehold.evals import quality as _quality  # noqa: F401
from freehold.evals import safety as _safety  # noqa: F401
from freehold.evals.base import SUITES, EvalContext, Suite, SuiteResult, get_suite, register_suite
from freehold.evals.card import CardResult, eval_records, write_card
from freehold.evals.refusal import classifier_report, classify, is_refusal, keyword_refusal
from freehold.evals.run import DEFAULT_SUITES, EvalReport, SuiteRun, run_eval

__all__ = [
    "DEFAULT_SUITES",
    "SUITES",
    "CardResult",
    "EvalContext",
    "EvalReport",
    "Suite",
    "SuiteResult",
    "SuiteRun",
    "classifier_report",
    "classify",
    "eval_records",
    "get_suite",
    "is_refusal",
    "keyword_refusal",
    "register_suite",
    "run_eval",
    "write_card",
]
