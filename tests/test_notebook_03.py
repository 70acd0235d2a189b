"""Notebook 03 (ML-WGAN augmentation) runs end to end under papermill, with the embedded
default preset (select="rare") made tiny through `overrides`."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
from conftest import run_notebook

from lib.core import paths
from lib.core.glue import notebook_records


@pytest.mark.slow
def test_notebook_03_smoke(tiny_scenes, tmp_path):
    data = tmp_path / "scenes"
    shutil.copytree(tiny_scenes, data)
    overrides = {"limit": 4, "iterations": 5, "batch_images": 2, "image_size": [16, 24],
                 "width": 4}
    params = {"dataset": str(data), "seed": 0, "preset": "default", "overrides": overrides,
              "n_show": 3}
    executed = run_notebook("03_wgan_augmentation", params, tmp_path)
    records = notebook_records(executed)
    train = json.loads((data / "train.json").read_text())["samples"]
    assert records["augmented_images"] == 4 and records["training_images"] == len(train)
    assert records["trained_this_run"] == 4
    assert records["train_aug_entries"] == 12
    assert records["select"] == "rare"        # the default preset's selection
    # the four images carrying the rarest labels (from train.json, independently), listed in
    # training order
    frequency = Counter(x for s in train for x in s["image_labels"])
    key = [min((frequency[x] for x in s["image_labels"]), default=10**9) for s in train]
    chosen = {train[i]["image_name"] for i in sorted(range(len(train)), key=key.__getitem__)[:4]}
    aug = json.loads((data / "train_aug.json").read_text())["samples"]
    assert [s["image_name"] for s in aug[::3]] == [
        s["image_name"].rsplit(".", 1)[0] + "_aug.jpeg" for s in train if s["image_name"] in chosen]
    # settings recorded: the preset, the overrides, and the notebook's seed
    recorded = json.loads((data / "augment_logs" / "config.json").read_text())["settings"]
    assert recorded["image_size"] == [16, 24] and recorded["lr"] == 1e-3
    assert recorded["iterations"] == 5 and recorded["seed"] == 0
    # coverage: mean share of the rarest third of the labels (by training frequency, then name)
    vocab = json.loads((data / "train.json").read_text())["labels"]
    augmented = Counter(x for s in train if s["image_name"] in chosen for x in s["image_labels"])
    third = sorted(vocab, key=lambda x: (frequency[x], x))[: max(1, len(vocab) // 3)]
    shares = [augmented[x] / frequency[x] for x in third if frequency[x]]
    assert records["share_rarest_third"] == pytest.approx(sum(shares) / len(shares))
    assert records["share_rarest_third"] > records["share_all_labels"]   # rare first pays off
    assert records["labels_with_fakes"] == len({x for s in train if s["image_name"] in chosen
                                                for x in s["image_labels"]})
    figures = paths.figures_dir() / "03_wgan_augmentation"
    for name in ("real_and_fakes", "loss_curves", "coverage"):
        assert (figures / f"{name}.png").stat().st_size > 0, name
    # a second run resumes: nothing left to train
    (tmp_path / "again").mkdir()
    again = run_notebook("03_wgan_augmentation", params, tmp_path / "again")
    assert notebook_records(again)["trained_this_run"] == 0
    # other settings are refused, naming the recorded file and the setting
    (tmp_path / "other").mkdir()
    with pytest.raises(Exception, match="width: recorded 4, now 8"):
        run_notebook("03_wgan_augmentation", {**params, "overrides": {**overrides, "width": 8}},
                     tmp_path / "other")
