"""Where the label graph helps: per-label F1 gain of the GCN head over the CNN-only head.

For every pair of configurations that differ only in the head (GCN against CNN only, same
loss and settings: :func:`lib.analysis.comparisons.head_pairs`) and every seed both trained, the F1
of each label on the test split (from each run's ``predictions.csv``, at its MCC thresholds
from ``thresholds.json`` or at 0.5) gives a per-label gain ``F1_gcn - F1_linear``. Labels
with no positive test image have no F1 and are left out.

The gain is then summarised by two properties of a label, both from the annotations of
``train.json`` (all of it, whatever validation split a run carved, so that every seed sees
the same buckets):

- **training frequency**: images with the label; buckets ``rare`` / ``medium`` /
  ``frequent`` are the terciles of the labels ranked by it (ties in vocabulary order);
- **co-occurrence strength**: how strongly the label implies others in the label graph,
  ``max_j P(j|i)`` over the other labels j (:func:`lib.method.graph.conditional_probability`;
  ``sum_j P(j|i)`` is reported too); buckets ``weak`` / ``medium`` / ``strong`` likewise.

A bucket's gain for one seed is the mean gain over its labels; the summary gives the mean
and sample standard deviation of that over seeds, and the 95 % t-interval test of
:mod:`lib.analysis.seedstats` (docs/method.md, "Statistics over seeds").
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.analysis import comparisons, seedstats
from lib.analysis.comparisons import Comparison
from lib.core import paths
from lib.core.errors import AIAError
from lib.data import datasets
from lib.method import graph, metrics
from lib.training.runs import RunError, RunFolder, list_runs

log = logging.getLogger(__name__)

FREQUENCY_BUCKETS = ("rare", "medium", "frequent")
COOCCURRENCE_BUCKETS = ("weak", "medium", "strong")
SETTINGS = {"mcc": "MCC thresholds", "at_0.5": "threshold 0.5"}
BY = {"frequency": ("frequency_bucket", FREQUENCY_BUCKETS),
      "cooccurrence": ("cooccurrence_bucket", COOCCURRENCE_BUCKETS)}


class GraphGainError(AIAError):
    """Runs that cannot be compared label by label; names the runs."""


def terciles(values: np.ndarray, names: tuple[str, str, str]) -> pd.Categorical:
    """Each value's tercile among ``values`` ranked ascending (ties in their order)."""
    ranks = pd.Series(values).rank(method="first").to_numpy()
    return pd.Categorical(pd.qcut(ranks, 3, labels=list(names)), categories=list(names),
                          ordered=True)


def label_statistics(dataset_root: str | os.PathLike) -> pd.DataFrame:
    """One row per label of a dataset: training images, ``max_j P(j|i)`` and
    ``sum_j P(j|i)`` over the other labels, and the tercile buckets of both."""
    ds = datasets.load_dataset(dataset_root, check_images=False, val_fraction=0.0)
    train = ds.splits["train"].targets
    prob = graph.conditional_probability(train)
    np.fill_diagonal(prob, 0.0)
    table = pd.DataFrame({"label": ds.labels, "train_images": graph.label_counts(train),
                          "cooccurrence_max": prob.max(axis=1),
                          "cooccurrence_sum": prob.sum(axis=1)})
    table["frequency_bucket"] = terciles(table["train_images"].to_numpy(), FREQUENCY_BUCKETS)
    table["cooccurrence_bucket"] = terciles(table["cooccurrence_max"].to_numpy(),
                                            COOCCURRENCE_BUCKETS)
    return table


def per_label_f1(run: RunFolder, names: list[str], targets: np.ndarray,
                 setting: str = "mcc") -> np.ndarray:
    """F1 of every label of ``run`` on the test images ``names`` (truth ``targets``), at the
    run's MCC thresholds (``setting="mcc"``) or at 0.5 (``"at_0.5"``)."""
    if setting not in SETTINGS:
        raise ValueError(f"setting {setting!r}: expected one of {list(SETTINGS)}")
    scores = run.predictions("test")
    missing = sorted(set(names) - set(scores.index))
    if missing:
        raise RunError(f"{paths.portable(run.predictions_path('test'))}: {len(missing)} test "
                       f"images missing, e.g. {missing[:5]}")
    threshold = run.thresholds() if setting == "mcc" else 0.5
    predicted = scores.loc[names].to_numpy() >= threshold
    return metrics.per_label_metrics(targets, predicted)["f1"]


def pair_gains(pair: Comparison, setting: str = "mcc") -> pd.DataFrame:
    """Long table of one pair: ``label``, ``seed``, ``f1``, ``f1_baseline``, ``gain`` for
    every label with a positive test image and every seed both sides finished."""
    assert pair.baseline is not None
    run, base = pair.run.first, pair.baseline.first
    if run.labels != base.labels or run.dataset != base.dataset:
        raise GraphGainError(f"{pair.run.name} and {pair.baseline.name} were not trained on "
                             "the same dataset and vocabulary")
    test = datasets.load_dataset(run.dataset, check_images=False).splits["test"]
    present = test.targets.any(axis=0)
    rows = []
    for seed in pair.paired_seeds:
        ours = per_label_f1(pair.run.runs[seed], test.names, test.targets, setting)
        theirs = per_label_f1(pair.baseline.runs[seed], test.names, test.targets, setting)
        rows.append(pd.DataFrame({"label": np.asarray(run.labels)[present], "seed": seed,
                                  "f1": ours[present], "f1_baseline": theirs[present]}))
    if not rows:
        return pd.DataFrame(columns=["label", "seed", "f1", "f1_baseline", "gain"])
    out = pd.concat(rows, ignore_index=True)
    out["gain"] = out["f1"] - out["f1_baseline"]
    return out


def per_label_summary(gains: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """Per label: mean and sample sd of the gain over seeds, with the label statistics."""
    agg = gains.groupby("label", sort=False)["gain"].agg(
        gain_mean="mean", gain_std=lambda g: g.std(ddof=1) if len(g) > 1 else np.nan,
        n_seeds="count").reset_index()
    return stats.merge(agg, on="label", how="inner")


def bucket_summary(gains: pd.DataFrame, stats: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per bucket of ``by`` (``frequency`` or ``cooccurrence``): labels in it, the mean over
    seeds of the bucket's mean gain, its sample sd over seeds, the 95 % t-interval and
    whether the gain is distinguishable from zero."""
    column, names = BY[by]
    merged = gains.merge(stats[["label", column]], on="label")
    per_seed = merged.groupby([column, "seed"], observed=True).agg(
        gain=("gain", "mean"), f1=("f1", "mean"), f1_baseline=("f1_baseline", "mean"))
    analysed = stats["label"].isin(set(gains["label"]))
    rows = []
    for bucket in names:
        part = per_seed.loc[bucket] if bucket in per_seed.index.get_level_values(0) else None
        n_labels = int((analysed & (stats[column] == bucket)).sum())
        if part is None or part.empty:
            rows.append({"bucket": bucket, "n_labels": n_labels, "n_seeds": 0})
            continue
        diff = seedstats.paired_difference(part["f1"].to_numpy(), part["f1_baseline"].to_numpy())
        rows.append({"bucket": bucket, "n_labels": n_labels, "n_seeds": diff.n,
                     "gain_mean": diff.mean, "gain_std": diff.std, "gain_low": diff.low,
                     "gain_high": diff.high, "claim": diff.claim})
    return pd.DataFrame(rows, columns=["bucket", "n_labels", "n_seeds", "gain_mean", "gain_std",
                                       "gain_low", "gain_high", "claim"])


@dataclass
class GraphGain:
    """The analysis of one GCN / CNN-only pair."""

    pair: str                     #: "gcn-asl against linear-asl"
    loss: str
    seeds: list[int]
    per_label: pd.DataFrame       #: :func:`per_label_summary`
    by_frequency: pd.DataFrame    #: :func:`bucket_summary` by training frequency
    by_cooccurrence: pd.DataFrame


def analyse(runs_dir: str | os.PathLike | None = None, setting: str = "mcc",
            loss: str | None = None, head: str = "gcn",
            baseline: str = "linear") -> list[GraphGain]:
    """The analysis of every ``head`` / ``baseline`` pair under ``runs_dir`` (default the
    results folder's runs), or of the pairs with loss ``loss``."""
    runs_dir = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    confs = comparisons.configurations(list_runs(runs_dir))
    pairs = [p for p in comparisons.head_pairs(confs, head, baseline)
             if loss is None or p.run.loss == loss]
    if not pairs:
        raise GraphGainError(f"{paths.portable(runs_dir)}: no {head} configuration with a "
                             f"matching {baseline} one" + (f" (loss {loss})" if loss else "")
                             + f"; train both with notebook 04 (e.g. run_name='gcn-asl', and "
                             f"run_name='{baseline}-asl' with overrides={{'head': "
                             f"'{baseline}'}}) into this folder")
    out = []
    for pair in pairs:
        if not pair.paired_seeds:
            log.warning("%s against %s: no seed finished on both sides (skipped)",
                        pair.run.name, pair.baseline.name)
            continue
        stats = label_statistics(pair.run.first.dataset)
        gains = pair_gains(pair, setting)
        out.append(GraphGain(f"{pair.run.name} against {pair.baseline.name}", pair.run.loss,
                             pair.paired_seeds, per_label_summary(gains, stats),
                             bucket_summary(gains, stats, "frequency"),
                             bucket_summary(gains, stats, "cooccurrence")))
    return out


def summary_records(result: GraphGain) -> dict[str, Any]:
    """The numbers a notebook records for one pair: mean gain per bucket."""
    out: dict[str, Any] = {"seeds": result.seeds}
    for by, table in (("frequency", result.by_frequency), ("cooccurrence",
                                                           result.by_cooccurrence)):
        for _, row in table.iterrows():
            out[f"{by}.{row['bucket']}"] = None if pd.isna(row["gain_mean"]) \
                else float(row["gain_mean"])
    return out
