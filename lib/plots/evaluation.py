"""Evaluation plots (notebooks 05 and 06): metrics by setting, per-label F1 against label
frequency, annotated example images, t-SNE of the label vectors before and after the GCN."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lib.data.datasets import DatasetError, read_image
from lib.plots import legend_outside, place_labels


def metric_bars(table: pd.DataFrame, title: str = "test metrics"):
    """Grouped bars of the P/R/F1 rows of :func:`lib.analysis.evaluation.metrics_table` (N+ left
    out),
    one colour per setting."""
    long = (table.drop(index="N+", errors="ignore").rename_axis("metric").reset_index()
            .melt(id_vars="metric", var_name="setting", value_name="value"))
    fig, ax = plt.subplots(figsize=(9, 4))
    sns.barplot(data=long, x="metric", y="value", hue="setting", ax=ax)
    ax.set(xlabel="", ylabel="value", ylim=(0, 1), title=title)
    ax.legend(fontsize=8, ncol=4, loc="upper left")
    fig.tight_layout()
    return fig


def _alternate(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    rows = [frame.iloc[[i]] for i in range(max(len(first), len(second)))
            for frame in (first, second) if i < len(frame)]
    return pd.concat(rows) if rows else first


def f1_vs_frequency(table: pd.DataFrame, n_named: int = 6,
                    title: str = "per-label F1 against training frequency"):
    """Per-label F1 at 0.5 and at the MCC thresholds (y) against training images per label
    (x, log scale); the best labels and the most frequent worst ones (MCC) are named.
    ``table`` is :func:`lib.analysis.evaluation.per_label_table`."""
    long = pd.concat([
        pd.DataFrame({"label": table["label"], "train_images": table["train_images"],
                      "f1": table[column], "threshold": name})
        for column, name in (("f1_0.5", "0.5"), ("f1_mcc", "MCC"))
    ])
    long = long[long["train_images"] > 0]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.scatterplot(data=long, x="train_images", y="f1", hue="threshold", style="threshold",
                    alpha=0.7, ax=ax)
    ax.set_xscale("log")
    present = table[table["train_images"] > 0]
    best = present.sort_values(["f1_mcc", "train_images"], ascending=False, kind="stable")
    worst = present.sort_values(["f1_mcc", "train_images"], ascending=[True, False],
                                kind="stable")      # frequent failures are the telling ones
    ax.set(xlabel="training images with the label (log)", ylabel="F1 of the label",
           ylim=(-0.03, 1.03), title=title)
    legend_outside(ax, title="threshold")
    fig.tight_layout()
    # best and worst alternately, so both ends keep names when places run out
    named = _alternate(best.head(n_named - n_named // 2), worst.head(n_named // 2))
    named = named.drop_duplicates("label")
    place_labels(ax, named["train_images"], named["f1_mcc"], named["label"])
    return fig


def _label_lines(prefix: str, words: list[str], width: int, max_words: int) -> list[str]:
    shown = words[:max_words] + ([f"+{len(words) - max_words} more"]
                                 if len(words) > max_words else [])
    return textwrap.wrap(prefix + (", ".join(shown) or "-"), width=width,
                         subsequent_indent="  ") or [prefix]


def example_grid(image_paths: Sequence[Path], labels: Sequence[str], y_true: np.ndarray,
                 y_pred: np.ndarray, scores: np.ndarray | None = None, n_cols: int = 4,
                 title: str = "test images", max_words: int = 6):
    """Images with their annotations: correct labels green, wrong ones red, missed ones grey
    (each list by decreasing score when ``scores`` are given, at most ``max_words`` shown).
    ``y_true``/``y_pred``/``scores``: the rows of the shown images. Unreadable images (e.g.
    the Corel annotation folder without its images) are drawn as an empty panel."""
    n = len(image_paths)
    n_cols = max(1, min(n_cols, n))
    n_rows = max(1, int(np.ceil(n / n_cols)))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols, 4.3 * n_rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, path in enumerate(image_paths):
        ax = axes.ravel()[i]
        try:
            ax.imshow(read_image(path))
        except (DatasetError, OSError):
            ax.text(0.5, 0.5, "image not available", ha="center", va="center",
                    transform=ax.transAxes, color="grey")
        truth, pred = np.asarray(y_true[i]).astype(bool), np.asarray(y_pred[i]).astype(bool)
        order = (np.argsort(-np.asarray(scores[i]), kind="stable") if scores is not None
                 else np.arange(len(labels)))
        offset = 4.0
        for prefix, mask, colour in (("correct: ", truth & pred, "green"),
                                     ("wrong: ", ~truth & pred, "red"),
                                     ("missed: ", truth & ~pred, "grey")):
            words = [labels[k] for k in order if mask[k]]
            for line in _label_lines(prefix, words, width=44, max_words=max_words):
                ax.annotate(line, (0, 0), xycoords="axes fraction", xytext=(0, -offset),
                            textcoords="offset points", va="top", fontsize=7, color=colour)
                offset += 9.0
        ax.set_title(Path(path).name, fontsize=8)
    fig.suptitle(title)
    fig.subplots_adjust(hspace=0.55, wspace=0.08, top=1 - 0.6 / (4.3 * n_rows))
    return fig


def tsne_pair(before: np.ndarray, after: np.ndarray, labels: Sequence[str],
              counts: np.ndarray | None = None,
              titles: tuple[str, str] = ("label vectors (GCN input)", "GCN output W")):
    """Two t-SNE maps side by side (2-D coordinates), every label written at its point;
    colour = training images per label (log) when ``counts`` is given."""
    n = len(labels)
    size = min(11.0, max(5.5, 0.45 * np.sqrt(n) + 4))
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size * 0.85))
    colour = None if counts is None else np.log10(np.asarray(counts, dtype=float) + 1)
    fontsize = 8 if n <= 60 else 5
    points = None
    for ax, coords, title in zip(axes, (before, after), titles, strict=True):
        coords = np.asarray(coords)
        points = ax.scatter(coords[:, 0], coords[:, 1], c=colour, cmap="viridis", s=16)
        for (x, y), label in zip(coords, labels, strict=True):
            ax.annotate(label, (x, y), fontsize=fontsize, xytext=(2, 2),
                        textcoords="offset points")
        ax.set(title=title, xticks=[], yticks=[])
    if counts is not None and points is not None:
        fig.colorbar(points, ax=axes, label="log10(training images + 1)", shrink=0.8)
    return fig


def graph_share_plot(shares: dict[str, np.ndarray], counts: np.ndarray,
                     labels: Sequence[str], n_named: int = 6):
    """Per label, the share of its classifier that comes from the graph (one panel per run)
    against the label's training frequency; the labels leaning most on the graph are named."""
    fig, axes = plt.subplots(1, len(shares), figsize=(5.5 * len(shares), 3.8), squeeze=False)
    counts = np.asarray(counts, dtype=float)
    for ax, (name, share) in zip(axes[0], shares.items(), strict=True):
        share = np.asarray(share, dtype=float)
        ax.scatter(np.maximum(counts, 1), share, s=14, alpha=0.7)
        for i in np.argsort(-share, kind="stable")[:n_named]:
            ax.annotate(labels[i], (max(counts[i], 1), share[i]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("training images with the label")
        ax.set_ylabel("graph share of the classifier")
        ax.set_title(f"{name}: mean share {share.mean():.2f}")
    fig.tight_layout()
    return fig
