"""End to end: ``python -m lib reproduce --params smoke`` on the real notebooks, into a
temporary results folder (the tiny smoke dataset is drawn under the test's data root), with
golden numbers. The driver itself is tested on stand-in notebooks in tests/test_pipeline.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lib import params, paths, render, stages

pytestmark = pytest.mark.slow

#: (run, thresholds) -> (per-class F1, mAP, N+): means over seeds 0 and 1 of PARAMS=smoke,
#: two notebooks at once with one CPU thread each (the pipeline's setting on a 2-core machine)
GOLDEN = {
    ("linear-asl", "0.5"): (0.144, 0.356, 17.5),
    ("linear-asl", "MCC"): (0.144, 0.356, 29.0),
    ("gcn-asl", "0.5"): (0.043, 0.232, 5.0),
    ("gcn-asl", "MCC"): (0.158, 0.232, 24.0),
}


def run(*args: str) -> subprocess.CompletedProcess:
    """The driver with two notebooks at once and one CPU thread per kernel on any machine
    (the thread count changes float summation order, hence the golden numbers)."""
    return subprocess.run([sys.executable, "-m", "lib", "reproduce", *args, "--jobs", "2"],
                          cwd=paths.ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})


def test_reproduce_smoke(tmp_path):
    smoke = params.load_param_set("smoke")
    notebooks = stages.discover_notebooks()
    results = tmp_path / "results"
    first = run("--params", "smoke", "--results", str(results))
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "without encryption" not in first.stderr

    # one executed copy per notebook, one per training configuration
    executed = sorted(p.stem for p in (results / "executed").glob("*.ipynb"))
    expected = sorted([nb.stem for nb in notebooks if nb.stem != "04_training"]
                      + [f"04_training__{r}" for r in smoke.runs])
    assert executed == expected
    for r in smoke.runs:
        for seed in smoke.run_seeds(r):
            folder = results / "runs" / r / f"seed-{seed}"
            assert (folder / "metrics.json").is_file()
            # the kernels trained with the thread count the driver gave them
            assert json.loads((folder / "config.json").read_text())["cpu_threads"] == 1

    # the main table: mean and sample sd over the seeds' metrics.json
    main = pd.read_csv(results / "tables" / "main.csv")
    assert set(main["run"]) == {"linear-asl", "gcn-asl"} and (main["source"] == "ours").all()
    row = main[(main["run"] == "gcn-asl") & (main["thresholds"] == "MCC")].iloc[0]
    f1 = [json.loads((results / "runs" / "gcn-asl" / f"seed-{s}" / "metrics.json").read_text())
          ["mcc"]["per_class_f1"] for s in smoke.seeds]
    assert row["n_seeds"] == len(smoke.seeds)
    assert row["per_class_f1_mean"] == pytest.approx(np.mean(f1))
    assert row["per_class_f1_std"] == pytest.approx(np.std(f1, ddof=1))
    # golden numbers of PARAMS=smoke (seeds 0 and 1, 2-core CPU dev box, one thread per kernel).
    # Tolerances hold across machines: float summation order moves thresholded metrics of a
    # 32-image test split by a few hundredths (the embedded default's per-class F1 by up to
    # 0.01 between two machines), mAP less; a change of method moves them more.
    for (run_name, block), (f1, mean_ap, n_plus) in GOLDEN.items():
        got = main[(main["run"] == run_name) & (main["thresholds"] == block)].iloc[0]
        assert got["per_class_f1_mean"] == pytest.approx(f1, abs=0.04), (run_name, block)
        assert got["mAP_mean"] == pytest.approx(mean_ap, abs=0.03), (run_name, block)
        assert got["n_plus_mean"] == pytest.approx(n_plus, abs=4), (run_name, block)
    ablations = pd.read_csv(results / "tables" / "ablations.csv")
    assert set(zip(ablations["run"], ablations["baseline"], strict=True)) == {
        ("gcn-asl", "linear-asl"), ("gcn-augmented-asl", "gcn-asl")}
    augmented = ablations[ablations["run"] == "gcn-augmented-asl"].iloc[0]
    assert augmented["augmentation"].startswith("4 of ")
    assert "parameter set `smoke`" in (results / "tables" / "main.md").read_text()

    # the reports: every executed notebook and both tables linked from the index
    index = (results / "reports" / "index.html").read_text()
    for name in expected:
        assert f"href='{name}.html'" in index
        assert (results / "reports" / f"{name}.html").stat().st_size > 10_000
    assert "href='table_main.html'" in index and "href='table_ablations.html'" in index
    # every figure a notebook drew is in its executed copy and inline in its report
    figures = {name: render.count_image_outputs(results / "executed" / f"{name}.ipynb")
               for name in expected}
    for name in expected:
        if name.startswith(("01_", "04_")):      # these always draw figures
            assert figures[name] >= 1, name
        assert render.count_inline_images(results / "reports" / f"{name}.html") \
            >= figures[name], name
    # nothing written for people holds the checkout's absolute path
    for folder in ("reports", "tables", ".stamps"):
        for f in (results / folder).rglob("*"):
            if f.is_file() and f.suffix in (".html", ".md", ".csv", ".json"):
                assert str(paths.ROOT) not in f.read_text(encoding="utf-8"), f

    # a second run redoes nothing and says so
    second = run("--params", "smoke", "--results", str(results))
    assert second.returncode == 0, second.stderr[-4000:]
    assert "running:" not in second.stderr and "0 job(s) ran" in second.stdout
    for name in [*expected, "tables"]:
        assert f"up to date: {name}" in second.stderr
