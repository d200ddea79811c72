"""Knowledge index: build time and size against the import alone, and retrieval latency per question.

    .venv/bin/python benchmarks/bench_knowledge.py --messages 100000 [--queries 300] [--shared DIR]

Builds the import benchmark's archive (benchmarks/bench_data_import.py: the real
r-package-devel, numpy-discussion and perceval archives replicated and perturbed to N
messages), imports it (timed: the peer), then indexes every answered thread of the dataset
(``build_knowledge(split="all")``, timed) and reports the ratio and the sizes of the
dataset's and the index's layers. Then ``search`` latency per question, p50/p95 over
``--queries`` questions (the first sentence of a random thread's question, seeded; the
first ten are a warm-up), with its parts: embedding the question, the dot product over
every vector, the FTS5 query. If ``bm25s`` is importable it is measured on the same
passages as the lexical peer (it is not a dependency).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from freehold.data import import_dataset, iter_examples  # noqa: E402
from freehold.knowledge import build_knowledge, load_index, search  # noqa: E402
from freehold.knowledge.index import embed_texts  # noqa: E402
from freehold.knowledge.search import CANDIDATES, query_terms  # noqa: E402
from freehold.store import Store  # noqa: E402


def archive_builder():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_data_import", REPO / "benchmarks" / "bench_data_import.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


def questions(store: Store, n: int, seed: int = 0) -> list[str]:
    rows = list(iter_examples(store.get("bench", kind="dataset"), store))
    rng = random.Random(seed)
    out = []
    for row in rng.sample(rows, min(n, len(rows))):
        text = " ".join(row["messages"][0]["content"].split())
        out.append(" ".join(re.split(r"(?<=[.?!])\s", text, maxsplit=1)[0].split()[:30]))
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--home", type=Path, help="keep the store here; if it holds the index already, "
                    "only measure search (to re-time latency without rebuilding)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="freehold-bench-kb-") as tmp:
        store = Store(args.home or Path(tmp) / "home")
        if not store.has("bench-kb:latest", "knowledge"):
            build(store, args.messages, args.shared, Path(tmp))
        latency(store, args.queries)


def build(store: Store, messages: int, shared: Path, tmp: Path) -> None:
    mbox = tmp / "bench.mbox"
    archive_builder()(shared, messages, mbox)
    t = time.perf_counter()
    imported = import_dataset([mbox], "bench", store=store)
    t_import = time.perf_counter() - t
    c = imported.counts
    print(f"{messages} messages ({mbox.stat().st_size / 1e6:.0f} MB): import {t_import:.1f} s -> "
          f"{c['examples']} answered threads of {c['threads']}")

    t = time.perf_counter()
    built = build_knowledge("bench-kb", datasets=["bench"], split="all", store=store)
    t_build = time.perf_counter() - t
    kb_size = built.entry.size
    ds_size = store.get("bench", kind="dataset").size
    layers = {la.media_type.rsplit(".", 1)[-1]: la.size for la in built.entry.manifest.layers}
    print(f"index build {t_build:.1f} s = {t_build / t_import:.2f}x the import; "
          f"{built.config['passages']} passages ({built.config['passages'] / t_build:.0f}/s); "
          f"size {kb_size / 1e6:.1f} MB = {kb_size / ds_size:.2f}x the dataset's {ds_size / 1e6:.1f} MB "
          "(" + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in layers.items()) + ")")


def latency(store: Store, queries: int) -> None:
    index = load_index(store, "bench-kb")
    qs = questions(store, queries + 10)
    warm, timed = qs[:10], qs[10:]
    for q in warm:
        search(store, "bench-kb", q)
    total, embed, dot, fts = [], [], [], []
    for q in timed:
        t0 = time.perf_counter()
        search(store, "bench-kb", q, k=4)
        t1 = time.perf_counter()
        v = embed_texts([q], bulk=False)[0]
        t2 = time.perf_counter()
        sims = index.similarities(v)
        np.argpartition(-sims, CANDIDATES)[:CANDIDATES]
        t3 = time.perf_counter()
        index.lexical(query_terms(q), CANDIDATES)
        t4 = time.perf_counter()
        total.append(t1 - t0)
        embed.append(t2 - t1)
        dot.append(t3 - t2)
        fts.append(t4 - t3)
    print(f"search over {len(index.passages)} passages, {len(timed)} questions: p50 {pct(total, 50):.1f} ms, "
          f"p95 {pct(total, 95):.1f} ms (parts p50/p95: embed {pct(embed, 50):.1f}/{pct(embed, 95):.1f}, "
          f"dot product {pct(dot, 50):.2f}/{pct(dot, 95):.2f}, FTS5 {pct(fts, 50):.1f}/{pct(fts, 95):.1f} ms)")

    try:
        import bm25s
    except ImportError:
        print("bm25s not installed: lexical peer skipped (pip install bm25s to measure it)")
        return
    corpus = [f"{p.title}\n{p.text}" for p in index.passages]
    t = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    t_bm25 = time.perf_counter() - t
    lat = []
    for q in timed:
        t0 = time.perf_counter()
        retriever.retrieve(bm25s.tokenize([q], stopwords="en", show_progress=False),
                           k=CANDIDATES, show_progress=False)
        lat.append(time.perf_counter() - t0)
    print(f"bm25s {bm25s.__version__}: index {t_bm25:.1f} s, query p50 {pct(lat, 50):.1f} ms, "
          f"p95 {pct(lat, 95):.1f} ms (FTS5: {statistics.median(fts) * 1000:.1f} / {pct(fts, 95):.1f} ms)")


if __name__ == "__main__":
    main()
