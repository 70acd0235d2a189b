"""Threshold tuning with a fallback for labels with few positives, against hand computations
and scikit-learn's MCC."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import matthews_corrcoef

from lib.method import metrics, thresholds


def test_shared_threshold_maximises_pooled_mcc():
    rng = np.random.default_rng(0)
    y = (rng.random((60, 5)) < 0.3).astype(np.uint8)
    s = np.clip(0.35 * y + 0.5 * rng.random(y.shape), 0, 1)
    got = thresholds.shared_threshold(y, s)
    best = max(metrics.MCC_GRID, key=lambda t: (matthews_corrcoef(y.ravel(), s.ravel() >= t),
                                                 -t))
    assert got == pytest.approx(best)


def test_sparse_labels_fall_back_and_are_counted():
    # label 0: many positives, separable at 0.30; label 1: no positive; label 2: one positive
    y = np.zeros((10, 3), dtype=np.uint8)
    y[:5, 0] = 1
    y[0, 2] = 1
    s = np.full((10, 3), 0.1)
    s[:5, 0] = 0.32
    s[0, 2] = 0.9
    t, info = thresholds.tune(y, s, min_positives=2, fallback="shared")
    assert t[0] == pytest.approx(0.15)  # smallest grid value separating 0.1 from 0.32
    shared = thresholds.shared_threshold(y, s)
    assert t[1] == t[2] == shared
    assert info["n_fallback"] == 2 and info["fallback_labels"] == [1, 2]
    t, info = thresholds.tune(y, s, min_positives=1, fallback="0.5")
    assert t[1] == 0.5 and t[2] == pytest.approx(0.15) and info["n_fallback"] == 1
    with pytest.raises(ValueError, match="fallback"):
        thresholds.tune(y, s, min_positives=1, fallback="median")
