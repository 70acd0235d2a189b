"""The recipe of docs/method.md ("Training and protocols") against the code: the defaults of
the embedded configuration, the validation carve and the OneCycle schedule, each computed
by hand from the text (the defaults are the method too)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lib.data import datasets
from lib.training import settings


def test_embedded_default_recipe():
    # docs/method.md: "The embedded default (`TrainConfig()`): `resnet10t` from scratch at
    # 48 px, 4 epochs, batch 32, lr 2e-3, ASL, GCN head, `seed` adjacency, `glove-6b-50d`
    # vectors, selection on validation mAP."
    c = settings.TrainConfig()
    assert (c.backbone, c.pretrained, c.image_size, c.epochs, c.batch_size, c.lr) == (
        "resnet10t", False, 48, 4, 32, 2e-3)
    assert (c.loss, c.head, c.adjacency, c.embeddings, c.select_metric) == (
        "asl", "gcn", "seed", "glove-6b-50d", "mean_average_precision")
    # holdout, 10 % carve, Adam without weight decay, OneCycle with 20 % warm-up over the
    # training, flips on, the GCN hidden size 1024; early stopping, EMA, clipping off
    assert (c.protocol, c.val_fraction, c.weight_decay, c.schedule, c.schedule_epochs,
            c.warmup, c.flips, c.hidden) == ("holdout", 0.1, 0.0, "onecycle", None, 0.2,
                                             True, 1024)
    assert (c.patience, c.ema, c.grad_clip) == (0, 0.0, 0.0)
    # thresholds: labels without a validation positive fall back ("Evaluation")
    assert (c.min_positives, c.threshold_fallback) == (1, "0.5")


def _train_only_dataset(root, n):
    root.mkdir()
    names = [f"im{i:02d}.jpeg" for i in range(n)]
    samples = [{"image_name": a, "image_labels": ["sky"] if i % 2 else ["sea"]}
               for i, a in enumerate(names)]
    for split in ("train", "test"):
        rows = samples if split == "train" else [{"image_name": "t.jpeg",
                                                   "image_labels": ["sky"]}]
        (root / f"{split}.json").write_text(json.dumps({"labels": ["sky", "sea"],
                                                        "samples": rows}))
    return names


@pytest.mark.parametrize("n, seed", [(17, 3), (45, 0), (8, 1)])
def test_validation_carve_by_hand(tmp_path, n, seed):
    # round(0.1 n) images (at least 1, at most n - 1), the first of a permutation drawn from
    # numpy.random.default_rng(seed); both parts keep file order
    names = _train_only_dataset(tmp_path / "ds", n)
    ds = datasets.load_dataset(tmp_path / "ds", check_images=False, val_fraction=0.1, seed=seed)
    n_val = min(max(int(round(0.1 * n)), 1), n - 1)
    chosen = sorted(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    assert list(ds.splits["val"].names) == [names[i] for i in chosen]
    assert list(ds.splits["train"].names) == [a for i, a in enumerate(names) if i not in chosen]
    assert ds.val_carved


def _cos(start, end, pct):
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


def test_onecycle_schedule_by_hand(tiny_scenes, tmp_path):
    """The trainer's schedule, stepped batch by batch, against PyTorch OneCycle's defaults
    written out: cosine from lr/25 up to lr over the warm-up fraction, then down to
    lr/25/1e4 at the end of ``schedule_epochs``; Adam's beta1 from 0.95 to 0.85 and back."""
    from lib.training.trainer import Trainer

    config = settings.TrainConfig(data=str(tiny_scenes), out=str(tmp_path / "run"), epochs=2,
                                  schedule_epochs=3, image_size=16, batch_size=16, lr=0.01,
                                  warmup=0.25, device="cpu")
    trainer = Trainer(config)
    trainer.optimizer.step()   # (no gradients: a no-op that keeps torch from warning)
    n_train = len(trainer.train_data)
    steps = math.ceil(n_train / 16)
    assert trainer.steps_per_epoch == steps
    total = 3 * steps                       # the schedule is schedule_epochs long
    up_end = 0.25 * total - 1   # (not torch's default 0.3)
    group = trainer.optimizer.param_groups[0]
    for i in range(total):
        if i <= up_end:
            pct = i / up_end
            lr, beta1 = _cos(0.01 / 25, 0.01, pct), _cos(0.95, 0.85, pct)
        else:
            pct = (i - up_end) / (total - 1 - up_end)
            lr, beta1 = _cos(0.01, 0.01 / 25 / 1e4, pct), _cos(0.85, 0.95, pct)
        assert group["lr"] == pytest.approx(lr, rel=1e-9), i
        assert group["betas"][0] == pytest.approx(beta1, rel=1e-9), i
        if i < total - 1:
            trainer.scheduler.step()
    assert group["lr"] == pytest.approx(0.01 / 25 / 1e4, rel=1e-6)
