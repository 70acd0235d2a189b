"""Notebooks 05 (evaluation) and 06 (t-SNE) end to end on the tiny training run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_notebook

from lib import data, paths
from lib.embeddings import default_perplexity
from lib.metrics import METRIC_KEYS, evaluate_scores
from lib.utils import notebook_records

# one worker builds the session's tiny_run for every test that uses it (make test: loadgroup)
pytestmark = pytest.mark.xdist_group("tiny_run")


@pytest.mark.slow
def test_run_folder_metrics_match_its_predictions(tiny_run):
    """metrics.json is what lib.metrics gives for predictions.csv and thresholds.json."""
    cfg = json.loads((tiny_run / "config.json").read_text())
    test = data.load_dataset(cfg["dataset"], check_images=False).splits["test"]
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


@pytest.mark.slow
def test_notebook_05_evaluation(tiny_run, tmp_path):
    out = run_notebook("05_evaluation", {"run_name": str(tiny_run), "n_examples": 4}, tmp_path)
    records = notebook_records(out)
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert records["mean_average_precision"] == metrics["mean_average_precision"]
    for setting in ("at_0.5", "mcc", "top5", "top3"):
        for key in METRIC_KEYS:
            assert records[f"{setting}.{key}"] == metrics[setting][key], (setting, key)
    assert records["leaky"] is False
    assert -1 <= records["f1_frequency_spearman"] <= 1
    figures = paths.figures_dir() / "05_evaluation"
    name = records["run_name"]
    for stem in ("metrics", "f1_vs_frequency", "examples"):
        assert (figures / f"{name}_{stem}.png").stat().st_size > 1000


@pytest.mark.slow
def test_notebook_06_tsne(tiny_run, tmp_path):
    out = run_notebook("06_tsne", {"run_name": str(tiny_run)}, tmp_path)
    records = notebook_records(out)
    cfg = json.loads((tiny_run / "config.json").read_text())
    assert records["n_labels"] == len(cfg["labels"])
    assert records["head"] == cfg["head"] == "gcn"
    assert records["after_kind"].startswith("GCN output W")
    assert records["tsne_perplexity"] == pytest.approx(default_perplexity(len(cfg["labels"])))
    for key in ("cooccurrence_spearman_before", "cooccurrence_spearman_after"):
        assert -1 <= records[key] <= 1
    assert (paths.figures_dir() / "06_tsne" / f"{records['run_name']}_tsne.png").exists()
