"""Scores and their uncertainty: ROUGE-L, chrF, cosine similarity, Wilson and bootstrap intervals.

Pure Python and numpy, no extra dependencies. ROUGE-L is the LCS F-measure over lower-cased
word tokens (Lin 2004, the ``rouge-score`` package's default without stemming); chrF is
Popović's character n-gram F-score with n = 1..6 and beta = 2 (sacrebleu's defaults,
whitespace removed). Both are reported on a 0-100 scale like those packages print them.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (0-100) over word tokens."""
    p, r = words(prediction), words(reference)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 100.0 * 2 * precision * recall / (precision + recall)


def _char_ngrams(text: str, n: int) -> Counter[str]:
    return Counter(text[i:i + n] for i in range(len(text) - n + 1))


def chrf(prediction: str, reference: str, max_n: int = 6, beta: float = 2.0) -> float:
    """Sentence-level chrF (0-100): mean n-gram precision and recall, F-beta (recall weighted)."""
    hyp, ref = "".join(prediction.split()), "".join(reference.split())
    precisions, recalls = [], []
    for n in range(1, max_n + 1):
        hyp_grams, ref_grams = _char_ngrams(hyp, n), _char_ngrams(ref, n)
        if not hyp_grams or not ref_grams:
            continue  # sacrebleu skips orders longer than either string
        overlap = sum((hyp_grams & ref_grams).values())
        precisions.append(overlap / sum(hyp_grams.values()))
        recalls.append(overlap / sum(ref_grams.values()))
    if not precisions:
        return 0.0
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p == 0 and r == 0:
        return 0.0
    b2 = beta * beta
    return 100.0 * (1 + b2) * p * r / (b2 * p + r)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (well behaved at 0, 1 and small n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_ci(values: Sequence[float], n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap 95% interval, seeded so reruns print the same numbers."""
    if not values:
        return (float("nan"), float("nan"), float("nan"))
    m = sum(values) / len(values)
    if len(values) == 1:
        return (m, m, m)
    rng = random.Random(seed)
    k = len(values)
    means = sorted(sum(values[rng.randrange(k)] for _ in range(k)) / k for _ in range(n_boot))
    return (m, means[int(0.025 * n_boot)], means[int(0.975 * n_boot) - 1])


def log_softmax_rows(logits: object) -> object:
    """Row-wise log-softmax of a numpy [n, vocab] array (float64 for stable sums)."""
    import numpy as np

    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
