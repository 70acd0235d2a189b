"""Run-folder analysis (lib.analysis.evaluation, lib.plots.evaluation) on a hand-made run folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from lib.analysis import evaluation
from lib.core import paths
from lib.method.metrics import evaluate_scores, mcc_thresholds
from lib.method.models import build_model
from lib.plots import evaluation as evaluation_plots
from lib.plots import save
from lib.training.runs import RunError, make_config

LABELS = ["sky", "sea", "sun", "tree", "car"]


@pytest.fixture()
def run(tmp_path):
    """A dataset (annotations only) and a run folder written by hand."""
    rng = np.random.default_rng(0)
    root = tmp_path / "ds"
    root.mkdir()
    truth = {}
    for split, n in (("train", 20), ("val", 8), ("test", 12)):
        y = (rng.uniform(size=(n, 5)) < 0.4).astype(np.uint8)
        y[:, 4] = 0 if split == "test" else y[:, 4]          # "car" absent from test
        names = [f"{split}{i}.jpeg" for i in range(n)]
        truth[split] = (names, y)
        samples = [{"image_name": a, "image_labels": [LABELS[c] for c in np.flatnonzero(r)]}
                   for a, r in zip(names, y, strict=True)]
        (root / f"{split}.json").write_text(json.dumps({"labels": LABELS, "samples": samples}))
    names, y = truth["test"]
    scores = np.clip(y * 0.4 + rng.uniform(size=y.shape) * 0.6, 0, 1)
    thresholds = mcc_thresholds(y, scores)
    out = paths.run_dir("hand")
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(make_config(
        LABELS, str(root), run_name="hand", seed=0, head="linear", embeddings="onehot")))
    frame = pd.DataFrame(scores[::-1], columns=LABELS)              # rows in another order
    frame.insert(0, "image_name", names[::-1])
    frame.to_csv(out / "predictions.csv", index=False)
    (out / "thresholds.json").write_text(json.dumps(
        {"labels": LABELS, "thresholds": thresholds.tolist(), "tuned_on": "val"}))
    metrics = {"split": "test", "leaky": False, **evaluate_scores(y, scores, thresholds)}
    (out / "metrics.json").write_text(json.dumps(metrics))
    return out, y, scores, thresholds, metrics


def test_resolve_run_by_name_seed_and_path(run):
    out = run[0]
    assert evaluation.resolve_run("hand").path == out
    assert evaluation.resolve_run(str(out), seed=0).path == out
    with pytest.raises(RunError, match="run of seed 0, not seed 3"):
        evaluation.resolve_run("hand", seed=3)
    with pytest.raises(RunError, match="no run folder"):
        evaluation.resolve_run("nope")
    # a configuration trained with seeds 2 and 7: runs/<name>/seed-<n>/
    for seed in (7, 2):
        folder = paths.run_dir("multi") / f"seed-{seed}"
        shutil.copytree(out, folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "run_name": "multi",
                                                        "seed": seed}))
    assert evaluation.resolve_run("multi", seed=7).path == paths.run_dir("multi") / "seed-7"
    assert evaluation.resolve_run("multi").path.name == "seed-2"      # the lowest seed
    assert evaluation.resolve_run("multi").name == "multi"
    with pytest.raises(RunError, match=r"no seed 5 .* \(seeds there: \[2, 7\]\)"):
        evaluation.resolve_run("multi", seed=5)
    assert evaluation.load_results("multi", seed=7).run.config["seed"] == 7


def test_load_results_and_tables(run):
    out, y, scores, thresholds, metrics = run
    res = evaluation.load_results("hand")
    np.testing.assert_array_equal(res.y_true, y)
    np.testing.assert_allclose(res.y_score, scores)          # aligned by image name
    np.testing.assert_allclose(res.thresholds, thresholds)
    assert res.metrics == metrics and res.name == "hand"
    # and those stored numbers are the formulas' (not only what the fixture wrote)
    pred = scores >= thresholds
    tp = (pred & (y == 1)).sum(axis=0)
    assert res.metrics["mcc"]["per_image_precision"] == pytest.approx(tp.sum() / pred.sum())
    assert res.metrics["mcc"]["n_plus"] == int((tp > 0).sum())
    from sklearn.metrics import average_precision_score
    present = y.any(axis=0)
    assert res.metrics["mean_average_precision"] == pytest.approx(np.mean(
        [average_precision_score(y[:, c], scores[:, c]) for c in np.flatnonzero(present)]))

    table = evaluation.metrics_table(metrics)
    assert list(table.columns) == ["threshold 0.5", "MCC thresholds", "top-5", "top-3"]
    assert table.loc["per-class F1", "MCC thresholds"] == metrics["mcc"]["per_class_f1"]
    assert table.loc["N+", "top-3"] == metrics["top3"]["n_plus"]
    flat = evaluation.main_numbers(metrics)
    assert flat["top5.per_image_recall"] == metrics["top5"]["per_image_recall"]
    assert len(flat) == 1 + 4 * 7

    per = evaluation.per_label_table(res)
    assert per["test_images"].tolist() == y.sum(axis=0).tolist()
    # the mean of the per-label precisions is the per-class precision
    assert per["precision_mcc"].mean() == pytest.approx(metrics["mcc"]["per_class_precision"])
    assert per["recall_0.5"].mean() == pytest.approx(metrics["at_0.5"]["per_class_recall"])
    assert np.isnan(per.loc[4, "ap"])                          # car: no positive in test
    best, worst = evaluation.best_and_worst(per, n=2)
    assert "car" not in set(best["label"]) | set(worst["label"])
    assert best["f1_mcc"].iloc[0] == per.loc[per["test_images"] > 0, "f1_mcc"].max()
    assert worst["f1_mcc"].iloc[0] == per.loc[per["test_images"] > 0, "f1_mcc"].min()


def test_plots(run, tmp_path):
    res = evaluation.load_results("hand")
    per = evaluation.per_label_table(res)
    shown = evaluation.example_indices(len(res.names), 5, seed=0)
    assert len(set(shown)) == 5 and (shown == np.sort(shown)).all()
    figs = [
        evaluation_plots.metric_bars(evaluation.metrics_table(res.metrics)),
        evaluation_plots.f1_vs_frequency(per),
        # the images do not exist: empty panels, no error
        evaluation_plots.example_grid([res.dataset.image_path(res.names[i]) for i in shown],
                                      res.labels, res.y_true[shown], res.y_score[shown] > 0.5,
                                      res.y_score[shown]),
        evaluation_plots.tsne_pair(np.zeros((5, 2)), np.ones((5, 2)), LABELS, np.arange(5)),
    ]
    for i, fig in enumerate(figs):
        assert save(fig, tmp_path / f"{i}.png").stat().st_size > 1000


def test_label_vectors_before_after(run):
    cfg = evaluation.read_config("hand")
    torch.manual_seed(0)
    linear = build_model(5, head="linear", backbone="resnet10t")
    before, after, kind = evaluation.label_vectors_before_after(linear, cfg)
    np.testing.assert_allclose(before, np.eye(5))              # the onehot source
    np.testing.assert_allclose(after, linear.head.weight.detach().numpy(), rtol=1e-6)
    assert "linear" in kind
    vectors = np.random.default_rng(0).normal(size=(5, 3))
    gcn = build_model(5, head="gcn-identity", backbone="resnet10t", label_vectors=vectors,
                      hidden=8)
    before, after, kind = evaluation.label_vectors_before_after(gcn, {**cfg, "head":
                                                                      "gcn-identity"})
    np.testing.assert_allclose(before, vectors, rtol=1e-6)
    np.testing.assert_allclose(after, gcn.label_classifiers().detach().numpy(), rtol=1e-6)
    assert "A = I" in kind


def test_training_tables_read_the_run_folder(run, tmp_path):
    from lib.plots import training as training_plots
    from lib.training.runs import RunFolder

    out, metrics = run[0], run[4]
    RunFolder(out).write_history([{"epoch": 1, "train_loss": 0.5, "val_loss": 0.6,
                                   "best": True, "seconds": 1.0}])
    assert training_plots.read_history(out)["val_loss"].tolist() == [0.6]
    table = training_plots.metrics_table(out)
    assert list(table.index) == ["threshold 0.5", "MCC thresholds", "top-5", "top-3"]
    assert table.loc["MCC thresholds", "per_class_f1"] == metrics["mcc"]["per_class_f1"]
    assert table.loc["top-3", "n_plus"] == metrics["top3"]["n_plus"]
    assert (table["mAP"] == metrics["mean_average_precision"]).all()
    assert not table["leaky"].any()
    with pytest.raises(RunError, match=r"history\.csv: missing"):
        training_plots.read_history(tmp_path)


def test_augmentation_is_stated(run):
    from lib.training.runs import RunFolder

    folder = RunFolder(run[0])
    assert evaluation.augmentation_text(folder) == "not augmented"
    folder.write_config({**folder.config, "augmented": True,
                         "augmentation": {"images": 16, "of": 1500, "select": "first"}})
    assert evaluation.augmentation_text(folder) == "augmented: 16 of 1500 training images"
