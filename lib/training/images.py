"""Images for the network: decoding, the decode-once uint8 cache, and random flips.

Training and evaluation decode and resize every image once into a uint8 ``N x H x W x 3``
array saved as ``.npy`` under :func:`lib.core.paths.cache_dir` and memory-mapped, so epochs
never re-decode. The cache is keyed by content: the dataset folder, the split, the image
names, the size, and each image file's size and modification time, so replacing or
re-augmenting an image rebuilds the cache instead of serving old pixels. Flips and
normalisation happen later, on tensors.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.core import paths
from lib.core.fileio import atomic_save, clean_stale_temps
from lib.core.locking import file_lock
from lib.core.logs import progress as tqdm

log = logging.getLogger(__name__)

#: image file suffixes ``annotate`` picks up from a folder
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def decode_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """Read an image (``lib.data.datasets.read_image``) and resize it to ``size x size``: uint8
    H x W x 3. The one decoding used by training, evaluation and ``annotate``."""
    from PIL import Image  # lazy import (PIL)

    from lib.data import datasets  # lazy import (PIL, pandas)

    image = datasets.read_image(path)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def decode_images(files: Sequence[str | os.PathLike], size: int,
                  desc: str = "decode") -> np.ndarray:
    """Decode many images into an ``N x size x size x 3`` uint8 array (in memory)."""
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, f in enumerate(tqdm(files, desc=desc, leave=False, disable=len(files) < 50)):
        out[i] = decode_image(f, size)
    return out


def content_key(files: Sequence[Path]) -> str:
    """Hash of each file's name, size and modification time (nanoseconds): changes when any
    file is replaced, rewritten or touched. A missing file is an error naming it."""
    h = hashlib.sha1()
    for f in files:
        try:
            st = os.stat(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"{f}: image file missing") from None
        h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def image_cache(dataset, split: str, names: Sequence[str], size: int) -> np.ndarray:
    """The memory-mapped uint8 cache of ``names`` (images of ``dataset``) at ``size`` px.

    Built once (with a progress bar), written atomically, then reused by every run while
    the image files are unchanged; an older cache of the same images (dataset, split, names,
    size) is removed when a new one is built (so a 10 GB Corel cache is not kept twice)."""
    names = list(names)
    files = [Path(dataset.image_path(n)) for n in names]
    root = Path(dataset.root).resolve()
    where = hashlib.sha1(f"{root}|{chr(10).join(names)}".encode()).hexdigest()[:8]
    prefix = f"{root.name}-{split}-{size}px-{where}-"
    key = hashlib.sha1(f"{content_key(files)}|{size}".encode()).hexdigest()[:12]
    folder = paths.cache_dir() / "images"
    path = folder / f"{prefix}{key}.npy"
    folder.mkdir(parents=True, exist_ok=True)
    # one builder at a time (seeds trained side by side share their test-split cache)
    with file_lock(folder / f".{prefix}lock", "image cache build", wait=True):
        if not path.exists():
            clean_stale_temps(folder, "*.npy")
            for old in folder.glob(f"{prefix}*.npy"):
                log.info("image cache %s is out of date (images changed): removed", old.name)
                old.unlink(missing_ok=True)

            def build(tmp: Path) -> None:
                arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                                shape=(len(names), size, size, 3))
                for i, f in enumerate(tqdm(files, desc=f"cache {split} {size}px", leave=False)):
                    arr[i] = decode_image(f, size)
                arr.flush()
                del arr

            atomic_save(path, build)
    arr = np.load(path, mmap_mode="r")
    if arr.shape != (len(names), size, size, 3):
        raise ValueError(f"{path}: image cache has shape {arr.shape}, expected "
                         f"{(len(names), size, size, 3)}; delete it to rebuild")
    return arr


def channel_stats(images: np.ndarray, chunk: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (pixel values in [0, 1]) of a uint8 ``N x H x W x 3`` array,
    computed in chunks so a memory-mapped cache is never loaded whole."""
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    for start in tqdm(range(0, len(images), chunk), desc="channel stats", leave=False,
                      disable=len(images) <= chunk):
        x = np.asarray(images[start:start + chunk], dtype=np.float64).reshape(-1, 3) / 255.0
        total += x.sum(axis=0)
        squares += (x * x).sum(axis=0)
        count += len(x)
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(squares / max(count, 1) - mean**2, 0.0))
    return mean.tolist(), std.tolist()


class CachedImages(Dataset):
    """Batches of (uint8 ``B x 3 x H x W`` images, float32 targets) from a uint8 image cache.

    Implements ``__getitems__`` so a DataLoader fetches a whole batch with one fancy index."""

    def __init__(self, images: np.ndarray, targets: np.ndarray):
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} target rows")
        self.images = images
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]):
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # sorted reads are faster on a memmap
        batch = np.empty((len(idx),) + self.images.shape[1:], dtype=np.uint8)
        batch[order] = self.images[idx[order]]
        # contiguous NCHW: on CPU, convolutions and BatchNorm on the permuted (channels-last
        # strided) layout are markedly slower; CUDA converts to channels-last explicitly
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
        return x, self.targets[torch.as_tensor(idx)]


def identity_collate(batch):
    """DataLoader collate for :class:`CachedImages` (batches arrive whole)."""
    return batch


def random_flips(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image horizontally and (independently) vertically with probability 1/2.

    Coins ``torch.rand(B, 2, generator=generator) < 0.5`` (column 0 horizontal, 1 vertical);
    returns a new tensor, the input is left as it is."""
    n = images.shape[0]
    coins = torch.rand(n, 2, generator=generator) < 0.5
    if images.device.type != "cpu":  # two batched selects: no per-image kernel launches
        h = coins[:, 0].view(n, 1, 1, 1).to(images.device)
        v = coins[:, 1].view(n, 1, 1, 1).to(images.device)
        images = torch.where(h, images.flip(-1), images)
        return torch.where(v, images.flip(-2), images)
    # on the CPU, flipping only the chosen images is about 3x cheaper than flip + where
    out = images.clone()
    for i, (h, v) in enumerate(coins.tolist()):
        dims = (-1,) * h + (-2,) * v
        if dims:
            out[i] = images[i].flip(dims)
    return out


def find_images(inputs: Sequence[str | os.PathLike], *, recursive: bool = True) -> list[Path]:
    """Image files given directly, or found in given folders (sorted; with ``recursive``,
    the default, in their subfolders too; hidden files and folders skipped). A given path
    that does not exist, or a folder without images, is an error naming it."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f for f in (p.rglob("*") if recursive else p.iterdir())
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise FileNotFoundError(
                    f"{p}: folder holds no images{' (subfolders included)' if recursive else ''}"
                    f" ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such image file or folder")
    return files
