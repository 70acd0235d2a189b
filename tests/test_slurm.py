"""``make reproduce PARAMS=smoke PROFILE=slurm`` through a real SLURM cluster (the one-node
cluster of `.ci/slurm up`, which `.ci/run` starts); skipped where there is no cluster.

One run with a training job cancelled by ``scancel`` while it is queued or running: Snakemake
reports that job failed and (``--keep-going``) finishes every job that does not need it. The
rerun submits exactly the jobs that had not finished (the cancelled training and what reads
it) and nothing else. The tables then agree with a local run of the same set (the golden
numbers of tests/test_reproduce.py, within their tolerance)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from lib.core import paths

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    shutil.which("sbatch") is None or subprocess.run(["sinfo"], capture_output=True).returncode,
    reason="no SLURM cluster here (sbatch/sinfo absent or not answering; .ci/slurm up starts one)")]

#: the one-node CI cluster has no GPUs (the rules' gpu=1 would ask SLURM for a GRES it lacks);
#: shorter status polling than the profile's cluster-friendly defaults
ARGS = ("SNAKEMAKE_ARGS=--set-resources train:gpu=0 augment:gpu=0 --keep-going "
        "--seconds-between-status-checks 5 --slurm-init-seconds-before-status-checks 5")
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) "
                       r"\(log: .*/slurm_logs/rule_(\w+)/(?:(\S+)/)?\d+\.log\)")
CANCEL = ("train", "gcn-asl_1")


def make(results, **popen) -> subprocess.Popen:
    venv = os.path.dirname(os.path.dirname(sys.executable))
    return subprocess.Popen(["make", "reproduce", "PARAMS=smoke", f"RESULTS={results}",
                             f"VENV={venv}", "PROFILE=slurm", ARGS], cwd=paths.ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(paths.ROOT)}, **popen)


def follow(proc, cancel=None) -> tuple[str, dict, set]:
    """Read a run's log as it comes; scancel the SLURM job of ``cancel`` (rule, wildcards)
    once it is submitted. Returns the log, {snakemake job id: (rule, wildcards)} of the
    submitted jobs and the set of (rule, wildcards) that finished."""
    lines, submitted, cancelled = [], {}, False
    for line in proc.stdout:
        lines.append(line)
        m = SUBMITTED.search(line)
        if m:
            job, slurm_id, rule, wildcards = m.groups()
            submitted[job] = (rule, wildcards or "")
            if cancel == submitted[job] and not cancelled:
                subprocess.run(["scancel", slurm_id], check=True)
                cancelled = True
    proc.wait(timeout=1800)
    log = "".join(lines)
    finished = {submitted[j] for j in re.findall(r"Finished jobid: (\d+) \(Rule: (?!all)", log)
                if j in submitted}
    assert cancel is None or cancelled, log[-3000:]
    return log, submitted, finished


def test_reproduce_smoke_on_slurm(tmp_path):
    from test_reproduce import check_golden  # tests/ is on sys.path

    results = tmp_path / "slurm"
    first = make(results)
    log, submitted, finished = follow(first, cancel=CANCEL)
    assert first.returncode != 0, log[-3000:]
    assert "Error in rule train" in log and "gcn-asl" in log, log[-3000:]
    assert CANCEL not in finished
    # --keep-going: everything that does not read the cancelled run finished
    for job in [("dataset", ""), ("augment", "0_1"), ("train", "gcn-asl_0"),
                ("train", "linear-asl_1"), ("train", "gcn-augmented-asl_1"),
                ("notebook", "05_evaluation"), ("notebook", "03_wgan_augmentation"),
                ("notebook", "04_training__linear-asl")]:
        assert job in finished, (job, sorted(finished))

    second = make(results)
    log2, submitted2, finished2 = follow(second)
    assert second.returncode == 0, log2[-4000:]
    # only what was missing, each as a SLURM job (`all` is the one local rule)
    rerun = set(submitted2.values())
    assert CANCEL in rerun and rerun == finished2
    assert rerun.isdisjoint(finished), sorted(rerun & finished)
    assert rerun == {CANCEL, ("notebook", "04_training__gcn-asl"), ("notebook", "07_graph_gain"),
                     ("tables", ""), ("reports", "")}
    assert len(finished | rerun) == 19                     # every job of the set ran on SLURM
    assert (results / "reports" / "index.html").is_file()

    check_golden(results / "tables")           # the local run's numbers, to GOLDEN_TOL
