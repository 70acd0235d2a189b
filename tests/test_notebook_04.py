"""Notebook 04 (training) end to end with smoke parameters on the tiny scenes dataset."""

from __future__ import annotations

import json

import pytest
from conftest import run_notebook

from lib import paths
from lib.utils import notebook_records

SMOKE = {"epochs": 1, "image_size": 32, "batch_size": 16, "run_name": "nb-smoke"}


@pytest.mark.slow
def test_notebook_04_trains_and_records_metrics(tiny_scenes, tmp_path):
    out = run_notebook("04_training", {**SMOKE, "dataset": str(tiny_scenes)}, tmp_path)
    run = paths.run_dir("nb-smoke")
    m = json.loads((run / "metrics.json").read_text())
    rec = notebook_records(out)
    assert rec["test_mAP"] == pytest.approx(m["mean_average_precision"])
    assert rec["test_per_class_f1_0.5"] == pytest.approx(m["at_0.5"]["per_class_f1"])
    assert rec["test_per_class_f1_mcc"] == pytest.approx(m["mcc"]["per_class_f1"])
    assert rec["test_n_plus_0.5"] == m["at_0.5"]["n_plus"]
    assert rec["leaky"] is False and rec["epochs_trained"] == 1
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["image_size"], cfg["epochs"], cfg["head"], cfg["loss"]) == (32, 1, "gcn", "asl")
    figures = paths.figures_dir() / "04_training" / "nb-smoke"
    assert (figures / "loss.png").stat().st_size > 0
    assert (figures / "validation_metrics.png").stat().st_size > 0
    # a second execution resumes the finished run: same numbers, no new epoch
    mtime = (run / "checkpoint.pt").stat().st_mtime_ns
    (tmp_path / "b").mkdir()
    again = run_notebook("04_training", {**SMOKE, "dataset": str(tiny_scenes)}, tmp_path / "b")
    assert notebook_records(again) == rec
    assert (run / "checkpoint.pt").stat().st_mtime_ns == mtime
