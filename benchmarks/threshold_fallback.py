"""Which threshold for labels with few validation positives? Chosen on validation only.

For every holdout run folder under the given runs folders (``val_predictions.csv`` present),
each policy (fallback ``shared`` or ``0.5``, for labels with fewer than ``min_positives``
tuning positives) is scored by **cross-validation on the validation split**: the validation
images are cut into ``--folds`` seeded folds; for each fold the per-label MCC thresholds are
tuned on the other folds under the policy and applied to the fold's images; the pooled
out-of-fold predictions give per-class F1, N+ and per-image F1. No model is re-run and the
test split is not used to choose: the policy with the best mean cross-validated per-class F1
over the runs (paired by run against the rule ``0.5`` / ``min_positives`` 1) is the
recommendation. Test metrics (thresholds tuned on the whole validation split, as training
does) are reported beside it for information only, in their own columns.

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

from provenance import provenance  # noqa: E402 - beside this script

from lib.core import paths  # noqa: E402
from lib.core.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from lib.method import metrics, thresholds
from lib.training.inference import run_dataset  # noqa: E402
from lib.training.runs import list_runs  # noqa: E402

POLICIES = [(f, k) for k in (1, 2, 3, 5) for f in ("0.5", "shared")]
FOLDS = 5
#: the rule the differences are paired against (and the training default it was measured by)
BASELINE = ("0.5", 1)


def fold_assignment(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold index of each of ``n`` images: a seeded permutation dealt round-robin."""
    folds = max(2, min(int(folds), n))
    return np.random.default_rng(seed).permutation(n) % folds


def out_of_fold_predictions(y, s, *, fallback: str, min_positives: int,
                            assignment: np.ndarray) -> tuple[np.ndarray, float]:
    """0/1 predictions where each fold's images get the thresholds tuned
    (:func:`lib.method.thresholds.tune`) on the other folds only; and the mean number of labels
    that fell back."""
    y, s = np.asarray(y), np.asarray(s, dtype=np.float64)
    pred = np.zeros(y.shape, dtype=bool)
    n_fallback = []
    for f in np.unique(assignment):
        held = assignment == f
        cut, info = thresholds.tune(y[~held], s[~held], min_positives=min_positives,
                                    fallback=fallback)
        pred[held] = s[held] >= cut
        n_fallback.append(info["n_fallback"])
    return pred, float(np.mean(n_fallback))


def cross_validated(y, s, *, fallback: str, min_positives: int, folds: int,
                    seed: int) -> dict:
    """The seven metrics of :func:`out_of_fold_predictions` against ``y``."""
    assignment = fold_assignment(len(y), folds, seed)
    pred, n_fallback = out_of_fold_predictions(y, s, fallback=fallback,
                                               min_positives=min_positives,
                                               assignment=assignment)
    out = metrics.prediction_metrics(y, pred)
    out["n_fallback"] = n_fallback
    return out


def measure(runs_dirs: list[Path], folds: int = FOLDS) -> pd.DataFrame:
    rows = []
    for runs_dir in runs_dirs:
        for run in list_runs(runs_dir):
            if run.config.get("protocol", "holdout") != "holdout" or not run.finished \
                    or not run.predictions_path("val").is_file():
                continue
            ds = run_dataset(run, check_images=False)
            labels = run.labels
            val = run.predictions("val").loc[ds.splits["val"].names, labels].to_numpy()
            y_val = ds.splits["val"].targets
            has_test = run.predictions_path("test").is_file()
            if has_test:
                test = run.predictions().loc[ds.splits["test"].names, labels].to_numpy()
                y_test = ds.splits["test"].targets
            seed = int(run.config.get("seed") or 0)
            for fallback, k in POLICIES:
                cv = cross_validated(y_val, val, fallback=fallback, min_positives=k,
                                     folds=folds, seed=seed)
                row = {"dataset": run.dataset_name, "run": run.name, "seed": seed,
                       "fallback": fallback, "min_positives": k,
                       "n_fallback": cv["n_fallback"], "labels": len(labels),
                       "per_class_f1": cv["per_class_f1"], "n_plus": cv["n_plus"],
                       "per_image_f1": cv["per_image_f1"]}
                if has_test:  # reported, never used to choose
                    cut, _ = thresholds.tune(y_val, val, min_positives=k, fallback=fallback)
                    m = metrics.evaluate_scores(y_test, test, thresholds=cut)["mcc"]
                    row.update(test_per_class_f1=m["per_class_f1"], test_n_plus=m["n_plus"])
                rows.append(row)
    return pd.DataFrame(rows)


def recommend(table: pd.DataFrame) -> dict:
    """The policy with the best cross-validated per-class F1 on validation, averaged over
    the datasets (each dataset's mean over its runs weighs the same)."""
    by_policy = table.groupby(["fallback", "min_positives"])["per_class_f1"].mean()
    fallback, k = by_policy.idxmax()
    return {"fallback": str(fallback), "min_positives": int(k),
            "cv_per_class_f1": round(float(by_policy.max()), 4),
            "criterion": "mean over datasets of the mean over runs of the cross-validated "
                         "(validation split) per-class F1 at MCC thresholds",
            "same_as_baseline": (str(fallback), int(k)) == BASELINE}


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over runs per dataset and policy, and the paired difference against the old
    behaviour (0.5 for labels without a validation positive)."""
    keys = ["dataset", "run", "seed"]
    base = frame[(frame["fallback"] == BASELINE[0]) & (frame["min_positives"] == BASELINE[1])]
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
                      runs_f1_worse=("d_f1", lambda d: int((d < -1e-12).sum())),
                      **({"test_per_class_f1": ("test_per_class_f1", "mean"),
                          "test_n_plus": ("test_n_plus", "mean")}
                         if "test_per_class_f1" in merged else {}))
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
    p.add_argument("--folds", type=int, default=FOLDS,
                   help="cross-validation folds of the validation split")
    args = p.parse_args(argv)
    frame = measure([Path(r) for r in args.runs], args.folds)
    if frame.empty:
        print("no finished holdout runs with val_predictions.csv in", args.runs)
        return 1
    table = summarize(frame)
    choice = recommend(table)
    out = Path(args.out or os.environ.get("AIA_BENCH_DIR", paths.ROOT / "results" /
                                          "benchmarks"))
    atomic_write_json(out / "threshold_fallback.json", {
        "benchmark": "fallback threshold for labels with few validation positives, chosen "
                     f"by {args.folds}-fold cross-validation on the validation split (test "
                     "metrics reported beside, not used to choose)",
        "runs_dirs": [paths.portable(r) for r in args.runs], "folds": args.folds,
        "recommendation": choice, "provenance": provenance(),
        "summary": table.replace({np.nan: None}).to_dict(orient="records"),
        "per_run": frame.to_dict(orient="records")})
    shown = table.copy()
    for col in ("per_class_f1", "per_image_f1", "d_f1", "d_f1_sd", "test_per_class_f1"):
        if col not in shown:
            continue
        fmt = "{:+.4f}" if col.startswith("d_") else "{:.4f}"
        shown[col] = shown[col].map(fmt.format)
    text = ("# Threshold fallback for labels with few validation positives\n\n"
            f"Chosen on validation only: {args.folds}-fold cross-validation of each run's saved "
            "validation scores (thresholds tuned on the other folds, applied to the held-out "
            "fold). `per_class_f1`, `n_plus`, `per_image_f1` and `d_*` (the paired difference "
            "against 0.5 for labels without a tuning positive) are cross-validated validation "
            "numbers, averaged over runs; `test_*` are test numbers, for information only.\n\n"
            + _markdown(shown)
            + f"\nRecommendation (best mean cross-validated per-class F1): fallback "
              f"`{choice['fallback']}`, min_positives {choice['min_positives']}"
              + (" (the current default)." if choice["same_as_baseline"] else
                 " -- NOT the current default (0.5, 1).") + "\n")
    atomic_write_text(out / "threshold_fallback.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
