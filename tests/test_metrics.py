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

from lib import cli
from lib.data.predictions import PredictionsError, read_thresholds, score_main
from lib.method.metrics import (
    METRIC_KEYS,
    annotation_metrics,
    evaluate_scores,
    mcc_curves,
    mcc_thresholds,
    mean_average_precision,
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


def _score(capsys, *args) -> tuple[int, str]:
    """``python -m lib score ...`` in process: (exit code, the one stderr line)."""
    code = cli.main(["score", *map(str, args)])
    err = capsys.readouterr().err
    assert err.count("\n") == (1 if code else 0), err  # one line per error
    return code, err.strip()


@pytest.mark.parametrize("case, message", [
    ("columns", "score columns do not match"),
    ("unknown", "1 unknown"),
    ("missing", "1 missing"),
    ("text", "non-numeric or empty scores at line 3 (image 'te1.jpeg'), column 'sun'"),
    ("empty_cell", "non-numeric or empty scores at line 4 (image 'te2.jpeg'), column 'sky'"),
    ("inf", "infinite scores at line 5 (image 'te3.jpeg'), column 'tree'"),
    ("logits", "scores must be probabilities in [0, 1] (sigmoid outputs, not logits); 2 are "
               "outside, from -2 to 3.5, at line 2 (image 'te0.jpeg'), column 'sea'; "
               "line 3 (image 'te1.jpeg'), column 'sky'"),
    ("duplicate", "duplicate image names ['te0.jpeg']"),
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
    elif case == "empty_cell":
        scores[2, 0] = None
    elif case == "inf":
        scores[3, 3] = np.inf
    elif case == "logits":
        scores[0, 1], scores[1, 0] = -2.0, 3.5
    elif case == "duplicate":
        names[2] = "./te0.jpeg"  # the same image, written differently
    csv = _predictions(tmp_path / "bad.csv", names, scores, labels)
    code, err = _score(capsys, csv, "--data", dataset)
    assert code == 2 and err.startswith(f"error: {csv}: ") and message in err


def test_score_accepts_spaced_headers_and_dotted_names(dataset, tmp_path, capsys):
    names = [f"./te{i}.jpeg" for i in range(4)]
    csv = _predictions(tmp_path / "p.csv", names, S, [f" {x} " for x in LABELS])
    # the same numbers as with clean names and headers
    clean = _predictions(tmp_path / "q.csv", [n[2:] for n in names], S)
    out = tmp_path / "a.json"
    assert score_main([str(clean), "--data", str(dataset), "--out", str(out)]) == 0
    capsys.readouterr()
    out2 = tmp_path / "b.json"
    assert score_main([str(csv), "--data", str(dataset), "--out", str(out2)]) == 0
    a, b = json.loads(out.read_text()), json.loads(out2.read_text())
    assert a.pop("predictions") != b.pop("predictions") and a == b


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"image_name,sky,sea,sun,tree\n", "no rows (a header only)"),
    ("image_name,sky,sea,sun,tree\ncaf\xe9.jpeg,1,0,0,0\n".encode("latin-1"),
     "not UTF-8 text (byte 0xe9 at position 31, line 2)"),
    (b'image_name,sky\n"te0.jpeg,1\n', "malformed CSV"),
])
def test_score_unreadable_predictions(dataset, tmp_path, capsys, content, message):
    csv = tmp_path / "bad.csv"
    csv.write_bytes(content)
    code, err = _score(capsys, csv, "--data", dataset)
    assert code == 2 and err.startswith(f"error: {csv}: ") and message in err
    code, err = _score(capsys, tmp_path / "none.csv", "--data", dataset)
    assert (code, err) == (2, f"error: {tmp_path / 'none.csv'}: predictions file not found")


@pytest.mark.parametrize("thresholds, message", [
    ([0.3, "high", 0.3, 0.3], "threshold of 'sea' must be a number, got 'high'"),
    ([0.3, 0.3, float("nan"), 0.3], "threshold of 'sun' must be a finite number, got nan"),
    ([0.3, 0.3, 0.3, 1.5], "threshold of 'tree' must be in [0, 1], got 1.5"),
    ([-0.1, 0.3, 0.3, 0.3], "threshold of 'sky' must be in [0, 1], got -0.1"),
    ([True, 0.3, 0.3, 0.3], "threshold of 'sky' must be a number, got True"),
    ([0.3, 0.3, 0.3], "not a thresholds file with 'labels' and 'thresholds' lists"),
])
def test_score_bad_thresholds(dataset, tmp_path, capsys, thresholds, message):
    csv = _predictions(tmp_path / "p.csv", [f"te{i}.jpeg" for i in range(4)], S)
    thr = tmp_path / "thresholds.json"
    thr.write_text(json.dumps({"labels": LABELS, "thresholds": thresholds}))
    code, err = _score(capsys, csv, "--data", dataset, "--thresholds", thr)
    assert code == 2 and err.startswith(f"error: {thr}: ") and message in err


def test_score_thresholds_label_checks(dataset, tmp_path, capsys):
    csv = _predictions(tmp_path / "p.csv", [f"te{i}.jpeg" for i in range(4)], S)
    thr = tmp_path / "thresholds.json"
    for labels, message in [
        ([*LABELS[:3], "sky"], "labels listed twice: ['sky']"),
        ([*LABELS[:3], "ocean"], "no threshold for labels ['tree']"),
    ]:
        thr.write_text(json.dumps({"labels": labels, "thresholds": [0.3] * 4}))
        code, err = _score(capsys, csv, "--data", dataset, "--thresholds", thr)
        assert code == 2 and message in err
    thr.write_text(json.dumps({"labels": [*LABELS, "ocean"], "thresholds": [0.3] * 5}))
    code, err = _score(capsys, csv, "--data", dataset, "--thresholds", thr)
    assert code == 2 and "thresholds for labels not in the vocabulary ['ocean']" in err
    # spaces around labels are ignored, as in the vocabulary
    thr.write_text(json.dumps({"labels": [f" {x}" for x in LABELS], "thresholds": [0.3] * 4}))
    np.testing.assert_array_equal(read_thresholds(thr, LABELS), [0.3] * 4)
    thr.write_text("{")
    with pytest.raises(PredictionsError, match=r"thresholds\.json: malformed JSON"):
        read_thresholds(thr, LABELS)
