"""Plots of the results tables (:mod:`lib.analysis.tables`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lib.analysis.comparisons import head_name, head_order

METRIC_LABELS = {"per_class_f1": "per-class F1", "per_image_f1": "per-image F1", "mAP": "mAP"}


def main_table_bars(table: pd.DataFrame, metric: str = "per_class_f1"):
    """Bars of ``metric`` by loss (x) and head (colour), one panel per thresholds block: the
    mean over seeds with the sample standard deviation as an error bar (none with one seed).
    ``table`` is :func:`lib.analysis.tables.main_table`; published rows are left out."""
    ours = table[table["source"] == "ours"]
    blocks = list(dict.fromkeys(ours["thresholds"]))
    losses = list(dict.fromkeys(ours["loss"]))
    # one series per head, and per protocol: a leaky (reference-protocol) run of the same
    # head and loss is its own series, marked with a dagger
    order = head_order()
    keys = sorted({(h, bool(lk)) for h, lk in zip(ours["head"], ours["leaky"], strict=True)},
                  key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k[0],
                                 k[1]))
    palette = sns.color_palette(n_colors=max(len(keys), 1))
    fig, axes = plt.subplots(1, max(len(blocks), 1), figsize=(4.2 * max(len(blocks), 1), 3.6),
                             squeeze=False, sharey=True)
    width = 0.8 / max(len(keys), 1)
    for ax, block in zip(axes[0], blocks, strict=False):
        part = ours[ours["thresholds"] == block]
        for k, (head, leaky) in enumerate(keys):
            chosen = part[(part["head"] == head) & (part["leaky"].astype(bool) == leaky)]
            rows = chosen.drop_duplicates("loss").set_index("loss").reindex(losses)
            x = np.arange(len(losses)) + (k - (len(keys) - 1) / 2) * width
            mean = rows[f"{metric}_mean"].to_numpy(dtype=float)
            std = rows[f"{metric}_std"].to_numpy(dtype=float)
            label = head_name(head) + (" (reference protocol) \u2020" if leaky else "")
            bars = ax.bar(x, mean, width, yerr=np.nan_to_num(std), capsize=3,
                          color=palette[k], label=label)
            ax.bar_label(bars, labels=[f"{m:.3f}" if np.isfinite(m) else "" for m in mean],
                         fontsize=7, padding=2)
        ax.set_xticks(np.arange(len(losses)), losses)
        ax.set_xlabel("loss")
        ax.set_title(f"thresholds: {block}")
    name = METRIC_LABELS.get(metric, metric)
    axes[0, 0].set_ylabel(f"{name} (test; mean ± sd over seeds)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(len(keys), 4), fontsize=8, frameon=False)
    n = ours["n_seeds"].max() if len(ours) else 0
    fig.suptitle(f"{name} by loss and head ({n} seed{'s' if n != 1 else ''})", y=1.02)
    fig.tight_layout()
    return fig
