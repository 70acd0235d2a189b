"""Parameter sets, the job graph and the reproduce driver, on small stand-in notebooks that
this test writes (same stems and parameters cells as the real notebooks, trivial bodies), so
that the driver is tested apart from the real training and augmentation notebooks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from lib import config, params, paths, pipeline, stages, stamps, training

RESULTS = "pathlib.Path(os.environ['AIA_RESULTS_DIR'])"
# a relative dataset path is relative to the repository root; notebooks run in notebooks/
ROOTED = "(lambda p: p if p.is_absolute() else pathlib.Path('..') / p)(pathlib.Path(dataset))"
STANDINS = {
    # stem: (parameters cell, body)
    "01_dataset_statistics": (
        "dataset = 'scenes'\nseed = 0\ntop_k = 20",
        f"import os, pathlib\nout = {RESULTS}\nout.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'stats.txt').write_text(f'{dataset} {seed} {top_k}')"),
    "03_wgan_augmentation": (
        "dataset = 'scenes'\nseed = 0\npreset = 'default'\noverrides = {}\nn_show = 4",
        f"import json, pathlib\nroot = {ROOTED}\n"
        "labels = json.loads((root / 'train.json').read_text())['labels']\n"
        "(root / 'train_aug.json').write_text(json.dumps({'labels': labels, 'samples': [],"
        " 'overrides': overrides, 'seed': seed}))"),
    "04_training": (
        "run_name = 'gcn-asl'\ndataset = 'scenes'\nseeds = [0]\npreset = 'default'\n"
        "overrides = {}",
        "import json, os, pathlib\n"
        "keys = ('per_class_precision', 'per_class_recall', 'per_class_f1',\n"
        "        'per_image_precision', 'per_image_recall', 'per_image_f1')\n"
        "for seed in seeds:\n"
        f"    d = {RESULTS} / 'runs' / run_name / f'seed-{{seed}}'\n"
        "    d.mkdir(parents=True, exist_ok=True)\n"
        "    head = overrides.get('head', 'gcn')\n"
        "    f1 = 0.5 + 0.01 * seed + (0.05 if head == 'gcn' else 0.0)\n"
        "    block = {**{k: f1 for k in keys}, 'n_plus': 10}\n"
        "    from lib.runs import make_config  # a complete config.json (readers validate it)\n"
        "    cfg = make_config(['a', 'b'], dataset, run_name=run_name, seed=seed, head=head,\n"
        "                      loss=overrides.get('loss', 'asl'),\n"
        "                      augmented=overrides.get('augmented', False))\n"
        "    (d / 'config.json').write_text(json.dumps(cfg))\n"
        "    (d / 'metrics.json').write_text(json.dumps({'mean_average_precision': f1,\n"
        "        'at_0.5': block, 'mcc': block, 'top5': block, 'top3': block}))"),
    "05_evaluation": (
        "run_name = 'gcn-asl'\nseed = 0\nn_examples = 12",
        f"import os, pathlib\nd = {RESULTS} / 'runs' / run_name / f'seed-{{seed}}'\n"
        "assert (d / 'config.json').exists()\n"
        "fail = 1 / 0 if run_name == 'boom' else None"),
    "07_graph_gain": (
        "setting = 'mcc'",
        f"import os, pathlib\nn = len(list(({RESULTS} / 'runs').glob('*/seed-*/metrics.json')))\n"
        f"({RESULTS} / 'n_runs.txt').write_text(str(n))"),
}


def write_standins(folder: Path, stems=tuple(STANDINS)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        params_cell, body = STANDINS[stem]
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell(params_cell)
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {stem}"), cell,
                    nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, folder / f"{stem}.ipynb")
    (folder / "scratch.ipynb").write_text("not a numbered notebook")
    return folder


def write_yaml(path: Path, body: dict) -> Path:
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


SET = {
    "seeds": [0, 1],
    "common": {"seed": 3},
    "01_dataset_statistics": {"top_k": 5},
    "03_wgan_augmentation": {"iterations": 3},          # a WGANConfig field -> overrides
    "04_training": {"epochs": 1},                       # a TrainConfig field -> overrides
    "runs": {"plain": {"loss": "bce", "head": "linear"},
             "aug": {"augmented": True, "seeds": [0]}},
    "evaluate_run": "plain",
}


@pytest.fixture
def repo(tmp_path) -> dict:
    """A stand-in repository layout: notebooks/, data/, a parameter set, results/."""
    notebooks = write_standins(tmp_path / "notebooks")
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.json").write_text('{"labels": ["a", "b"], "samples": []}')
    return {"root": tmp_path, "notebooks": notebooks, "data": data,
            "params": write_yaml(tmp_path / "p.yaml", SET), "results": tmp_path / "results"}


def make_plan(repo, body=None):
    pset = params.load_param_set(write_yaml(repo["root"] / "x.yaml", body) if body
                                 else repo["params"])
    return stages.plan(pset, stages.discover_notebooks(repo["notebooks"]), repo["data"],
                       repo["results"])


def test_plan_routes_values_and_declares_dependencies(repo):
    jobs, warnings = make_plan(repo)
    assert warnings == []
    by = {j.name: j for j in jobs}
    assert list(by) == ["01_dataset_statistics", "03_wgan_augmentation", "04_training__plain",
                        "04_training__aug", "05_evaluation", "07_graph_gain", "tables"]
    data = paths.portable(repo["data"])
    assert by["01_dataset_statistics"].parameters == {"seed": 3, "top_k": 5, "dataset": data}
    assert by["03_wgan_augmentation"].parameters == {"seed": 3, "overrides": {"iterations": 3},
                                                     "dataset": data}
    assert by["04_training__plain"].parameters == {
        "overrides": {"epochs": 1, "loss": "bce", "head": "linear"}, "dataset": data,
        "run_name": "plain", "seeds": [0, 1]}
    assert by["04_training__aug"].parameters["seeds"] == [0]          # the run's own seeds
    # 05 shows the first seed of evaluate_run; common `seed` is not its seed
    assert by["05_evaluation"].parameters == {"run_name": "plain", "seed": 0}
    # declared dependencies: augmented run after 03, 05 after its run, the rest after all
    assert by["04_training__aug"].upstream == ["03_wgan_augmentation"]
    assert by["04_training__plain"].upstream == []
    assert by["05_evaluation"].upstream == ["04_training__plain"]
    assert by["07_graph_gain"].upstream == by["tables"].upstream == [
        "04_training__plain", "04_training__aug"]
    runs = repo["results"] / "runs"
    assert by["04_training__plain"].outputs == [
        runs / "plain" / f"seed-{s}" / f for s in (0, 1) for f in ("config.json", "metrics.json")]
    assert runs / "plain" / "seed-0" / "predictions.csv" in by["05_evaluation"].reads
    assert runs / "aug" / "seed-0" / "metrics.json" in by["tables"].reads
    assert repo["data"] / "train_aug.json" in by["04_training__aug"].reads


@pytest.mark.parametrize("body, match", [
    ({"01_dataset_statistics": {"typo": 1}}, r"01_dataset_statistics: \['typo'\] not in"),
    ({"03_wgan_augmentation": {"nonsense": 1}},
     r"x\.yaml: 03_wgan_augmentation: \['nonsense'\] are neither parameters of the notebook "
     r"nor WGANConfig settings"),
    ({"runs": {"r": {"lr": "fast"}}}, r"x\.yaml: run 'r': TrainConfig\.lr: expected a number"),
    ({"runs": {"r": {"los": "asl"}}}, r"run 'r': \['los'\] are neither"),
    ({"common": {"nobody": 1}}, r"common parameters \['nobody'\]"),
    ({"runs": {"r": {}}, "evaluate_run": "s"}, "evaluate_run 's'"),
    ({"whatever": 1}, "unknown key 'whatever'"),
    ({"seeds": [0, 0]}, "repeat a seed"),
    ({"seeds": []}, "non-empty list"),
    ({"runs": {"r": {}}, "05_evaluation": {"seed": 4}}, r"seed 4 is not a seed of run 'r'"),
    ({"runs": {"r": {}}, "04_training": {"seeds": [1]}}, "set by the driver"),
    ({"runs": {"r": {"dataset": "x"}}}, "comes from --data"),
    ({"runs": {"r": {"overrides": {"loss": "bce"}, "loss": "asl"}}}, "given both"),
])
def test_bad_values_are_errors_naming_the_file_and_key(repo, body, match):
    with pytest.raises(params.ParamSetError, match=match):
        make_plan(repo, body)


def test_bad_parameter_set_stops_before_anything_runs(repo, caplog):
    bad = write_yaml(repo["root"] / "bad.yaml", {**SET, "runs": {"plain": {"los": "asl"}}})
    code = pipeline.reproduce_main(["--params", str(bad), "--notebooks", str(repo["notebooks"]),
                                    "--data", str(repo["data"]), "--results",
                                    str(repo["results"])])
    assert code == 1 and "['los']" in caplog.text
    assert not repo["results"].exists()


def test_unknown_numbered_notebook_is_an_error(repo):
    shutil.copy(repo["notebooks"] / "01_dataset_statistics.ipynb",
                repo["notebooks"] / "08_extra.ipynb")
    with pytest.raises(stages.PlanError, match=r"08_extra.ipynb: no stage declared.*STAGES"):
        make_plan(repo)


def test_analysis_before_training_is_an_error(repo, tmp_path):
    folder = write_standins(tmp_path / "nb2", ["04_training"])
    shutil.copy(repo["notebooks"] / "05_evaluation.ipynb", folder / "02_early.ipynb")
    with pytest.raises(stages.PlanError, match="must come after the training notebook"):
        stages.plan(params.load_param_set(write_yaml(tmp_path / "r.yaml", {"runs": {"r": {}}})),
                    stages.discover_notebooks(folder),
                    repo["data"], repo["results"],
                    {**stages.STAGES, "02_early": stages.Stage("run-analysis")})


def test_section_without_notebook_is_a_warning(repo):
    _, warnings = make_plan(repo, {**SET, "09_later": {"x": 1}})
    assert len(warnings) == 1 and "09_later" in warnings[0]


def test_each_parameter_set_has_its_own_results_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("AIA_RESULTS_BASE", str(tmp_path / "res"))
    assert params.results_dir("smoke") == tmp_path / "res" / "smoke"
    assert params.results_dir(paths.PARAMS_DIR / "default.yaml") == tmp_path / "res" / "default"


def test_stamps_notice_what_changed(repo):
    jobs, _ = make_plan(repo)
    job = next(j for j in jobs if j.name == "04_training__aug")
    stamp_dir = repo["results"] / ".stamps"
    parts = stamps.components(job, repo["data"], stamp_dir, "lib0")
    assert stamps.why_stale(job, parts, None, None) == ["never run"]
    for f in job.outputs:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}")
    stamps.write_stamp(stamp_dir, job, parts, 1.0)
    assert stamps.why_stale(job, parts, stamps.read_stamp(stamp_dir, job.name), None) == []
    (repo["data"] / "train_aug.json").write_text("{}")        # a file it reads
    augment = next(j for j in jobs if j.name == "03_wgan_augmentation")
    stamps.write_stamp(stamp_dir, augment, {"notebook": "x"}, 1.0)   # 03 ran
    (repo["data"] / "test.json").write_text('{"labels": ["a"], "samples": []}')
    again = stamps.components(job, repo["data"], stamp_dir, "lib1")
    reasons = stamps.why_stale(job, again, stamps.read_stamp(stamp_dir, job.name), None)
    assert reasons == ["lib/ sources changed", "dataset annotations changed",
                       "03_wgan_augmentation reran", "files it reads changed"]
    (job.outputs[0]).unlink()
    assert "outputs missing" in stamps.why_stale(job, parts, stamps.read_stamp(
        stamp_dir, job.name), None)[-1]


def test_stamp_hashes_do_not_depend_on_where_the_checkout_is(tmp_path, monkeypatch):
    hashes = []
    for where in ("a", "b"):
        root = tmp_path / where
        (root / "results").mkdir(parents=True)
        (root / "results" / "x.json").write_text("{}")
        monkeypatch.setattr(paths, "ROOT", root)
        hashes.append(stamps.hash_files([root / "results" / "x.json"]))
    assert hashes[0] == hashes[1]
    (tmp_path / "b" / "results" / "x.json").write_text("{ }")
    assert stamps.hash_files([tmp_path / "b" / "results" / "x.json"]) != hashes[0]


def run_driver(repo, *extra, body=None) -> int:
    p = write_yaml(repo["root"] / "p.yaml", body) if body else repo["params"]
    return pipeline.reproduce_main(["--params", str(p), "--notebooks", str(repo["notebooks"]),
                                    "--data", str(repo["data"]), "--results",
                                    str(repo["results"]), *extra])


@pytest.mark.slow
def test_reproduce_runs_skips_and_reruns(repo, capfd, monkeypatch):
    # the stand-in repository is "the checkout": every path written for people is relative
    monkeypatch.setattr(paths, "ROOT", repo["root"])
    assert run_driver(repo) == 0
    out, err = capfd.readouterr()
    results = repo["results"]
    for name in ("01_dataset_statistics", "03_wgan_augmentation", "04_training__plain",
                 "04_training__aug", "05_evaluation", "07_graph_gain"):
        assert (results / "executed" / f"{name}.ipynb").exists()
        assert f"running: {name} (never run)" in err
        assert (results / "reports" / f"{name}.html").exists()
    assert "without encryption" not in out + err            # kernels over IPC
    assert out.startswith("reproduce p: 7 job(s) ran") and "reports/index.html" in out
    assert (results / "stats.txt").read_text() == "data 3 5"
    assert json.loads((repo["data"] / "train_aug.json").read_text())["overrides"] == \
        {"iterations": 3}
    assert (results / "n_runs.txt").read_text() == "3"      # plain x 2 seeds, aug x 1
    assert sorted(p.name for p in (results / "runs" / "plain").iterdir()) == ["seed-0", "seed-1"]
    main = (results / "tables" / "main.md").read_text()
    assert "| plain | bce | CNN only (linear) | 0.5 | 2 | 0.505 ± 0.007 |" in main
    index = (results / "reports" / "index.html").read_text()
    assert "href='table_main.html'" in index and "<th>dataset</th><td>data</td>" in index
    # nothing written for people holds the checkout's absolute path
    for f in results.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".html", ".md", ".csv", ".ipynb", ".txt"):
            assert str(repo["root"]) not in f.read_text(), f

    # nothing changed: everything up to date
    assert run_driver(repo) == 0
    out, err = capfd.readouterr()
    assert "running:" not in err and out.startswith("reproduce p: 0 job(s) ran")
    for name in ("01_dataset_statistics", "04_training__aug", "05_evaluation", "tables"):
        assert f"up to date: {name}" in err

    # 03's values change: 03, the augmented run, what reads every run and the tables rerun
    assert run_driver(repo, body={**SET, "03_wgan_augmentation": {"iterations": 4}}) == 0
    err = capfd.readouterr().err
    assert "running: 03_wgan_augmentation (parameters changed)" in err
    assert "running: 04_training__aug (03_wgan_augmentation reran" in err
    assert "running: 07_graph_gain" in err and "running: tables" in err
    for name in ("01_dataset_statistics", "04_training__plain", "05_evaluation"):
        assert f"up to date: {name}" in err

    # a deleted seed folder reruns its training job, and what reads it
    shutil.rmtree(results / "runs" / "plain" / "seed-1")
    assert run_driver(repo, "--dry-run", body={**SET, "03_wgan_augmentation":
                                               {"iterations": 4}}) == 0
    out, err = capfd.readouterr()
    assert "would run: 04_training__plain (outputs missing (results/runs/plain/seed-1/" in err
    assert "up to date: 04_training__aug" in err
    assert out.startswith("dry run: 3 of 7 job(s) would run: 04_training__plain, "
                          "07_graph_gain, tables")


@pytest.mark.slow
def test_failing_notebook_stops_with_the_cell(repo, caplog):
    code = run_driver(repo, "--only", "04", "05", body={"runs": {"boom": {}}})
    assert code == 1
    assert "FAILED: 05_evaluation" in caplog.text and "ZeroDivisionError" in caplog.text
    assert "fail = 1 / 0" in caplog.text and "cell 3" in caplog.text
    assert "not selected (--only): 01_dataset_statistics" in caplog.text
    executed = repo["results"] / "executed"
    assert (executed / "05_evaluation.failed.ipynb").exists()
    assert not (executed / "05_evaluation.ipynb").exists()
    assert not (repo["results"] / ".stamps" / "05_evaluation.json").exists()


def test_dataset_is_drawn_only_when_it_is_the_sets_own(tmp_path, capsys):
    pset = params.ParamSet("tiny", tmp_path / "tiny.yaml", data_name="tiny",
                           synth={"seed": 1, "size": 16, "n_train": 8, "n_val": 4, "n_test": 4})
    target = tmp_path / "tiny"
    with pytest.raises(params.ParamSetError, match=r"tiny: no dataset here"):
        pipeline.ensure_dataset(target, pset, default=False)
    pipeline.ensure_dataset(target, pset, default=True)
    assert len(json.loads((target / "train.json").read_text())["samples"]) == 8
    corel = params.ParamSet("corel5k", tmp_path / "c.yaml", data_name="corel5k")
    with pytest.raises(params.ParamSetError, match="make corel5k"):
        pipeline.ensure_dataset(tmp_path / "corel5k", corel, default=True)


def test_prepare_draws_the_default_dataset(monkeypatch, tmp_path, capsys):
    """`make lab` runs `reproduce --prepare`: the embedded dataset appears, nothing else."""
    body = {"data": {"name": "lab", "synth": {"seed": 0, "size": 16, "n_train": 8,
                                              "n_val": 4, "n_test": 4}}}
    monkeypatch.setenv("AIA_DATA_DIR", str(tmp_path / "data"))
    p = write_yaml(tmp_path / "lab.yaml", body)
    assert pipeline.reproduce_main(["--params", str(p), "--prepare"]) == 0
    assert (tmp_path / "data" / "lab" / "train.json").is_file()
    assert capsys.readouterr().out.startswith("dataset ready:")
    assert not (tmp_path / "results").exists()


PARAM_SETS = sorted(p.stem for p in paths.PARAMS_DIR.glob("*.yaml"))


def training_configs(name: str, tmp_path) -> dict[str, training.TrainConfig]:
    """The TrainConfig each training job of a parameter set builds (as notebook 04 does)."""
    pset = params.load_param_set(name)
    jobs, _ = stages.plan(pset, stages.discover_notebooks(), tmp_path / "data", tmp_path / "r")
    return {j.run_name: training.build_config(j.parameters.get("preset", "default"),
                                              j.parameters.get("overrides", {}))
            for j in jobs if j.run_name and stages.STAGES[j.stem].kind == "training"}


@pytest.mark.parametrize("name", PARAM_SETS)
def test_parameter_sets_match_the_notebooks(name, tmp_path):
    """Every value of params/<set>.yaml is a parameter of its notebook or a setting of the
    notebook's settings class, every notebook has a declared stage, and every training
    configuration is valid."""
    pset = params.load_param_set(name)
    notebooks = stages.discover_notebooks()
    jobs, warnings = stages.plan(pset, notebooks, tmp_path / "data", tmp_path / "res")
    assert warnings == []
    assert pset.evaluate_run in pset.runs
    assert {j.stem for j in jobs if j.notebook} == {nb.stem for nb in notebooks}
    configs = training_configs(name, tmp_path)
    assert set(configs) == set(pset.runs)


def test_the_reference_configuration_is_one_thing(tmp_path):
    """The yaml (corel5k.yaml through the driver), the CLI preset and the API give the same
    300-d reference recipe; the rehearsal differs from it only in scale."""
    yaml_runs = training_configs("corel5k", tmp_path)
    api = training.build_config("corel5k", {"loss": "asl", "head": "gcn"})
    cli = training.build_config("corel5k", config.given(training.train_parser().parse_args(
        ["--preset", "corel5k", "--loss", "asl", "--head", "gcn"]), training.TrainConfig))
    assert yaml_runs["gcn-asl"] == api == cli
    assert api.embeddings == "glove-wiki-gigaword-300" and api.image_size == 448
    assert yaml_runs["gcn-asl-reference"].protocol == "reference"
    rehearsal = training_configs("corel5k-rehearsal", tmp_path)["gcn-asl"]
    scale = {"backbone", "image_size", "epochs", "schedule_epochs", "pretrained", "embeddings",
             "num_workers"}
    differs = {f for f in training.TrainConfig.__dataclass_fields__
               if getattr(rehearsal, f) != getattr(api, f)}
    assert differs <= scale, differs - scale


def test_environment_yml_has_the_pyproject_pins():
    """conda users get the same pinned environment as `make install`."""
    import tomllib

    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"]) \
        | set(project["optional-dependencies"]["lab"])
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in env["dependencies"]
    assert set(pip) == pins
