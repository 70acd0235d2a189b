"""Which threshold for labels with few validation positives? Measured on finished runs.

For every holdout run folder under the given runs folders (``val_predictions.csv`` and
``predictions.csv`` present), the per-label MCC thresholds are re-tuned from the saved
validation scores under each policy (fallback ``shared`` or ``0.5``, for labels with fewer
than ``min_positives`` validation positives) and the test split is scored with them: per-class
F1, N+ and per-image F1. No model is re-run; the choice is made on validation-tuned
thresholds and reported on test, so it is a measurement to choose a default by, across
datasets, not a per-dataset tuning.

Usage::

    python benchmarks/threshold_fallback.py RUNS_DIR [RUNS_DIR ...] [--out DIR]

Writes ``threshold_fallback.json`` and ``.md`` to ``--out`` (default ``$AIA_BENCH_DIR`` or
``results/benchmarks``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib import metrics, paths, thresholds  # noqa: E402
from lib.inference import run_dataset  # noqa: E402
from lib.runs import list_runs  # noqa: E402
from lib.utils import atomic_write_json, atomic_write_text  # noqa: E402

POLICIES = [(f, k) for k in (1, 2, 3, 5) for f in ("0.5", "shared")]


def measure(runs_dirs: list[Path]) -> pd.DataFrame:
    rows = []
    for runs_dir in runs_dirs:
        for run in list_runs(runs_dir):
            if run.config.get("protocol", "holdout") != "holdout" or not run.finished \
                    or not run.predictions_path("val").is_file():
                continue
            ds = run_dataset(run, check_images=False)
            labels = run.labels
            val = run.predictions("val").loc[ds.splits["val"].names, labels].to_numpy()
            test = run.predictions().loc[ds.splits["test"].names, labels].to_numpy()
            y_val, y_test = ds.splits["val"].targets, ds.splits["test"].targets
            for fallback, k in POLICIES:
                cut, info = thresholds.tune(y_val, val, min_positives=k, fallback=fallback)
                m = metrics.evaluate_scores(y_test, test, thresholds=cut)["mcc"]
                rows.append({"dataset": run.dataset_name, "run": run.name,
                             "seed": run.config.get("seed"), "fallback": fallback,
                             "min_positives": k, "n_fallback": info["n_fallback"],
                             "labels": len(labels), "per_class_f1": m["per_class_f1"],
                             "n_plus": m["n_plus"], "per_image_f1": m["per_image_f1"]})
    return pd.DataFrame(rows)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over runs per dataset and policy, and the paired difference against the old
    behaviour (0.5 for labels without a validation positive)."""
    keys = ["dataset", "run", "seed"]
    base = frame[(frame["fallback"] == "0.5") & (frame["min_positives"] == 1)]
    merged = frame.merge(base[keys + ["per_class_f1", "n_plus"]], on=keys,
                         suffixes=("", "_old"))
    merged["d_f1"] = merged["per_class_f1"] - merged["per_class_f1_old"]
    merged["d_n_plus"] = merged["n_plus"] - merged["n_plus_old"]
    grouped = merged.groupby(["dataset", "fallback", "min_positives"])
    out = grouped.agg(runs=("run", "size"), n_fallback=("n_fallback", "mean"),
                      per_class_f1=("per_class_f1", "mean"), n_plus=("n_plus", "mean"),
                      per_image_f1=("per_image_f1", "mean"), d_f1=("d_f1", "mean"),
                      d_f1_sd=("d_f1", "std"), d_n_plus=("d_n_plus", "mean"),
                      runs_f1_better=("d_f1", lambda d: int((d > 1e-12).sum())),
                      runs_f1_worse=("d_f1", lambda d: int((d < -1e-12).sum())))
    return out.reset_index()


def _markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="runs folders (results/<params>/runs)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    frame = measure([Path(r) for r in args.runs])
    if frame.empty:
        print("no finished holdout runs with val_predictions.csv in", args.runs)
        return 1
    table = summarize(frame)
    out = Path(args.out or os.environ.get("AIA_BENCH_DIR", paths.ROOT / "results" /
                                          "benchmarks"))
    atomic_write_json(out / "threshold_fallback.json", {
        "benchmark": "fallback threshold for labels with few validation positives: test "
                     "metrics with MCC thresholds re-tuned from saved validation scores",
        "runs_dirs": [paths.portable(r) for r in args.runs],
        "summary": table.replace({np.nan: None}).to_dict(orient="records"),
        "per_run": frame.to_dict(orient="records")})
    shown = table.copy()
    for col in ("per_class_f1", "per_image_f1", "d_f1", "d_f1_sd"):
        fmt = "{:+.4f}" if col.startswith("d_") else "{:.4f}"
        shown[col] = shown[col].map(fmt.format)
    text = ("# Threshold fallback for labels with few validation positives\n\n"
            "Test metrics with per-label MCC thresholds re-tuned from each run's saved "
            "validation scores; `d_*` is the paired difference against the old rule (0.5 for "
            "labels without a validation positive), averaged over runs.\n\n"
            + _markdown(shown))
    atomic_write_text(out / "threshold_fallback.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
