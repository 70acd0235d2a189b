"""ML-WGAN augmentation (docs/method.md, "ML-WGAN augmentation"): architecture, grouped ==
separate, preprocessing, settings and presets, outputs, selection and coverage, resume,
sharding, and settings that must never mix (interrupted overwrites, shards with other
settings, stale temporary files)."""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lib.core import config as config_lib
from lib.data import augment_records, augmentation
from lib.data.datasets import DatasetError, load_dataset
from lib.method import wgan

#: tiny settings: reference defaults (select=first) but 3 iterations of 16x24 fakes
TINY = {"iterations": 3, "image_size": "16x24", "width": 4, "crop_border": 0}
QUIET = {"progress": False}


def _copy(tiny_scenes: Path, tmp_path: Path) -> Path:
    out = tmp_path / "scenes"
    shutil.copytree(tiny_scenes, out)
    return out


def _train_samples(root: Path) -> list[dict]:
    return json.loads((root / "train.json").read_text())["samples"]


def _fakes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "images").glob("*_aug*.jpeg"))}




def _convs(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


# ------------------------------------------------------------------ architecture


def test_reference_architecture():
    gen = wgan.build_generator((128, 192), 64)
    convs = _convs(gen)
    assert [c.out_channels for c in convs] == [1024, 512, 256, 128, 64, 3]
    assert convs[0].in_channels == 100 and convs[0].kernel_size == (4, 6)
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs[1:])
    assert isinstance(list(gen)[-1], nn.Tanh)
    crit = wgan.build_critic((128, 192), 64)
    convs = _convs(crit)
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


# ------------------------------------------------------------------ settings


def test_config_defaults_are_the_reference_recipe_and_presets_are_partial():
    ref = wgan.WGANConfig()
    # the reference recipe, spelled out independently (docs/method.md, "ML-WGAN augmentation")
    assert (ref.iterations, ref.image_size, ref.width, ref.lr, ref.betas) == \
        (1001, (128, 192), 64, 2e-4, (0.5, 0.999))
    assert (ref.critic_steps, ref.gp_weight, ref.flip_prob, ref.crop_border, ref.batch_size,
            ref.noise_dim) == (5, 10.0, 0.1, 3, 1, 100)
    assert (ref.select, ref.limit) == ("first", None)
    assert set(wgan.PRESETS) == {"default", "corel5k"}
    # the corel5k preset is the defaults plus the reference's initialisation (issue 21)
    assert config_lib.build(wgan.WGANConfig, wgan.PRESETS, "corel5k") == \
        wgan.WGANConfig(init="reference")
    small = config_lib.build(wgan.WGANConfig, wgan.PRESETS, "default", {"seed": 3})
    # notebook 03's embedded default
    assert (small.iterations, small.image_size, small.width, small.lr, small.crop_border,
            small.limit, small.batch_images, small.select, small.seed) == \
        (500, (32, 32), 16, 1e-3, 0, 16, 16, "rare", 3)
    # the user wins over the preset, even with the dataclass default
    assert config_lib.build(wgan.WGANConfig, wgan.PRESETS, "default",
                            {"limit": None, "lr": 2e-4}).limit is None


@pytest.mark.parametrize(("overrides", "message"), [
    ({"iterations": 2}, "iterations"), ({"select": "rarest"}, "select"),
    ({"image_size": "15x24"}, "image_size"), ({"limit": 0}, "limit"),
    ({"widht": 8}, "widht"), ({"device": "gpu0"}, "device"), ({"betas": [0.5, 1.0]}, "betas"),
])
def test_bad_settings_are_config_errors_naming_the_setting(overrides, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.build(wgan.WGANConfig, wgan.PRESETS, "default", overrides)


def test_cli_options_override_only_what_is_given():
    parser = augmentation.build_parser()
    args = parser.parse_args(["data/x", "--width", "8", "--limit", "none",
                              "--image-size", "16", "24"])
    assert augmentation.config_from_args(args) == config_lib.build(
        wgan.WGANConfig, wgan.PRESETS, "default", {"width": 8, "limit": None,
                                                   "image_size": (16, 24)})
    args = parser.parse_args(["data/x", "--preset", "corel5k", "--device", "cuda:1"])
    assert augmentation.config_from_args(args) == wgan.WGANConfig(device="cuda:1",
                                                                  init="reference")
    with pytest.raises(SystemExit):
        parser.parse_args(["data/x", "--select", "often"])


def test_augment_takes_a_config_or_overrides_not_both(tiny_scenes):
    with pytest.raises(config_lib.ConfigError, match="not both"):
        augmentation.augment(tiny_scenes, wgan.WGANConfig(), width=8)
    with pytest.raises(config_lib.ConfigError, match="widht"):
        augmentation.augment(tiny_scenes, widht=8)


# ------------------------------------------------------------------ dataset runs


def _jpeg_tables(array: np.ndarray, quality: int) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return Image.open(buffer).quantization


def test_fakes_are_jpeg_at_quality_95():
    array = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    saved = Image.open(io.BytesIO(wgan.jpeg_bytes(array)))
    assert saved.quantization == _jpeg_tables(array, 95) != _jpeg_tables(array, 75)


def test_fake_variants_take_the_last_three_iterations_in_order():
    """plain <- iteration n-2, horizontal flip <- n-1, 90 degrees clockwise <- n; uint8 by
    round((x + 1) * 127.5)."""
    gen = torch.Generator().manual_seed(0)
    fakes = [torch.rand(3, 4, 6, generator=gen) * 2 - 1 for _ in range(3)]
    by_hand = [np.rint((f.numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
               for f in fakes]
    plain, flipped, rotated = wgan.fake_variants(fakes)
    np.testing.assert_array_equal(plain, by_hand[0])
    np.testing.assert_array_equal(flipped, by_hand[1][:, ::-1])
    np.testing.assert_array_equal(rotated, np.rot90(by_hand[2], -1))
    assert rotated.shape == (6, 4, 3)


def test_preprocess_is_the_centre_crop_resized_bilinear_and_scaled():
    """128x192 target, border 3: the crop (3, 3, 189, 125) (122 x 186), bilinear back to
    128 x 192, x / 127.5 - 1, channels first."""
    array = np.random.default_rng(1).integers(0, 256, (128, 192, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    out = wgan.preprocess(image, (128, 192), 3)
    ref = np.asarray(image.crop((3, 3, 189, 125)).resize((192, 128), Image.Resampling.BILINEAR),
                     dtype=np.float64) / 127.5 - 1.0
    np.testing.assert_allclose(out.numpy(), ref.transpose(2, 0, 1), atol=1e-6)


def test_outputs_match_the_corel_format(tiny_scenes, tmp_path, corel_dir):
    root = _copy(tiny_scenes, tmp_path)
    summary = augmentation.augment(root, batch_images=2, limit=4, **TINY, **QUIET)
    assert summary["trained"] == 4 and summary["train_aug_entries"] == 12
    assert (summary["images"], summary["of"], summary["select"]) == (4, 96, "first")
    ours = json.loads((root / "train_aug.json").read_text())
    corel = json.loads((corel_dir / "train_aug.json").read_text())
    train = _train_samples(root)[:4]
    corel_train = json.loads((corel_dir / "train.json").read_text())["samples"]
    # Corel: three entries per training image, train.json order, the image's labels
    assert len(corel["samples"]) == 3 * len(corel_train)
    first = corel_train[0]
    corel_stem = first["image_name"].rsplit(".", 1)[0]
    assert [s["image_name"] for s in corel["samples"][:3]] == [
        n.replace("STEM", corel_stem) for n in augment_records.aug_names("STEM.jpeg")]
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
        assert image.quantization == _jpeg_tables(np.asarray(image), 95)   # quality 95
        assert image.size == ((16, 24) if sample["image_name"].endswith("rot_90.jpeg")
                              else (24, 16))
    ds = load_dataset(root)
    assert ds.splits["train_aug"].names == [s["image_name"] for s in expected]
    logs = augmentation.load_logs(root)
    assert len(logs) == 4 * 3 and set(logs["image"]) == {s["image_name"] for s in train}
    assert np.isfinite(logs[["critic_loss", "generator_loss"]].to_numpy()).all()
    recorded = json.loads((root / "augment_logs" / "config.json").read_text())
    assert (recorded["images"], recorded["of"], recorded["select"]) == (4, 96, "first")
    assert recorded["settings"]["width"] == 4 and "device" not in recorded["settings"]
    assert augment_records.augmentation_info(root) == {"images": 4, "of": 96, "select": "first"}


def test_second_run_does_no_work(tiny_scenes, tmp_path, monkeypatch):
    root = _copy(tiny_scenes, tmp_path)
    threads = torch.get_num_threads()
    augmentation.augment(root, batch_images=3, limit=3, **{**TINY, "threads": threads + 1}, **QUIET)
    assert torch.get_num_threads() == threads  # restored
    before = _fakes(root)
    assert len(before) == 9

    def fail(*args, **kwargs):
        raise AssertionError("trainer called on a finished dataset")

    monkeypatch.setattr(augmentation, "train_group", fail)
    # batch_images, threads and device do not change the fakes: not a settings change
    summary = augmentation.augment(root, batch_images=1, limit=3, **TINY, **QUIET)
    assert summary["trained"] == 0 and summary["skipped_done"] == 3
    assert _fakes(root) == before
    with pytest.raises(augment_records.SettingsMismatch,
                       match="config.json.*iterations: recorded 3, now 4"):
        augmentation.augment(root, batch_images=3, limit=3, **{**TINY, "iterations": 4}, **QUIET)


def test_two_shards_equal_one_run(tiny_scenes, tmp_path):
    one = _copy(tiny_scenes, tmp_path / "one")
    two = _copy(tiny_scenes, tmp_path / "two")
    args = ["--iterations", "3", "--image-size", "16", "24", "--width", "4", "--crop-border", "0",
            "--limit", "6", "--batch-images", "3", "--no-progress"]
    assert augmentation.augment_main([str(one), *args]) == 0
    # the second shard finishes first: train_aug.json still follows the training order
    assert augmentation.augment_main([str(two), *args, "--shard", "1/2"]) == 0
    partial = json.loads((two / "train_aug.json").read_text())["samples"]
    assert len(partial) == 9
    assert augmentation.augment_main([str(two), *args, "--shard", "0/2"]) == 0
    assert (one / "train_aug.json").read_bytes() == (two / "train_aug.json").read_bytes()
    assert (one / "augment_logs" / "config.json").read_bytes() == \
        (two / "augment_logs" / "config.json").read_bytes()
    fakes = _fakes(one)
    assert len(fakes) == 18
    assert fakes == _fakes(two)


def test_corrupt_image_is_reported_by_name(tiny_scenes, tmp_path):
    root = _copy(tiny_scenes, tmp_path)
    name = _train_samples(root)[1]["image_name"]
    (root / "images" / name).write_bytes(b"not an image at all")
    with pytest.raises(DatasetError, match=name):
        augmentation.augment(root, batch_images=2, limit=2, **TINY, **QUIET)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="shard"):
        augmentation.parse_shard("2/2")
    with pytest.raises(ValueError, match="image size"):
        wgan.parse_size("12by5")
    with pytest.raises(ValueError, match="iterations"):
        wgan.WGANConfig(iterations=2, image_size=(16, 24))


# ------------------------------------------------------------------ settings never mix


class _Interrupt(BaseException):
    """Stands for the user's Ctrl-C or a killed process."""


def test_interrupted_overwrite_then_plain_rerun_continues_with_the_new_settings(
        tiny_scenes, tmp_path, monkeypatch):
    """`augment --overwrite --width 8` killed while saving the third image, then a plain
    rerun: every fake ends up made with width 8, byte-identical to a fresh width-8 run."""
    root = _copy(tiny_scenes, tmp_path / "mixed")
    fresh = _copy(tiny_scenes, tmp_path / "fresh")
    run = {**TINY, "limit": 4, "batch_images": 2, **QUIET}
    augmentation.augment(root, **run)                                   # width 4
    third = augment_records.aug_names(_train_samples(root)[2]["image_name"])[-1]
    real_write = augmentation.atomic_write_bytes

    def dying_write(path, data):
        if Path(path).name == third:
            raise _Interrupt
        return real_write(path, data)

    monkeypatch.setattr(augmentation, "atomic_write_bytes", dying_write)
    with pytest.raises(_Interrupt):
        augmentation.augment(root, overwrite=True, **{**run, "width": 8})
    monkeypatch.setattr(augmentation, "atomic_write_bytes", real_write)
    # the recorded settings are the new ones: the old settings are refused now
    with pytest.raises(augment_records.SettingsMismatch,
                       match=r"config\.json.*width: recorded 8, now 4"):
        augmentation.augment(root, **run)
    summary = augmentation.augment(root, **{**run, "width": 8})         # plain rerun
    # images 0 and 1 were redone before the interruption; 2 (half saved) and 3 (width 4) now
    assert (summary["trained"], summary["skipped_done"], summary["images"]) == (2, 2, 4)
    augmentation.augment(fresh, **{**run, "width": 8})
    assert _fakes(root) == _fakes(fresh) and len(_fakes(root)) == 12
    assert (root / "train_aug.json").read_bytes() == (fresh / "train_aug.json").read_bytes()
    assert json.loads((root / "augment_logs" / "config.json").read_text())["settings"]["width"] == 8


def test_shard_with_other_settings_is_refused(tiny_scenes, tmp_path, capsys):
    root = _copy(tiny_scenes, tmp_path)
    args = ["--iterations", "3", "--image-size", "16", "24", "--crop-border", "0", "--limit", "4",
            "--batch-images", "2", "--no-progress"]
    assert augmentation.augment_main([str(root), *args, "--width", "4", "--shard", "0/2"]) == 0
    before = _fakes(root)
    assert augmentation.augment_main([str(root), *args, "--width", "8", "--shard", "1/2"]) == 2
    err = capsys.readouterr().err
    assert "augment_logs/config.json" in err and "width: recorded 4, now 8" in err
    assert _fakes(root) == before and len(before) == 6          # nothing written
    # the same settings are welcome
    assert augmentation.augment_main([str(root), *args, "--width", "4", "--shard", "1/2"]) == 0
    assert len(_fakes(root)) == 12


def test_overwrite_is_refused_while_another_shard_runs(tiny_scenes, tmp_path):
    root = _copy(tiny_scenes, tmp_path)
    run = {**TINY, "limit": 2, **QUIET}
    augmentation.augment(root, **run)
    # another augmentation process holds its presence lock (flock: per open file)
    with open(root / "augment_logs" / ".running", "a+") as other:
        fcntl.flock(other, fcntl.LOCK_SH)
        with pytest.raises(augment_records.SettingsMismatch, match="another augmentation process"):
            augmentation.augment(root, overwrite=True, **{**run, "width": 8})
        # the same settings are fine beside it
        assert augmentation.augment(root, **run)["skipped_done"] == 2


def test_resume_after_a_kill_is_byte_identical_and_removes_stale_temporaries(
        tiny_scenes, tmp_path, monkeypatch):
    once = _copy(tiny_scenes, tmp_path / "once")
    twice = _copy(tiny_scenes, tmp_path / "twice")
    run = {**TINY, "limit": 4, "batch_images": 2, **QUIET}
    augmentation.augment(once, **run)
    real_train = wgan.train_group
    calls = []

    def dies_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise _Interrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(augmentation, "train_group", dies_on_second_batch)
    with pytest.raises(_Interrupt):
        augmentation.augment(twice, **run)
    monkeypatch.setattr(augmentation, "train_group", real_train)
    # what a kill -9 in the middle of atomic saves leaves behind
    stem = _train_samples(twice)[2]["image_name"].rsplit(".", 1)[0]
    stale = [twice / "images" / f".{stem}_aug.jpeg.k2j4x9.tmp",
             twice / "augment_logs" / f".{stem}.csv.a8s7d6.csv",
             twice / "augment_logs" / f".{stem}.settings.json.zz91q.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    foreign = twice / "images" / ".someone_elses.tmp"
    foreign.write_bytes(b"not ours")
    summary = augmentation.augment(twice, **run)
    assert (summary["trained"], summary["skipped_done"],
            summary["stale_temps_removed"]) == (2, 2, 3)
    assert not any(p.exists() for p in stale) and foreign.exists()
    assert _fakes(once) == _fakes(twice)
    for name in ("train_aug.json", "augment_logs/config.json", f"augment_logs/{stem}.csv"):
        assert (once / name).read_bytes() == (twice / name).read_bytes(), name


def test_only_old_temporaries_are_removed_while_another_shard_runs(tiny_scenes, tmp_path):
    root = _copy(tiny_scenes, tmp_path)
    run = {**TINY, "limit": 2, **QUIET}
    augmentation.augment(root, **run)
    young = root / "images" / ".1_aug.jpeg.young1.tmp"
    old = root / "images" / ".1_aug_rot_90.jpeg.old123.tmp"
    for path in (young, old):
        path.write_bytes(b"x")
    hours_ago = time.time() - 2 * augment_records.STALE_TEMP_SECONDS
    os.utime(old, (hours_ago, hours_ago))
    with open(root / "augment_logs" / ".running", "a+") as other:
        fcntl.flock(other, fcntl.LOCK_SH)   # another shard is writing: `young` may be its own
        assert augmentation.augment(root, **run)["stale_temps_removed"] == 1
    assert young.exists() and not old.exists()


def test_fakes_of_unknown_settings_are_never_overwritten(tiny_scenes, tmp_path):
    """Fakes without records (made elsewhere, e.g. the reference's Corel-5k files shipped in
    the Kaggle release) are refused, with --overwrite too, and stay byte for byte."""
    root = _copy(tiny_scenes, tmp_path)
    name = _train_samples(root)[0]["image_name"]
    real = Image.open(root / "images" / name).convert("RGB")
    for aug in augment_records.aug_names(name):
        real.save(root / "images" / aug, format="JPEG")
    foreign = _fakes(root)
    with pytest.raises(augment_records.SettingsMismatch, match="made elsewhere"):
        augmentation.augment(root, limit=2, **TINY, **QUIET)
    with pytest.raises(augment_records.SettingsMismatch, match="never overwritten"):
        augmentation.augment(root, limit=2, overwrite=True, **TINY, **QUIET)
    assert _fakes(root) == foreign


# ------------------------------------------------------------------ which images


def test_selection_orders_by_hand():
    names = ["i0", "i1", "i2", "i3", "i4", "i5"]
    #                a  b  c        label frequencies: a 3, b 2, c 2
    targets = np.array([[1, 0, 0],   # i0: rarest label a (3)
                        [0, 1, 1],   # i1: b, c (2)
                        [0, 0, 0],   # i2: no labels -> last
                        [1, 1, 0],   # i3: b (2)
                        [0, 0, 1],   # i4: c (2)
                        [1, 0, 0]])  # i5: a (3)
    assert augmentation.selection_order(names, targets, "rare", 0) == [
        "i1", "i3", "i4", "i0", "i5", "i2"]
    assert augmentation.selection_order(names, targets, "first", 0) == names
    shuffled = augmentation.selection_order(names, targets, "random", 0)
    assert sorted(shuffled) == names
    assert shuffled == augmentation.selection_order(names, targets, "random", 0)
    orders = {tuple(augmentation.selection_order(names, targets, "random", s)) for s in range(6)}
    assert len(orders) > 1


def test_rare_selection_and_coverage_against_the_json_files(tiny_scenes, tmp_path):
    root = _copy(tiny_scenes, tmp_path)
    samples = _train_samples(root)
    # independently, from train.json: each image's smallest label frequency
    frequency = Counter(label for s in samples for label in s["image_labels"])
    key = [min((frequency[x] for x in s["image_labels"]), default=10**9) for s in samples]
    rare = [samples[i]["image_name"] for i in sorted(range(len(samples)), key=lambda i: key[i])]
    config = wgan.WGANConfig(**TINY, select="rare", limit=5, batch_images=5)
    assert augmentation.select_images(root, config) == rare[:5]
    assert augmentation.select_images(root, wgan.WGANConfig(**TINY, select="random", limit=3)) == \
        augmentation.select_images(root, wgan.WGANConfig(**TINY, select="random", limit=7))[:3]
    summary = augmentation.augment(root, config, progress=False)
    assert (summary["images"], summary["of"], summary["selected"]) == (5, len(samples), 5)
    listed = json.loads((root / "train_aug.json").read_text())["samples"]
    chosen = set(rare[:5])
    assert [s["image_name"] for s in listed[::3]] == [
        s["image_name"].rsplit(".", 1)[0] + "_aug.jpeg" for s in samples
        if s["image_name"] in chosen]                                   # training order
    coverage = augmentation.augmentation_coverage(root).set_index("label")
    augmented = Counter(x for s in samples if s["image_name"] in chosen
                        for x in s["image_labels"])
    for label, n in frequency.items():
        row = coverage.loc[label]
        assert (row["train_images"], row["augmented_images"]) == (n, augmented[label]), label
        assert row["share"] == pytest.approx(augmented[label] / n)
    assert list(coverage["train_images"]) == sorted(coverage["train_images"])
    rarest = min(frequency, key=lambda x: (frequency[x], x))
    assert coverage.loc[rarest, "share"] > 0       # the rarest label got fakes
    assert augmentation.done_images(root) == [s["image_name"] for s in samples
                                      if s["image_name"] in chosen]
