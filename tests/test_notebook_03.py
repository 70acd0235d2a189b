"""Notebook 03 (ML-WGAN augmentation) runs end to end under papermill."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_notebook

from lib import paths
from lib.utils import notebook_records


@pytest.mark.slow
def test_notebook_03_smoke(tiny_scenes, tmp_path):
    data = tmp_path / "scenes"
    shutil.copytree(tiny_scenes, data)
    params = {"dataset": str(data), "limit": 4, "iterations": 5, "batch_images": 2,
              "image_size": [16, 24], "width": 4, "seed": 0, "n_show": 3}
    executed = run_notebook("03_wgan_augmentation", params, tmp_path)
    records = notebook_records(executed)
    assert records["augmented_images"] == 4
    assert records["trained_this_run"] == 4
    assert records["train_aug_entries"] == 12
    train = json.loads((data / "train.json").read_text())["samples"][:4]
    aug = json.loads((data / "train_aug.json").read_text())["samples"]
    assert [s["image_name"] for s in aug[::3]] == [
        s["image_name"].rsplit(".", 1)[0] + "_aug.jpeg" for s in train]
    figures = paths.figures_dir() / "03_wgan_augmentation"
    assert (figures / "real_and_fakes.png").stat().st_size > 0
    assert (figures / "loss_curves.png").stat().st_size > 0
    # a second run resumes: nothing left to train
    (tmp_path / "again").mkdir()
    again = run_notebook("03_wgan_augmentation", params, tmp_path / "again")
    assert notebook_records(again)["trained_this_run"] == 0
