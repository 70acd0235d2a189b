"""Images for the network: flips, the content-keyed decode cache, channel statistics."""

from __future__ import annotations

import os
import shutil

import numpy as np
import torch
from PIL import Image

from lib.data import datasets
from lib.training import images


def test_random_flips_follow_the_documented_coins():
    batch = torch.randint(0, 256, (16, 3, 5, 7), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    before = batch.clone()
    out = images.random_flips(batch, torch.Generator().manual_seed(4))
    coins = torch.rand(16, 2, generator=torch.Generator().manual_seed(4)) < 0.5
    assert coins[:, 0].any() and (~coins[:, 0]).any()  # both cases are exercised
    for img, got, (h, v) in zip(batch, out, coins.tolist(), strict=True):
        ref = img.flip(-1) if h else img
        assert torch.equal(got, ref.flip(-2) if v else ref)
    assert torch.equal(batch, before)  # the input batch is not modified
    again = images.random_flips(batch, torch.Generator().manual_seed(4))
    assert torch.equal(out, again)


def test_channel_stats_match_numpy():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(7, 5, 4, 3), dtype=np.uint8)
    mean, std = images.channel_stats(arr, chunk=3)
    x = arr.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-10)
    np.testing.assert_allclose(std, x.std(0), rtol=1e-8)


def test_image_cache_decodes_once(tiny_scenes, monkeypatch):
    ds = datasets.load_dataset(tiny_scenes)
    names = ds.splits["val"].names
    calls = []
    real = datasets.read_image
    monkeypatch.setattr(datasets, "read_image", lambda p: calls.append(p) or real(p))
    first = images.image_cache(ds, "val", names, 24)
    assert len(calls) == len(names) and first.shape == (len(names), 24, 24, 3)
    assert isinstance(first, np.memmap) and first.dtype == np.uint8
    second = images.image_cache(ds, "val", names, 24)
    assert len(calls) == len(names)  # reused, not re-decoded
    np.testing.assert_array_equal(first, second)
    # the cache holds exactly the shared decoding (PIL resize of read_image)
    np.testing.assert_array_equal(first[3], images.decode_image(ds.image_path(names[3]), 24))
    n = len(calls)
    images.image_cache(ds, "val", names, 16)  # another size is another cache
    assert len(calls) == n + len(names)


def test_image_cache_follows_the_image_files(tiny_scenes, tmp_path):
    """Replacing an image (same name, new pixels) rebuilds the cache: no stale pixels, and
    the out-of-date cache file is removed."""
    root = tmp_path / "scenes"
    shutil.copytree(tiny_scenes, root)
    ds = datasets.load_dataset(root)
    names = ds.splits["test"].names
    before = np.array(images.image_cache(ds, "test", names, 24))
    target = ds.image_path(names[0])
    stat = os.stat(target)
    Image.new("RGB", (48, 48), (0, 0, 0)).save(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    after = images.image_cache(ds, "test", names, 24)
    assert before[0].any() and not after[0].any()      # the new, black pixels
    np.testing.assert_array_equal(before[1:], after[1:])
    assert len(list(images.paths.cache_dir().glob("images/scenes-test-24px-*.npy"))) == 1
