"""Dataset plots (notebook 01): long tail, co-occurrence heat map, asymmetry, graph
density against the threshold, example images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lib.method import graph


def long_tail(table: pd.DataFrame, n_named: int = 10, title: str = "label frequency"):
    """Images per label, labels sorted by frequency, log scale; the top ``n_named`` labels
    are named. ``table`` is :func:`lib.data.datasets.label_table` (columns ``label``, ``total``)."""
    ordered = table.sort_values("total", ascending=False, kind="stable").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 4))
    rank = np.arange(1, len(ordered) + 1)
    ax.bar(rank, ordered["total"].clip(lower=0.8), width=1.0, color=sns.color_palette()[0])
    ax.set_yscale("log")
    ax.set_xlabel("label rank")
    ax.set_ylabel("images with the label (log)")
    ax.set_title(title)
    top = [f"{r}. {label} ({total})" for r, (label, total) in enumerate(
        zip(ordered["label"][:n_named], ordered["total"][:n_named], strict=True), start=1)]
    if top:
        ax.text(0.98, 0.96, "\n".join(top), transform=ax.transAxes, ha="right", va="top",
                fontsize=8, family="monospace",
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85})
        ax.bar(np.arange(1, len(top) + 1), ordered["total"][:n_named].clip(lower=0.8),
               width=1.0, color=sns.color_palette()[1], label=f"top {len(top)}")
        ax.legend(loc="lower left")
    ax.set_xlim(0, len(ordered) + 1)
    fig.tight_layout()
    return fig


def cooccurrence_heatmap(targets: np.ndarray, labels: Sequence[str], top_k: int = 20):
    """Heat map of ``P(j|i)`` (row i, column j) among the ``top_k`` most frequent labels."""
    counts = graph.label_counts(targets)
    top = np.argsort(-counts, kind="stable")[:top_k]
    prob = graph.conditional_probability(targets)[np.ix_(top, top)]
    names = [labels[i] for i in top]
    size = max(5.0, 0.38 * len(top) + 2)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(pd.DataFrame(prob, index=names, columns=names), ax=ax, vmin=0, vmax=1,
                cmap="viridis", square=True, annot=len(top) <= 12, fmt=".2f",
                cbar_kws={"label": "P(column | row)"})
    ax.set_xlabel("label j")
    ax.set_ylabel("label i")
    ax.set_title(f"P(j | i) among the {len(top)} most frequent labels")
    fig.tight_layout()
    return fig


def asymmetry(pairs: pd.DataFrame):
    """Bar pairs ``P(b|a)`` and ``P(a|b)`` for the most asymmetric pairs
    (:func:`lib.method.graph.asymmetric_pairs`)."""
    names = [f"{a} / {b}" for a, b in zip(pairs["a"], pairs["b"], strict=True)]
    long = pd.concat([
        pd.DataFrame({"pair": names, "probability": pairs["P(b|a)"], "which": "P(b | a)"}),
        pd.DataFrame({"pair": names, "probability": pairs["P(a|b)"], "which": "P(a | b)"}),
    ])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(pairs) + 1.5))
    sns.barplot(data=long, y="pair", x="probability", hue="which", ax=ax, orient="h")
    ax.set_xlim(0, 1.05)
    ax.set_ylabel("pair a / b")
    ax.set_title("co-occurrence is asymmetric: P(b | a) vs P(a | b)")
    fig.tight_layout()
    return fig


def density_curve(density: pd.DataFrame, marks: dict[str, float] | None = None):
    """Fraction of non-zero off-diagonal adjacency entries against the threshold t
    (:func:`lib.method.graph.adjacency_density`), with vertical lines at ``marks``
    (name -> t, e.g. each recipe's default)."""
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(density["t"], density["density"], marker=".", label="density")
    ax1.set_yscale("log")
    ax1.set_xlabel("threshold t on P(j | i)")
    ax1.set_ylabel("non-zero off-diagonal fraction (log)")
    ratio = (density["mean_neighbours"] / density["density"]).dropna()
    if len(ratio):  # mean neighbours = density * (C - 1): a second scale on the right
        factor = float(ratio.iloc[0])
        ax1.secondary_yaxis("right", functions=(lambda x: x * factor, lambda x: x / factor)
                            ).set_ylabel("mean neighbours per label")
    palette = sns.color_palette()
    for k, (name, t) in enumerate((marks or {}).items(), start=1):
        ax1.axvline(t, color=palette[k % len(palette)], linestyle="--", label=f"{name} (t={t})")
    ax1.legend(loc="upper right")
    ax1.set_title("label-graph density against the threshold")
    fig.tight_layout()
    return fig


def example_grid(image_paths: Sequence[Path], captions: Sequence[str], ncols: int = 4,
                 read=None):
    """A grid of images with their label lists as captions. ``read(path)`` opens an image
    (default :func:`lib.data.datasets.read_image`)."""
    if read is None:
        from lib.data.datasets import read_image as read  # lazy import (PIL)
    n = len(image_paths)
    ncols = max(1, min(ncols, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, path, caption in zip(axes.ravel(), image_paths, captions, strict=False):
        ax.imshow(read(path))
        ax.set_title(caption, fontsize=8, wrap=True)
    fig.tight_layout()
    return fig
