"""Notebook 02 (label embeddings) end to end on the tiny scenes dataset."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_notebook
from scipy.stats import spearmanr

from lib.core import paths
from lib.core.glue import notebook_records
from lib.data.datasets import load_dataset


@pytest.mark.slow
def test_notebook_02_runs_and_records(tiny_scenes, tmp_path):
    executed = run_notebook(
        "02_label_embeddings",
        {"dataset": str(tiny_scenes), "source": "glove-6b-50d", "n_neighbours": 3, "seed": 0},
        tmp_path,
    )
    records = notebook_records(executed)
    n_labels = len(load_dataset(tiny_scenes, check_images=False).labels)
    assert records["n_labels"] == n_labels
    assert records["dimension"] == 50
    assert records["coverage_covered"] == records["coverage_token"] == n_labels
    assert records["coverage_missing"] == 0
    assert records["tsne_perplexity"] == pytest.approx(min(30, (n_labels - 1) / 3))
    # Spearman rho over label pairs of cosine similarity and (P(i|j) + P(j|i)) / 2, from the
    # cached vectors and the training annotations
    vectors = np.load(next((paths.cache_dir() / "embeddings").glob(
        f"{tiny_scenes.name}__glove-6b-50d*.npy"))).astype(np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    y = load_dataset(tiny_scenes, check_images=False).splits["train"].targets.astype(float)
    m, n = y.T @ y, y.sum(axis=0)
    p = np.where(n[:, None] > 0, m / np.maximum(n[:, None], 1), 0.0)
    iu, ju = np.triu_indices(n_labels, k=1)
    rho = spearmanr((unit @ unit.T)[iu, ju], ((p + p.T) / 2)[iu, ju]).statistic
    assert records["similarity_cooccurrence_spearman"] == pytest.approx(rho, abs=1e-6)
    figures = paths.figures_dir() / "02_label_embeddings"
    for name in ("tsne.png", "similarity_vs_cooccurrence.png", "cosine_similarity.png"):
        assert (figures / name).stat().st_size > 0
    assert list((paths.cache_dir() / "embeddings").glob(f"{tiny_scenes.name}__glove-6b-50d.*"))
