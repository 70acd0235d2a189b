"""The label co-occurrence graph (docs/method.md, "Label graph").

From training targets (N x C multi-hot): ``N_i`` images with label i, ``M_ij`` images
with both, ``P(j|i) = M_ij / N_i`` (asymmetric), and the two adjacency recipes the GCN
uses: ``"seed"`` (the reference implementation) and ``"ml-gcn"`` (Chen et al.'s code).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

RECIPES = ("seed", "ml-gcn")
#: per-recipe defaults: binarisation threshold t, re-weighting p
DEFAULTS = {"seed": {"t": 0.1, "p": 0.2}, "ml-gcn": {"t": 0.4, "p": 0.25}}


def _as_targets(targets) -> np.ndarray:
    arr = np.asarray(targets)
    if arr.ndim != 2:
        raise ValueError(f"targets must be an N x C matrix, got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError("targets must be multi-hot (only 0 and 1)")
    return arr.astype(np.int64)


def label_counts(targets) -> np.ndarray:
    """``N_i``: images with label i (int64, length C)."""
    return _as_targets(targets).sum(axis=0)


def cooccurrence(targets) -> np.ndarray:
    """``M_ij``: images with both labels i and j (C x C int64; diagonal = ``N_i``)."""
    y = _as_targets(targets)
    return y.T @ y


def conditional_probability(targets) -> np.ndarray:
    """``P[i, j] = P(j | i) = M_ij / N_i`` (float64; a row of zeros where ``N_i = 0``)."""
    m = cooccurrence(targets).astype(np.float64)
    n = np.diag(m).copy()
    out = np.zeros_like(m)
    np.divide(m, n[:, None], out=out, where=n[:, None] > 0)
    return out


def _binarised(prob: np.ndarray, t: float) -> np.ndarray:
    """Off-diagonal ``P(j|i) >= t`` as 0/1 (the code's ``A[A < t] = 0; A[A >= t] = 1``)."""
    a = (prob >= t).astype(np.float64)
    np.fill_diagonal(a, 0.0)
    return a


def _check_t_p(t: float, p: float) -> None:
    if not 0.0 < t <= 1.0:
        raise ValueError(f"threshold t must be in (0, 1], got {t}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"re-weighting p must be in [0, 1], got {p}")


def adjacency(
    targets, recipe: str = "seed", t: float | None = None, p: float | None = None,
    *, labels: Sequence[str] | None = None,
) -> np.ndarray:
    """The GCN adjacency (C x C float32) from training targets (docs/method.md, "Label graph").

    - ``"seed"``: off-diagonal ``P(j|i)`` binarised at ``t`` (default 0.1), re-weighted
      ``A * p / (colsum(A) + 1e-7)`` (default p = 0.2), plus ``(1 - p) I``; used as is.
    - ``"ml-gcn"``: binarised at ``t`` (default 0.4), ``A * p / (colsum(A) + 1e-6)``
      (default p = 0.25), plus ``I``, then ``(A D)^T D = D A^T D`` with
      ``D = diag(rowsum(A))^-1/2``.

    A label that never occurs keeps only its self loop (no NaN) and a warning names it
    (by ``labels`` when given, else by index)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown adjacency recipe {recipe!r}; expected one of {RECIPES}")
    t = DEFAULTS[recipe]["t"] if t is None else float(t)
    p = DEFAULTS[recipe]["p"] if p is None else float(p)
    _check_t_p(t, p)
    y = _as_targets(targets)
    c = y.shape[1]
    if labels is not None and len(labels) != c:
        raise ValueError(f"{len(labels)} label names for {c} target columns")
    counts = y.sum(axis=0)
    never = np.flatnonzero(counts == 0)
    if never.size:
        names = [labels[i] for i in never] if labels is not None else never.tolist()
        warnings.warn(f"{never.size} label(s) never occur in the training targets and keep "
                      f"only their self loop in the adjacency: {names}", stacklevel=2)
    a = _binarised(conditional_probability(y), t)
    if recipe == "seed":
        a = a * p / (a.sum(axis=0, keepdims=True) + 1e-7)
        a = a + (1.0 - p) * np.eye(c)
    else:
        a = a * p / (a.sum(axis=0, keepdims=True) + 1e-6)
        a = a + np.eye(c)
        d = np.diag(np.power(a.sum(axis=1), -0.5))
        a = (a @ d).T @ d
    return a.astype(np.float32)


def adjacency_density(targets, ts: Sequence[float]) -> pd.DataFrame:
    """Sparsity of the binarised graph against the threshold t: for each t, the fraction of
    non-zero off-diagonal entries (``density``) and the mean neighbours per label. Both
    recipes keep exactly these entries non-zero (re-weighting never zeroes an entry)."""
    prob = conditional_probability(targets)
    c = prob.shape[0]
    rows = []
    for t in ts:
        _check_t_p(float(t), 0.0)
        nonzero = _binarised(prob, float(t)).sum()
        rows.append({"t": float(t), "density": nonzero / max(c * (c - 1), 1),
                     "mean_neighbours": nonzero / max(c, 1)})
    return pd.DataFrame(rows)


def asymmetric_pairs(
    targets, labels: Sequence[str], k: int = 10, min_count: int = 5
) -> pd.DataFrame:
    """The ``k`` label pairs (a, b) with the largest ``P(b|a) - P(a|b)`` among pairs seen
    together in at least ``min_count`` images: columns ``a``, ``b``, ``together``,
    ``N_a``, ``N_b``, ``P(b|a)``, ``P(a|b)``, ``difference``."""
    m = cooccurrence(targets)
    prob = conditional_probability(targets)
    n = np.diag(m)
    i, j = np.nonzero((m >= min_count) & ~np.eye(len(n), dtype=bool))
    diff = prob[i, j] - prob[j, i]
    keep = diff > 0
    i, j, diff = i[keep], j[keep], diff[keep]
    order = np.lexsort((j, i, -diff))[:k]
    return pd.DataFrame({
        "a": [labels[x] for x in i[order]], "b": [labels[x] for x in j[order]],
        "together": m[i[order], j[order]], "N_a": n[i[order]], "N_b": n[j[order]],
        "P(b|a)": prob[i[order], j[order]], "P(a|b)": prob[j[order], i[order]],
        "difference": diff[order],
    })
