"""Notebook 01 end to end (papermill): the tiny scenes dataset and the real Corel-5k files;
the recorded numbers are checked against independent computations from the JSON files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import notebook_outputs, run_notebook

from lib.core import paths
from lib.core.glue import notebook_records

pytestmark = pytest.mark.slow

FIGURES = ("long_tail", "cooccurrence", "asymmetry", "density")


def _independent(root: Path, t: float) -> dict:
    """Statistics straight from the JSON files, without lib."""
    per_image, counts, n_images = [], Counter(), {}
    labels = None
    for split in ("train", "val", "test"):
        path = root / f"{split}.json"
        if not path.exists():
            continue
        obj = json.loads(path.read_text())
        labels = labels or obj.get("labels")
        n_images[split] = len(obj["samples"])
        for sample in obj["samples"]:
            per_image.append(len(sample["image_labels"]))
            counts.update(sample["image_labels"])
    vocab = (root / "vocabulary.txt").read_text().split() if (root / "vocabulary.txt").exists() \
        else labels
    train = json.loads((root / "train.json").read_text())["samples"]
    index = {x: i for i, x in enumerate(vocab)}
    y = np.zeros((len(train), len(vocab)))
    for k, sample in enumerate(train):
        y[k, [index[x] for x in sample["image_labels"]]] = 1
    m, n = y.T @ y, y.sum(axis=0)
    kept = sum(1 for i in range(len(vocab)) for j in range(len(vocab))
               if i != j and n[i] > 0 and m[i, j] / n[i] >= t)
    return {"n_labels": len(vocab), "n_images": n_images, "per_image": per_image,
            "counts": counts, "density": kept / (len(vocab) * (len(vocab) - 1))}


def _check(records: dict, ref: dict) -> None:
    assert records["n_labels"] == ref["n_labels"]
    assert records["n_images"] == ref["n_images"]
    assert records["n_images_total"] == len(ref["per_image"])
    assert records["mean_labels_per_image"] == pytest.approx(np.mean(ref["per_image"]))
    assert records["max_labels_per_image"] == max(ref["per_image"])
    assert records["images_without_labels"] == ref["per_image"].count(0)
    top = dict(ref["counts"].most_common(10))
    assert set(records["top_label_counts"].values()) == set(top.values())
    assert all(ref["counts"][k] == v for k, v in records["top_label_counts"].items())
    assert [records["top_label_counts"][k] for k in records["top_labels"]] == sorted(
        top.values(), reverse=True)
    assert records["adjacency_density"] == pytest.approx(ref["density"])


def test_notebook_01_tiny_scenes(tiny_scenes, tmp_path):
    out = run_notebook("01_dataset_statistics", {"dataset": str(tiny_scenes)}, tmp_path)
    records = notebook_records(out)
    _check(records, _independent(tiny_scenes, t=0.1))
    assert records["n_example_images"] == 12
    figures = paths.figures_dir() / "01_dataset_statistics"
    for name in (*FIGURES, "examples"):
        assert (figures / f"{tiny_scenes.name}_{name}.png").stat().st_size > 1000
    assert (paths.tables_dir() / "dataset" / tiny_scenes.name / "label_counts.csv").exists()


def test_notebook_01_corel5k_annotations(corel_dir, tmp_path):
    out = run_notebook("01_dataset_statistics",
                       {"dataset": "corel5k-annotations", "recipe": "ml-gcn", "t": 0.4,
                        "p": 0.25, "top_k": 10}, tmp_path)
    records = notebook_records(out)
    _check(records, _independent(corel_dir, t=0.4))
    assert records["n_images_total"] == 4999 and records["n_label_assignments"] == 16979
    assert round(records["mean_labels_per_image"], 2) == 3.40
    assert records["images_without_labels_per_split"] == {"train": 7, "test": 0}
    top5 = records["top_labels"][:5]
    assert [(k, records["top_label_counts"][k]) for k in top5] == [
        ("water", 1120), ("sky", 988), ("tree", 947), ("people", 744), ("grass", 497)]
    assert records["rarest_label_count"] == 2
    assert sorted(records["rarest_labels"]) == ["cougar", "orchid", "sails"]
    assert records["multiword_labels"] == ["f-16", "close-up", "white-tailed"]
    assert records["labels_absent"] == {"train": [], "test": []}
    assert records["n_augmented"] == 13500 and records["n_example_images"] == 0
    assert any("example grid skipped" in text for text in notebook_outputs(out))
    for name in FIGURES:
        assert (paths.figures_dir() / "01_dataset_statistics" / f"corel5k_{name}.png").exists()
