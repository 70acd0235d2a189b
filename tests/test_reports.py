"""Results tables from hand-made run folders, and the reproduce driver on tiny fake notebooks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lib import reports

KEYS = reports.METRIC_KEYS


def metrics_block(f1: float, n_plus: int = 10) -> dict:
    """A metrics block whose numbers are derived from ``f1`` (so every value is known)."""
    return {"per_class_precision": f1 + 0.01, "per_class_recall": f1 - 0.01,
            "per_class_f1": f1, "per_image_precision": f1 + 0.11,
            "per_image_recall": f1 + 0.09, "per_image_f1": f1 + 0.1, "n_plus": n_plus}


def make_run(runs: Path, name: str, f1: float, *, labels: int = 20, leaky: bool = False,
             metrics: bool = True, **config) -> Path:
    folder = runs / name
    folder.mkdir(parents=True)
    cfg = {"run_name": name, "dataset": f"/data/{config.pop('dataset_name', 'scenes')}",
           "dataset_name": "scenes", "backbone": "resnet18", "image_size": 64, "epochs": 8,
           "batch_size": 32, "lr": 2e-3, "loss": "asl", "head": "gcn", "adjacency": "seed",
           "embeddings": "glove-6b-50d", "augmented": False,
           "selection_split": "test" if leaky else "val", "leaky": leaky, "seed": 0,
           "git_commit": "abc", "versions": {}}
    cfg.update(config)
    cfg["dataset_name"] = Path(cfg["dataset"]).name
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "thresholds.json").write_text(json.dumps(
        {"labels": [f"l{i}" for i in range(labels)], "thresholds": [0.5] * labels,
         "tuned_on": "val"}))
    if metrics:
        (folder / "metrics.json").write_text(json.dumps({
            "split": "test", "leaky": leaky, "mean_average_precision": f1 + 0.2,
            "at_0.5": metrics_block(f1, n_plus=int(f1 * 100)),
            "mcc": metrics_block(f1 + 0.05, n_plus=int(f1 * 100) + 1),
            "top5": metrics_block(f1 - 0.1), "top3": metrics_block(f1 - 0.05)}))
    return folder


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    runs = tmp_path / "runs"
    for i, loss in enumerate(("bce", "focal", "asl")):
        make_run(runs, f"{loss}-linear", 0.20 + i / 10, loss=loss, head="linear")
        make_run(runs, f"{loss}-gcn", 0.25 + i / 10, loss=loss, head="gcn")
    make_run(runs, "asl-identity", 0.40, head="gcn-identity")
    make_run(runs, "asl-random", 0.35, embeddings="random")
    make_run(runs, "asl-augmented", 0.50, augmented=True)
    make_run(runs, "asl-mlgcn", 0.44, adjacency="ml-gcn", leaky=True)
    make_run(runs, "bce-other-seed", 0.10, loss="bce", head="gcn-identity", seed=7)
    make_run(runs, "unevaluated", 0.0, metrics=False)
    return runs


def test_main_table_values(runs_dir, tmp_path):
    out = tmp_path / "tables"
    result = reports.build_tables(runs_dir, out, run_names=None)
    main = pd.read_csv(out / "main.csv")
    assert main.equals(pd.read_csv(out / "main.csv"))
    ours = main[main["source"] == "ours"]
    # 3 losses x 2 heads x 2 threshold modes; ablation runs and the unevaluated one left out
    assert len(ours) == 12
    assert set(ours["run"]) == {f"{loss}-{h}" for loss in ("bce", "focal", "asl")
                                for h in ("linear", "gcn")}
    assert list(ours["loss"].drop_duplicates()) == ["bce", "focal", "asl"]
    row = ours[(ours["run"] == "focal-gcn") & (ours["thresholds"] == "0.5")].iloc[0]
    assert row["per_class_f1"] == pytest.approx(0.35)
    assert row["per_class_precision"] == pytest.approx(0.36)
    assert row["per_image_f1"] == pytest.approx(0.45)
    assert row["n_plus"] == 35
    assert row["mAP"] == pytest.approx(0.55)
    mcc = ours[(ours["run"] == "focal-gcn") & (ours["thresholds"] == "MCC")].iloc[0]
    assert mcc["per_class_f1"] == pytest.approx(0.40)
    assert mcc["n_plus"] == 36
    # 20 labels: no reference rows
    assert (main["source"] == "ours").all()
    assert not result["main"]["leaky"].any()
    meta = json.loads((out / "main.meta.json").read_text())
    assert meta["dataset"] == "scenes" and meta["table"] == "main" and meta["commit"]
    assert meta["reference"] is False
    md = (out / "main.md").read_text()
    assert "aia-table" in md and "dataset `scenes`" in md and "| focal-gcn |" in md
    assert (out / "main_per_class_f1.png").stat().st_size > 1000


def test_ablation_pairing_and_leaky_marks(runs_dir, tmp_path):
    out = tmp_path / "tables"
    reports.build_tables(runs_dir, out)
    abl = pd.read_csv(out / "ablations.csv")
    at05 = abl[abl["thresholds"] == "0.5"].set_index("run")
    # every ablation run is paired with the ASL GCN baseline of the same configuration
    for run in ("asl-identity", "asl-random", "asl-augmented", "asl-mlgcn"):
        assert at05.loc[run, "baseline"] == "asl-gcn"
    assert at05.loc["asl-augmented", "per_class_f1"] == pytest.approx(0.50)
    assert at05.loc["asl-augmented", "per_class_f1_baseline"] == pytest.approx(0.45)
    assert at05.loc["asl-augmented", "per_class_f1_delta"] == pytest.approx(0.05)
    assert at05.loc["asl-identity", "n_plus_delta"] == 40 - 45
    assert at05.loc["asl-random", "mAP_delta"] == pytest.approx(-0.10)
    assert "random" in at05.loc["asl-random", "ablation"]
    assert "ml-gcn" in at05.loc["asl-mlgcn", "ablation"]
    # a different seed has no matching baseline: kept, with the baseline left empty
    assert pd.isna(at05.loc["bce-other-seed", "baseline"])
    assert pd.isna(at05.loc["bce-other-seed", "per_class_f1_delta"])
    # the leaky run (selection on test) is marked in the CSV and the Markdown
    assert at05.loc["asl-mlgcn", "leaky"]
    assert not at05.loc["asl-augmented", "leaky"]
    md = (out / "ablations.md").read_text()
    assert "asl-mlgcn\u2020" in md and reports.LEAKY_NOTE in md
    assert "asl-augmented\u2020" not in md and "| asl-gcn |" in md
    meta = json.loads((out / "ablations.meta.json").read_text())
    assert meta["leaky_runs"] == ["asl-mlgcn"]


def test_leaky_baseline_marks_main_table(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "asl-gcn", 0.4, leaky=True)
    make_run(runs, "asl-linear", 0.3, head="linear")
    make_run(runs, "asl-aug", 0.5, augmented=True)
    result = reports.build_tables(runs, tmp_path / "t")
    main, abl = result["main"], result["ablations"]
    # the ablation row is leaky through its baseline; only the leaky run's name is marked
    assert abl["leaky"].all() and set(abl["baseline"]) == {"asl-gcn"}
    abl_md = (tmp_path / "t" / "ablations.md").read_text()
    assert "| asl-aug | asl-gcn\u2020 |" in abl_md
    assert main.set_index(["run", "thresholds"]).loc[("asl-gcn", "0.5"), "leaky"]
    assert not main.set_index(["run", "thresholds"]).loc[("asl-linear", "0.5"), "leaky"]
    md = (tmp_path / "t" / "main.md").read_text()
    assert "asl-gcn\u2020" in md and "asl-linear\u2020" not in md


def test_reference_rows_only_for_corel5k(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "asl-gcn", 0.4, labels=260, dataset="/data/corel5k")
    main = reports.build_tables(runs, tmp_path / "t")["main"]
    refs = main[main["source"] == reports.REFERENCE_SOURCE]
    assert len(refs) == 4
    gcn = refs[refs["run"].str.startswith("reference GCN")].iloc[0]
    assert (gcn["per_class_precision"], gcn["per_class_recall"], gcn["per_class_f1"],
            gcn["n_plus"]) == (0.453, 0.495, 0.473, 175)
    assert gcn["per_image_f1"] == 0.630
    assert set(refs["n_plus"]) == {175, 184, 191, 202}
    assert json.loads((tmp_path / "t" / "main.meta.json").read_text())["reference"] is True
    assert "SPEC.md section 8" in (tmp_path / "t" / "main.md").read_text()
    # the same run with 259 labels is not Corel-5k
    other = tmp_path / "other"
    make_run(other, "asl-gcn", 0.4, labels=259, dataset="/data/corel5k")
    assert (reports.build_tables(other, tmp_path / "u")["main"]["source"] == "ours").all()


def test_params_restrict_runs_and_missing_run_is_an_error(runs_dir, tmp_path):
    result = reports.build_tables(runs_dir, tmp_path / "t", run_names=["asl-gcn", "asl-random"])
    assert set(result["main"]["run"]) == {"asl-gcn"}
    assert set(result["ablations"]["run"]) == {"asl-random"}
    with pytest.raises(reports.ReportError, match="nope"):
        reports.build_tables(runs_dir, tmp_path / "t", run_names=["nope"])


def test_bad_run_folder_names_the_file(tmp_path):
    folder = make_run(tmp_path / "runs", "bad", 0.3)
    (folder / "metrics.json").write_text(json.dumps({"at_0.5": {}, "mcc": {}}))
    with pytest.raises(reports.ReportError, match=r"metrics\.json.*lacks"):
        reports.load_run(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(reports.ReportError, match=r"config\.json"):
        reports.load_run(folder)


def test_tables_cli_and_readme_block(runs_dir, tmp_path):
    out = tmp_path / "t"
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# x\n\nbefore\n{reports.README_START}\nOLD-BLOCK\n{reports.README_END}\nafter\n")
    assert reports.tables_main(["--runs", str(runs_dir), "--out", str(out),
                                "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "OLD-BLOCK" not in text
    assert text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    assert "#### Main results" in text and "#### Ablations" in text and "| asl-gcn |" in text
    bad = tmp_path / "R.md"
    bad.write_text("no markers")
    with pytest.raises(reports.ReportError, match="markers"):
        reports.update_readme(bad, out)


def test_markdown_table_format():
    df = pd.DataFrame({"a": ["x|y", "z"], "b": [0.12345, float("nan")], "c": [True, False]})
    assert reports.markdown_table(df) == (
        "| a | b | c |\n|---|---|---|\n| x\\|y | 0.123 | yes |\n| z |  |  |\n")


# --------------------------------------------------------------------------- the driver

FAKE = {
    # stem: (parameters cell, body)
    "01_stats": ("dataset = 'scenes'\nseed = 0\nverbose = False",
                 "import os, pathlib\n"
                 "out = pathlib.Path(os.environ['AIA_RESULTS_DIR'])\n"
                 "out.mkdir(parents=True, exist_ok=True)\n"
                 "(out / 'stats.txt').write_text(f'{dataset} {seed}')"),
    "03_augment": ("dataset = 'scenes'\nseed = 0\nlimit = 2",
                   "import json, pathlib\n"
                   "p = pathlib.Path(dataset) / 'train_aug.json'\n"
                   "json.dump({'labels': [], 'samples': [], 'limit': limit}, p.open('w'))"),
    "04_train": ("run_name = 'x'\ndataset = 'scenes'\nloss = 'asl'\naugmented = False\nseed = 0",
                 "import json, os, pathlib\n"
                 "d = pathlib.Path(os.environ['AIA_RESULTS_DIR']) / 'runs' / run_name\n"
                 "d.mkdir(parents=True, exist_ok=True)\n"
                 "json.dump({'run_name': run_name, 'loss': loss, 'head': 'gcn'},"
                 " (d / 'config.json').open('w'))"),
    "05_eval": ("run_name = 'x'\nseed = 0",
                "import os, pathlib\n"
                "d = pathlib.Path(os.environ['AIA_RESULTS_DIR']) / 'runs' / run_name\n"
                "assert (d / 'config.json').exists()\n"
                "fail = 1 / 0 if run_name == 'boom' else None"),
}


def write_fake_notebooks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, (params, body) in FAKE.items():
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell(params)
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {stem}"), cell,
                    nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, folder / f"{stem}.ipynb")
    (folder / "scratch.ipynb").write_text("not a numbered notebook")
    return folder


def write_params(path: Path, body: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


@pytest.fixture
def fake(tmp_path):
    notebooks = write_fake_notebooks(tmp_path / "notebooks")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.json").write_text('{"labels": ["a"], "samples": []}')
    (data / "test.json").write_text('{"labels": ["a"], "samples": []}')
    params = write_params(tmp_path / "p.yaml", {
        "common": {"seed": 3},
        "01_stats": {"verbose": True},
        "03_augment": {"limit": 1},
        "runs": {"plain": {"loss": "bce"}, "aug": {"augmented": True}},
        "evaluate_run": "plain",
    })
    return {"notebooks": notebooks, "data": data, "params": params,
            "results": tmp_path / "results"}


def test_discover_notebooks_in_order(fake):
    found = reports.discover_notebooks(fake["notebooks"])
    assert [p.name for p in found] == ["01_stats.ipynb", "03_augment.ipynb", "04_train.ipynb",
                                       "05_eval.ipynb"]


def test_plan_merges_parameters(fake):
    param_set = reports.load_param_set(fake["params"])
    jobs, warnings = reports.plan(param_set, reports.discover_notebooks(fake["notebooks"]),
                                  fake["data"], fake["results"])
    by = {j.name: j for j in jobs}
    assert list(by) == ["01_stats", "03_augment", "04_train__plain", "04_train__aug",
                        "05_eval", "tables"]
    data = str(fake["data"])
    assert by["01_stats"].parameters == {"seed": 3, "verbose": True, "dataset": data}
    assert by["03_augment"].parameters == {"seed": 3, "limit": 1, "dataset": data}
    assert by["04_train__plain"].parameters == {"seed": 3, "loss": "bce", "run_name": "plain",
                                                "dataset": data}
    assert by["04_train__aug"].parameters["augmented"] is True
    assert by["05_eval"].parameters == {"seed": 3, "run_name": "plain"}
    # the DAG: augmented runs after 03, 05 after the run it shows, tables after every run
    assert by["04_train__aug"].upstream == ["03_augment"]
    assert by["04_train__plain"].upstream == []
    assert by["05_eval"].upstream == ["04_train__plain"]
    assert by["tables"].upstream == ["04_train__plain", "04_train__aug"]
    assert warnings == []


@pytest.mark.parametrize("body, match", [
    ({"01_stats": {"typo": 1}}, r"\['typo'\] not in the parameters cell"),
    ({"runs": {"r": {"lr": 0.1}}}, r"run 'r': \['lr'\]"),
    ({"common": {"nobody": 1}}, r"common parameters \['nobody'\]"),
    ({"runs": {"r": {}}, "evaluate_run": "s"}, "evaluate_run 's'"),
    ({"whatever": 1}, "unknown key 'whatever'"),
])
def test_unknown_parameters_are_errors(fake, tmp_path, body, match):
    path = write_params(tmp_path / "bad.yaml", body)
    with pytest.raises(reports.ReportError, match=match):
        param_set = reports.load_param_set(path)
        reports.plan(param_set, reports.discover_notebooks(fake["notebooks"]), fake["data"],
                     fake["results"])
    assert reports.reproduce_main(["--params", str(path), "--notebooks", str(fake["notebooks"]),
                                   "--data", str(fake["data"]), "--dry-run"]) == 1


def test_section_without_notebook_is_a_warning(fake, tmp_path):
    path = write_params(tmp_path / "p2.yaml", {"09_later": {"x": 1}, "runs": {"r": {}}})
    _, warnings = reports.plan(reports.load_param_set(path),
                               reports.discover_notebooks(fake["notebooks"]), fake["data"],
                               fake["results"])
    assert len(warnings) == 1 and "09_later" in warnings[0]


def run_driver(fake, capsys, *extra, params=None) -> tuple[int, str]:
    code = reports.reproduce_main([
        "--params", str(params or fake["params"]), "--notebooks", str(fake["notebooks"]),
        "--data", str(fake["data"]), "--results", str(fake["results"]), *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.slow
def test_reproduce_skips_and_reruns(fake, capsys, monkeypatch):
    monkeypatch.setenv("AIA_RESULTS_DIR", str(fake["results"]))
    code, out = run_driver(fake, capsys)
    assert code == 0, out
    results = fake["results"]
    for name in ("01_stats", "03_augment", "04_train__plain", "04_train__aug", "05_eval"):
        assert (results / "executed" / f"{name}.ipynb").exists()
        assert f"running: {name} (never run)" in out
    assert (results / "stats.txt").read_text() == f"{fake['data']} 3"
    index = (results / "reports" / "index.html").read_text()
    for name in ("01_stats", "04_train__aug", "05_eval"):
        assert f"href='{name}.html'" in index
        assert (results / "reports" / f"{name}.html").exists()
    assert "table_main.html" in index and (results / "tables" / "main.csv").exists()

    # nothing changed: everything up to date
    code, out = run_driver(fake, capsys)
    assert code == 0
    assert "running:" not in out
    for name in ("01_stats", "03_augment", "04_train__plain", "04_train__aug", "05_eval",
                 "tables"):
        assert f"up to date: {name}" in out

    # 03's parameters change: 03, the augmented run and the tables rerun; the rest do not
    params = write_params(fake["params"], {
        "common": {"seed": 3}, "01_stats": {"verbose": True}, "03_augment": {"limit": 2},
        "runs": {"plain": {"loss": "bce"}, "aug": {"augmented": True}}, "evaluate_run": "plain"})
    code, out = run_driver(fake, capsys, params=params)
    assert code == 0
    assert "running: 03_augment (parameters changed)" in out
    assert "running: 04_train__aug (03_augment reran" in out
    assert "running: tables" in out
    for name in ("01_stats", "04_train__plain", "05_eval"):
        assert f"up to date: {name}" in out

    # a deleted run folder reruns its training job and what reads it
    shutil.rmtree(results / "runs" / "plain")
    code, out = run_driver(fake, capsys, "--dry-run")
    assert "would run: 04_train__plain (outputs missing (config.json))" in out
    assert "up to date: 04_train__aug" in out


@pytest.mark.slow
def test_failing_notebook_stops_with_the_cell(fake, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AIA_RESULTS_DIR", str(fake["results"]))
    params = write_params(tmp_path / "boom.yaml", {"runs": {"boom": {}}})
    code, out = run_driver(fake, capsys, "--only", "04", "05", params=params)
    assert code == 1
    assert "FAILED: 05_eval" in out and "ZeroDivisionError" in out
    assert "fail = 1 / 0" in out and "cell 3" in out
    assert "not selected (--only): 01_stats" in out
    assert (fake["results"] / "executed" / "05_eval.failed.ipynb").exists()
    assert not (fake["results"] / "executed" / "05_eval.ipynb").exists()
    assert not (fake["results"] / ".stamps" / "05_eval.json").exists()


def test_environment_yml_has_the_pyproject_pins():
    import tomllib

    import yaml

    from lib import paths

    project = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in env["dependencies"]
    assert set(pip) == pins


@pytest.mark.parametrize("name", ["smoke", "default", "corel5k"])
def test_parameter_sets_match_the_notebooks(name, tmp_path):
    """Every name in params/<set>.yaml is a parameter of the notebook it is given to."""
    from lib import paths

    param_set = reports.load_param_set(name)
    notebooks = reports.discover_notebooks()
    jobs, warnings = reports.plan(param_set, notebooks, tmp_path / "data", tmp_path / "res")
    stems = {nb.stem for nb in notebooks}
    assert [w for w in warnings if any(s in w for s in stems)] == []
    assert param_set["evaluate_run"] in param_set["runs"]
    assert paths.PARAMS_DIR / f"{name}.yaml" == Path(param_set["_path"])


def test_tables_for_a_parameter_set_use_the_runs_there(runs_dir, tmp_path, capsys):
    params = write_params(tmp_path / "set.yaml", {"runs": {"asl-gcn": {}, "asl-random": {},
                                                          "not-trained": {}}})
    result = reports.build_tables(runs_dir, tmp_path / "t", params=str(params))
    assert set(result["main"]["run"]) == {"asl-gcn"}
    assert set(result["ablations"]["run"]) == {"asl-random"}
    assert "not-trained" in capsys.readouterr().err
    assert json.loads((tmp_path / "t" / "main.meta.json").read_text())["params"] == str(params)
    empty = write_params(tmp_path / "empty.yaml", {"runs": {"nothing": {}}})
    with pytest.raises(reports.ReportError, match="none of the runs"):
        reports.build_tables(runs_dir, tmp_path / "t", params=str(empty))


def test_default_dataset_is_drawn_only_when_it_is_the_default(tmp_path):
    param_set = {"data": {"name": "tiny", "synth": {"seed": 1, "size": 16, "n_train": 8,
                                                     "n_val": 4, "n_test": 4}}}
    target = tmp_path / "tiny"
    with pytest.raises(reports.ReportError, match=r"tiny: no dataset here"):
        reports.ensure_dataset(target, param_set, default=False)
    reports.ensure_dataset(target, param_set, default=True)
    train = json.loads((target / "train.json").read_text())
    assert len(train["samples"]) == 8
    corel = tmp_path / "corel5k"
    with pytest.raises(reports.ReportError, match="make corel5k"):
        reports.ensure_dataset(corel, {"data": {"name": "corel5k"}}, default=True)


def test_notebook_pages_share_one_stylesheet(tmp_path):
    """Rendered notebooks link reports/notebook.css instead of inlining the template's CSS;
    the cell's own output (a pandas table with a scoped style) stays in the page."""
    import nbformat

    out = tmp_path / "reports"
    out.mkdir()
    pages = []
    for name in ("a", "b"):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell(f"print('{name}')")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"hello {name}\n")]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# notebook {name}"), cell]
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(nb, path)
        pages.append(reports.render_notebook_html(path, out / f"{name}.html").read_text())
    css = (out / reports.NOTEBOOK_CSS).read_text()
    assert ".highlight" in css and "--jp-" in css  # nbconvert's template styles
    for name, page in zip("ab", pages, strict=True):
        head = page.split("</head>")[0]
        assert "<style" not in head
        assert f'href="{reports.NOTEBOOK_CSS}"' in head
        assert f"hello {name}" in page
    assert len(pages[0]) < len(css)
