"""Plots and tables of a training run (history.csv, metrics.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

#: validation metrics drawn per epoch (history.csv columns without the split prefix)
CURVE_METRICS = {"mean_average_precision": "mAP", "per_class_f1": "per-class F1 @0.5",
                 "per_image_f1": "per-image F1 @0.5"}


def read_history(run_dir: str | os.PathLike) -> pd.DataFrame:
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (the run has not finished an epoch)")
    return pd.read_csv(path)


def loss_curves(history: pd.DataFrame, title: str = ""):
    """Train and validation loss per epoch."""
    long = history.melt(id_vars="epoch", value_vars=[c for c in ("train_loss", "val_loss",
                                                                   "test_loss") if c in history],
                        var_name="curve", value_name="loss")
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    sns.lineplot(data=long, x="epoch", y="loss", hue="curve", marker="o", ax=ax)
    ax.set_title(title or "loss per epoch")
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
    fig.tight_layout()
    return fig


def metrics_table(run_dir: str | os.PathLike) -> pd.DataFrame:
    """metrics.json as a table: one row per protocol (0.5, MCC, top-5, top-3), the 7 metrics
    as columns, plus mAP and the leaky flag."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (training not finished)")
    m = json.loads(path.read_text(encoding="utf-8"))
    names = {"at_0.5": "threshold 0.5", "mcc": "MCC thresholds", "top5": "top-5", "top3": "top-3"}
    table = pd.DataFrame({names[k]: m[k] for k in names if k in m}).T
    table.index.name = f"{m.get('split', 'test')} split"
    table["mAP"] = m["mean_average_precision"]
    table["leaky"] = m.get("leaky", False)
    return table
