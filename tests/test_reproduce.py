"""End to end: ``python -m lib reproduce --params smoke`` on the real notebooks, into a
temporary results folder (the tiny smoke dataset is drawn under the test's data root)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from lib import paths, reports

pytestmark = pytest.mark.slow


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib", "reproduce", *args], cwd=paths.ROOT,
                          capture_output=True, text=True, env=dict(os.environ), timeout=900)


def test_reproduce_smoke(tmp_path):
    notebooks = reports.discover_notebooks()
    smoke = yaml.safe_load((paths.PARAMS_DIR / "smoke.yaml").read_text())
    missing = sorted(k for k in smoke if k[:2].isdigit() and k not in {n.stem for n in notebooks})
    if missing:
        pytest.skip(f"notebooks {missing} of the smoke set are not in notebooks/ yet")
    results = tmp_path / "results"
    first = run("--params", "smoke", "--results", str(results))
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]

    runs = list(smoke["runs"])
    # one executed copy per notebook, one per training run
    executed = sorted(p.stem for p in (results / "executed").glob("*.ipynb"))
    expected = sorted([nb.stem for nb in notebooks if not nb.name.startswith("04")]
                      + [f"{nb.stem}__{r}" for nb in notebooks if nb.name.startswith("04")
                         for r in runs])
    assert executed == expected
    for r in runs:
        assert (results / "runs" / r / "metrics.json").exists()

    # the tables, from the run folders, stamped with the parameter set
    main = pd.read_csv(results / "tables" / "main.csv")
    assert set(main["run"]) == {r for r, cfg in smoke["runs"].items()
                                if cfg["head"] in ("linear", "gcn") and not cfg.get("augmented")}
    assert main["per_class_f1"].between(0, 1).all()
    assert (main["source"] == "ours").all()  # scenes, not Corel-5k: no reference rows
    ablations = pd.read_csv(results / "tables" / "ablations.csv")
    assert set(ablations["baseline"]) == {"gcn-asl"}
    assert "parameter set `smoke`" in (results / "tables" / "main.md").read_text()
    assert (results / "tables" / "main_per_class_f1.png").exists()

    # the reports: every executed notebook and both tables linked from the index
    index = (results / "reports" / "index.html").read_text()
    for name in expected:
        assert f"href='{name}.html'" in index
        assert (results / "reports" / f"{name}.html").stat().st_size > 10_000
    assert "href='table_main.html'" in index and "href='table_ablations.html'" in index

    # a second run redoes nothing and says so
    second = run("--params", "smoke", "--results", str(results))
    assert second.returncode == 0, second.stderr[-4000:]
    assert "running:" not in second.stdout
    for name in [*expected, "tables"]:
        assert f"up to date: {name}" in second.stdout
