"""The job graph executor: how many notebooks run at once, dependency order with several
workers, failures, and Ctrl-C reaching kernels that run in worker threads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from lib import params, paths, pipeline, scheduler, stamps, tables
from lib.stages import Job

GiB = 1024**3


def test_jobs_at_once(monkeypatch):
    monkeypatch.setattr(scheduler, "_cuda_trains", lambda: False)
    monkeypatch.setattr(scheduler, "cpu_count", lambda: 8)
    monkeypatch.setattr(scheduler, "available_memory", lambda: 64 * GiB)
    assert scheduler.resolve_jobs("auto") == scheduler.MAX_AUTO_JOBS == 4
    assert scheduler.resolve_jobs(None) == 4
    monkeypatch.setattr(scheduler, "available_memory", lambda: 7 * GiB)
    assert scheduler.resolve_jobs("auto") == 2            # one per 3 GiB available
    monkeypatch.setattr(scheduler, "available_memory", lambda: 1 * GiB)
    assert scheduler.resolve_jobs("auto") == 1
    monkeypatch.setattr(scheduler, "available_memory", lambda: None)
    monkeypatch.setattr(scheduler, "cpu_count", lambda: 2)
    assert scheduler.resolve_jobs("auto") == 2
    monkeypatch.setattr(scheduler, "_cuda_trains", lambda: True)
    assert scheduler.resolve_jobs("auto") == 1             # jobs would share the GPU
    assert scheduler.resolve_jobs("3") == 3 and scheduler.resolve_jobs(2) == 2
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match="at least 1, or auto"):
            scheduler.resolve_jobs(bad)


def test_bad_jobs_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        pipeline.reproduce_main(["--jobs", "two"])
    assert exit_info.value.code == 2
    assert "argument --jobs: --jobs must be a whole number of at least 1, or auto; got 'two'" \
        in capsys.readouterr().err


def test_threads_per_kernel(monkeypatch):
    monkeypatch.setattr(scheduler, "cpu_count", lambda: 2)
    assert scheduler.threads_per_job(1) is None
    assert scheduler.threads_per_job(2) == 1
    monkeypatch.setattr(scheduler, "cpu_count", lambda: 8)
    assert scheduler.threads_per_job(3) == 2
    assert scheduler.threads_per_job(16) == 1


class Recording(scheduler.JobGraph):
    """A graph whose jobs sleep (or fail) instead of running notebooks, recording when."""

    def __init__(self, *args, sleeps: dict[str, float], fails=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.sleeps, self.fails = sleeps, set(fails)
        self.spans: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()
        self.live = self.most = 0

    def work(self, job: Job) -> float:
        start = time.monotonic()
        with self.lock:
            self.live += 1
            self.most = max(self.most, self.live)
        try:
            time.sleep(self.sleeps[job.name])
            if job.name in self.fails:
                raise RuntimeError(f"{job.name} broke")
            executed = self.executed(job)
            executed.parent.mkdir(parents=True, exist_ok=True)
            executed.write_text("{}")
        finally:
            with self.lock:
                self.live -= 1
                self.spans[job.name] = (start, time.monotonic())
        return time.monotonic() - start


def graph_of(tmp_path: Path, edges: dict[str, list[str]], **kwargs) -> Recording:
    folder = tmp_path / "nb"
    folder.mkdir(exist_ok=True)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    jobs = []
    for name, upstream in edges.items():
        notebook = folder / f"{name}.ipynb"
        notebook.write_text(name)
        jobs.append(Job(name, notebook, "dataset", {}, upstream=upstream))
    pset = params.ParamSet("t", tmp_path / "t.yaml", data_name="data")
    return Recording(jobs, pset=pset, data_dir=data, results=tmp_path / "results",
                     notebooks=folder, **kwargs)


def test_jobs_run_side_by_side_in_dependency_order(tmp_path):
    edges = {"a": [], "b": [], "c": ["a"], "d": ["a", "b"], "e": []}
    graph = graph_of(tmp_path, edges, workers=2,
                     sleeps={"a": 0.4, "b": 1.5, "c": 0.2, "d": 0.2, "e": 0.2})
    assert graph.run() == []
    assert sorted(graph.ran) == sorted(edges) and graph.most == 2
    spans = graph.spans
    for name, upstream in edges.items():
        for up in upstream:
            assert spans[name][0] >= spans[up][1], (name, up)
    # a and b started together; c started while b was still running
    assert spans["b"][0] < spans["a"][1] and spans["c"][0] < spans["b"][1]
    for name in edges:  # every job stamped: a second run finds them up to date
        assert stamps.read_stamp(graph.stamp_dir, name)["seconds"] >= 0
    again = graph_of(tmp_path, edges, workers=2, sleeps={})
    assert again.run() == [] and again.ran == [] and again.stale == []


def test_one_worker_runs_in_plan_order(tmp_path):
    edges = {"a": [], "b": [], "c": ["a"]}
    graph = graph_of(tmp_path, edges, workers=1, sleeps=dict.fromkeys(edges, 0.05))
    assert graph.run() == [] and graph.ran == ["a", "b", "c"] and graph.most == 1


def test_a_failure_stops_new_jobs_and_lets_running_ones_finish(tmp_path, caplog):
    edges = {"a": [], "b": [], "c": [], "d": ["b"]}
    graph = graph_of(tmp_path, edges, workers=2, fails={"a"},
                     sleeps={"a": 0.1, "b": 0.6, "c": 0.1, "d": 0.1})
    assert graph.run() == ["a"]
    assert graph.ran == ["b"]                       # running when a failed: finished, stamped
    assert stamps.read_stamp(graph.stamp_dir, "b") is not None
    assert "c" not in graph.spans and "d" not in graph.spans
    assert stamps.read_stamp(graph.stamp_dir, "a") is None
    assert "FAILED: a" in caplog.text and "RuntimeError: a broke" in caplog.text


def test_a_tables_error_ends_the_run_with_its_own_message(tmp_path):
    """The tables job runs in the driver: its TableError reaches the command line as before
    (one line naming the problem), not as a failed notebook."""
    graph = graph_of(tmp_path, {"a": []}, workers=2, sleeps={"a": 0.05})
    graph.jobs.append(Job("tables", None, "tables", {"runs": ["a"]}, upstream=["a"]))
    work = graph.work

    def tables_fail(job):
        if job.notebook is None:
            raise tables.TableError("runs/a: seed 0 is in two folders")
        return work(job)

    graph.work = tables_fail
    with pytest.raises(tables.TableError, match="seed 0 is in two folders"):
        graph.run()
    assert graph.ran == ["a"] and graph.failed == []


_SLEEPER = """
import os, pathlib, time
pathlib.Path(pid_file).write_text(str(os.getpid()))
time.sleep(120)
"""

_DRIVER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from lib.cli import main
raise SystemExit(main(["reproduce", *sys.argv[1:]]))
"""


@pytest.mark.slow
def test_ctrl_c_stops_kernels_running_in_worker_threads(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for stem in ("01_dataset_statistics", "02_label_embeddings"):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell(f"pid_file = {str(tmp_path / stem)!r}\ndataset = ''")
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell, nbformat.v4.new_code_cell(_SLEEPER)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, folder / f"{stem}.ipynb")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.json").write_text('{"labels": ["a"], "samples": []}')
    pset = tmp_path / "p.yaml"
    pset.write_text(yaml.safe_dump({"seeds": [0]}))
    child = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, "--params", str(pset), "--notebooks", str(folder),
         "--data", str(data), "--results", str(tmp_path / "results"), "--jobs", "2"],
        cwd=paths.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(paths.ROOT)})
    pid_files = [tmp_path / "01_dataset_statistics", tmp_path / "02_label_embeddings"]
    try:
        deadline = time.monotonic() + 120
        while not all(p.exists() and p.read_text() for p in pid_files):
            assert time.monotonic() < deadline and child.poll() is None, child.communicate()
            time.sleep(0.2)
        kernels = [int(p.read_text()) for p in pid_files]
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, err[-3000:]
    assert "interrupted: stopping 2 running notebook(s)" in err
    assert err.rstrip().endswith("interrupted")
    deadline = time.monotonic() + 20
    for pid in kernels:  # both kernels are gone (interrupted, then shut down by their client)
        while _alive(pid):
            assert time.monotonic() < deadline, f"kernel {pid} still running"
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))
