"""Per-label decision thresholds: MCC tuning with a fallback for labels with few positives.

Each label's threshold is the value of the grid (0.05, 0.10, ..., 0.70) that maximises its
Matthews correlation coefficient on the tuning split (docs/method.md, "Evaluation"). A
label with fewer than ``min_positives`` positives on that split has no trustworthy curve
(with none, every threshold gives MCC 0; with one or two, the maximum is noise). Those
labels fall back to:

- ``shared``: the one threshold of the grid that maximises the MCC of all (image, label)
  pairs pooled together, a threshold estimated from every label's scores;
- ``0.5``: the fixed threshold the reference implementation would use.

Chosen on validation only (``benchmarks/threshold_fallback.py``: cross-validation of saved
validation scores, thresholds tuned on the other folds; the test split is not used to choose):
0.5 for labels without a tuning positive gives a better cross-validated per-class F1 and N+
than the pooled threshold, and raising ``min_positives`` lowers both; the training defaults
(``TrainConfig``) follow that (results/benchmarks/threshold_fallback.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lib.method import metrics

FALLBACKS = ("shared", "0.5")


def shared_threshold(y_true, y_score, grid=None) -> float:
    """The grid threshold maximising the MCC of all (image, label) pairs pooled (ties: the
    smallest threshold)."""
    grid = metrics.MCC_GRID if grid is None else np.sort(np.asarray(grid, dtype=np.float64))
    y_true = np.asarray(y_true)
    pooled_true = y_true.reshape(-1, 1)
    pooled_score = np.asarray(y_score, dtype=np.float64).reshape(-1, 1)
    curve = metrics.mcc_curves(pooled_true, pooled_score, grid)[0]
    return float(grid[int(np.argmax(curve))])


def tune(y_true, y_score, *, min_positives: int, fallback: str,
         grid=None) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-label MCC thresholds ``(C,)`` and a description of how they were chosen
    (``fallback``, ``fallback_threshold``, ``min_positives``, ``n_fallback``,
    ``fallback_labels`` as column indices)."""
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback={fallback!r}; expected one of {FALLBACKS}")
    if min_positives < 0:
        raise ValueError(f"min_positives must be >= 0, got {min_positives}")
    y_true = np.asarray(y_true)
    per_label = metrics.mcc_thresholds(y_true, y_score, grid)
    positives = y_true.astype(bool).sum(axis=0)
    sparse = positives < max(min_positives, 1)
    value = shared_threshold(y_true, y_score, grid) if fallback == "shared" else 0.5
    thresholds = np.where(sparse, value, per_label)
    info = {"fallback": fallback, "fallback_threshold": value,
            "min_positives": int(min_positives), "n_fallback": int(sparse.sum()),
            "fallback_labels": np.flatnonzero(sparse).tolist()}
    return thresholds, info
