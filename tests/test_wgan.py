"""ML-WGAN augmentation (SPEC 3): architecture, grouped == separate, preprocessing, outputs,
resume and sharding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lib import wgan
from lib.data import DatasetError, load_dataset

TINY = {"iterations": 3, "image_size": "16x24", "width": 4, "crop_border": 0,
        "progress": False}


def _copy(tiny_scenes: Path, tmp_path: Path) -> Path:
    out = tmp_path / "scenes"
    shutil.copytree(tiny_scenes, out)
    return out


def _convs(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


# ------------------------------------------------------------------ architecture


def test_reference_architecture_matches_spec():
    gen = wgan.build_generator((128, 192), 64)
    convs = _convs(gen)
    assert [c.out_channels for c in convs] == [1024, 512, 256, 128, 64, 3]
    assert convs[0].in_channels == 100 and convs[0].kernel_size == (4, 6)
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs[1:])
    assert isinstance(list(gen)[-1], nn.Tanh)
    crit = build = wgan.build_critic((128, 192), 64)
    convs = _convs(build)
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1024, 1]
    assert convs[-1].kernel_size == (4, 6)
    slopes = {m.negative_slope for m in crit.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    assert sum(isinstance(m, nn.BatchNorm2d) for m in crit.modules()) == 5


@pytest.mark.parametrize(("size", "expected"), [
    ((128, 192), (5, (4, 6))), ((64, 64), (4, (4, 4))), ((32, 48), (3, (4, 6))),
    ((16, 24), (2, (4, 6))), ((32, 32), (3, (4, 4))), ((12, 20), (1, (6, 10))),
])
def test_architecture_rule(size, expected):
    assert wgan.architecture(size) == expected
    stages, _ = expected
    gen = wgan.build_generator(size, 2, groups=2)
    crit = wgan.build_critic(size, 2, groups=2)
    out = gen(torch.randn(3, 200, 1, 1))
    assert out.shape == (3, 6, *size)
    assert crit(out).shape == (3, 2, 1, 1)
    assert len(_convs(gen)) == stages + 1


def test_bad_image_size_is_rejected():
    with pytest.raises(ValueError, match="15x24"):
        wgan.architecture((15, 24))


# ------------------------------------------------------------------ grouped == separate


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-4)])
def test_grouped_training_equals_separate_runs(dtype, tol):
    """K = 3 images as one grouped network == three single-image runs with the same seeds."""
    config = wgan.WGANConfig(iterations=4, image_size=(16, 24), width=4, batch_size=2)
    images = torch.rand(3, 3, 16, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
    seeds = [wgan.image_seed(7, f"img{k}.jpg") for k in range(3)]
    grouped = wgan.train_group(images, seeds, config, dtype=dtype)
    assert grouped.fakes.shape == (3, 3, 3, 16, 24)
    for k in range(3):
        solo = wgan.train_group(images[k:k + 1], seeds[k:k + 1], config, dtype=dtype)
        block = wgan.generator_block(grouped.generator, k, 3)
        for name, value in wgan.generator_block(solo.generator, 0, 1).items():
            torch.testing.assert_close(block[name], value, rtol=tol, atol=tol, msg=name)
        torch.testing.assert_close(grouped.fakes[:, k], solo.fakes[:, 0], rtol=tol, atol=tol)
        np.testing.assert_allclose(grouped.critic_loss[:, k], solo.critic_loss[:, 0],
                                   rtol=tol, atol=tol)
        np.testing.assert_allclose(grouped.generator_loss[:, k], solo.generator_loss[:, 0],
                                   rtol=tol, atol=tol)
    # the training moved the weights away from the initialisation (the test can fail)
    init = wgan.build_generator((16, 24), 4, 1)
    wgan.init_grouped(init, [np.random.default_rng(seeds[0])])
    moved = wgan.generator_block(grouped.generator, 0, 3)
    assert any(not torch.allclose(moved[n].double(), p.detach().double())
               for n, p in init.named_parameters())


def test_stacked_batchnorm_is_per_group():
    """BatchNorm over stacked channels normalises each group with its own statistics."""
    x = torch.randn(4, 6, 5, 5)
    x[:, 3:] = x[:, 3:] * 10 + 3
    stacked = nn.BatchNorm2d(6)(x)
    torch.testing.assert_close(stacked[:, 3:], nn.BatchNorm2d(3)(x[:, 3:]))
    torch.testing.assert_close(stacked[:, :3], nn.BatchNorm2d(3)(x[:, :3]))


def test_image_seed_depends_on_seed_and_name_only():
    a = np.random.default_rng(wgan.image_seed(0, "1000.jpeg")).random(3)
    assert np.array_equal(a, np.random.default_rng(wgan.image_seed(0, "1000.jpeg")).random(3))
    assert not np.array_equal(a, np.random.default_rng(wgan.image_seed(1, "1000.jpeg")).random(3))
    assert not np.array_equal(a, np.random.default_rng(wgan.image_seed(0, "1003.jpeg")).random(3))


# ------------------------------------------------------------------ preprocessing


def test_reference_crop_is_122x186():
    assert wgan.crop_box((128, 192), (128, 192), 3) == (3, 3, 189, 125)
    assert wgan.crop_box((192, 128), (128, 192), 0) == (0, 53, 128, 138)  # 85x128, top (192-85)//2


def test_portrait_image_is_rotated_then_cropped_and_scaled():
    """A 192x128 portrait image with four coloured quadrants comes out as the 90-degree
    (counter-clockwise) rotation, cropped by 3 pixels and scaled to [-1, 1]."""
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], dtype=np.uint8)
    portrait = np.zeros((192, 128, 3), dtype=np.uint8)
    portrait[:96, :64] = colours[0]   # top left
    portrait[:96, 64:] = colours[1]   # top right
    portrait[96:, :64] = colours[2]   # bottom left
    portrait[96:, 64:] = colours[3]   # bottom right
    out = wgan.preprocess(Image.fromarray(portrait), (128, 192), 3)
    assert out.shape == (3, 128, 192)
    assert out.min() >= -1 and out.max() <= 1
    expected = np.rot90(portrait, 1)[3:125, 3:189]   # counter-clockwise, then the crop
    assert expected.shape == (122, 186, 3)
    pixels = ((out.numpy().transpose(1, 2, 0) + 1) * 127.5).round()
    # quadrant centres of the output against the rotated array (top right becomes top left)
    for (y, x), (ey, ex) in [((30, 45), (30, 44)), ((30, 150), (30, 145)),
                             ((100, 45), (95, 44)), ((100, 150), (95, 145))]:
        np.testing.assert_allclose(pixels[y, x], expected[ey, ex], atol=1)
    np.testing.assert_allclose(pixels[30, 45], colours[1], atol=1)


def test_fake_variants_flip_and_rotate():
    fake = torch.linspace(-1, 1, 3 * 2 * 3).reshape(3, 2, 3)
    plain, flipped, rotated = wgan.fake_variants([fake, fake, fake])
    assert plain.shape == (2, 3, 3) and rotated.shape == (3, 2, 3)
    np.testing.assert_array_equal(flipped, plain[:, ::-1])
    # clockwise: the bottom-left pixel goes to the top left, the top-left to the top right
    np.testing.assert_array_equal(rotated[0, 0], plain[1, 0])
    np.testing.assert_array_equal(rotated[0, 1], plain[0, 0])
    np.testing.assert_array_equal(rotated[2, 0], plain[1, 2])


# ------------------------------------------------------------------ dataset runs


def test_outputs_match_spec_and_corel_format(tiny_scenes, tmp_path, corel_dir):
    root = _copy(tiny_scenes, tmp_path)
    summary = wgan.augment(root, batch_images=2, limit=4, **TINY)
    assert summary["trained"] == 4 and summary["train_aug_entries"] == 12
    ours = json.loads((root / "train_aug.json").read_text())
    corel = json.loads((corel_dir / "train_aug.json").read_text())
    train = json.loads((root / "train.json").read_text())["samples"][:4]
    corel_train = json.loads((corel_dir / "train.json").read_text())["samples"]
    # Corel: three entries per training image, train.json order, the image's labels
    assert len(corel["samples"]) == 3 * len(corel_train)
    first = corel_train[0]
    corel_stem = first["image_name"].rsplit(".", 1)[0]
    assert [s["image_name"] for s in corel["samples"][:3]] == [
        n.replace("STEM", corel_stem) for n in wgan.aug_names("STEM.jpeg")]
    assert all(s["image_labels"] == first["image_labels"] for s in corel["samples"][:3])
    assert set(ours) == {"labels", "samples"}
    assert ours["labels"] == json.loads((root / "train.json").read_text())["labels"]
    # same entry structure as the Corel file (keys, in order)
    assert {tuple(s) for s in ours["samples"]} == {tuple(s) for s in corel["samples"]}
    expected = []
    for sample in train:
        stem = sample["image_name"].rsplit(".", 1)[0]
        expected += [{"image_name": f"{stem}{suffix}.jpeg", "image_labels": sample["image_labels"]}
                     for suffix in ("_aug", "_aug_hor_flip", "_aug_rot_90")]
    assert ours["samples"] == expected
    for sample in expected:
        image = Image.open(root / "images" / sample["image_name"])
        assert image.format == "JPEG"
        assert image.size == ((16, 24) if sample["image_name"].endswith("rot_90.jpeg")
                              else (24, 16))
    ds = load_dataset(root)
    assert ds.splits["train_aug"].names == [s["image_name"] for s in expected]
    logs = wgan.load_logs(root)
    assert len(logs) == 4 * 3 and set(logs["image"]) == {s["image_name"] for s in train}
    assert np.isfinite(logs[["critic_loss", "generator_loss"]].to_numpy()).all()


def test_second_run_does_no_work(tiny_scenes, tmp_path, monkeypatch):
    root = _copy(tiny_scenes, tmp_path)
    threads = torch.get_num_threads()
    wgan.augment(root, batch_images=3, limit=3, **{**TINY, "threads": threads + 1})
    assert torch.get_num_threads() == threads  # restored
    before = {p.name: p.read_bytes() for p in (root / "images").glob("*_aug*.jpeg")}
    assert len(before) == 9

    def fail(*args, **kwargs):
        raise AssertionError("trainer called on a finished dataset")

    monkeypatch.setattr(wgan, "train_group", fail)
    summary = wgan.augment(root, batch_images=3, limit=3, **TINY)
    assert summary["trained"] == 0 and summary["skipped_done"] == 3
    assert {p.name: p.read_bytes() for p in (root / "images").glob("*_aug*.jpeg")} == before
    with pytest.raises(ValueError, match="config.json"):
        wgan.augment(root, batch_images=3, limit=3, **{**TINY, "iterations": 4})


def test_two_shards_equal_one_run(tiny_scenes, tmp_path):
    one = _copy(tiny_scenes, tmp_path / "one")
    two = _copy(tiny_scenes, tmp_path / "two")
    args = ["--iterations", "3", "--image-size", "16x24", "--width", "4", "--crop-border", "0",
            "--limit", "6", "--batch-images", "3", "--no-progress"]
    assert wgan.augment_main([str(one), *args]) == 0
    # the second shard finishes first: train_aug.json still follows the training order
    assert wgan.augment_main([str(two), *args, "--shard", "1/2"]) == 0
    partial = json.loads((two / "train_aug.json").read_text())["samples"]
    assert len(partial) == 9
    assert wgan.augment_main([str(two), *args, "--shard", "0/2"]) == 0
    assert (one / "train_aug.json").read_bytes() == (two / "train_aug.json").read_bytes()
    fakes = sorted(p.name for p in (one / "images").glob("*_aug*.jpeg"))
    assert len(fakes) == 18
    assert fakes == sorted(p.name for p in (two / "images").glob("*_aug*.jpeg"))
    for name in fakes:
        assert (one / "images" / name).read_bytes() == (two / "images" / name).read_bytes(), name


def test_corrupt_image_is_reported_by_name(tiny_scenes, tmp_path):
    root = _copy(tiny_scenes, tmp_path)
    name = json.loads((root / "train.json").read_text())["samples"][1]["image_name"]
    (root / "images" / name).write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match=name):
        wgan.augment(root, batch_images=2, limit=2, **TINY)


def test_bad_arguments_are_rejected(tiny_scenes):
    with pytest.raises(ValueError, match="shard"):
        wgan.parse_shard("2/2")
    with pytest.raises(ValueError, match="image size"):
        wgan.parse_size("12by5")
    with pytest.raises(ValueError, match="iterations"):
        wgan.WGANConfig(iterations=2, image_size=(16, 24))
