"""``make reproduce PARAMS=smoke PROFILE=slurm`` through a real SLURM cluster (the one-node
cluster of `.ci/slurm up`, which `.ci/run` starts); skipped where there is no sbatch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from lib import paths

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    shutil.which("sbatch") is None or subprocess.run(["sinfo"], capture_output=True).returncode,
    reason="no SLURM cluster here (sbatch/sinfo absent or not answering; .ci/slurm up starts one)")]


def make(results, *extra):
    venv = os.path.dirname(os.path.dirname(sys.executable))
    return subprocess.run(["make", "reproduce", "PARAMS=smoke", f"RESULTS={results}",
                           f"VENV={venv}", *extra], cwd=paths.ROOT, capture_output=True,
                          text=True, timeout=1800,
                          env={**os.environ, "PYTHONPATH": str(paths.ROOT)})


def test_reproduce_smoke_on_slurm(tmp_path):
    results = tmp_path / "slurm"
    # no GPUs on the CI node: the rules' gpu=1 would ask SLURM for a GPU it does not have
    cpu = "SNAKEMAKE_ARGS=--set-resources train:gpu=0 augment:gpu=0"
    out = make(results, "PROFILE=slurm", cpu)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    submitted = log.count("has been submitted with SLURM jobid")
    assert submitted >= 16, log[-3000:]      # every job but the local `all` ran under SLURM
    local = tmp_path / "local"
    assert make(local, "JOBS=2").returncode == 0
    a = pd.read_csv(results / "tables" / "main.csv").set_index(["run", "thresholds"])
    b = pd.read_csv(local / "tables" / "main.csv").set_index(["run", "thresholds"])
    for col in ("per_class_f1_mean", "mAP_mean"):
        assert (a[col] - b[col]).abs().max() <= 0.04, col
