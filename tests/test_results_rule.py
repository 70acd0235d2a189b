"""The one results rule (lib/core/paths.py): AIA_RESULTS_DIR when set, else the scratch folder
results/lab/; parameter sets' folders under results/; the missing-run error says where it
looked and what to run."""

from __future__ import annotations

import pytest

from lib.core import paths
from lib.pipeline import params
from lib.training.runs import RunError, RunFolder


def test_unset_means_the_scratch_folder_never_a_parameter_sets(monkeypatch, tmp_path):
    monkeypatch.setenv("AIA_RESULTS_BASE", str(tmp_path / "results"))
    monkeypatch.delenv("AIA_RESULTS_DIR")
    assert paths.results_root() == tmp_path / "results" / "lab"
    assert paths.runs_dir() == tmp_path / "results" / "lab" / "runs"
    assert params.results_dir("default") == tmp_path / "results" / "default"
    assert paths.results_root() != params.results_dir("default")
    assert "AIA_RESULTS_DIR unset" in paths.results_origin()


def test_the_pipelines_folder_when_given(monkeypatch, tmp_path):
    monkeypatch.setenv("AIA_RESULTS_DIR", str(tmp_path / "x" / "smoke"))
    assert paths.figures_dir() == tmp_path / "x" / "smoke" / "figures"
    assert paths.results_origin().endswith("(from AIA_RESULTS_DIR)")
    monkeypatch.setenv("AIA_RESULTS_DIR", "results/smoke")      # relative: from the repo root
    assert paths.results_root() == paths.ROOT / "results" / "smoke"


def test_missing_run_error_names_the_folder_and_the_way_out(monkeypatch, tmp_path):
    monkeypatch.setenv("AIA_RESULTS_BASE", str(tmp_path / "results"))
    monkeypatch.delenv("AIA_RESULTS_DIR")
    (tmp_path / "results" / "default" / "runs" / "linear-asl" / "seed-0").mkdir(parents=True)
    with pytest.raises(RunError) as err:
        RunFolder.resolve("linear-asl")
    text = str(err.value)
    assert "\n" not in text
    assert str(tmp_path / "results" / "lab" / "runs" / "linear-asl") in text
    assert "notebook 04" in text and "python -m lib train --run-name linear-asl" in text
    assert f"run_name='{tmp_path / 'results' / 'default' / 'runs' / 'linear-asl'}'" in text
    with pytest.raises(RunError) as err:
        RunFolder.resolve("gcn-nothing")
    assert "pipeline's run" not in str(err.value)   # no pipeline has that run
