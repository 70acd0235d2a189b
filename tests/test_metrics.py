"""Annotation metrics against scikit-learn and hand-worked cases; the score command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
)

from lib.metrics import (
    METRIC_KEYS,
    annotation_metrics,
    evaluate_scores,
    mcc_curves,
    mcc_thresholds,
    mean_average_precision,
    score_main,
    topk_metrics,
)

# 4 images x 4 labels; label 2 never predicted, label 3 never present
Y = np.array([[1, 0, 1, 0],
              [1, 1, 0, 0],
              [0, 1, 0, 0],
              [1, 0, 1, 0]])
S = np.array([[0.9, 0.2, 0.4, 0.6],
              [0.5, 0.8, 0.1, 0.1],
              [0.7, 0.3, 0.2, 0.0],
              [0.1, 0.6, 0.3, 0.2]])


def test_hand_worked_case():
    # predicted (>= 0.5): [1,0,0,1], [1,1,0,0], [1,0,0,0], [0,1,0,0]
    # TP per label: 2, 1, 0, 0; predicted 3, 2, 0, 1; ground truth 3, 2, 2, 0
    m = annotation_metrics(Y, S)
    assert set(m) == set(METRIC_KEYS)
    p = (2 / 3 + 1 / 2 + 0 + 0) / 4
    r = (2 / 3 + 1 / 2 + 0 + 0) / 4
    assert m["per_class_precision"] == pytest.approx(p, abs=1e-6)
    assert m["per_class_recall"] == pytest.approx(r, abs=1e-6)
    assert m["per_class_f1"] == pytest.approx(2 * p * r / (p + r), abs=1e-6)
    assert m["per_image_precision"] == pytest.approx(3 / 6, abs=1e-6)
    assert m["per_image_recall"] == pytest.approx(3 / 7, abs=1e-6)
    assert m["per_image_f1"] == pytest.approx(2 * (3 / 6) * (3 / 7) / (3 / 6 + 3 / 7), abs=1e-6)
    assert m["n_plus"] == 2
    # the threshold is inclusive: 0.5 on image 1 label 0 counts
    assert annotation_metrics(Y, S, 0.50000001)["per_image_precision"] == pytest.approx(2 / 5,
                                                                                        abs=1e-6)


def test_against_sklearn_random():
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=(60, 12)) < 0.25).astype(int)
    y[:, 3] = 0                                        # a label never present
    s = rng.uniform(size=(60, 12))
    s[:, 5] = 0.1                                      # a label never predicted
    thresholds = rng.uniform(0.3, 0.7, size=12)
    for t in (0.5, thresholds):
        pred = (s >= t).astype(int)
        m = annotation_metrics(y, s, t)
        p = precision_score(y, pred, average=None, zero_division=0).mean()
        r = recall_score(y, pred, average=None, zero_division=0).mean()
        assert m["per_class_precision"] == pytest.approx(p, abs=1e-6)
        assert m["per_class_recall"] == pytest.approx(r, abs=1e-6)
        assert m["per_class_f1"] == pytest.approx(2 * p * r / (p + r), abs=1e-6)
        pi = precision_score(y, pred, average="micro", zero_division=0)
        ri = recall_score(y, pred, average="micro", zero_division=0)
        assert m["per_image_precision"] == pytest.approx(pi, abs=1e-6)
        assert m["per_image_recall"] == pytest.approx(ri, abs=1e-6)
        assert m["per_image_f1"] == pytest.approx(2 * pi * ri / (pi + ri), abs=1e-6)
        assert m["n_plus"] == int(((pred == 1) & (y == 1)).any(axis=0).sum())


def test_topk_hand_case():
    # top-2 per image: {0,3}, {1,0}, {0,1}, {1,2}
    m = topk_metrics(Y, S, 2)
    # TP per label: 2 (img0, img1), 2 (img1, img2), 1 (img3), 0; predicted 3, 3, 1, 1
    assert m["per_class_precision"] == pytest.approx((2 / 3 + 2 / 3 + 1 + 0) / 4, abs=1e-6)
    assert m["per_class_recall"] == pytest.approx((2 / 3 + 1 + 1 / 2 + 0) / 4, abs=1e-6)
    assert m["per_image_precision"] == pytest.approx(5 / 8, abs=1e-6)
    assert m["per_image_recall"] == pytest.approx(5 / 7, abs=1e-6)
    assert m["n_plus"] == 3
    # k larger than the vocabulary predicts everything
    assert topk_metrics(Y, S, 10)["per_image_recall"] == pytest.approx(1.0, abs=1e-6)


def test_mean_average_precision_vs_sklearn():
    rng = np.random.default_rng(1)
    y = (rng.uniform(size=(40, 6)) < 0.3).astype(int)
    y[:, 2] = 0
    s = rng.uniform(size=(40, 6))
    present = [c for c in range(6) if y[:, c].any()]
    expected = np.mean([average_precision_score(y[:, c], s[:, c]) for c in present])
    assert mean_average_precision(y, s) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(mean_average_precision(np.zeros((3, 2)), np.ones((3, 2))))


@pytest.mark.filterwarnings("ignore:A single label was found")
def test_mcc_search_against_brute_force():
    rng = np.random.default_rng(2)
    n, c = 30, 6
    y = (rng.uniform(size=(n, c)) < 0.3).astype(int)
    y[:, 4] = 0                                          # no positives -> default
    y[:, 5] = 1                                          # all positive: MCC 0 everywhere
    s = np.clip(y * 0.25 + rng.uniform(size=(n, c)) * 0.6, 0, 1).round(2)
    grid = np.round(np.arange(0.05, 0.701, 0.05), 2)
    curves = mcc_curves(y, s, grid)
    found = mcc_thresholds(y, s)
    for label in range(c):
        best_t, best_v = None, -np.inf
        for j, t in enumerate(grid):
            v = matthews_corrcoef(y[:, label], (s[:, label] >= t).astype(int))
            assert curves[label, j] == pytest.approx(v, abs=1e-12)
            if v > best_v + 1e-12:                       # ties keep the smallest threshold
                best_t, best_v = t, v
        expected = 0.5 if label == 4 else best_t
        assert found[label] == pytest.approx(expected)
    assert found[5] == 0.05


def test_evaluate_scores_blocks():
    t = np.full(4, 0.3)
    out = evaluate_scores(Y, S, thresholds=t)
    assert list(out)[:5] == ["mean_average_precision", "at_0.5", "mcc", "top5", "top3"]
    assert out["mcc"] == annotation_metrics(Y, S, t)
    assert out["top3"] == topk_metrics(Y, S, 3)
    assert out["n_labels"] == 4 and out["n_labels_present"] == 3
    assert "mcc" not in evaluate_scores(Y, S)
    with pytest.raises(ValueError, match="same"):
        evaluate_scores(Y, S[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_scores(Y, np.full(Y.shape, np.nan))


# -- the score command -------------------------------------------------------------------------

LABELS = ["sky", "sea", "sun", "tree"]


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    def write(split, rows):
        samples = [{"image_name": name, "image_labels": [LABELS[i] for i in np.flatnonzero(r)]}
                   for name, r in rows]
        (root / f"{split}.json").write_text(json.dumps({"labels": LABELS, "samples": samples}))
    write("train", [(f"tr{i}.jpeg", Y[i % 4]) for i in range(10)])
    write("val", [("va0.jpeg", Y[0])])
    write("test", [(f"te{i}.jpeg", Y[i]) for i in range(4)])
    return root


def _predictions(path, names, scores, labels=LABELS):
    df = pd.DataFrame(scores, columns=labels)
    df.insert(0, "image_name", names)
    df.to_csv(path, index=False)
    return path


def test_score_command(dataset, tmp_path, capsys):
    names = [f"te{i}.jpeg" for i in range(4)]
    # rows shuffled: alignment is by image name
    order = [2, 0, 3, 1]
    csv = _predictions(tmp_path / "p.csv", [names[i] for i in order], S[order])
    thr = tmp_path / "thresholds.json"
    thr.write_text(json.dumps({"labels": LABELS, "thresholds": [0.3] * 4, "tuned_on": "val"}))
    out = tmp_path / "metrics.json"
    assert score_main([str(csv), "--data", str(dataset), "--thresholds", str(thr),
                       "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = evaluate_scores(Y, S, np.full(4, 0.3))
    for key in ("at_0.5", "mcc", "top5", "top3"):
        assert printed[key] == pytest.approx(expected[key])
    assert printed["mean_average_precision"] == pytest.approx(expected["mean_average_precision"])
    assert json.loads(out.read_text()) == printed


@pytest.mark.parametrize("case, message", [
    ("columns", "score columns do not match"),
    ("unknown", "1 unknown"),
    ("missing", "1 missing"),
    ("text", "non-numeric"),
])
def test_score_command_errors(dataset, tmp_path, capsys, case, message):
    names = [f"te{i}.jpeg" for i in range(4)]
    scores = S.astype(object)
    labels = list(LABELS)
    if case == "columns":
        labels[1] = "ocean"
    elif case == "unknown":
        names[3] = "other.jpeg"
    elif case == "missing":
        names, scores = names[:3], scores[:3]
    elif case == "text":
        scores[1, 2] = "high"
    csv = _predictions(tmp_path / "bad.csv", names, scores, labels)
    assert score_main([str(csv), "--data", str(dataset)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and message in err
