"""Plots and tables of a training run (history.csv, metrics.json)."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from lib.plots import integer_epochs, legend_outside
from lib.training.runs import METRIC_BLOCKS, RunFolder

#: validation metrics drawn per epoch (history.csv columns without the split prefix)
CURVE_METRICS = {"mean_average_precision": "mAP", "per_class_f1": "per-class F1 @0.5",
                 "per_image_f1": "per-image F1 @0.5"}


def _folder(run: str | os.PathLike | RunFolder) -> RunFolder:
    return run if isinstance(run, RunFolder) else RunFolder(run)


def read_history(run: str | os.PathLike | RunFolder) -> pd.DataFrame:
    """history.csv of a run folder (:meth:`lib.training.runs.RunFolder.history`)."""
    return _folder(run).history()


def loss_curves(history: pd.DataFrame, title: str = ""):
    """Train and validation loss per epoch."""
    long = history.melt(id_vars="epoch", value_vars=[c for c in ("train_loss", "val_loss",
                                                                   "test_loss") if c in history],
                        var_name="curve", value_name="loss")
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    sns.lineplot(data=long, x="epoch", y="loss", hue="curve", marker="o", ax=ax)
    ax.set_title(title or "loss per epoch")
    integer_epochs(ax)
    legend_outside(ax)
    fig.tight_layout()
    return fig


def metric_curves(history: pd.DataFrame, title: str = ""):
    """Validation (and, when selection was on test, test) mAP and F1 per epoch; the selected
    epoch is marked."""
    rows = []
    for split in ("val", "test"):
        for key, name in CURVE_METRICS.items():
            col = f"{split}_{key}"
            if col in history:
                rows.append(pd.DataFrame({"epoch": history["epoch"], "value": history[col],
                                          "metric": name, "split": split}))
    long = pd.concat(rows, ignore_index=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    sns.lineplot(data=long, x="epoch", y="value", hue="metric", style="split", marker="o", ax=ax)
    if "best" in history and history["best"].any():
        best = history.loc[history["best"].astype(bool), "epoch"].iloc[-1]
        ax.axvline(best, color="grey", ls="--", lw=1, label=f"selected epoch {best}")
        ax.legend(fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title or "validation metrics per epoch")
    integer_epochs(ax)
    legend_outside(ax, fontsize=8)
    fig.tight_layout()
    return fig


def metrics_table(run: str | os.PathLike | RunFolder) -> pd.DataFrame:
    """metrics.json as a table: one row per block (0.5, MCC, top-5, top-3), the metrics as
    columns, plus mAP and the leaky flag."""
    from lib.analysis.evaluation import SETTINGS  # lazy import (sklearn)

    folder = _folder(run)
    m = folder.metrics()
    table = pd.DataFrame({SETTINGS[k]: m[k] for k in METRIC_BLOCKS if k in m}).T
    table.index.name = f"{m.get('split', 'test')} split"
    table["mAP"] = m["mean_average_precision"]
    table["leaky"] = folder.leaky
    return table
