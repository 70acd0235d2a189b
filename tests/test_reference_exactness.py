"""Issue 21: a `protocol: reference` run computes what the reference computes: its fixed
normalisation constants (plain and augmented), strict fp32 (TF32 off), ML-GCN's top-3."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lib.method import metrics, models
from lib.training import device, launch, settings
from lib.training.runs import RunFolder


def test_mlgcn_top3_against_hand_computed_values():
    # image 0: top-3 = labels 0 (0.9), 1 (0.6), 2 (0.4); 0.4 < 0.5 is dropped -> {0, 1}
    # image 1: top-3 = labels 3 (0.5, kept: >= 0.5), 2 (0.3), 1 (0.2) -> {3}
    # image 2: top-3 = 0, 1, 2 (ties at 0.7 -> lower index first), all >= 0.5 -> {0, 1, 2}
    s = np.array([[0.9, 0.6, 0.4, 0.1],
                  [0.1, 0.2, 0.3, 0.5],
                  [0.7, 0.7, 0.7, 0.7]])
    y = np.array([[1, 0, 1, 0],
                  [0, 0, 0, 1],
                  [0, 1, 0, 1]])
    pred = metrics.mlgcn_topk_predictions(s, 3)
    assert pred.astype(int).tolist() == [[1, 1, 0, 0], [0, 0, 0, 1], [1, 1, 1, 0]]
    plain = metrics.topk_predictions(s, 3)
    assert plain.sum(axis=1).tolist() == [3, 3, 3]
    m = metrics.mlgcn_topk_metrics(y, s, 3)
    # per label: TP (1, 1, 0, 1), predicted (2, 2, 1, 1), positives (1, 1, 1, 2)
    eps = 1e-7
    p = np.mean([1 / (2 + eps), 1 / (2 + eps), 0.0, 1 / (1 + eps)])
    r = np.mean([1 / (1 + eps), 1 / (1 + eps), 0.0, 1 / (2 + eps)])
    assert m["per_class_precision"] == pytest.approx(p, abs=1e-12)
    assert m["per_class_recall"] == pytest.approx(r, abs=1e-12)
    assert m["per_class_f1"] == pytest.approx(2 * p * r / (p + r), abs=1e-12)
    assert m["per_image_precision"] == pytest.approx(3 / (6 + eps), abs=1e-12)
    assert m["per_image_recall"] == pytest.approx(3 / (5 + eps), abs=1e-12)
    assert m["n_plus"] == 3
    out = metrics.evaluate_scores(y, s)
    assert out["top3_mlgcn"] == m and out["top3"] == metrics.topk_metrics(y, s, 3)
    assert out["top3_mlgcn"] != out["top3"]


def test_mlgcn_top3_is_logit_at_least_zero():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 7)).astype(np.float32)
    logits[0, :3] = 0.0  # exactly at the boundary: kept (ML-GCN: logit >= 0)
    probs = torch.sigmoid(torch.from_numpy(logits)).numpy()
    order = np.argsort(-logits, axis=1, kind="stable")[:, :3]
    expected = np.zeros_like(logits, dtype=bool)
    for n in range(len(logits)):
        for c in order[n]:
            expected[n, c] = logits[n, c] >= 0
    np.testing.assert_array_equal(metrics.mlgcn_topk_predictions(probs, 3), expected)


def test_reference_constants_are_the_reference_numbers():
    assert models.reference_stats(False) == ((0.3928, 0.4079, 0.3531),
                                             (0.2559, 0.2436, 0.2544))
    assert models.reference_stats(True) == ((0.4249, 0.4365, 0.3926),
                                            (0.1955, 0.1830, 0.1987))


def test_strict_fp32_turns_tf32_off():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        assert device.set_strict_fp32(False) == {"matmul_allow_tf32": True,
                                                 "cudnn_allow_tf32": True}
        assert device.precision_label(False, device.set_strict_fp32(False)) == "fp32+tf32"
        flags = device.set_strict_fp32(True)
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
        assert flags == {"matmul_allow_tf32": False, "cudnn_allow_tf32": False}
        assert device.precision_label(False, flags) == "fp32"
        assert device.precision_label(True, flags) == "bf16-autocast"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _config(tiny_scenes, out, **kw):
    base = dict(data=str(tiny_scenes), out=str(out), epochs=1, image_size=32, batch_size=16,
                seed=0, head="linear", normalization="dataset")
    base.update(kw)
    return settings.TrainConfig(**base)


@pytest.mark.slow
def test_reference_run_uses_the_constants_and_strict_fp32(tiny_scenes, tmp_path):
    torch.backends.cudnn.allow_tf32 = True  # torch's default: the run must turn it off
    ref = RunFolder(launch.train(_config(tiny_scenes, tmp_path / "ref",
                                           protocol="reference")))
    cfg = ref.config
    assert cfg["normalization_mean"] == [0.3928, 0.4079, 0.3531]
    assert cfg["normalization_std"] == [0.2559, 0.2436, 0.2544]
    assert cfg["normalization_source"] == "reference-corel5k"
    assert cfg["precision"] == "fp32" and cfg["tf32"] == {"matmul_allow_tf32": False,
                                                          "cudnn_allow_tf32": False}
    assert not torch.backends.cudnn.allow_tf32
    best = torch.load(ref.best_path, weights_only=True)
    mean = [v for k, v in best["model"].items() if k.endswith("mean")]
    assert any(torch.allclose(m.flatten(), torch.tensor([0.3928, 0.4079, 0.3531]))
               for m in mean)
    # holdout keeps the statistics computed from the images it trains on
    hold = RunFolder(launch.train(_config(tiny_scenes, tmp_path / "hold")))
    assert hold.config["normalization_source"] == "computed"
    assert hold.config["normalization_mean"] != cfg["normalization_mean"]
    torch.backends.cudnn.allow_tf32 = True


def test_reference_augmented_run_uses_the_augmented_constants(tiny_scenes, tmp_path):
    from lib.training.trainer import Trainer

    cfg = _config(tiny_scenes, tmp_path / "aug", protocol="reference", augmented=True)
    trainer = Trainer.__new__(Trainer)
    trainer.config = cfg
    assert trainer._normalization() == ([0.4249, 0.4365, 0.3926], [0.1955, 0.1830, 0.1987])
    assert trainer._normalization_source() == "reference-corel5k-augmented"


def test_channels_last_is_off_by_default_until_measured():
    assert settings.TrainConfig().channels_last is False


# ----------------------------------------------------------------------------- ML-WGAN init


def test_wgan_reference_initialisation():
    from lib.method import wgan

    size = (16, 24)
    gen = wgan.build_generator(size, 4, 1, bias=True)
    crit = wgan.build_critic(size, 4, 1, bias=True)
    for net in (gen, crit):
        wgan.init_grouped(net, [np.random.default_rng(0)], "reference")
        bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        convs = [m for m in net.modules()
                 if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
        gammas = torch.cat([m.weight.detach() for m in bns])
        assert gammas.abs().max() < 0.15 and abs(float(gammas.mean())) < 0.02  # N(0, 0.02)
        assert all(float(m.bias.detach().abs().max()) == 0 for m in bns)
        for m in convs:
            assert m.bias is not None  # every convolution keeps a bias, as in the reference
            fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(m.weight)
            bound = 1 / math.sqrt(fan_in)
            b = m.bias.detach()
            assert float(b.abs().max()) <= bound and float(b.abs().max()) > 0.3 * bound
    # the project's DCGAN initialisation stays the default, as before
    dc = wgan.build_generator(size, 4, 1)
    wgan.init_grouped(dc, [np.random.default_rng(0)])
    g = torch.cat([m.weight.detach() for m in dc.modules()
                   if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(float(g.mean()) - 1) < 0.02
    assert wgan.WGANConfig().init == "dcgan"
    assert wgan.WGANConfig(**wgan.PRESETS["corel5k"]).init == "reference"
    # the default's settings hash does not change (existing fakes stay valid)
    assert "init" not in wgan.fake_settings(wgan.WGANConfig())
    assert wgan.fake_settings(wgan.WGANConfig(init="reference"))["init"] == "reference"


def test_wgan_reference_initialisation_grouped_is_solo():
    from lib.method import wgan

    size, seeds = (16, 24), [3, 11]
    grouped = wgan.build_critic(size, 4, 2, bias=True)
    wgan.init_grouped(grouped, [np.random.default_rng(s) for s in seeds], "reference")
    for k, s in enumerate(seeds):
        solo = wgan.build_critic(size, 4, 1, bias=True)
        wgan.init_grouped(solo, [np.random.default_rng(s)], "reference")
        for (name, gp), (_, sp) in zip(grouped.named_parameters(), solo.named_parameters(),
                                       strict=True):
            n = sp.shape[0]
            torch.testing.assert_close(gp.detach()[k * n:(k + 1) * n], sp.detach(), msg=name)


# ----------------------------------------------------------------------------- shipped fakes


def _release_like(tiny_scenes, tmp_path):
    """A folder laid out like the Kaggle release: images/ with three fakes per training image
    (`<stem>_aug.jpeg`, `_aug_hor_flip.jpeg`, `_aug_rot_90.jpeg`), train_aug.json listing them
    with the source's labels, and no augment_logs/config.json of this project."""
    import json
    import shutil

    from PIL import Image

    from lib.data import augment_records

    root = tmp_path / "release"
    shutil.copytree(tiny_scenes, root)
    train = json.loads((root / "train.json").read_text())
    samples = []
    for s in train["samples"]:
        img = Image.open(root / "images" / s["image_name"]).convert("RGB")
        for aug in augment_records.aug_names(s["image_name"]):
            img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "images" / aug,
                                                                format="JPEG")
            samples.append({"image_name": aug, "image_labels": s["image_labels"]})
    (root / "train_aug.json").write_text(json.dumps({"labels": train["labels"],
                                                     "samples": samples}))
    assert not (root / "augment_logs").exists()
    return root, len(train["samples"]), len(samples)


@pytest.mark.slow
def test_shipped_fakes_train_and_are_never_destroyed(tiny_scenes, tmp_path):
    from lib.data import augment_records, augmentation

    root, n_real, n_fake = _release_like(tiny_scenes, tmp_path)
    before = {p.name: p.read_bytes() for p in (root / "images").glob("*_aug*.jpeg")}
    assert len(before) == n_fake == 3 * n_real
    run = RunFolder(launch.train(_config(root, tmp_path / "aug", protocol="reference",
                                           augmented=True)))
    assert run.config["n_train"] == n_real + n_fake
    assert run.config["augmentation"]["fakes"] == n_fake
    assert run.config["normalization_mean"] == [0.4249, 0.4365, 0.3926]
    for overwrite in (False, True):
        with pytest.raises(augment_records.SettingsMismatch, match="made elsewhere"):
            augmentation.augment(root, limit=2, iterations=3, image_size=(16, 24), width=2,
                                 overwrite=overwrite, progress=False)
    after = {p.name: p.read_bytes() for p in (root / "images").glob("*_aug*.jpeg")}
    assert after == before
    assert len((root / "train_aug.json").read_text()) > 0
