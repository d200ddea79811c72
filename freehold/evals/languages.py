"""Languages: how well does the model read and predict the same text in each language?

The Universal Declaration of Human Rights in 20 languages (``udhr-multilingual/txt``) is
parallel text, so differences between languages are the model's, not the content's. Per
language:

- **tokens per character** (tokenizer fertility): more tokens for the same text means a
  shorter effective context, slower generation and, for priced APIs, a higher bill;
- **perplexity** per token, and **bits per character** (total negative log-likelihood over
  characters), which unlike perplexity compares fairly across tokenizers and scripts.

Tokens per character always covers the whole text (tokenizing is cheap). Likelihoods are
scored in windows of whole lines that fit the scoring window; ``--limit N`` scores the first
N lines of each language (the same articles in every language). Scoring costs a forward
pass per token: about 3 minutes for 10 lines x 20 languages on SmolLM2 on 2 CPU cores.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

from freehold.evals.base import BaseSuite, EvalContext, SuiteResult, combined_digest, file_ref

LANGUAGES = {
    "eng": "English", "deu_1996": "German", "fra": "French", "spa": "Spanish", "por_BR": "Portuguese (Brazil)",
    "ita": "Italian", "nld": "Dutch", "pol": "Polish", "rus": "Russian", "tur": "Turkish", "arb": "Arabic",
    "hin": "Hindi", "ben": "Bengali", "tam": "Tamil", "cmn_hans": "Chinese (Simplified)", "jpn": "Japanese",
    "kor": "Korean", "vie": "Vietnamese", "ind": "Indonesian", "swh": "Swahili",
}


def _windows(runner: Any, lines: list[str], window: int) -> list[tuple[int, int, str]]:
    """Group consecutive lines into texts that tokenize within ``window`` tokens."""
    out: list[tuple[int, int, str]] = []
    start = 0
    while start < len(lines):
        end = start + 1
        text = lines[start]
        while end < len(lines):
            candidate = text + "\n" + lines[end]
            if len(runner.tokenize(candidate)) > window:
                break
            text, end = candidate, end + 1
        toks = runner.tokenize(text)
        if len(toks) > window:
            # One line longer than the window: cut it by characters until it fits.
            keep = int(len(text) * window / len(toks) * 0.9)
            text = text[:keep]
        out.append((start, end, text))
        start = end
    return out


class LanguagesSuite(BaseSuite):
    name = "languages"
    description = "tokens per character, perplexity and bits per character on the UDHR in 20 languages"
    title = "Languages (UDHR)"
    eval_sets = ("udhr-multilingual",)
    needs_eval_sets = True
    lower_is_better = ("perplexity", "nll_per_token", "bits_per_char", "tokens_per_char")

    def headline(self, scores: dict[str, Any]) -> list[str]:
        return [k for k in scores if k.endswith(("tokens_per_char", "bits_per_char"))]

    def limitations(self, scores: dict[str, Any]) -> list[str]:
        eng = scores.get("eng_bits_per_char")
        if not (isinstance(eng, int | float) and eng > 0):
            return []
        weak = sorted(k.removesuffix("_bits_per_char") for k, v in scores.items()
                      if k.endswith("_bits_per_char") and isinstance(v, int | float) and v > 2 * eng)
        if not weak:
            return []
        return ["On the UDHR it needs more than twice as many bits per character as in English for: "
                f"{', '.join(weak)} (English text like the UDHR is common in training data, so "
                "English is flattered)."]

    def run(self, ctx: EvalContext) -> SuiteResult:
        folder = ctx.data_path("udhr-multilingual", "txt", what="languages suite")
        files = sorted(folder.glob("*.txt"))
        refs = [file_ref(p, "udhr-multilingual") for p in files]
        runner = ctx.runner
        cache = ctx.cache(self.name, combined_digest(refs), {"window": runner.window})
        per_lang: dict[str, dict[str, Any]] = {}
        try:
            jobs = []
            fertility: dict[str, tuple[int, int]] = {}
            for path in files:
                lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
                # Tokenizing is cheap: fertility always covers the whole text; --limit only
                # bounds the (costly) likelihood scoring.
                whole = "\n".join(lines)
                fertility[path.stem] = (len(runner.tokenize(whole, add_special=False)), len(whole))
                if ctx.limit is not None:
                    lines = lines[: ctx.limit]
                for start, end, text in _windows(runner, lines, runner.window):
                    jobs.append((path, start, end, text))

            def score(text: str) -> dict[str, Any]:
                tokens = runner.tokenize(text)
                lps = runner.token_logprobs(tokens)
                content = runner.tokenize(text, add_special=False)
                return {"nll": -sum(lps), "scored": len(lps), "tokens": len(content), "chars": len(text),
                        "bytes": len(text.encode("utf-8"))}

            values = ctx.score(cache, [(f"{Path(p).stem}:{s}-{e}", partial(score, t)) for p, s, e, t in jobs],
                               "languages: scoring")
        finally:
            cache.close()
        for path, s, e, _ in jobs:
            v = values[f"{path.stem}:{s}-{e}"]
            agg = per_lang.setdefault(path.stem, {"nll": 0.0, "scored": 0, "tokens": 0, "chars": 0, "bytes": 0,
                                                  "lines": 0})
            for k in ("nll", "scored", "tokens", "chars", "bytes"):
                agg[k] += v[k]
            agg["lines"] += e - s
        scores: dict[str, float | int] = {}
        table = {}
        for code, a in per_lang.items():
            n_tokens, n_chars = fertility[code]
            a["text_tokens"], a["text_chars"] = n_tokens, n_chars
            tpc = n_tokens / n_chars if n_chars else 0.0
            ppl = math.exp(a["nll"] / a["scored"]) if a["scored"] else float("nan")
            bpc = a["nll"] / math.log(2) / a["chars"] if a["chars"] else float("nan")
            table[code] = {"language": LANGUAGES.get(code, code), "tokens_per_char": round(tpc, 4),
                           "perplexity": round(ppl, 3), "bits_per_char": round(bpc, 4), **a}
            scores[f"{code}_tokens_per_char"] = tpc
            scores[f"{code}_perplexity"] = ppl
            scores[f"{code}_bits_per_char"] = bpc
        if "eng" in table:
            for row in table.values():
                # Relative cost: how many more tokens this language needs than English for the same text.
                eng_tokens = table["eng"]["text_tokens"]
                row["tokens_vs_english"] = round(row["text_tokens"] / eng_tokens, 3) if eng_tokens else None
        best = sorted(table, key=lambda c: table[c]["bits_per_char"])
        details = {"languages": table, "ranked_by_bits_per_char": best, "window": runner.window,
                   "lines_per_language": ctx.limit}
        return SuiteResult(self.name, scores, refs, details, dataset_name="UDHR (20 languages)")

