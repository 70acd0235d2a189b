"""Oracles for tests: the evaluation numbers of a run folder computed by hand from its
files, by the definitions of docs/method.md ("Evaluation"), with numpy and scikit-learn and
never with lib.method.metrics (the code under test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from lib.data import datasets


def seven_by_hand(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """docs/method.md, "Evaluation": per-class P and R averaged over all C labels with
    TP / (count + 1e-7), per-class F1 the F1 of the two means, per-image (micro) P, R, F1
    over all (image, label) pairs, N+ the labels with a true positive."""
    eps = 1e-7
    tp = (y & pred).sum(axis=0).astype(np.float64)
    predicted, positives = pred.sum(axis=0), y.sum(axis=0)
    out = {"per_class_precision": float(np.mean(tp / (predicted + eps))),
           "per_class_recall": float(np.mean(tp / (positives + eps))),
           "per_image_precision": float(tp.sum() / (predicted.sum() + eps)),
           "per_image_recall": float(tp.sum() / (positives.sum() + eps)),
           "n_plus": int((tp >= 1).sum())}
    for kind in ("per_class", "per_image"):
        p, r = out[f"{kind}_precision"], out[f"{kind}_recall"]
        out[f"{kind}_f1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return out


def top_k_by_hand(scores: np.ndarray, k: int) -> np.ndarray:
    """Each image's k highest-scoring labels, ties to the lower label index."""
    pred = np.zeros(scores.shape, dtype=bool)
    for i, row in enumerate(scores):
        for c in sorted(range(len(row)), key=lambda c: (-row[c], c))[:k]:
            pred[i, c] = True
    return pred


def numbers_by_hand(run: Path) -> dict[str, float]:
    """Notebook 05's numbers (mAP and ``<block>.<metric>``) computed from the run folder's
    predictions.csv and thresholds.json and the test split's labels, by the definitions of
    docs/method.md ("Evaluation") with numpy and scikit-learn, not with lib.method.metrics."""
    cfg = json.loads((run / "config.json").read_text())
    labels = cfg["labels"]
    test = datasets.load_dataset(cfg["dataset"], check_images=False, seed=cfg["seed"]
                             ).splits["test"]
    y = np.asarray(test.targets).astype(bool)
    scores = pd.read_csv(run / "predictions.csv").set_index("image_name").loc[
        test.names, labels].to_numpy(dtype=np.float64)
    saved = json.loads((run / "thresholds.json").read_text())
    assert saved["labels"] == labels
    thresholds = np.asarray(saved["thresholds"], dtype=np.float64)
    present = np.flatnonzero(y.any(axis=0))
    out = {"mean_average_precision": float(np.mean(
        [average_precision_score(y[:, c], scores[:, c]) for c in present]))}
    for block, pred in (("at_0.5", scores >= 0.5), ("mcc", scores >= thresholds),
                        ("top5", top_k_by_hand(scores, 5)),
                        ("top3", top_k_by_hand(scores, 3))):
        for key, value in seven_by_hand(y, pred).items():
            out[f"{block}.{key}"] = value
    return out
