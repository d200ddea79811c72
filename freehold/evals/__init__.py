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

from freehold.evals.base import (
    SUITES,
    BaseSuite,
    DataGiven,
    EvalContext,
    Suite,
    SuiteResult,
    Unavailable,
    get_suite,
    register_suite,
    suite_parts,
)
from freehold.evals.bias import BiasSuite
from freehold.evals.card import CardResult, eval_records, write_card
from freehold.evals.languages import LanguagesSuite
from freehold.evals.quality import QualitySuite
from freehold.evals.refusal import classifier_report, classify, is_refusal, keyword_refusal
from freehold.evals.run import EvalReport, SuiteRun, default_suites, run_eval
from freehold.evals.safety import SafetySuite

# The built-ins, registered as a third-party suite is. This order is the order of a run without
# --suite, of its summary and of the CLI's suite list: the fine-tune's own data first.
for _suite in (QualitySuite(), SafetySuite(), BiasSuite(), LanguagesSuite()):
    register_suite(_suite)

__all__ = [
    "SUITES",
    "BaseSuite",
    "CardResult",
    "DataGiven",
    "EvalContext",
    "EvalReport",
    "Suite",
    "SuiteResult",
    "SuiteRun",
    "Unavailable",
    "classifier_report",
    "classify",
    "default_suites",
    "eval_records",
    "get_suite",
    "is_refusal",
    "keyword_refusal",
    "register_suite",
    "run_eval",
    "suite_parts",
    "write_card",
]
