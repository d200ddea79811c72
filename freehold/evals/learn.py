"""Small learned judges: logistic regression fitted with Newton's method, in numpy.

    weights, bias = fit_logistic(x, y, l2=1e-2)   # x: (n, d) features, y: 0/1 labels

Used by the safety classifier on prompts (freehold.guardrails.classifier) and the refusal
judge on responses (freehold.evals.judge): a few hundred numbers each, fitted in seconds on a
CPU, no training framework at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LogisticModel:
    """Fitted weights and bias, and what the file they are shipped in says about them."""

    weights: list[float]
    bias: float
    meta: dict[str, Any] | None = None

    def probabilities_of(self, x: Any) -> list[float]:
        """P(class 1) for each row of the feature matrix ``x``."""
        import numpy as np

        x = np.asarray(x, dtype=np.float64)
        if not len(x):
            return []
        z = x @ np.asarray(self.weights) + self.bias
        return [float(v) for v in 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))]


def fit_logistic(x: Any, y: Any, l2: float = 1e-2, iterations: int = 50) -> tuple[list[float], float]:
    """L2-regularised logistic regression with both classes weighted equally (the bias is not
    shrunk); returns (weights, bias)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    pos = max(1.0, float(y.sum()))
    neg = max(1.0, float(len(y) - y.sum()))
    sample_w = np.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg))
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    reg = np.full(xb.shape[1], l2 * len(y))
    reg[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -60, 60)))
        grad = xb.T @ (sample_w * (p - y)) + reg * w
        hess = (xb * (sample_w * p * (1 - p))[:, None]).T @ xb + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return [float(v) for v in w[:-1]], float(w[-1])
