"""Results tables, rendered reports and the ``make reproduce`` driver.

Two halves:

- **Tables** (:func:`build_tables`, ``python -m lib tables``): the main table (loss x head)
  and the ablation table (each ablation run beside its matching baseline run), built from
  run folders alone (``config.json`` + ``metrics.json``, see docs/CONTRACTS.md), written to
  ``results/tables/`` as CSV (+ ``<table>.meta.json`` stamp), Markdown (stamped header) and
  a PNG bar chart. Runs selected on the test split are marked leaky everywhere (``leaky``
  column, a dagger and a footnote). On Corel-5k (260 labels) the SPEC 8 reference numbers
  sit beside ours.
- **Reproduce** (:func:`reproduce`, ``python -m lib reproduce``): runs every numbered
  notebook with papermill in order, parameters from ``params/<set>.yaml``, one executed
  copy of the training notebook per configured run, then the tables and the HTML reports.
  Each job is stamped with a hash of its inputs (notebook, parameters, ``lib`` sources,
  dataset JSON files, upstream stamps, the run folders it reads); unchanged jobs are
  reported as ``up to date`` and skipped, changed ones and everything downstream rerun.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from lib import paths
from lib.utils import atomic_save, atomic_write_json, atomic_write_text, git_commit

# --------------------------------------------------------------------------- constants

#: the metric blocks of metrics.json shown in the tables, with their display names
THRESHOLD_MODES: dict[str, str] = {"at_0.5": "0.5", "mcc": "MCC"}
METRIC_KEYS = (
    "per_class_precision", "per_class_recall", "per_class_f1",
    "per_image_precision", "per_image_recall", "per_image_f1", "n_plus",
)
SHORT_NAMES = {
    "per_class_precision": "P (class)", "per_class_recall": "R (class)",
    "per_class_f1": "F1 (class)", "per_image_precision": "P (image)",
    "per_image_recall": "R (image)", "per_image_f1": "F1 (image)", "n_plus": "N+",
    "mAP": "mAP", "thresholds": "thresholds",
}
LOSS_ORDER = ("bce", "focal", "asl")
HEAD_ORDER = ("linear", "gcn", "gcn-identity")
HEAD_NAMES = {"linear": "CNN only (linear)", "gcn": "GCN", "gcn-identity": "GCN, A = I"}
#: label-vector sources that are not word embeddings (the "random embeddings" ablation)
NON_GLOVE_EMBEDDINGS = ("random", "onehot")
BASELINE_ADJACENCY = "seed"
#: configuration keys two runs must share to be compared in the ablation table
MATCH_KEYS = (
    "dataset_name", "backbone", "image_size", "epochs", "schedule_epochs", "batch_size", "lr",
    "weight_decay", "loss", "seed", "select_metric", "patience", "schedule",
    "warmup", "ema", "pretrained", "weights", "hidden", "normalization", "flips",
)
LEAKY_MARK = "\u2020"
LEAKY_NOTE = (
    f"{LEAKY_MARK} leaky: the model was selected on the test split (the reference protocol), "
    "so its test numbers are optimistic."
)
COREL5K_LABELS = 260
REFERENCE_SOURCE = "reference (SPEC 8)"
#: SPEC.md section 8: Corel-5k, 4,500 training images, test split
REFERENCE_ROWS: list[dict[str, Any]] = [
    {"run": "reference GCN (TResNet-M 448, ASL, threshold 0.5)", "loss": "asl", "head": "gcn",
     "thresholds": "0.5", "per_class_precision": 0.453, "per_class_recall": 0.495,
     "per_class_f1": 0.473, "n_plus": 175, "per_image_precision": 0.594,
     "per_image_recall": 0.670, "per_image_f1": 0.630},
    {"run": "same author, CNN only, ASL, MCC thresholds", "loss": "asl", "head": "linear",
     "thresholds": "MCC", "per_class_f1": 0.502, "n_plus": 184},
    {"run": "best published thresholded result we know", "per_class_precision": 0.484,
     "per_class_recall": 0.563, "per_class_f1": 0.520, "n_plus": 191},
    {"run": "attention-pooling TResNet (threshold 0.5, EMA)", "thresholds": "0.5",
     "per_class_precision": 0.453, "per_class_recall": 0.611, "per_class_f1": 0.520,
     "n_plus": 202},
]
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


class ReportError(ValueError):
    """Bad input to the tables or the driver; the message names the file and the problem."""


# --------------------------------------------------------------------------- run folders


@dataclass
class Run:
    """One run folder: its configuration, metrics and label count (when known)."""

    name: str
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    num_labels: int | None = None

    @property
    def leaky(self) -> bool:
        if self.metrics is not None and "leaky" in self.metrics:
            return bool(self.metrics["leaky"])
        return bool(self.config.get("leaky", self.config.get("selection_split") == "test"))

    @property
    def dataset_name(self) -> str:
        name = self.config.get("dataset_name")
        if name:
            return str(name)
        return Path(str(self.config.get("dataset", "?"))).name


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from exc


def _label_count(folder: Path, config: dict[str, Any]) -> int | None:
    if isinstance(config.get("num_labels"), int):
        return config["num_labels"]
    if isinstance(config.get("labels"), list):
        return len(config["labels"])
    thresholds = folder / "thresholds.json"
    if thresholds.exists():
        labels = _read_json(thresholds).get("labels")
        if isinstance(labels, list):
            return len(labels)
    predictions = folder / "predictions.csv"
    if predictions.exists():
        with predictions.open(encoding="utf-8") as fh:
            header = fh.readline().rstrip("\n").split(",")
        return max(len(header) - 1, 0)
    return None


def load_run(folder: str | os.PathLike) -> Run:
    """Read a run folder (``config.json`` required, ``metrics.json`` when evaluated)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ReportError(f"{config_path}: missing (not a run folder)")
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise ReportError(f"{config_path}: expected a JSON object")
    for key in ("loss", "head"):
        if key not in config:
            raise ReportError(f"{config_path}: no {key!r} entry")
    metrics_path = folder / "metrics.json"
    metrics = _read_json(metrics_path) if metrics_path.exists() else None
    if metrics is not None:
        missing = [k for k in THRESHOLD_MODES if k not in metrics]
        if missing:
            raise ReportError(f"{metrics_path}: missing blocks {missing}")
        for block in THRESHOLD_MODES:
            absent = [k for k in METRIC_KEYS if k not in metrics[block]]
            if absent:
                raise ReportError(f"{metrics_path}: block {block!r} lacks {absent}")
    name = str(config.get("run_name") or folder.name)
    return Run(name, folder, config, metrics, _label_count(folder, config))


def load_runs(runs_dir: str | os.PathLike, names: Iterable[str] | None = None) -> list[Run]:
    """All run folders under ``runs_dir`` (or just ``names``, in that order); a listed run
    without a folder is an error."""
    runs_dir = Path(runs_dir)
    if names is not None:
        runs = []
        for name in names:
            if not (runs_dir / name / "config.json").exists():
                raise ReportError(f"{runs_dir / name}: run folder missing (no config.json)")
            runs.append(load_run(runs_dir / name))
        return runs
    if not runs_dir.is_dir():
        raise ReportError(f"{runs_dir}: no runs folder")
    return [load_run(p) for p in sorted(runs_dir.iterdir()) if (p / "config.json").exists()]


def _embedding_kind(source: Any) -> str:
    text = str(source or "").lower()
    return text if text in NON_GLOVE_EMBEDDINGS else "glove"


def _dims(config: dict[str, Any]) -> dict[str, Any]:
    """The ablation dimensions of a configuration (adjacency only matters for the GCN)."""
    head = str(config.get("head", ""))
    return {
        "head": head,
        "embeddings": str(config.get("embeddings", "")),
        "embedding_kind": _embedding_kind(config.get("embeddings")),
        "augmented": bool(config.get("augmented", False)),
        "adjacency": str(config.get("adjacency", BASELINE_ADJACENCY)) if head == "gcn" else None,
    }


#: ablation name -> (does the run ablate this?, the baseline's dimensions)
def _ablations(dims: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    if dims["head"] == "gcn-identity":
        out.append(("GCN with identity graph (A = I)",
                    {**dims, "head": "gcn", "adjacency": BASELINE_ADJACENCY}))
    if dims["head"] != "linear" and dims["embedding_kind"] != "glove":
        out.append((f"{dims['embedding_kind']} label vectors instead of GloVe",
                    {**dims, "embedding_kind": "glove", "embeddings": None}))
    if dims["augmented"]:
        out.append(("with WGAN augmentation", {**dims, "augmented": False}))
    if dims["head"] == "gcn" and dims["adjacency"] != BASELINE_ADJACENCY:
        out.append((f"adjacency {dims['adjacency']} instead of {BASELINE_ADJACENCY}",
                    {**dims, "adjacency": BASELINE_ADJACENCY}))
    return out


def is_baseline(run: Run) -> bool:
    """A run of the main table: linear or GCN head, GloVe vectors, no augmentation,
    the seed adjacency."""
    return run.config.get("head") in ("linear", "gcn") and not _ablations(_dims(run.config))


def find_baseline(run: Run, wanted: dict[str, Any], runs: Sequence[Run]) -> Run | None:
    """The run matching ``run`` on :data:`MATCH_KEYS` whose dimensions are ``wanted``
    (``embeddings: None`` matches any GloVe source)."""
    for other in runs:
        if other is run:
            continue
        if any(other.config.get(k) != run.config.get(k) for k in MATCH_KEYS):
            continue
        dims = _dims(other.config)
        if all(v is None and k == "embeddings" or dims[k] == v for k, v in wanted.items()):
            return other
    return None


def is_corel5k(runs: Sequence[Run]) -> bool:
    """Corel-5k runs: 260 labels when the count is known, else a dataset name with 'corel'."""
    if not runs:
        return False
    counts = {r.num_labels for r in runs}
    if None not in counts:
        return counts == {COREL5K_LABELS}
    return all("corel" in r.dataset_name.lower() for r in runs)


# --------------------------------------------------------------------------- tables


def _metric_row(run: Run, block: str) -> dict[str, Any]:
    assert run.metrics is not None
    values = run.metrics[block]
    row = {k: values[k] for k in METRIC_KEYS}
    row["mAP"] = run.metrics.get("mean_average_precision")
    return row


def main_table(runs: Sequence[Run], reference: bool | None = None) -> pd.DataFrame:
    """Loss x head on the baseline configuration, at threshold 0.5 and with MCC thresholds;
    SPEC 8 reference rows appended for Corel-5k (``reference=None`` detects it)."""
    rows = []
    for run in runs:
        if run.metrics is None or not is_baseline(run):
            continue
        for block, shown in THRESHOLD_MODES.items():
            rows.append({
                "source": "ours", "run": run.name, "dataset": run.dataset_name,
                "loss": run.config["loss"], "head": run.config["head"], "thresholds": shown,
                **_metric_row(run, block), "leaky": run.leaky,
            })
    columns = ["source", "run", "dataset", "loss", "head", "thresholds", *METRIC_KEYS,
               "mAP", "leaky"]
    table = pd.DataFrame(rows, columns=columns)
    if not table.empty:
        table["_l"] = table["loss"].map(lambda v: _order(LOSS_ORDER, v))
        table["_h"] = table["head"].map(lambda v: _order(HEAD_ORDER, v))
        table = table.sort_values(["_l", "_h", "run", "thresholds"], kind="stable")
        table = table.drop(columns=["_l", "_h"])
    if reference is None:
        reference = is_corel5k(runs)
    if reference:
        refs = pd.DataFrame([{"source": REFERENCE_SOURCE, "dataset": "corel5k", "leaky": False,
                              **r} for r in REFERENCE_ROWS], columns=columns)
        table = pd.concat([table, refs], ignore_index=True) if not table.empty else refs
    table["n_plus"] = table["n_plus"].astype("Int64")
    table["leaky"] = table["leaky"].astype(bool)
    return table.reset_index(drop=True)


def _order(order: Sequence[str], value: Any) -> int:
    return order.index(value) if value in order else len(order)


def ablation_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Each ablation run (identity graph, non-GloVe vectors, WGAN augmentation, ml-gcn
    adjacency) beside its matching baseline, with the differences (ablation - baseline)."""
    rows = []
    compared = ("per_class_f1", "per_image_f1", "n_plus", "mAP")
    for run in runs:
        if run.metrics is None:
            continue
        for name, wanted in _ablations(_dims(run.config)):
            base = find_baseline(run, wanted, [r for r in runs if r.metrics is not None])
            for block, shown in THRESHOLD_MODES.items():
                ours = _metric_row(run, block)
                theirs = _metric_row(base, block) if base is not None else {}
                row = {"ablation": name, "run": run.name,
                       "baseline": base.name if base is not None else None,
                       "loss": run.config["loss"], "thresholds": shown}
                for key in compared:
                    a, b = ours.get(key), theirs.get(key)
                    row[key] = a
                    row[f"{key}_baseline"] = b
                    row[f"{key}_delta"] = (a - b) if a is not None and b is not None else None
                row["leaky"] = run.leaky or (base is not None and base.leaky)
                rows.append(row)
    columns = ["ablation", "run", "baseline", "loss", "thresholds"]
    for key in compared:
        columns += [key, f"{key}_baseline", f"{key}_delta"]
    table = pd.DataFrame(rows, columns=[*columns, "leaky"])
    for key in ("n_plus", "n_plus_baseline", "n_plus_delta"):
        table[key] = pd.to_numeric(table[key]).astype("Int64")
    for key in compared:
        if key != "n_plus":
            for suffix in ("", "_baseline", "_delta"):
                table[key + suffix] = pd.to_numeric(table[key + suffix]).astype(float)
    table["leaky"] = table["leaky"].astype(bool)
    return table


def _cell(value: Any) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value).replace("|", "\\|")


def markdown_table(table: pd.DataFrame, headers: dict[str, str] | None = None) -> str:
    """A GitHub Markdown table (floats with 3 decimals, booleans as 'yes', NaN empty)."""
    headers = headers or {}
    names = [headers.get(c, c) for c in table.columns]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _with_marks(table: pd.DataFrame, leaky_runs: Iterable[str]) -> pd.DataFrame:
    """Display copy: the names of leaky runs get the dagger; the ``leaky`` column stays."""
    leaky = set(leaky_runs)
    shown = table.copy()
    for col in ("run", "baseline"):
        if col in shown:
            shown[col] = [f"{v}{LEAKY_MARK}" if v in leaky else v for v in shown[col]]
    return shown


@dataclass
class Stamp:
    """Provenance written with every table."""

    table: str
    dataset: str
    params: str
    commit: str
    date: str
    runs: list[str] = field(default_factory=list)
    leaky_runs: list[str] = field(default_factory=list)
    reference: bool = False

    def line(self) -> str:
        return (f"dataset `{self.dataset}` · parameter set `{self.params}` · "
                f"commit `{self.commit}` · {self.date}")


def _headers(table: pd.DataFrame) -> dict[str, str]:
    """Short display names of a table's columns (``x_baseline`` -> 'x base', ``x_delta`` ->
    'Δ x')."""
    out = {}
    for col in table.columns:
        for suffix, fmt in (("_baseline", "{} base"), ("_delta", "\u0394 {}")):
            if col.endswith(suffix):
                out[col] = fmt.format(SHORT_NAMES.get(col.removesuffix(suffix), col))
                break
        else:
            out[col] = SHORT_NAMES.get(col, col)
    return out


TABLE_TITLES = {
    "main": "Main results: loss x head (test split, per-class and per-image metrics)",
    "ablations": "Ablations: each run against its matching baseline (test split)",
}


def write_table(table: pd.DataFrame, out_dir: Path, stamp: Stamp) -> dict[str, Path]:
    """Write ``<name>.csv`` + ``<name>.meta.json`` + ``<name>.md`` atomically."""
    name = stamp.table
    out = {
        "csv": out_dir / f"{name}.csv",
        "meta": out_dir / f"{name}.meta.json",
        "md": out_dir / f"{name}.md",
    }
    atomic_save(out["csv"], lambda p: table.to_csv(p, index=False))
    atomic_write_json(out["meta"], stamp.__dict__)
    atomic_write_text(out["md"], table_markdown(table, stamp))
    return out


def table_markdown(table: pd.DataFrame, stamp: Stamp, level: int = 3) -> str:
    """The stamped Markdown block of one table (title, stamp line, table, footnote)."""
    meta = json.dumps(stamp.__dict__, sort_keys=True)
    title = TABLE_TITLES.get(stamp.table, stamp.table)
    parts = [f"<!-- aia-table {meta} -->", f"{'#' * level} {title}", "", stamp.line(), ""]
    if table.empty:
        parts.append("_No runs for this table._\n")
    else:
        parts.append(markdown_table(_with_marks(table, stamp.leaky_runs), _headers(table)))
    if "leaky" in table and table["leaky"].any():
        parts += ["", LEAKY_NOTE]
    if stamp.reference:
        parts += ["", f"Rows marked `{REFERENCE_SOURCE}` are the published Corel-5k numbers "
                  "(SPEC.md section 8), not runs of this repository."]
    return "\n".join(parts).rstrip() + "\n"


def plot_main_table(table: pd.DataFrame):
    """Bar chart of per-class F1 by loss (x) and head (colour), one panel per thresholds."""
    import matplotlib

    if os.environ.get("MPLBACKEND") is None:
        matplotlib.use("Agg")
    import seaborn as sns

    ours = table[table["source"] == "ours"].copy()
    ours["head"] = ours["head"].map(lambda h: HEAD_NAMES.get(h, h))
    grid = sns.catplot(
        data=ours, x="loss", y="per_class_f1", hue="head", col="thresholds", kind="bar",
        order=[v for v in LOSS_ORDER if v in set(ours["loss"])] or None,
        height=3.2, aspect=1.1, errorbar=None,
    )
    grid.set_axis_labels("loss", "per-class F1 (test)")
    grid.set_titles("thresholds: {col_name}")
    for ax in grid.axes.flat:
        for container in ax.containers:
            ax.bar_label(container, fmt="%.3f", fontsize=7)
    grid.figure.suptitle("Per-class F1 by loss and head", y=1.03)
    return grid.figure


def build_tables(
    runs_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    params: str | None = None,
    run_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Build the main and ablation tables (CSV, Markdown, meta) and the main-table plot
    from run folders alone. ``run_names`` (or the ``runs:`` of parameter set ``params``)
    restricts the runs; returns ``{"main": DataFrame, "ablations": DataFrame, "files": [...]}``."""
    runs_dir = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    out_dir = paths.ensure(Path(out_dir) if out_dir is not None else paths.tables_dir())
    if run_names is None and params is not None:
        wanted = list(load_param_set(params).get("runs") or {})
        run_names = [r for r in wanted if (runs_dir / r / "config.json").exists()]
        missing = [r for r in wanted if r not in run_names]
        if missing:
            print(f"tables: runs of parameter set {params!r} not in {runs_dir} yet: {missing}",
                  file=sys.stderr)
        if not run_names:
            raise ReportError(f"{runs_dir}: none of the runs of parameter set {params!r} "
                              f"({wanted}) is there; run `make reproduce PARAMS={params}`")
    runs = load_runs(runs_dir, run_names)
    unevaluated = [r.name for r in runs if r.metrics is None]
    if unevaluated:
        print(f"tables: no metrics.json yet in {unevaluated} (left out)", file=sys.stderr)
    datasets = sorted({r.dataset_name for r in runs})
    reference = is_corel5k(runs)
    commit, date = git_commit(), datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    tables = {"main": main_table(runs, reference), "ablations": ablation_table(runs)}
    files: list[Path] = []
    for name, table in tables.items():
        ours = table[table["source"] == "ours"] if "source" in table else table
        used = sorted({r for col in ("run", "baseline") if col in ours
                       for r in ours[col] if isinstance(r, str)})
        leaky = sorted({r.name for r in runs if r.leaky and r.name in used})
        stamp = Stamp(name, ", ".join(datasets) or "none", params or "(run folders)", commit,
                      date, used, leaky, reference and name == "main")
        files += write_table(table, out_dir, stamp).values()
    if (tables["main"]["source"] == "ours").any():
        from lib.plots import save

        fig = plot_main_table(tables["main"])
        files.append(save(fig, out_dir / "main_per_class_f1.png"))
        import matplotlib.pyplot as plt

        plt.close(fig)
    return {**tables, "files": files}


def update_readme(readme: str | os.PathLike, tables_dir: str | os.PathLike | None = None) -> Path:
    """Write the main and ablation Markdown tables between the README's results markers."""
    readme = Path(readme)
    tables_dir = Path(tables_dir) if tables_dir is not None else paths.tables_dir()
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise ReportError(f"{readme}: markers {README_START} / {README_END} not found")
    blocks = []
    for name in ("main", "ablations"):
        md = tables_dir / f"{name}.md"
        if not md.exists():
            raise ReportError(f"{md}: missing; run `python -m lib tables` first")
        blocks.append(re.sub(r"^### ", "#### ", md.read_text(encoding="utf-8"), flags=re.M))
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = "\n" + "\n".join(blocks).strip() + "\n"
    return atomic_write_text(readme, head + README_START + body + README_END + tail)


def tables_main(argv: list[str]) -> int:
    """``python -m lib tables``: rebuild the results tables from run folders."""
    parser = argparse.ArgumentParser(
        prog="python -m lib tables",
        description="Build results/tables (main, ablations; CSV, Markdown, PNG) from run folders.")
    parser.add_argument("--runs", default=None, help="runs folder (default results/runs)")
    parser.add_argument("--out", default=None, help="output folder (default results/tables)")
    parser.add_argument("--params", default=None,
                        help="parameter set whose runs: to use (default: every run folder)")
    parser.add_argument("--readme", default=None, metavar="README.md",
                        help="also write the tables into this README's results block")
    args = parser.parse_args(argv)
    try:
        result = build_tables(args.runs, args.out, args.params)
        if args.readme:
            update_readme(args.readme, args.out)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for f in result["files"]:
        print(f"wrote {f}")
    return 0


# --------------------------------------------------------------------------- parameter sets

PARAM_SET_KEYS = ("common", "runs", "evaluate_run", "data")
NOTEBOOK_PATTERN = re.compile(r"^\d\d_.+\.ipynb$")
#: the number of the augmentation and the training notebooks (the DAG's fixed stages)
AUGMENT_PREFIX = "03"
TRAIN_PREFIX = "04"


def load_param_set(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """Read ``params/<name>.yaml`` (or a YAML path) and check its shape."""
    import yaml

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = paths.PARAMS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in paths.PARAMS_DIR.glob("*.yaml"))
        raise ReportError(f"{path}: no such parameter set (known: {known})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ReportError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a mapping at the top level")
    for key, value in data.items():
        if key in PARAM_SET_KEYS:
            continue
        if not re.match(r"^\d\d_", str(key)):
            raise ReportError(f"{path}: unknown key {key!r} (expected {PARAM_SET_KEYS} or a "
                              "notebook stem like 01_dataset_statistics)")
        if value is not None and not isinstance(value, dict):
            raise ReportError(f"{path}: section {key!r} must be a mapping")
    runs = data.get("runs") or {}
    if not isinstance(runs, dict):
        raise ReportError(f"{path}: runs: must map run names to notebook-04 parameters")
    for run, params in runs.items():
        if params is not None and not isinstance(params, dict):
            raise ReportError(f"{path}: run {run!r} must be a mapping")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(run)):
            raise ReportError(f"{path}: run name {run!r} is not a valid folder name")
    evaluate = data.get("evaluate_run")
    if evaluate is not None and evaluate not in runs:
        raise ReportError(f"{path}: evaluate_run {evaluate!r} is not one of runs: {list(runs)}")
    data["_path"] = str(path)
    data["_name"] = path.stem
    return data


def discover_notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """The numbered notebooks ``NN_name.ipynb`` of a folder, in order."""
    folder = Path(folder) if folder is not None else paths.NOTEBOOKS_DIR
    return sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, str]:
    """Names and default literals of a notebook's ``parameters`` cell (papermill's view)."""
    import papermill as pm

    return {name: info["default"] for name, info in pm.inspect_notebook(str(notebook)).items()}


# --------------------------------------------------------------------------- the plan


@dataclass
class Job:
    """One unit of the reproduce DAG: an executed notebook, or the tables."""

    name: str
    notebook: Path | None
    parameters: dict[str, Any]
    upstream: list[str] = field(default_factory=list)
    reads: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    run_name: str | None = None

    @property
    def stem(self) -> str:
        return self.notebook.stem if self.notebook is not None else self.name


def _run_files(results: Path, run: str) -> list[Path]:
    folder = results / "runs" / run
    return [folder / f for f in ("config.json", "metrics.json", "thresholds.json",
                                 "predictions.csv")]


def plan(
    param_set: dict[str, Any],
    notebooks: Sequence[Path],
    data_dir: Path,
    results: Path,
) -> tuple[list[Job], list[str]]:
    """The jobs of a parameter set over the given notebooks, in execution order, and
    warnings. Unknown parameter names (not in a notebook's parameters cell) are an error."""
    warnings: list[str] = []
    where = param_set.get("_path", "parameter set")
    common = dict(param_set.get("common") or {})
    runs = {k: dict(v or {}) for k, v in (param_set.get("runs") or {}).items()}
    evaluate = param_set.get("evaluate_run") or (next(iter(runs)) if runs else None)
    stems = {nb.stem for nb in notebooks}
    for key in param_set:
        if re.match(r"^\d\d_", str(key)) and key not in stems:
            warnings.append(f"{where}: section {key!r} has no notebook in {_folder(notebooks)} "
                            "(skipped)")
    declared = {nb.stem: notebook_parameters(nb) for nb in notebooks}
    used_common = {k for names in declared.values() for k in names if k in common}
    unused = sorted(set(common) - used_common)
    if unused and notebooks:
        raise ReportError(f"{where}: common parameters {unused} are not parameters of any "
                          f"notebook in {_folder(notebooks)}")

    def resolve(nb: Path, extra: dict[str, Any], label: str) -> dict[str, Any]:
        names = declared[nb.stem]
        params = {k: v for k, v in common.items() if k in names}
        params.update(param_set.get(nb.stem) or {})
        params.update(extra)
        if "dataset" in names:
            params["dataset"] = str(data_dir)
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ReportError(f"{where}: {label}: {unknown} not in the parameters cell of "
                              f"{nb} (it has {sorted(names)})")
        return params

    jobs: list[Job] = []
    augment: Job | None = None
    train_jobs: list[Job] = []
    for nb in notebooks:
        prefix = nb.name[:2]
        if prefix == TRAIN_PREFIX:
            if not runs:
                warnings.append(f"{where}: no runs: for {nb.name} (skipped)")
            for run, extra in runs.items():
                augmented = bool(extra.get("augmented", (param_set.get(nb.stem) or {})
                                           .get("augmented", False)))
                job = Job(
                    name=f"{nb.stem}__{run}", notebook=nb,
                    parameters=resolve(nb, {**extra, "run_name": run}, f"run {run!r}"),
                    upstream=[augment.name] if augmented and augment else [],
                    reads=[data_dir / "train_aug.json"] if augmented else [],
                    outputs=[results / "runs" / run / "config.json"], run_name=run,
                )
                jobs.append(job)
                train_jobs.append(job)
            continue
        names = declared[nb.stem]
        after_training = prefix > TRAIN_PREFIX
        extra: dict[str, Any] = {}
        upstream: list[str] = []
        reads: list[Path] = []
        if after_training and "run_name" in names:
            run = (param_set.get(nb.stem) or {}).get("run_name", evaluate)
            if run is None:
                raise ReportError(f"{where}: {nb.name} needs a run but runs: is empty")
            extra["run_name"] = run
            upstream = [j.name for j in train_jobs if j.run_name == run]
            reads = _run_files(results, run)
        elif after_training:
            upstream = [j.name for j in train_jobs]
            reads = [f for j in train_jobs for f in _run_files(results, j.run_name or "")]
        job = Job(nb.stem, nb, resolve(nb, extra, "section"), upstream, reads)
        jobs.append(job)
        if prefix == AUGMENT_PREFIX:
            augment = job
    run_names = list(runs)
    if not train_jobs:
        if runs:
            warnings.append(f"{where}: runs: given but no {TRAIN_PREFIX}_*.ipynb notebook in "
                            f"{_folder(notebooks)} (no training, no tables)")
        return jobs, warnings
    jobs.append(Job(
        "tables", None, {"runs": run_names}, upstream=[j.name for j in train_jobs],
        reads=[f for r in run_names for f in _run_files(results, r)],
        outputs=[results / "tables" / "main.csv", results / "tables" / "ablations.csv"],
    ))
    return jobs, warnings


def _folder(notebooks: Sequence[Path]) -> str:
    return str(notebooks[0].parent) if notebooks else "the notebooks folder"


# --------------------------------------------------------------------------- hashing/stamps


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def hash_files(files: Iterable[Path], base: Path | None = None) -> str:
    """Hash of the names and contents of files (a missing file counts as 'missing')."""
    h = hashlib.sha256()
    for f in sorted(files):
        name = str(f.relative_to(base)) if base is not None else str(f)
        h.update(name.encode() + b"\0")
        h.update(f.read_bytes() if f.exists() else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()[:16]


def lib_hash() -> str:
    """Hash of every Python source under ``lib/``."""
    lib = paths.ROOT / "lib"
    return hash_files([p for p in lib.rglob("*.py") if "__pycache__" not in p.parts], lib)


def dataset_hash(data_dir: Path) -> str:
    """Hash of the dataset's annotation files (``*.json``, ``vocabulary.txt``), leaving out
    ``train_aug.json``, which the pipeline itself writes (jobs that read it hash it)."""
    files = [p for p in data_dir.glob("*.json") if p.name != "train_aug.json"]
    files += [p for p in (data_dir / "vocabulary.txt",) if p.exists()]
    return hash_files(files, data_dir)


def job_components(job: Job, data_dir: Path, stamps: Path, lib: str) -> dict[str, str]:
    """The hashed inputs of a job, by component."""
    out = {
        "notebook": hash_files([job.notebook]) if job.notebook else "none",
        "parameters": _sha(json.dumps(job.parameters, sort_keys=True, default=str).encode()),
        "lib": lib,
        "dataset": dataset_hash(data_dir),
    }
    for up in job.upstream:
        stamp = read_stamp(stamps, up)
        out[f"upstream {up}"] = stamp["hash"] if stamp else "missing"
    if job.reads:
        out["reads"] = hash_files(job.reads)
    return out


def _total(components: dict[str, str]) -> str:
    return _sha(json.dumps(components, sort_keys=True).encode())


def read_stamp(stamps: Path, name: str) -> dict[str, Any] | None:
    path = stamps / f"{name}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


COMPONENT_REASONS = {
    "notebook": "notebook changed", "parameters": "parameters changed",
    "lib": "lib/ sources changed", "dataset": "dataset annotations changed",
    "reads": "files it reads changed",
}


def why_stale(job: Job, components: dict[str, str], stamp: dict[str, Any] | None,
              executed: Path | None) -> list[str]:
    """Reasons to (re)run a job; empty when it is up to date."""
    if stamp is None:
        return ["never run"]
    reasons = []
    old = stamp.get("components", {})
    for key, value in components.items():
        if old.get(key) == value:
            continue
        if key.startswith("upstream "):
            reasons.append(f"{key.removeprefix('upstream ')} reran")
        else:
            reasons.append(COMPONENT_REASONS.get(key, f"{key} changed"))
    for key in old:
        if key not in components:
            reasons.append(f"{key} no longer an input")
    if executed is not None and not executed.exists():
        reasons.append("executed copy missing")
    missing = [str(p) for p in job.outputs if not p.exists()]
    if missing:
        reasons.append(f"outputs missing ({', '.join(Path(m).name for m in missing)})")
    return reasons


# --------------------------------------------------------------------------- execution


def execute(job: Job, executed: Path, cwd: Path, timeout: int | None = None) -> None:
    """Run one notebook with papermill into ``executed`` (written only on success; a failed
    copy is kept beside it as ``<name>.failed.ipynb``)."""
    import papermill as pm

    assert job.notebook is not None
    executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.with_name(f".{executed.stem}.running.ipynb")
    failed = executed.with_name(f"{executed.stem}.failed.ipynb")
    failed.unlink(missing_ok=True)
    try:
        pm.execute_notebook(
            str(job.notebook), str(tmp), parameters=job.parameters, kernel_name="python3",
            cwd=str(cwd), progress_bar=sys.stderr.isatty(), execution_timeout=timeout,
        )
    except BaseException:
        if tmp.exists():
            os.replace(tmp, failed)
        raise
    coalesce_streams(tmp)
    os.replace(tmp, executed)


def coalesce_streams(notebook: Path) -> None:
    """Merge consecutive stream outputs and resolve carriage returns in place, so a
    progress bar is stored (and rendered) as its last state, not as every refresh."""
    import nbformat
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    nb = nbformat.read(notebook, as_version=4)
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    nbformat.write(nb, notebook)


def describe_failure(job: Job, exc: BaseException, failed_copy: Path) -> str:
    """A failing notebook: its name, the failing cell and the error."""
    from papermill.exceptions import PapermillExecutionError

    lines = [f"FAILED: {job.name} ({job.notebook})"]
    if isinstance(exc, PapermillExecutionError):
        source = (exc.source or "").strip().splitlines()
        lines.append(f"  cell {exc.cell_index} of the executed copy (In [{exc.exec_count}]):")
        lines += [f"    {s}" for s in source[:8]]
        if len(source) > 8:
            lines.append(f"    ... ({len(source) - 8} more lines)")
        lines.append(f"  error: {exc.ename}: {exc.evalue}")
    else:
        lines.append(f"  error: {type(exc).__name__}: {exc}")
    if failed_copy.exists():
        lines.append(f"  executed copy with the error: {failed_copy}")
    return "\n".join(lines)


#: the stylesheet nbconvert's template inlines into every page, kept once beside the reports
NOTEBOOK_CSS = "notebook.css"
_HEAD_STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.S)


def render_notebook_html(executed: Path, out: Path) -> Path:
    """nbconvert HTML of an executed notebook. The template's ~7,000 lines of CSS, the same
    for every page, go once into ``notebook.css`` beside it, which the page links."""
    from nbconvert import HTMLExporter

    with warnings.catch_warnings():  # the lib.utils.record outputs have no HTML form
        warnings.filterwarnings("ignore", message="Your element with mimetype")
        body, _ = HTMLExporter().from_filename(str(executed))
    head, sep, rest = body.partition("</head>")
    if sep:
        css = "\n".join(m.group(1).strip() for m in _HEAD_STYLE.finditer(head)) + "\n"
        stylesheet = out.parent / NOTEBOOK_CSS
        if not stylesheet.exists() or stylesheet.read_text(encoding="utf-8") != css:
            atomic_write_text(stylesheet, css)
        link = f'<link rel="stylesheet" href="{NOTEBOOK_CSS}"/>\n'
        body = _HEAD_STYLE.sub("", head) + link + sep + rest
    return atomic_write_text(out, body)


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
th {{ background: #f3f3f3; }} td:nth-child(-n+3) {{ text-align: left; }}
.stamp {{ color: #555; }}
</style></head><body>
{body}
</body></html>
"""


def render_table_html(table_dir: Path, name: str, out: Path) -> Path:
    """HTML page of a results table (stamp, table, footnotes, the plot for ``main``)."""
    table = pd.read_csv(table_dir / f"{name}.csv")
    meta_path = table_dir / f"{name}.meta.json"
    meta = _read_json(meta_path) if meta_path.exists() else {}
    stamp = Stamp(**meta) if meta else None
    parts = [f"<h1>{html.escape(TABLE_TITLES.get(name, name))}</h1>"]
    if stamp:
        parts.append(f"<p class='stamp'>{html.escape(stamp.line().replace('`', ''))}</p>")
    for col in table.columns:
        if col == "leaky":
            table[col] = table[col].astype(bool)
        elif col.startswith("n_plus"):
            table[col] = table[col].astype("Int64")
    shown = _with_marks(table, stamp.leaky_runs if stamp else ())
    shown.columns = [_headers(table).get(c, c) for c in table.columns]
    parts.append(shown.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.3f}",
                               border=0))
    if "leaky" in table and table["leaky"].any():
        parts.append(f"<p>{html.escape(LEAKY_NOTE)}</p>")
    if stamp and stamp.reference:
        parts.append(f"<p>Rows marked <i>{REFERENCE_SOURCE}</i> are the published Corel-5k "
                     "numbers (SPEC.md section 8).</p>")
    png = table_dir / f"{name}_per_class_f1.png"
    if png.exists():
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(f"<p><img alt='per-class F1' src='data:image/png;base64,{data}'></p>")
    links = [f"<a href='{os.path.relpath(table_dir / f'{name}.{ext}', out.parent)}'>{ext}</a>"
             for ext in ("csv", "md") if (table_dir / f"{name}.{ext}").exists()]
    parts.append("<p>Files: " + " · ".join(links) + "</p>")
    return atomic_write_text(out, PAGE.format(title=html.escape(name), body="\n".join(parts)))


def write_index(reports: Path, notebooks: Sequence[tuple[str, Path]], tables: Sequence[Path],
                info: dict[str, str], others: Sequence[Path] = ()) -> Path:
    """``reports/index.html`` linking every notebook report, table page and other file."""
    parts = ["<h1>Graph-based image annotation: reports</h1>",
             "<p class='stamp'>" + " · ".join(f"{html.escape(k)}: {html.escape(v)}"
                                              for k, v in info.items()) + "</p>",
             "<h2>Notebooks</h2>", "<ul>"]
    for name, page in notebooks:
        parts.append(f"<li><a href='{html.escape(os.path.relpath(page, reports))}'>"
                     f"{html.escape(name)}</a></li>")
    parts += ["</ul>", "<h2>Tables</h2>", "<ul>"]
    for page in tables:
        title = TABLE_TITLES.get(page.stem.removeprefix("table_"), page.stem)
        parts.append(f"<li><a href='{html.escape(os.path.relpath(page, reports))}'>"
                     f"{html.escape(title)}</a></li>")
    parts.append("</ul>")
    if others:
        parts += ["<h2>Other tables and files</h2>", "<ul>"]
        for path in others:
            rel = html.escape(os.path.relpath(path, reports))
            parts.append(f"<li><a href='{rel}'>{rel}</a></li>")
        parts.append("</ul>")
    return atomic_write_text(reports / "index.html",
                             PAGE.format(title="reports", body="\n".join(parts)))


def ensure_dataset(data_dir: Path, param_set: dict[str, Any], default: bool) -> None:
    """Draw the embedded scenes dataset when the default data folder is missing; any other
    missing folder is an error saying what to do."""
    if (data_dir / "train.json").exists():
        return
    synth = (param_set.get("data") or {}).get("synth")
    if default and synth is not None:
        from lib import synth as synth_module

        print(f"drawing the embedded dataset into {data_dir} ({synth or 'defaults'})", flush=True)
        synth_module.generate(data_dir, **dict(synth))
        return
    hint = ("run `make corel5k` (or see the README, 'Corel-5k')"
            if "corel" in data_dir.name.lower() else "pass DATA=<dataset folder>")
    raise ReportError(f"{data_dir}: no dataset here (train.json missing); {hint}")


def default_data_dir(param_set: dict[str, Any]) -> Path:
    """The parameter set's dataset folder (``data: name:``, default ``scenes``)."""
    name = (param_set.get("data") or {}).get("name", paths.DEFAULT_DATASET)
    return paths.dataset_dir(name)


def _matches(job: Job, selectors: Sequence[str]) -> bool:
    for s in selectors:
        s = s.removesuffix(".ipynb")
        if s in (job.name, job.stem, job.run_name) or job.name.startswith(s + "_") \
                or job.name[:2] == s:
            return True
    return False


def reproduce(
    params: str = "default",
    data: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
    notebooks_dir: str | os.PathLike | None = None,
    only: Sequence[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    timeout: int | None = None,
) -> int:
    """Run the pipeline of parameter set ``params``; returns the exit status (0 ok)."""
    if results is not None:
        os.environ["AIA_RESULTS_DIR"] = str(Path(results).resolve())
    os.environ.setdefault("MPLBACKEND", "Agg")
    # headless kernels: progress bars refresh every few seconds, not ten times a second
    os.environ.setdefault("TQDM_MININTERVAL", "5")
    results = paths.results_root()
    param_set = load_param_set(params)
    data_dir = default_data_dir(param_set) if data is None else Path(data).expanduser().resolve()
    default_data = data_dir == default_data_dir(param_set)
    folder = Path(notebooks_dir) if notebooks_dir is not None else paths.NOTEBOOKS_DIR
    notebooks = discover_notebooks(folder)
    if not notebooks:
        print(f"warning: no numbered notebooks in {folder}", file=sys.stderr)
    jobs, warnings = plan(param_set, notebooks, data_dir, results)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"parameter set {param_set['_name']} ({param_set['_path']}); dataset {data_dir}; "
          f"results {results}; {len(jobs)} jobs", flush=True)
    if not dry_run:
        ensure_dataset(data_dir, param_set, default_data)
    stamps = results / ".stamps"
    executed_dir = results / "executed"
    lib = lib_hash()
    ran: list[str] = []
    started = time.time()
    for job in jobs:
        if only and not _matches(job, only):
            print(f"not selected (--only): {job.name}", flush=True)
            continue
        executed = executed_dir / f"{job.name}.ipynb" if job.notebook else None
        components = job_components(job, data_dir, stamps, lib)
        reasons = ["--force"] if force else why_stale(
            job, components, read_stamp(stamps, job.name), executed)
        if not reasons:
            print(f"up to date: {job.name}", flush=True)
            continue
        print(f"{'would run' if dry_run else 'running'}: {job.name} ({'; '.join(reasons)})",
              flush=True)
        if dry_run:
            continue
        t0 = time.time()
        if job.notebook is None:
            try:
                build_tables(results / "runs", results / "tables", param_set["_name"],
                             job.parameters["runs"])
            except ReportError as exc:
                print(f"FAILED: tables\n  error: {exc}", file=sys.stderr)
                return 1
        else:
            assert executed is not None
            try:
                execute(job, executed, folder, timeout)
            except Exception as exc:  # noqa: BLE001 - reported with the cell, then stop
                failed = executed.with_name(f"{executed.stem}.failed.ipynb")
                print(describe_failure(job, exc, failed), file=sys.stderr, flush=True)
                return 1
        after = job_components(job, data_dir, stamps, lib)
        atomic_write_json(stamps / f"{job.name}.json", {
            "job": job.name, "hash": _total(after), "components": after,
            "parameters": job.parameters, "seconds": round(time.time() - t0, 1),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        })
        ran.append(job.name)
        print(f"done: {job.name} ({time.time() - t0:.1f} s)", flush=True)
    if dry_run:
        return 0
    write_reports(jobs, results, param_set["_name"], data_dir)
    print(f"reproduce: {len(ran)} job(s) ran, {len(jobs) - len(ran)} up to date or not selected"
          f"; {time.time() - started:.0f} s; reports in {results / 'reports' / 'index.html'}",
          flush=True)
    return 0


def write_reports(jobs: Sequence[Job], results: Path, params: str, data_dir: Path) -> Path:
    """HTML of every executed notebook (when missing or older than its copy), of the
    tables, and the index linking them."""
    reports = paths.ensure(results / "reports")
    pages: list[tuple[str, Path]] = []
    for job in jobs:
        if job.notebook is None:
            continue
        executed = results / "executed" / f"{job.name}.ipynb"
        if not executed.exists():
            continue
        page = reports / f"{job.name}.html"
        if not page.exists() or page.stat().st_mtime < executed.stat().st_mtime:
            render_notebook_html(executed, page)
            print(f"report: {page}", flush=True)
        pages.append((job.name, page))
    table_pages = []
    for name in ("main", "ablations"):
        if (results / "tables" / f"{name}.csv").exists():
            table_pages.append(render_table_html(results / "tables", name,
                                                 reports / f"table_{name}.html"))
    info = {"parameter set": params, "dataset": str(data_dir), "commit": git_commit(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    tables_dir = results / "tables"
    own = {tables_dir / f"{n}.{ext}" for n in ("main", "ablations") for ext in ("csv", "md",
                                                                              "meta.json")}
    others = sorted(p for p in tables_dir.rglob("*") if p.is_file() and p not in own
                    and p.suffix in (".csv", ".md", ".png", ".json", ".html")
                    and not p.name.startswith(".")) if tables_dir.is_dir() else []
    return write_index(reports, pages, table_pages, info, others)


def reproduce_main(argv: list[str]) -> int:
    """``python -m lib reproduce``: run every notebook of a parameter set with papermill."""
    parser = argparse.ArgumentParser(
        prog="python -m lib reproduce",
        description="Run notebooks/NN_*.ipynb in order with papermill (parameters from "
                    "params/<set>.yaml), then the tables and the HTML reports. Jobs whose "
                    "inputs did not change are skipped and reported as 'up to date'.")
    parser.add_argument("--params", default="default", help="parameter set name or YAML path")
    parser.add_argument("--data", default=None,
                        help="dataset folder (default: the set's data: name, drawn if missing)")
    parser.add_argument("--results", default=None, help="results folder (default results/)")
    parser.add_argument("--notebooks", default=None, help="notebooks folder (default notebooks/)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NOTEBOOK",
                        help="run only these jobs (notebook stem, number like 04, run name)")
    parser.add_argument("--force", action="store_true", help="rerun even up-to-date jobs")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would run and why, run nothing")
    parser.add_argument("--timeout", type=int, default=None,
                        help="per-cell timeout in seconds (default none)")
    args = parser.parse_args(argv)
    try:
        return reproduce(args.params, args.data, args.results, args.notebooks, args.only,
                         args.force, args.dry_run, args.timeout)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
