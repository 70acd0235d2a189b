"""Notebook 04 (training) end to end through papermill: seeds, presets and overrides."""

from __future__ import annotations

import pytest
from by_hand import numbers_by_hand
from conftest import run_notebook

from lib.core import paths
from lib.core.glue import notebook_records
from lib.training.runs import RunFolder

SMALL = {"epochs": 1, "image_size": 32, "batch_size": 16}
#: the test numbers notebook 04 records, and their names in by_hand.numbers_by_hand
HEADLINE = {"test_mAP": "mean_average_precision", "test_per_class_f1_0.5": "at_0.5.per_class_f1",
            "test_per_class_f1_mcc": "mcc.per_class_f1",
            "test_per_image_f1_0.5": "at_0.5.per_image_f1", "test_n_plus_0.5": "at_0.5.n_plus",
            "test_per_class_f1_top3": "top3.per_class_f1"}


@pytest.mark.slow
def test_notebook_04_trains_every_seed_and_records_metrics(tiny_scenes, tmp_path):
    params = {"run_name": "nb-smoke", "dataset": str(tiny_scenes), "seeds": [0, 1],
              "overrides": SMALL}
    out = run_notebook("04_training", params, tmp_path)
    runs = [RunFolder(paths.run_dir("nb-smoke") / f"seed-{s}") for s in (0, 1)]
    rec = notebook_records(out)
    # the numbers it records are the method's, computed here from each run's
    # predictions.csv, thresholds.json and test labels (not read back from metrics.json)
    by_hand = [numbers_by_hand(run.path) for run in runs]
    for name, key in HEADLINE.items():
        assert rec[name] == pytest.approx(by_hand[0][key], abs=1e-6), name
    assert rec["test_n_plus_0.5"] == by_hand[0]["at_0.5.n_plus"]
    assert rec["per_seed"]["seed"] == [0, 1]
    assert rec["per_seed"]["test_mAP"] == pytest.approx(
        [h["mean_average_precision"] for h in by_hand], abs=1e-6)
    assert rec["leaky"] is False and rec["epochs_trained"] == 1
    for run, seed in zip(runs, (0, 1), strict=True):
        assert (run.config["seed"], run.config["run_name"]) == (seed, "nb-smoke")
        assert (run.config["image_size"], run.config["head"]) == (32, "gcn")
    figures = paths.figures_dir() / "04_training" / "nb-smoke" / "seed-1"
    assert (figures / "loss.png").stat().st_size > 0
    # a second execution keeps the finished runs: same numbers, no new epoch
    mtime = runs[0].checkpoint_path.stat().st_mtime_ns
    (tmp_path / "b").mkdir()
    again = run_notebook("04_training", params, tmp_path / "b")
    assert notebook_records(again) == rec
    assert runs[0].checkpoint_path.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_notebook_04_preset_values_set_by_the_user_win(tiny_scenes, tmp_path):
    """preset corel5k with values equal to the embedded defaults (normalization backbone,
    pretrained false, ...): the run trains with what was asked."""
    overrides = {**SMALL, "backbone": "resnet10t", "schedule_epochs": 1,
                 "normalization": "backbone", "pretrained": False, "num_workers": 0,
                 "select_metric": "mean_average_precision", "embeddings": "glove-6b-50d",
                 "eval_batch_size": 128}
    run_notebook("04_training", {"run_name": "nb-corel", "dataset": str(tiny_scenes),
                                 "preset": "corel5k", "overrides": overrides}, tmp_path)
    cfg = RunFolder(paths.run_dir("nb-corel") / "seed-0").config
    for key, value in overrides.items():
        assert cfg[key] == value, key
    assert cfg["lr"] == 1e-4 and cfg["warmup"] == 0.2  # the rest of the preset is kept
