"""Scoring a trained run: evaluate, score and annotate agree; one scoring path; evaluate
follows the image files."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lib import data, inference, metrics
from lib.runs import RunFolder

SEVEN = {"per_class_precision", "per_class_recall", "per_class_f1", "per_image_precision",
         "per_image_recall", "per_image_f1", "n_plus"}

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tiny_run")]


def test_evaluate_and_score_reproduce_training_metrics(tiny_run, tiny_scenes, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "metrics.json").unlink()
    assert inference.evaluate_main([str(run)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert json.loads((run / "metrics.json").read_text()) == evaluated
    assert metrics.score_main([str(run / "predictions.csv"), "--data", str(tiny_scenes),
                               "--thresholds", str(run / "thresholds.json")]) == 0
    scored = json.loads(capsys.readouterr().out)
    original = RunFolder(tiny_run).metrics()
    for result in (scored, original):
        assert evaluated["mean_average_precision"] == pytest.approx(
            result["mean_average_precision"], abs=1e-6)
        for block in ("at_0.5", "mcc", "top5", "top3"):
            for key in SEVEN:
                assert evaluated[block][key] == pytest.approx(result[block][key], abs=1e-6)


def test_evaluate_follows_a_replaced_test_image(tiny_run, tiny_scenes, tmp_path):
    """Every test image replaced by a black one: evaluate scores the new pixels (the decode
    cache is keyed by the files' content), so metrics.json changes."""
    root = tmp_path / "scenes"
    shutil.copytree(tiny_scenes, root)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["dataset"] = str(root)
    (run / "config.json").write_text(json.dumps(cfg))
    before = inference.evaluate_run(run, device="cpu")
    ds = data.load_dataset(root)
    for name in ds.splits["test"].names:
        path = ds.image_path(name)
        st = os.stat(path)
        Image.new("RGB", (48, 48)).save(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**6))
    after = inference.evaluate_run(run, device="cpu")
    assert after["mean_average_precision"] != before["mean_average_precision"]
    model, cfg = inference.load_model(run)
    scores = inference.predict(model, ds, "test", config=cfg, device="cpu")
    assert np.ptp(scores, axis=0).max() < 1e-6  # identical black images, identical scores


def test_annotate_agrees_with_predictions(tiny_run, tiny_scenes, tmp_path):
    ds = data.load_dataset(tiny_scenes)
    names = ds.splits["test"].names[:10]
    out = tmp_path / "labels.json"
    argv = [str(tiny_run), *[str(ds.image_path(n)) for n in names], "--format", "json",
            "--output", str(out)]
    assert inference.annotate_main(argv) == 0
    rows = json.loads(out.read_text())
    pred = RunFolder(tiny_run).predictions()
    thr = RunFolder(tiny_run).thresholds()
    for name, row in zip(names, rows, strict=True):
        got = np.array([row["scores"][lab] for lab in ds.labels])
        np.testing.assert_allclose(got, pred.loc[name, ds.labels].to_numpy(), atol=1e-5)
        assert set(row["labels"]) == {lab for lab, s, t in zip(ds.labels, got, thr,
                                                                strict=True) if s >= t}
    folder = tmp_path / "imgs"
    folder.mkdir()
    for n in names[:3]:
        shutil.copy(ds.image_path(n), folder / n)
    csv = tmp_path / "labels.csv"
    assert inference.annotate_main([str(tiny_run), str(folder), "--top-k", "2", "--output",
                                    str(csv)]) == 0
    table = pd.read_csv(csv)
    assert len(table) == 3
    for _, r in table.iterrows():
        best2 = pred.loc[r["image"].split("/")[-1], ds.labels].astype(float).nlargest(2).index
        assert json.loads(r["labels"]) == list(best2)  # a JSON list (labels may hold spaces)
    with pytest.raises(SystemExit):
        inference.annotate_main([str(tiny_run), str(folder), "--top-k", "0"])
