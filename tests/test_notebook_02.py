"""Notebook 02 (label embeddings) end to end on the tiny scenes dataset."""

from __future__ import annotations

import pytest
from conftest import run_notebook

from lib import paths
from lib.data import load_dataset
from lib.utils import notebook_records


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
    rho = records["similarity_cooccurrence_spearman"]
    assert -1.0 <= rho <= 1.0
    figures = paths.figures_dir() / "02_label_embeddings"
    for name in ("tsne.png", "similarity_vs_cooccurrence.png", "cosine_similarity.png"):
        assert (figures / name).stat().st_size > 0
    assert list((paths.cache_dir() / "embeddings").glob(f"{tiny_scenes.name}__glove-6b-50d.*"))
