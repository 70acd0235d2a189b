"""Plots of where the label graph helps (:mod:`lib.analysis.graph_gain`, notebook 07)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import pandas as pd
import seaborn as sns


def bucket_bars(tables: Sequence[tuple[str, pd.DataFrame]], title: str, xlabel: str):
    """Mean per-label F1 gain per bucket (x), one bar colour per pair, the sample sd over
    seeds as error bars; ``tables`` are ``(pair, lib.analysis.graph_gain.bucket_summary)``."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    palette = sns.color_palette(n_colors=max(len(tables), 1))
    width = 0.8 / max(len(tables), 1)
    buckets: list[str] = []
    for k, (pair, table) in enumerate(tables):
        buckets = list(table["bucket"])
        x = np.arange(len(table)) + (k - (len(tables) - 1) / 2) * width
        mean = table["gain_mean"].to_numpy(dtype=float)
        std = np.nan_to_num(table["gain_std"].to_numpy(dtype=float))
        ax.bar(x, mean, width, yerr=std, capsize=3, color=palette[k], label=pair)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(np.arange(len(buckets)), buckets)
    ax.set(xlabel=xlabel, ylabel="per-label F1 gain (GCN - CNN only)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def gain_scatter(per_label: pd.DataFrame, title: str = "per-label F1 gain of the GCN"):
    """Per-label gain (mean over seeds, sd as error bar) against training images (log x);
    colour = ``max_j P(j|i)``. ``per_label`` is
    :func:`lib.analysis.graph_gain.per_label_summary`."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = per_label["train_images"].clip(lower=1).to_numpy(dtype=float)
    y = per_label["gain_mean"].to_numpy(dtype=float)
    ax.errorbar(x, y, yerr=np.nan_to_num(per_label["gain_std"].to_numpy(dtype=float)),
                fmt="none", ecolor="lightgrey", zorder=1)
    points = ax.scatter(x, y, c=per_label["cooccurrence_max"], cmap="viridis", vmin=0, vmax=1,
                        s=22, zorder=2)
    fig.colorbar(points, ax=ax, label="max_j P(j | label)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.set(xlabel="training images with the label (log)", ylabel="F1 gain (GCN - CNN only)",
           title=title)
    fig.tight_layout()
    return fig
