"""Annotation metrics (docs/method.md, "Evaluation"). Predictions files and the ``score``
command are :mod:`lib.data.predictions`.

Conventions (fixed here, used everywhere):

- A label is predicted when ``score >= threshold`` (threshold 0.5, or one per label).
- Per-class means run over **all C labels of the vocabulary**, as the reference does: a
  label never predicted has precision 0, a label absent from the ground truth has recall 0
  (``TP / (count + 1e-7)``). On Corel-5k every label occurs in the test split, so this only
  matters for small splits; :func:`evaluate_scores` reports ``n_labels`` and
  ``n_labels_present`` beside the blocks.
- Per-class F1 is ``2 P R / (P + R)`` of the mean P and R (not the mean of per-label F1s).
- Per-image ("overall") P, R, F1: the same over all (image, label) pairs (micro average).
- N+ = number of labels with at least one true positive.
- mAP: mean over labels with at least one positive of scikit-learn's average precision.
- MCC thresholds: per label, the grid value maximising the Matthews correlation coefficient
  (ties: the smallest threshold; MCC is 0 when undefined, as in scikit-learn). A label with
  no positive in the tuning data gets ``default`` (0.5): MCC is 0 at every threshold there,
  and the smallest one would just add false positives.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

EPS = 1e-7
MCC_GRID = np.round(np.arange(0.05, 0.701, 0.05), 2)
METRIC_KEYS = ("per_class_precision", "per_class_recall", "per_class_f1",
               "per_image_precision", "per_image_recall", "per_image_f1", "n_plus")


def _check(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"y_true {y_true.shape} and y_score {y_score.shape} must be the same "
                         "N x C shape")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must be a 0/1 multi-hot matrix")
    if not np.isfinite(y_score).all():
        raise ValueError("y_score contains NaN or infinite values")
    return y_true.astype(bool), y_score


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def per_label_metrics(y_true, y_pred) -> dict[str, np.ndarray]:
    """Per-label counts and scores of a 0/1 prediction matrix: ``tp``, ``predicted``,
    ``positives``, ``precision`` = TP / (predicted + 1e-7), ``recall`` = TP / (positives +
    1e-7), ``f1`` (0 where P + R = 0); each an array of length C."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    tp = (y_true & y_pred).sum(axis=0)
    n_pred = y_pred.sum(axis=0)
    n_true = y_true.sum(axis=0)
    precision = tp / (n_pred + EPS)
    recall = tp / (n_true + EPS)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return {"tp": tp, "predicted": n_pred, "positives": n_true, "precision": precision,
            "recall": recall, "f1": f1}


def prediction_metrics(y_true, y_pred) -> dict:
    """The 7 annotation metrics of a 0/1 prediction matrix (N x C)."""
    y_true, _ = _check(y_true, np.zeros(np.shape(y_true)))
    y_pred = np.asarray(y_pred).astype(bool)
    tp = (y_true & y_pred).sum(axis=0)
    n_pred = y_pred.sum(axis=0)
    n_true = y_true.sum(axis=0)
    pc_p = float(np.mean(tp / (n_pred + EPS)))
    pc_r = float(np.mean(tp / (n_true + EPS)))
    pi_p = float(tp.sum() / (n_pred.sum() + EPS))
    pi_r = float(tp.sum() / (n_true.sum() + EPS))
    return {
        "per_class_precision": pc_p, "per_class_recall": pc_r, "per_class_f1": _f1(pc_p, pc_r),
        "per_image_precision": pi_p, "per_image_recall": pi_r, "per_image_f1": _f1(pi_p, pi_r),
        "n_plus": int((tp > 0).sum()),
    }


def annotation_metrics(y_true, y_score, threshold=0.5) -> dict:
    """Metrics of ``score >= threshold``; ``threshold`` is a number or one per label (C,)."""
    y_true, y_score = _check(y_true, y_score)
    threshold = np.asarray(threshold, dtype=np.float64)
    if threshold.ndim not in (0, 1) or (threshold.ndim == 1
                                        and threshold.shape[0] != y_score.shape[1]):
        raise ValueError(f"threshold must be a number or one per label ({y_score.shape[1]}), "
                         f"got shape {threshold.shape}")
    return prediction_metrics(y_true, y_score >= threshold)


def topk_predictions(y_score, k: int) -> np.ndarray:
    """0/1 matrix marking each image's k highest scores (ties: the lower label index)."""
    y_score = np.asarray(y_score)
    k = min(int(k), y_score.shape[1])
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top = np.argsort(-y_score, axis=1, kind="stable")[:, :k]
    pred = np.zeros(y_score.shape, dtype=bool)
    np.put_along_axis(pred, top, True, axis=1)
    return pred


def topk_metrics(y_true, y_score, k: int) -> dict:
    """Metrics when every image is annotated with its top-k labels."""
    y_true, y_score = _check(y_true, y_score)
    return prediction_metrics(y_true, topk_predictions(y_score, k))


def mlgcn_topk_predictions(y_score, k: int = 3, threshold: float = 0.5) -> np.ndarray:
    """ML-GCN's top-k: each image's k highest scores (ties: the lower label index), of which
    only those with ``score >= threshold`` are kept. ML-GCN applies it to logits with
    ``logit >= 0``; on sigmoid scores that is ``score >= 0.5``, the default. So an image may
    get fewer than k labels, unlike :func:`topk_predictions`."""
    y_score = np.asarray(y_score)
    return topk_predictions(y_score, k) & (y_score >= threshold)


def mlgcn_topk_metrics(y_true, y_score, k: int = 3, threshold: float = 0.5) -> dict:
    """Metrics of :func:`mlgcn_topk_predictions` (the ``top3_mlgcn`` block)."""
    y_true, y_score = _check(y_true, y_score)
    return prediction_metrics(y_true, mlgcn_topk_predictions(y_score, k, threshold))


def mean_average_precision(y_true, y_score) -> float:
    """Mean over labels with at least one positive of sklearn's average precision
    (NaN when no label has a positive)."""
    y_true, y_score = _check(y_true, y_score)
    present = y_true.any(axis=0)
    if not present.any():
        return float("nan")
    return float(average_precision_score(y_true[:, present], y_score[:, present],
                                         average="macro"))


def mcc_curves(y_true, y_score, grid=MCC_GRID) -> np.ndarray:
    """MCC of every label at every threshold of ``grid`` (C x T), vectorised; 0 where
    undefined (a zero factor in the denominator), as scikit-learn does."""
    y_true, y_score = _check(y_true, y_score)
    grid = np.asarray(grid, dtype=np.float64)
    pred = y_score[:, :, None] >= grid[None, None, :]                   # N x C x T
    n = y_true.shape[0]
    tp = np.einsum("nct,nc->ct", pred, y_true, dtype=np.float64)
    n_pred = pred.sum(axis=0, dtype=np.float64)                          # C x T
    n_pos = y_true.sum(axis=0, dtype=np.float64)[:, None]                # C x 1
    fp = n_pred - tp
    fn = n_pos - tp
    tn = n - tp - fp - fn
    denom = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    with np.errstate(invalid="ignore", divide="ignore"):
        mcc = (tp * tn - fp * fn) / np.sqrt(denom)
    return np.where(denom > 0, mcc, 0.0)


def mcc_thresholds(y_true, y_score, grid=None, default: float = 0.5) -> np.ndarray:
    """Per-label threshold (C,) from ``grid`` (default 0.05, 0.10, ..., 0.70) maximising
    MCC; ties go to the smallest threshold; labels without positives get ``default``."""
    grid = MCC_GRID if grid is None else np.sort(np.asarray(grid, dtype=np.float64))
    curves = mcc_curves(y_true, y_score, grid)
    best = grid[np.argmax(curves, axis=1)]        # argmax: first maximum = smallest threshold
    present = np.asarray(y_true).astype(bool).any(axis=0)
    return np.where(present, best, default)


def evaluate_scores(y_true, y_score, thresholds=None) -> dict:
    """The ``metrics.json`` blocks: mAP, ``at_0.5``, ``mcc`` (when per-label thresholds are
    given), ``top5``, ``top3`` (plain: always three labels), ``top3_mlgcn`` (ML-GCN's: of the
    top three only those scoring >= 0.5), plus ``n_labels`` and ``n_labels_present``."""
    y_true, y_score = _check(y_true, y_score)
    out: dict = {"mean_average_precision": mean_average_precision(y_true, y_score),
                 "at_0.5": annotation_metrics(y_true, y_score, 0.5)}
    if thresholds is not None:
        out["mcc"] = annotation_metrics(y_true, y_score, thresholds)
    out["top5"] = topk_metrics(y_true, y_score, 5)
    out["top3"] = topk_metrics(y_true, y_score, 3)
    out["top3_mlgcn"] = mlgcn_topk_metrics(y_true, y_score, 3)
    out["n_labels"] = int(y_true.shape[1])
    out["n_labels_present"] = int(y_true.any(axis=0).sum())
    return out
