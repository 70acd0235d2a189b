"""Notebooks 05 (evaluation) and 06 (t-SNE) end to end on the tiny training run; the
numbers they record are checked against independent computations from the run folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from by_hand import numbers_by_hand
from conftest import run_notebook
from scipy.stats import spearmanr

from lib.core import paths
from lib.core.glue import notebook_records
from lib.data import datasets
from lib.method.label_space import default_perplexity
from lib.method.metrics import METRIC_KEYS, evaluate_scores

# one worker builds the session's tiny_run for every test that uses it (make test: loadgroup)
pytestmark = pytest.mark.xdist_group("tiny_run")


def _cosine(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit @ unit.T


def _pairwise_rho(vectors: np.ndarray, train: np.ndarray) -> float:
    """Spearman rho over label pairs i < j of cosine similarity and (P(i|j) + P(j|i)) / 2."""
    y = train.astype(np.float64)
    m, n = y.T @ y, y.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n[:, None] > 0, m / n[:, None], 0.0)      # p[i, j] = P(j | i)
    iu, ju = np.triu_indices(len(n), k=1)
    return float(spearmanr(_cosine(vectors)[iu, ju], ((p + p.T) / 2)[iu, ju]).statistic)


@pytest.mark.slow
def test_run_folder_metrics_match_its_predictions(tiny_run):
    """metrics.json is what lib.method.metrics gives for predictions.csv and thresholds.json."""
    cfg = json.loads((tiny_run / "config.json").read_text())
    test = datasets.load_dataset(cfg["dataset"], check_images=False).splits["test"]
    scores = pd.read_csv(tiny_run / "predictions.csv").set_index("image_name")
    assert list(scores.columns) == cfg["labels"]
    thresholds = json.loads((tiny_run / "thresholds.json").read_text())["thresholds"]
    expected = evaluate_scores(test.targets, scores.loc[test.names].to_numpy(),
                               np.asarray(thresholds))
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    for block in ("at_0.5", "mcc", "top5", "top3"):
        assert metrics[block] == pytest.approx(expected[block], abs=1e-6)
    assert metrics["mean_average_precision"] == pytest.approx(
        expected["mean_average_precision"], abs=1e-6)
    # and by the definitions, independently of lib.method.metrics
    by_hand = numbers_by_hand(tiny_run)
    assert metrics["mean_average_precision"] == pytest.approx(
        by_hand["mean_average_precision"], abs=1e-6)
    for block in ("at_0.5", "mcc", "top5", "top3"):
        for key in METRIC_KEYS:
            assert metrics[block][key] == pytest.approx(by_hand[f"{block}.{key}"], abs=1e-6), (
                block, key)


@pytest.mark.slow
def test_notebook_05_evaluation(tiny_run, tmp_path):
    out = run_notebook("05_evaluation", {"run_name": str(tiny_run), "seed": 0,
                                         "n_examples": 4}, tmp_path)
    records = notebook_records(out)
    # the numbers it shows are the method's, recomputed here from predictions.csv,
    # thresholds.json and the test labels (not the metrics.json the notebook read)
    expected = numbers_by_hand(tiny_run)
    assert len(expected) == 1 + 4 * len(METRIC_KEYS)
    for name, value in expected.items():
        assert records[name] == pytest.approx(value, abs=1e-6), name
        if name.endswith("n_plus"):
            assert records[name] == value, name
    assert records["leaky"] is False and records["standin"] is False and records["seed"] == 0
    # Spearman rho of per-label F1 (MCC thresholds; TP / (predicted + 1e-7) etc.) and the
    # training frequency, from the files
    cfg = json.loads((tiny_run / "config.json").read_text())
    ds = datasets.load_dataset(cfg["dataset"], check_images=False, seed=cfg["seed"])
    test = ds.splits["test"]
    # some labels are absent from this test split: the all-C convention is exercised
    assert 0 < test.targets.any(axis=0).sum() < len(cfg["labels"])
    scores = pd.read_csv(tiny_run / "predictions.csv").set_index("image_name").loc[test.names]
    thresholds = np.asarray(json.loads((tiny_run / "thresholds.json").read_text())["thresholds"])
    y, pred = test.targets.astype(bool), scores.to_numpy() >= thresholds
    tp = (y & pred).sum(axis=0)
    precision, recall = tp / (pred.sum(axis=0) + 1e-7), tp / (y.sum(axis=0) + 1e-7)
    f1 = np.where(precision + recall > 0, 2 * precision * recall /
                  np.maximum(precision + recall, 1e-300), 0.0)
    rho = spearmanr(ds.splits["train"].targets.sum(axis=0), f1).statistic
    assert records["f1_frequency_spearman"] == pytest.approx(rho, abs=1e-9)
    figures = paths.figures_dir() / "05_evaluation"
    for stem in ("metrics", "f1_vs_frequency", "examples"):
        assert (figures / f"{records['run_name']}_seed-0_{stem}.png").stat().st_size > 1000


@pytest.mark.slow
def test_notebook_06_tsne(tiny_run, tmp_path):
    from lib.training import inference

    out = run_notebook("06_tsne", {"run_name": str(tiny_run), "seed": 0}, tmp_path)
    records = notebook_records(out)
    cfg = json.loads((tiny_run / "config.json").read_text())
    assert records["n_labels"] == len(cfg["labels"])
    assert records["head"] == cfg["head"] == "gcn"
    assert records["after_kind"].startswith("GCN output W")
    assert records["tsne_perplexity"] == pytest.approx(default_perplexity(len(cfg["labels"])))
    model, _ = inference.load_model(tiny_run)
    train = datasets.load_dataset(inference.RunFolder(tiny_run).dataset, check_images=False,
                              seed=cfg["seed"]).splits["train"].targets
    before = model.net.head.label_vectors.detach().numpy()
    after = model.net.label_classifiers().detach().numpy()
    assert records["cooccurrence_spearman_before"] == pytest.approx(
        _pairwise_rho(before, train), abs=1e-6)
    assert records["cooccurrence_spearman_after"] == pytest.approx(
        _pairwise_rho(after, train), abs=1e-6)
    assert (paths.figures_dir() / "06_tsne" / f"{records['run_name']}_seed-0_tsne.png").exists()


@pytest.mark.slow
def test_notebook_06_shows_a_residual_head_and_its_graph_share(tiny_run, tiny_scenes, tmp_path):
    """compare_runs: the residual head's classifiers and the share of each that comes from
    the graph, recorded as the mean of |W_gcn| / (|W_linear| + |W_gcn|) over labels."""
    from lib.training import inference, launch, settings

    residual = launch.train(settings.TrainConfig(
        data=str(tiny_scenes), out=str(tmp_path / "residual"), epochs=2, image_size=32,
        batch_size=16, seed=0, head="gcn-residual"))
    out = run_notebook("06_tsne", {"run_name": str(tiny_run), "seed": 0,
                                   "compare_runs": [str(residual)]}, tmp_path)
    records = notebook_records(out)
    model, _ = inference.load_model(residual)
    head = model.net.head
    lin = head.linear.weight.detach().norm(dim=1)
    gcn = (model.net.label_classifiers().detach() - head.linear.weight.detach()).norm(dim=1)
    expected = float((gcn / (lin + gcn)).mean())
    assert 0 < expected < 1
    assert records["graph_share_mean.residual"] == pytest.approx(expected, rel=1e-5)
