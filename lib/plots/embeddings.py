"""Plots of the label embeddings (notebook 02): similarity vs. co-occurrence, t-SNE map."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def similarity_cooccurrence_scatter(pairs: pd.DataFrame, rho: float, measure: str = "conditional",
                                    n_annotate: int = 8):
    """Scatter of cosine similarity (x) against co-occurrence (y), one point per label pair
    (``pairs`` from :func:`lib.method.label_space.similarity_vs_cooccurrence`); the ``n_annotate``
    pairs that co-occur most are named."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    sns.scatterplot(data=pairs, x="cosine", y="cooccurrence", s=12, alpha=0.5,
                    edgecolor=None, ax=ax)
    for _, row in pairs.nlargest(n_annotate, "cooccurrence").iterrows():
        ax.annotate(f"{row.label_i}/{row.label_j}", (row.cosine, row.cooccurrence),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")
    label = {"conditional": "(P(i|j) + P(j|i)) / 2", "jaccard": "Jaccard"}.get(measure, measure)
    ax.set(xlabel="cosine similarity of the label vectors", ylabel=f"co-occurrence {label}",
           title=f"Similarity vs. co-occurrence over {len(pairs)} label pairs "
                 f"(Spearman rho = {rho:.3f})")
    ax.title.set_fontsize(10)
    fig.tight_layout()
    return fig


def tsne_scatter(coords: np.ndarray, labels: Sequence[str], counts: np.ndarray | None = None,
                 title: str = "t-SNE of the label vectors"):
    """The 2-D t-SNE map with every label written at its point; colour = training frequency
    (log scale) when ``counts`` is given."""
    coords = np.asarray(coords)
    n = len(labels)
    size = min(16.0, max(6.0, 0.6 * np.sqrt(n) + 4))
    fig, ax = plt.subplots(figsize=(size, size * 0.8))
    if counts is not None:
        points = ax.scatter(coords[:, 0], coords[:, 1], c=np.log10(np.asarray(counts) + 1),
                            cmap="viridis", s=18)
        fig.colorbar(points, ax=ax, label="log10(training images + 1)")
    else:
        ax.scatter(coords[:, 0], coords[:, 1], s=18)
    fontsize = 9 if n <= 60 else 6
    for (x, y), label in zip(coords, labels, strict=True):
        ax.annotate(label, (x, y), fontsize=fontsize, xytext=(2, 2), textcoords="offset points")
    ax.set(title=title, xticks=[], yticks=[])
    fig.tight_layout()
    return fig


def similarity_heatmap(similarity: np.ndarray, labels: Sequence[str],
                       title: str = "Cosine similarity of the label vectors"):
    """Clustered heatmap of the C x C cosine similarity (small vocabularies); returns the
    figure of seaborn's clustermap."""
    frame = pd.DataFrame(similarity, index=list(labels), columns=list(labels))
    size = min(14.0, max(5.0, 0.25 * len(labels) + 2))
    ticks = True if len(labels) <= 60 else "auto"
    grid = sns.clustermap(frame, cmap="vlag", center=0, figsize=(size, size),
                          xticklabels=ticks, yticklabels=ticks, dendrogram_ratio=0.1)
    grid.figure.suptitle(title, y=1.01)
    return grid.figure
