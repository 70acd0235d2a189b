"""The Snakemake workflow (workflow/Snakefile) on small stand-in notebooks that this test
writes (same stems and parameters cells as the real ones, trivial bodies) and real training
jobs (one epoch on the tiny scenes): what reruns after an edit, dry-run reasons, a failing
notebook, parameter-set errors, GPU slots, lib triggers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from lib.core import paths
from lib.pipeline import jobs

RESULTS = "pathlib.Path(os.environ['AIA_RESULTS_DIR'])"
STANDINS = {
    "01_dataset_statistics": ("dataset = 'scenes'\nseed = 0\ntop_k = 20",
                              "import os, pathlib, time\nfrom lib.plots import dataset\n"
                              f"({RESULTS} / 'stats.txt').write_text(f'{{top_k}}')\n"
                              "if top_k == 99:  # the Ctrl-C test: say who we are, then wait\n"
                              f"    ({RESULTS} / 'kernel.pid').write_text(str(os.getpid()))\n"
                              "    time.sleep(600)"),
    "04_training": (  # shows the seeds the train jobs trained
        "run_name = 'gcn-asl'\ndataset = 'scenes'\nseeds = [0]\npreset = 'default'\n"
        "overrides = {}",
        "import json, os, pathlib\nfor seed in seeds:\n"
        f"    config = json.loads(({RESULTS} / 'runs' / run_name / f'seed-{{seed}}' / "
        "'config.json').read_text())\n"
        "    assert config['epochs'] == overrides['epochs'] and config['seed'] == seed"),
    "05_evaluation": ("run_name = 'gcn-asl'\nseed = 0\nn_examples = 12",
                      "fail = 1 / 0 if n_examples == 13 else None"),
    "07_graph_gain": ("setting = 'mcc'", "x = 1"),
}
SET = {"seeds": [0], "01_dataset_statistics": {"top_k": 5},
       "04_training": {"epochs": 1, "image_size": 32, "batch_size": 32, "hidden": 64},
       "runs": {"plain": {"loss": "bce", "head": "linear"}, "gcn": {"head": "gcn"}},
       "evaluate_run": "plain"}


@pytest.fixture
def repo(tmp_path, tiny_scenes):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for stem, (params_cell, body) in STANDINS.items():
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell(params_cell)
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell, nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, nbs / f"{stem}.ipynb")
    data = tmp_path / "data"
    shutil.copytree(tiny_scenes, data)
    return {"nbs": nbs, "data": data, "yaml": tmp_path / "p.yaml", "results": tmp_path / "r",
            "root": paths.ROOT}


def command(repo, body, *extra) -> tuple[list[str], dict]:
    repo["yaml"].write_text(yaml.safe_dump(body))
    repo["results"].mkdir(exist_ok=True)
    targets = [str(repo["results"] / "executed" / f"{s}.ipynb")
               for s in ("01_dataset_statistics", "05_evaluation", "07_graph_gain",
                         *(f"04_training__{r}" for r in body.get("runs", {})))]
    root = repo["root"]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "workflow" / "Snakefile"),
           "-d", str(repo["results"]), "--cores", "2", *extra, *targets,
           "--config", f"params={repo['yaml']}",
           f"results={repo['results']}", f"data={repo['data']}", f"notebooks={repo['nbs']}"]
    return cmd, {**os.environ, "PYTHONPATH": str(root)}


def snake(repo, body, *extra):
    cmd, env = command(repo, body, *extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def ran(result) -> list[str]:
    """The jobs a run (or dry run) ran, from Snakemake's job log: executed notebooks by name,
    training jobs as ``train <run>/seed-<n>``."""
    out = result.stdout + result.stderr
    names = set()
    for line in out.splitlines():
        if line.strip().startswith("output: "):
            first = Path(line.split("output: ")[1].split(",")[0])
            if first.parent.parent.parent.name == "runs":
                names.add(f"train {first.parent.parent.name}/{first.parent.name}")
            elif first.parent.name == "executed":
                names.add(first.stem)
    return sorted(names)


def test_staleness(repo):
    first = snake(repo, SET)
    assert first.returncode == 0, first.stderr[-3000:]
    assert ran(first) == ["01_dataset_statistics", "04_training__gcn", "04_training__plain",
                          "05_evaluation", "07_graph_gain", "train gcn/seed-0",
                          "train plain/seed-0"]
    assert (repo["results"] / "stats.txt").read_text() == "5"
    assert snake(repo, SET).stdout.count("output: ") == 0          # nothing to do
    # one run's value: that run's jobs and what reads them (07 reads every run)
    changed = json.loads(json.dumps(SET))
    changed["runs"]["gcn"]["loss"] = "focal"
    dry = snake(repo, changed, "-n")
    assert ran(dry) == ["04_training__gcn", "07_graph_gain", "train gcn/seed-0"]
    assert "Params have changed" in dry.stdout + dry.stderr         # the reason is given
    assert snake(repo, changed).returncode == 0
    # a new seed trains only that seed
    changed["runs"]["plain"]["seeds"] = [0, 1]
    assert ran(snake(repo, changed)) == ["04_training__plain", "07_graph_gain",
                                         "train plain/seed-1"]
    for run, seed, loss, head in (("gcn", 0, "focal", "gcn"), ("plain", 1, "bce", "linear")):
        config = json.loads((repo["results"] / "runs" / run / f"seed-{seed}" / "config.json")
                            .read_text())                       # what the train job trained
        assert (config["loss"], config["head"], config["epochs"], config["seed"]) == (
            loss, head, 1, seed)


def test_lib_source_change_reruns_what_imports_it(repo, tmp_path):
    """An edited lib/ module reruns the jobs whose code imports it (through other lib
    modules too) and nothing else: only notebook 01 imports lib.plots.dataset; training
    (the train jobs and notebook 04) imports lib.method.losses, which 01, 05 and 07 do not (05 and
    07 rerun as readers of the runs).
    Run on a copy of lib/ and workflow/, so the repository's own files are never touched."""
    clone = tmp_path / "clone"
    for part in ("lib", "workflow", "params"):
        shutil.copytree(paths.ROOT / part, clone / part,
                        ignore=shutil.ignore_patterns("__pycache__"))
    repo["root"] = clone
    assert snake(repo, SET).returncode == 0
    assert ran(snake(repo, SET, "-n")) == []

    def edit(name):
        source = clone / "lib" / name
        source.write_text(source.read_text() + "\n# edited\n")
        later = source.stat().st_mtime_ns + 10**9       # one second newer than any output
        os.utime(source, ns=(later, later))
        return snake(repo, SET, "-n")

    dry = edit("plots/dataset.py")
    assert ran(dry) == ["01_dataset_statistics"], dry.stdout[-2000:]
    assert "Updated input files" in dry.stdout + dry.stderr and "dataset.py" in dry.stdout
    dry = edit("method/losses.py")
    assert ran(dry) == ["01_dataset_statistics", "04_training__gcn", "04_training__plain",
                        "05_evaluation", "07_graph_gain", "train gcn/seed-0",
                        "train plain/seed-0"], dry.stdout[-2000:]


def test_ctrl_c_stops_every_kernel(repo):
    body = {**SET, "01_dataset_statistics": {"top_k": 99}}
    cmd, env = command(repo, body)
    # a terminal's foreground group: SIGINT at its default (a shell's background job, as
    # this test may run in, inherits it ignored)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pid_file = repo["results"] / "kernel.pid"
    for _ in range(600):
        if pid_file.is_file() and pid_file.read_text():
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the stand-in notebook never started: " + proc.communicate()[0][-2000:])
    kernel = int(pid_file.read_text())
    os.killpg(proc.pid, signal.SIGINT)                        # what Ctrl-C in a terminal sends
    try:
        out = proc.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        os.kill(kernel, signal.SIGKILL)
        pytest.fail("Snakemake did not stop within 120 s of Ctrl-C: "
                    + proc.communicate()[0][-2000:])
    assert proc.returncode != 0, out[-2000:]
    for _ in range(100):                                      # the kernel is gone, not orphaned
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(kernel, signal.SIGKILL)
        pytest.fail(f"kernel {kernel} outlived Ctrl-C")
    assert not (repo["results"] / "executed" / "01_dataset_statistics.ipynb").exists()


def test_failing_notebook_keeps_its_copy_and_names_the_cell(repo):
    body = {**SET, "05_evaluation": {"n_examples": 13}}
    result = snake(repo, body, "--keep-going")
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "FAILED: " in text and "05_evaluation.ipynb" in text and "ZeroDivisionError" in text
    assert "cell 2 of the executed copy" in text or "cell" in text
    assert (repo["results"] / "executed" / "05_evaluation.failed.ipynb").is_file()
    assert not (repo["results"] / "executed" / "05_evaluation.ipynb").exists()
    assert (repo["results"] / "executed" / "07_graph_gain.ipynb").is_file()  # --keep-going


@pytest.mark.parametrize("body, message", [
    ({**SET, "04_training": {"epochz": 1}}, "['epochz'] are neither parameters"),
    ({**SET, "colour": 1}, "unknown key 'colour'"),
    ({**SET, "04_training": {"epochs": "many"}}, "TrainConfig.epochs: expected an integer"),
])
def test_bad_parameter_set_fails_before_anything_runs(repo, body, message):
    result = snake(repo, body)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout and "p.yaml" in result.stderr + result.stdout
    assert not (repo["results"] / "executed").exists()


def test_gpu_slots(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert jobs.claim_gpus(2, 3, tmp_path) == [0, 1]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    code = ("import os, sys; from pathlib import Path; from lib.pipeline import jobs; "
            "print(jobs.claim_gpus(1, 3, Path(sys.argv[1])), os.environ['CUDA_VISIBLE_DEVICES'])")
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                           text=True, env={**env, "PYTHONPATH": str(paths.ROOT)})
    assert other.stdout.split() == ["[2]", "2"]                   # slots 0, 1 are held here
    env["PYTHONPATH"] = str(paths.ROOT)
    full = subprocess.run([sys.executable, "-c", code.replace("(1, 3", "(2, 3"),
                           str(tmp_path)], capture_output=True, text=True, env=env)
    assert full.returncode != 0 and "no 2 free GPU slot(s) of 3" in full.stderr
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")                 # SLURM's allocation wins
    assert jobs.claim_gpus(1, 3, tmp_path) == []


def test_lib_sources_follow_imports():
    nb01 = jobs.lib_sources(paths.NOTEBOOKS_DIR / "01_dataset_statistics.ipynb")
    assert {"lib/method/graph.py", "lib/data/datasets.py", "lib/plots/dataset.py",
            "lib/plots/__init__.py",
            "lib/__init__.py"} <= set(nb01)
    assert "lib/training/settings.py" not in nb01 and "lib/training/trainer.py" not in nb01
    assert "lib/training/trainer.py" in jobs.lib_sources(paths.NOTEBOOKS_DIR / "04_training.ipynb")
