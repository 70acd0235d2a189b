"""The label space seen through the label vectors (notebooks 02 and 06): cosine similarity,
nearest neighbours, similarity against co-occurrence, t-SNE maps. Reading and resolving the
vectors is :mod:`lib.method.embeddings`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lib.method import graph


def cosine_similarity(vectors: np.ndarray) -> np.ndarray:
    """C x C cosine similarity of the rows (sklearn)."""
    from sklearn.metrics.pairwise import cosine_similarity as _cos  # lazy import (sklearn)

    return _cos(np.asarray(vectors, dtype=np.float64))


def frequent_labels(labels: Sequence[str], targets: np.ndarray, n: int = 4) -> list[str]:
    """The ``n`` labels with the most images in ``targets`` (ties in vocabulary order)."""
    counts = np.asarray(targets).sum(axis=0, dtype=np.int64)  # signed: uint8 -counts wraps
    return [list(labels)[i] for i in np.argsort(-counts, kind="stable")[:n]]


def nearest_neighbours(vectors: np.ndarray, labels: Sequence[str], queries: Sequence[str],
                       k: int = 5, conditional: np.ndarray | None = None) -> pd.DataFrame:
    """The ``k`` most cosine-similar vocabulary labels of each query label.

    With ``conditional`` (``P[i, j] = P(j | i)``, lib.method.graph) a column ``P(neighbour|query)``
    shows whether the neighbours also co-occur with the query."""
    labels = list(labels)
    queries = [queries] if isinstance(queries, str) else list(queries)
    index = {label: i for i, label in enumerate(labels)}
    unknown = [q for q in queries if q not in index]
    if unknown:
        raise KeyError(f"query labels not in the vocabulary: {unknown}")
    sim = cosine_similarity(vectors)
    rows = []
    for q in queries:
        i = index[q]
        order = [j for j in np.argsort(-sim[i], kind="stable") if j != i][:k]
        for rank, j in enumerate(order, 1):
            row = {"query": q, "rank": rank, "neighbour": labels[j], "cosine": float(sim[i, j])}
            if conditional is not None:
                row["P(neighbour|query)"] = float(conditional[i, j])
            rows.append(row)
    return pd.DataFrame(rows)


def symmetric_cooccurrence(targets: np.ndarray, measure: str = "conditional") -> np.ndarray:
    """Symmetric C x C co-occurrence from an N x C multi-hot matrix.

    ``conditional``: (P(i|j) + P(j|i)) / 2; ``jaccard``: M_ij / (N_i + N_j - M_ij).
    Labels that never occur give 0."""
    m = graph.cooccurrence(targets).astype(np.float64)
    n = np.diag(m).copy()
    if measure == "conditional":
        p = graph.conditional_probability(targets).astype(np.float64)
        out = (p + p.T) / 2
    elif measure == "jaccard":
        union = n[:, None] + n[None, :] - m
        out = np.divide(m, union, out=np.zeros_like(m), where=union > 0)
    else:
        raise ValueError(f"unknown co-occurrence measure {measure!r} (conditional, jaccard)")
    return np.nan_to_num(out)


def similarity_vs_cooccurrence(vectors: np.ndarray, labels: Sequence[str], targets: np.ndarray,
                               measure: str = "conditional") -> tuple[pd.DataFrame, float]:
    """One row per label pair (i < j): cosine similarity and co-occurrence; plus their
    Spearman rank correlation (do words close in meaning co-occur?)."""
    from scipy.stats import spearmanr  # lazy import (scipy)

    labels = list(labels)
    if targets.shape[1] != len(labels) or len(vectors) != len(labels):
        raise ValueError(
            f"{len(labels)} labels, vectors {np.shape(vectors)}, targets {targets.shape}"
        )
    sim = cosine_similarity(vectors)
    co = symmetric_cooccurrence(targets, measure)
    iu, ju = np.triu_indices(len(labels), k=1)
    pairs = pd.DataFrame({
        "label_i": [labels[i] for i in iu], "label_j": [labels[j] for j in ju],
        "cosine": sim[iu, ju], "cooccurrence": co[iu, ju],
    })
    rho = float(spearmanr(pairs["cosine"], pairs["cooccurrence"]).statistic) if len(pairs) > 1 \
        else float("nan")
    return pairs, rho


def tsne_map(vectors: np.ndarray, perplexity: float | None = None, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (sklearn, cosine metric, PCA init, seeded) of the label vectors.

    ``perplexity=None`` adapts to the vocabulary: ``min(30, (C - 1) / 3)``."""
    from sklearn.manifold import TSNE  # lazy import (sklearn)

    n = len(vectors)
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 labels, got {n}")
    if perplexity is None:
        perplexity = default_perplexity(n)
    if not 0 < perplexity < n:
        raise ValueError(f"perplexity must be in (0, {n}) for {n} labels, got {perplexity}")
    tsne = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca",
                random_state=seed)
    return tsne.fit_transform(np.asarray(vectors, dtype=np.float64))


def default_perplexity(n_labels: int) -> float:
    """``min(30, (C - 1) / 3)``: sklearn's default, shrunk for small vocabularies."""
    return float(min(30.0, max(1.0, (n_labels - 1) / 3)))
