"""The results tables, built from run folders alone (``python -m lib tables``).

- **main**: every candidate head (CNN only, GCN, new GCN variants) x loss on its baseline
  settings, test split, at threshold 0.5, with the MCC thresholds, as the plain top-3
  (``top-3``: always three labels) and as ML-GCN's top-3 (``top-3 (ML-GCN)``: of the three
  best-scored labels those scored above 0.5, what ML-GCN computes): the mean and sample
  standard deviation over seeds of each metric (``<metric>_mean``, ``<metric>_std``,
  ``n_seeds``). The published Corel-5k numbers (docs/method.md, "Numbers to beat") are added
  for real Corel-5k only: 260 labels and no stand-in images.
- **ablations**: each :class:`lib.analysis.comparisons.Comparison` with the paired (same-seed)
  difference of the key metrics, its spread and 95 % t-interval, and whether it is
  distinguishable from zero (:mod:`lib.analysis.seedstats`).

Each table is written as CSV, ``<table>.meta.json`` (provenance), stamped Markdown, and for
``main`` a bar chart. Runs selected on the test split (``leaky``) are marked with a dagger;
stand-in runs with a note. ``--readme`` writes the tables and one sentence per comparison
between the README's results markers. Paths written for people are portable.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from lib.analysis import comparisons, seedstats
from lib.analysis.comparisons import Comparison, Configuration
from lib.core import paths
from lib.core.errors import AIAError
from lib.core.fileio import atomic_save, atomic_write_json, atomic_write_text
from lib.core.provenance import git_commit
from lib.training.runs import METRIC_BLOCKS, METRIC_KEYS, RunError, RunFolder, list_runs

log = logging.getLogger(__name__)

#: metric blocks of metrics.json the tables show, with their display names: the ablations
#: compare thresholded predictions (0.5, MCC); the main table adds the plain top-3 (always
#: three labels) and ML-GCN's top-3 (of the top three, those scored above 0.5)
TABLE_BLOCKS = {"at_0.5": "0.5", "mcc": "MCC"}
MAIN_BLOCKS = {**TABLE_BLOCKS, "top3": "top-3", "top3_mlgcn": "top-3 (ML-GCN)"}
assert set(MAIN_BLOCKS) <= {*METRIC_BLOCKS, "top3_mlgcn"}
MAIN_METRICS = (*METRIC_KEYS, "mAP")
ABLATION_METRICS = ("per_class_f1", "per_image_f1", "n_plus", "mAP")
SHORT_NAMES = {
    "per_class_precision": "P (class)", "per_class_recall": "R (class)",
    "per_class_f1": "F1 (class)", "per_image_precision": "P (image)",
    "per_image_recall": "R (image)", "per_image_f1": "F1 (image)", "n_plus": "N+",
    "mAP": "mAP",
}
TITLES = {
    "main": "Main results: loss x head (test split, mean ± sd over seeds)",
    "ablations": "Ablations: paired differences against the matching configuration "
                 "(test split)",
}
LEAKY_MARK = "\u2020"
LEAKY_NOTE = (f"{LEAKY_MARK} leaky: the model or its epoch was selected on the test split "
              "(the reference protocol, and the published reference numbers), so its test "
              "numbers are optimistic.")
STANDIN_NOTE = "stand-in data: not comparable with published Corel-5k numbers."
COREL5K_LABELS = 260
PUBLISHED = "published"
PUBLISHED_NOTE = (f"Rows marked `{PUBLISHED}` are the published Corel-5k numbers "
                  '(docs/method.md, "Numbers to beat"), not runs of this repository.')
#: docs/method.md, "Numbers to beat": Corel-5k, 4,500 training images, test split
PUBLISHED_ROWS: list[dict[str, Any]] = [
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
NO_BASELINE = "no baseline run"


class TableError(AIAError):
    """Bad input to the tables; the message names the file or folder and the problem."""


# --------------------------------------------------------------------------- values


def metric_values(run: RunFolder, block: str) -> dict[str, float]:
    """The table metrics of one finished run in one block of its metrics.json."""
    m = run.metrics()
    return {**{k: float(m[block][k]) for k in METRIC_KEYS},
            "mAP": float(m["mean_average_precision"])}


def _values(conf: Configuration, seeds: Sequence[int], block: str) -> dict[str, list[float]]:
    per_seed = [metric_values(conf.runs[s], block) for s in seeds]
    return {k: [v[k] for v in per_seed] for k in MAIN_METRICS}


def _seeds_text(seeds: Iterable[int]) -> str:
    return " ".join(str(s) for s in seeds)


def is_corel5k(confs: Sequence[Configuration]) -> bool:
    """Real Corel-5k: every configuration has 260 labels and none is a stand-in."""
    return bool(confs) and all(c.num_labels == COREL5K_LABELS and not c.standin
                               for c in confs)


def _order(conf: Configuration) -> tuple:
    from lib.method.losses import LOSSES  # lazy import (torch: only when a table is built)

    heads, losses = comparisons.head_order(), tuple(LOSSES)
    return (losses.index(conf.loss) if conf.loss in losses else len(losses), conf.loss,
            heads.index(conf.head) if conf.head in heads else len(heads), conf.head, conf.name)


def main_table(confs: Sequence[Configuration], reference: bool | None = None) -> pd.DataFrame:
    """Mean and sample sd over the finished seeds of every main-table configuration, per
    thresholds block; published rows appended when ``reference`` (default: real Corel-5k)."""
    rows = []
    for conf in sorted((c for c in confs if comparisons.is_main(c)), key=_order):
        seeds = list(conf.evaluated)
        if not seeds:
            continue
        for block, shown in MAIN_BLOCKS.items():
            if block not in TABLE_BLOCKS and not all(block in conf.runs[s].metrics()
                                                     for s in seeds):
                continue        # a run folder written before the block existed
            row = {"source": "ours", "run": conf.name, "dataset": conf.dataset_name,
                   "loss": conf.loss, "head": conf.head, "thresholds": shown,
                   "n_seeds": len(seeds), "seeds": _seeds_text(seeds)}
            for key, values in _values(conf, seeds, block).items():
                row[f"{key}_mean"], row[f"{key}_std"], _ = seedstats.mean_std(values)
            rows.append({**row, "leaky": conf.leaky, "standin": conf.standin})
    if reference is None:
        reference = is_corel5k(confs)
    if reference:
        for ref in PUBLISHED_ROWS:
            rows.append({"source": PUBLISHED, "dataset": "corel5k", "leaky": True,
                         "standin": False, **{k: v for k, v in ref.items()
                                              if k not in MAIN_METRICS},
                         **{f"{k}_mean": ref[k] for k in MAIN_METRICS if k in ref}})
    columns = ["source", "run", "dataset", "loss", "head", "thresholds", "n_seeds", "seeds",
               *(f"{k}_{s}" for k in MAIN_METRICS for s in ("mean", "std")), "leaky", "standin"]
    table = pd.DataFrame(rows, columns=columns)
    table["n_seeds"] = table["n_seeds"].astype("Int64")
    for col in ("leaky", "standin"):
        table[col] = table[col].astype(bool)
    return table


def ablation_table(comps: Sequence[Comparison]) -> pd.DataFrame:
    """One row per comparison and thresholds block: the run's and the baseline's mean and sd
    over the paired seeds, and the paired difference with its t-interval and claim."""
    rows = []
    for comp in comps:
        run, base = comp.run, comp.baseline
        seeds = comp.paired_seeds if base is not None else list(run.evaluated)
        if not run.evaluated:
            continue
        for block, shown in TABLE_BLOCKS.items():
            row: dict[str, Any] = {
                "ablation": comp.what, "run": run.name,
                "baseline": base.name if base is not None else None, "loss": run.loss,
                "thresholds": shown, "n_seeds": len(seeds), "seeds": _seeds_text(seeds),
                "augmentation": run.augmentation()}
            ours = _values(run, seeds, block)
            theirs = _values(base, seeds, block) if base is not None else None
            for key in ABLATION_METRICS:
                row[f"{key}_mean"], row[f"{key}_std"], _ = seedstats.mean_std(ours[key])
                if theirs is None:
                    row.update({f"{key}_delta_claim": NO_BASELINE})
                    continue
                row[f"{key}_baseline_mean"], row[f"{key}_baseline_std"], _ = \
                    seedstats.mean_std(theirs[key])
                diff = seedstats.paired_difference(ours[key], theirs[key])
                row.update({f"{key}_delta_mean": diff.mean, f"{key}_delta_std": diff.std,
                            f"{key}_delta_low": diff.low, f"{key}_delta_high": diff.high,
                            f"{key}_delta_claim": diff.claim})
            row["leaky"] = run.leaky or (base is not None and base.leaky)
            row["standin"] = run.standin or (base is not None and base.standin)
            rows.append(row)
    columns = ["ablation", "run", "baseline", "loss", "thresholds", "n_seeds", "seeds",
               "augmentation"]
    for key in ABLATION_METRICS:
        columns += [f"{key}_{s}" for s in ("mean", "std", "baseline_mean", "baseline_std",
                                           "delta_mean", "delta_std", "delta_low",
                                           "delta_high", "delta_claim")]
    table = pd.DataFrame(rows, columns=[*columns, "leaky", "standin"])
    table["n_seeds"] = table["n_seeds"].astype("Int64")
    for col in ("leaky", "standin"):
        table[col] = table[col].astype(bool)
    return table


# --------------------------------------------------------------------------- display


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def format_metric(key: str, mean: Any, std: Any) -> str:
    """A table cell: ``0.512 ± 0.011`` (N+ with one decimal, or whole with one seed)."""
    mean, std = _num(mean), _num(std)
    if key.startswith("n_plus") and math.isfinite(mean) and not math.isfinite(std) \
            and mean.is_integer():
        return str(int(mean))
    return seedstats.format_mean_std(mean, std, 1 if key.startswith("n_plus") else 3)


def _difference(row: pd.Series, key: str) -> seedstats.PairedDifference:
    return seedstats.PairedDifference(
        _num(row.get(f"{key}_delta_mean")), _num(row.get(f"{key}_delta_std")),
        int(row["n_seeds"]) if pd.notna(row.get(f"{key}_delta_mean")) else 0,
        _num(row.get(f"{key}_delta_low")), _num(row.get(f"{key}_delta_high")))


def format_delta(row: pd.Series, key: str) -> str:
    if str(row.get(f"{key}_delta_claim")) == NO_BASELINE:
        return NO_BASELINE
    diff = _difference(row, key)
    digits = 1 if key == "n_plus" else 3
    return seedstats.format_difference(diff, digits)


def _marked(name: Any, leaky: bool) -> str:
    if not isinstance(name, str):
        return ""
    return f"{name}{LEAKY_MARK}" if leaky else name


def display_table(name: str, table: pd.DataFrame, leaky_runs: Iterable[str] = ()) -> pd.DataFrame:
    """The table as people read it (strings, ``mean ± sd``, marks), from its CSV frame."""
    leaky = set(leaky_runs)
    rows = []
    for _, row in table.iterrows():
        if name == "main":
            out = {}
            if (table["source"] != "ours").any():
                out["source"] = row["source"]
            out["run"] = _marked(row["run"], row["run"] in leaky or (
                row["source"] != "ours" and bool(row["leaky"])))
            out.update({"loss": row["loss"] if isinstance(row["loss"], str) else "",
                        "head": comparisons.head_name(row["head"])
                        if isinstance(row["head"], str) else "",
                        "thresholds": row["thresholds"] if isinstance(row["thresholds"], str)
                        else "", "seeds": "" if pd.isna(row["n_seeds"]) else
                        str(int(row["n_seeds"]))})
            for key in MAIN_METRICS:
                out[SHORT_NAMES[key]] = format_metric(key, row[f"{key}_mean"], row[f"{key}_std"])
        else:
            out = {"ablation": row["ablation"] + (f" ({row['augmentation']})"
                                                  if isinstance(row["augmentation"], str) else ""),
                   "run": _marked(row["run"], row["run"] in leaky),
                   "baseline": _marked(row["baseline"], row["baseline"] in leaky),
                   "loss": row["loss"], "thresholds": row["thresholds"],
                   "seeds": str(int(row["n_seeds"]))}
            out["F1 (class)"] = format_metric("per_class_f1", row["per_class_f1_mean"],
                                              row["per_class_f1_std"])
            out["F1 (class) base"] = format_metric(
                "per_class_f1", row["per_class_f1_baseline_mean"], row["per_class_f1_baseline_std"])
            for key in ABLATION_METRICS:
                out[f"\u0394 {SHORT_NAMES[key]}"] = format_delta(row, key)
        rows.append(out)
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub Markdown table of strings (``|`` escaped)."""
    names = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class Stamp:
    """Provenance written with every table (``<table>.meta.json``)."""

    table: str
    dataset: str
    params: str
    commit: str
    date: str
    runs: list[str] = field(default_factory=list)
    leaky_runs: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    reference: bool = False
    standin: bool = False

    def line(self) -> str:
        return (f"dataset `{self.dataset}` · parameter set `{self.params}` · "
                f"seeds {_seeds_text(self.seeds) or 'none'} · commit `{self.commit}` · "
                f"{self.date}")

    @classmethod
    def read(cls, path: Path) -> Stamp | None:
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise TableError(f"{paths.portable(path)}: not a table stamp ({exc})") from None


def caption(stamp: Stamp, table: pd.DataFrame) -> list[str]:
    """The sentences under a table's title: the rule, and the notes that apply."""
    rule = seedstats.SPREAD if stamp.table == "main" else seedstats.RULE
    notes = [rule[0].upper() + rule[1:] + "."]
    if "leaky" in table and table["leaky"].astype(bool).any():
        notes.append(LEAKY_NOTE)
    if stamp.standin:
        notes.append(f"{STANDIN_NOTE[0].upper()}{STANDIN_NOTE[1:]}")
    if stamp.reference:
        notes.append(PUBLISHED_NOTE)
    return notes


def table_markdown(table: pd.DataFrame, stamp: Stamp, level: int = 3) -> str:
    """The stamped Markdown block of one table (title, stamp line, caption, table)."""
    meta = json.dumps(asdict(stamp), sort_keys=True)
    parts = [f"<!-- aia-table {meta} -->", f"{'#' * level} {TITLES[stamp.table]}", "",
             stamp.line(), "", *[f"{n}\n" for n in caption(stamp, table)]]
    if table.empty:
        parts.append("_No runs for this table._")
    else:
        parts.append(markdown_table(display_table(stamp.table, table, stamp.leaky_runs)))
    return "\n".join(parts).rstrip() + "\n"


def write_table(table: pd.DataFrame, out_dir: Path, stamp: Stamp) -> list[Path]:
    """``<name>.csv``, ``<name>.meta.json`` and ``<name>.md``, each written atomically."""
    name = stamp.table
    return [atomic_save(out_dir / f"{name}.csv", lambda p: table.to_csv(p, index=False)),
            atomic_write_json(out_dir / f"{name}.meta.json", asdict(stamp)),
            atomic_write_text(out_dir / f"{name}.md", table_markdown(table, stamp))]


def read_table(tables_dir: Path, name: str) -> tuple[pd.DataFrame, Stamp | None]:
    path = tables_dir / f"{name}.csv"
    if not path.is_file():
        raise TableError(f"{paths.portable(path)}: missing; run `python -m lib tables` first")
    table = pd.read_csv(path)
    for col in ("leaky", "standin"):
        if col in table:
            table[col] = table[col].astype(bool)
    return table, Stamp.read(tables_dir / f"{name}.meta.json")


# --------------------------------------------------------------------------- building


def select_runs(runs_dir: Path, run_names: Sequence[str] | None) -> list[Configuration]:
    """The configurations under ``runs_dir`` (all, or ``run_names``; a listed name without a
    folder is an error)."""
    if not runs_dir.is_dir():
        raise TableError(f"{paths.portable(runs_dir)}: no runs folder")
    try:
        confs = comparisons.configurations(list_runs(runs_dir))
    except (RunError, comparisons.ComparisonError) as exc:
        raise TableError(str(exc)) from None
    if run_names is not None:
        by_name = {c.name: c for c in confs}
        missing = [r for r in run_names if r not in by_name]
        if missing:
            raise TableError(f"{paths.portable(runs_dir)}: no run folder for {missing}")
        confs = [by_name[r] for r in run_names]
    for conf in confs:
        unfinished = [s for s in conf.seeds if s not in conf.evaluated]
        if unfinished:
            log.warning("tables: %s seeds %s have no metrics.json yet (left out)", conf.name,
                        unfinished)
    return confs


def build_tables(runs_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 run_names: Sequence[str] | None = None, label: str = "(run folders)"
                 ) -> dict[str, Any]:
    """Build the main and ablation tables (CSV, Markdown, meta) from run folders alone.
    ``run_names`` restricts the configurations; ``label`` names where they came from in the
    stamps (a parameter set's name). Returns ``{"main": frame, "ablations": frame, "files":
    [...]}``; the main-table chart is drawn by :func:`lib.pipeline.results.build_tables`."""
    runs_dir = Path(runs_dir)
    out_dir = paths.ensure(Path(out_dir))
    confs = select_runs(runs_dir, run_names)
    reference = is_corel5k(confs)
    comps = comparisons.comparisons(confs)
    tables = {"main": main_table(confs, reference), "ablations": ablation_table(comps)}
    commit, date = git_commit(), datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    by_name = {c.name: c for c in confs}
    files: list[Path] = []
    for name, table in tables.items():
        ours = table[table["source"] == "ours"] if "source" in table else table
        used = sorted({r for col in ("run", "baseline") if col in ours
                       for r in ours[col] if isinstance(r, str)})
        stamp = Stamp(
            name, ", ".join(sorted({by_name[r].dataset_name for r in used})) or "none", label,
            commit, date, used, [r for r in used if by_name[r].leaky],
            sorted({s for r in used for s in by_name[r].evaluated}),
            reference and name == "main", any(by_name[r].standin for r in used))
        files += write_table(table, out_dir, stamp)
    return {**tables, "files": files}


# --------------------------------------------------------------------------- README


def summary_sentences(ablations: pd.DataFrame) -> list[str]:
    """One sentence per comparison: the paired difference of per-class F1 at both
    thresholds, the number of seeds and whether it is distinguishable from zero."""
    out = []
    for (what, run), rows in ablations.groupby(["ablation", "run"], sort=False):
        first = rows.iloc[0]
        head = what[0].upper() + what[1:]
        if isinstance(first["augmentation"], str):
            head += f", {first['augmentation']} augmented"
        if not isinstance(first["baseline"], str):
            out.append(f"{head} (`{run}`): no matching baseline run.")
            continue
        parts = []
        for _, row in rows.iterrows():
            diff = _difference(row, "per_class_f1")
            where = {"0.5": "at threshold 0.5", "MCC": "with MCC thresholds"}[row["thresholds"]]
            claim = (seedstats.NO_CLAIM if diff.n == 1 else
                     f"{diff.n} seeds; {diff.claim}" if diff.n else seedstats.NO_PAIR)
            number = seedstats.format_mean_std(diff.mean, diff.std, signed=True)
            parts.append(f"by {number} {where} ({claim})" if diff.n else f"{where}: {claim}")
        out.append(f"{head} (`{run}` against `{first['baseline']}`) changes per-class F1 "
                   + " and ".join(parts) + ".")
    return out


def thresholded_rows(main: pd.DataFrame) -> pd.DataFrame:
    """The rows of the main table at threshold 0.5 and with MCC thresholds (and the published
    rows): what the README and the index show at a glance."""
    keep = main["thresholds"].isin(TABLE_BLOCKS.values()) | (main["source"] != "ours")
    return main[keep].reset_index(drop=True)


def update_readme(readme: str | os.PathLike, tables_dir: str | os.PathLike | None = None) -> Path:
    """Write the summary sentences, the main and ablation tables and the plot between the
    README's results markers."""
    readme = Path(readme)
    tables_dir = Path(tables_dir) if tables_dir is not None else paths.tables_dir()
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise TableError(f"{paths.portable(readme)}: markers {README_START} / {README_END} "
                         "not found")
    ablations, _ = read_table(tables_dir, "ablations")
    blocks = [seedstats.RULE[0].upper() + seedstats.RULE[1:] + ".", ""]
    blocks += [f"- {s}" for s in summary_sentences(ablations)] or ["_No comparisons yet._"]
    for name in ("main", "ablations"):
        if name == "main":   # the thresholded rows; the top-3 rows are in the tables folder
            main, stamp = read_table(tables_dir, "main")
            md = table_markdown(thresholded_rows(main), stamp, level=4) if stamp else \
                (tables_dir / "main.md").read_text(encoding="utf-8")
            md += (f"\nThe top-3 rows (plain and ML-GCN's) are in "
                   f"`{paths.portable(tables_dir / 'main.md')}`.\n")
        else:
            md = (tables_dir / f"{name}.md").read_text(encoding="utf-8")
        blocks += ["", re.sub(r"^### ", "#### ", md, flags=re.M).strip()]
    png = tables_dir / "main_per_class_f1.png"
    if png.is_file():
        rel = Path(os.path.relpath(png.resolve(), readme.resolve().parent)).as_posix()
        blocks += ["", f"![per-class F1 by loss and head]({rel})"]
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    body = "\n" + "\n".join(blocks).strip() + "\n"
    return atomic_write_text(readme, head + README_START + body + README_END + tail)
