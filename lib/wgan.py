"""Multi-label WGAN augmentation (ML-WGAN, Ke et al. 2019; SPEC 3), batched and resumable.

One WGAN-GP is trained per training image, with that single image as the whole "real"
distribution; the fakes of its last three iterations inherit its labels and are saved as
``<stem>_aug.jpeg``, ``<stem>_aug_hor_flip.jpeg`` (flipped horizontally) and
``<stem>_aug_rot_90.jpeg`` (rotated 90 degrees clockwise), listed in ``train_aug.json``.

Speed: K per-image WGANs are trained as ONE network whose K parts are exactly independent:
every convolution is grouped (``groups=K``, the k-th model's channels are block k of the
stacked channels), batch norm over the stacked channels is per channel and hence per model,
the loss is the SUM of the K per-image losses (so each block's gradient is its solo
gradient; each model's gradient penalty uses its own interpolates), and Adam is element-wise
(one Adam over the stacked parameters is K Adams). Every random number of image k (weight
initialisation, noise, flips, interpolation weights) comes from that image's own NumPy
generator, seeded from ``(seed, image name)``, so an image's fakes do not depend on K, on the
batch it is in, on the shard or on the order of the run (:func:`train_group`).

Architecture rule for any image size ``H x W`` (the reference is 128x192, width ``w`` = 64):
the generator has ``L`` stride-2 transposed convolutions, with ``L`` the largest number such
that ``2**L`` divides H and W and ``min(H, W) / 2**L >= 4``; its first (stride-1) transposed
convolution maps the 100-d noise to a ``H/2**L x W/2**L`` map (the "first kernel", 4x6 at the
reference) with ``w * 2**(L-1)`` channels, each stride-2 layer halves the channels, the last
one gives 3 channels and tanh. At 128x192: L = 5, 4x6, 1024-512-256-128-64 channels. The
critic is the mirror image (batch norm and LeakyReLU(0.2) after every convolution but the
last, which has the first-kernel size and 1 output). Weights are initialised as in DCGAN:
convolutions N(0, 0.02), batch-norm scales N(1, 0.02), biases 0.

Preprocessing (:func:`preprocess`): portrait images are rotated 90 degrees (counter-clockwise,
as the reference's ``PIL.Image.rotate(90, expand=True)``), centre-cropped to the largest box of
the target's aspect ratio minus ``crop_border`` pixels on every side (122x186 out of Corel's
128x192 with the reference border 3), resized to the target and scaled to [-1, 1].

CPU threads: ``augment`` trains with one torch thread by default (``threads``): these small
grouped convolutions gain little from a second intra-op thread and slow down badly when the
cores are shared; use more cores with shards (one process each). On a GPU, K = 32 or more.

Real batch: the reference trains with a batch of one image; ``batch_size`` m > 1 repeats the
image m times with independent vertical flips (default 1, as the reference).

CLI: ``python -m lib augment DATA_DIR [--iterations N] [--batch-images K] [--image-size HxW]
[--width W] [--lr LR] [--crop-border B] [--limit N] [--shard I/N] [--seed S] [--device D]
[--threads T] [--overwrite]`` (:func:`augment_main`); e.g. two CPU processes:
``python -m lib augment data/scenes --shard 0/2 & python -m lib augment data/scenes --shard 1/2``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from lib.utils import atomic_save, atomic_write_bytes, atomic_write_json

NOISE_DIM = 100
REFERENCE_SIZE = (128, 192)
REFERENCE_WIDTH = 64
REFERENCE_ITERATIONS = 1001
#: pixels cut from every side after the aspect crop (Corel's 128x192 -> 122x186)
REFERENCE_CROP_BORDER = 3
#: the three fakes per image, in the order of the last three iterations (SPEC 3)
AUG_SUFFIXES = ("_aug", "_aug_hor_flip", "_aug_rot_90")
LOG_DIR = "augment_logs"
CONFIG_FILE = "config.json"
TRAIN_AUG_FILE = "train_aug.json"


# --------------------------------------------------------------------------- architecture


def architecture(image_size: Sequence[int]) -> tuple[int, tuple[int, int]]:
    """``(L, (h0, w0))``: the number of stride-2 layers and the first kernel for ``(H, W)``.

    ``L`` is the largest number with ``2**L`` dividing H and W and ``min(H, W) / 2**L >= 4``
    (128x192 -> 5 stages and a 4x6 first kernel)."""
    height, width = (int(v) for v in image_size)
    if height < 8 or width < 8:
        raise ValueError(f"image size {height}x{width} is too small (at least 8x8)")
    stages = 0
    while (height % 2 ** (stages + 1) == 0 and width % 2 ** (stages + 1) == 0
           and min(height, width) // 2 ** (stages + 1) >= 4):
        stages += 1
    if stages == 0:
        raise ValueError(f"image size {height}x{width}: both sides must be even and at least 8 "
                         "(e.g. 128x192, 64x64, 32x48, 16x24)")
    return stages, (height // 2**stages, width // 2**stages)


def build_generator(image_size: Sequence[int] = REFERENCE_SIZE, width: int = REFERENCE_WIDTH,
                    groups: int = 1, noise_dim: int = NOISE_DIM) -> nn.Sequential:
    """Generator of ``groups`` independent models: noise ``(m, groups*noise_dim, 1, 1)`` ->
    images ``(m, groups*3, H, W)`` in [-1, 1] (model k's channels are block k)."""
    stages, first = architecture(image_size)
    k = groups
    channels = width * 2 ** (stages - 1)
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(k * noise_dim, k * channels, first, stride=1, groups=k, bias=False),
        nn.BatchNorm2d(k * channels), nn.ReLU(inplace=True),
    ]
    for _ in range(stages - 1):
        layers += [nn.ConvTranspose2d(k * channels, k * channels // 2, 4, stride=2, padding=1,
                                      groups=k, bias=False),
                   nn.BatchNorm2d(k * channels // 2), nn.ReLU(inplace=True)]
        channels //= 2
    layers += [nn.ConvTranspose2d(k * channels, k * 3, 4, stride=2, padding=1, groups=k),
               nn.Tanh()]
    return nn.Sequential(*layers)


def build_critic(image_size: Sequence[int] = REFERENCE_SIZE, width: int = REFERENCE_WIDTH,
                 groups: int = 1) -> nn.Sequential:
    """Critic of ``groups`` independent models: images ``(m, groups*3, H, W)`` -> scores
    ``(m, groups, 1, 1)``; the mirror image of :func:`build_generator`."""
    stages, first = architecture(image_size)
    k = groups
    layers: list[nn.Module] = []
    c_in, c_out = 3, width
    for _ in range(stages):
        layers += [nn.Conv2d(k * c_in, k * c_out, 4, stride=2, padding=1, groups=k, bias=False),
                   nn.BatchNorm2d(k * c_out), nn.LeakyReLU(0.2, inplace=True)]
        c_in, c_out = c_out, c_out * 2
    layers += [nn.Conv2d(k * c_in, k, first, stride=1, groups=k)]
    return nn.Sequential(*layers)


def init_grouped(model: nn.Module, rngs: Sequence[np.random.Generator]) -> None:
    """DCGAN initialisation, block k drawn from ``rngs[k]`` exactly as a one-model network of
    the same architecture would draw it (parameter order, solo shapes), so that the grouped
    network starts as the K solo networks."""
    k = len(rngs)
    with torch.no_grad():
        for module in model.modules():
            params = [(n, p) for n, p in module.named_parameters(recurse=False)]
            for name, param in params:
                solo_shape = (param.shape[0] // k, *param.shape[1:])
                blocks = []
                for rng in rngs:
                    if isinstance(module, nn.BatchNorm2d) and name == "weight":
                        values = rng.normal(1.0, 0.02, solo_shape)
                    elif name == "weight":
                        values = rng.normal(0.0, 0.02, solo_shape)
                    else:
                        values = np.zeros(solo_shape)
                    blocks.append(values)
                param.copy_(torch.from_numpy(np.concatenate(blocks, axis=0)))


# --------------------------------------------------------------------------- preprocessing


def parse_size(value: str | Sequence[int]) -> tuple[int, int]:
    """``"128x192"``, ``"64"`` or ``(128, 192)`` -> ``(128, 192)``."""
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        try:
            sizes = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"image size {value!r}: expected HxW, e.g. 128x192") from None
    elif isinstance(value, int):
        sizes = [value]
    else:
        sizes = [int(v) for v in value]
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) <= 0:
        raise ValueError(f"image size {value!r}: expected HxW, e.g. 128x192")
    return sizes[0], sizes[1]


def crop_box(image_hw: Sequence[int], target_hw: Sequence[int],
             border: int = REFERENCE_CROP_BORDER) -> tuple[int, int, int, int]:
    """Centred crop ``(left, top, right, bottom)``: the largest box of the target's aspect
    ratio, less ``border`` pixels on every side (128x192 -> 122x186 at the reference)."""
    h, w = image_hw
    th, tw = target_hw
    if h * tw > w * th:  # too tall for the target aspect
        ch, cw = round(w * th / tw), w
    else:
        ch, cw = h, round(h * tw / th)
    ch, cw = ch - 2 * border, cw - 2 * border
    if ch < 1 or cw < 1:
        raise ValueError(f"a {h}x{w} image is too small for a crop border of {border} pixels")
    top, left = (h - ch) // 2, (w - cw) // 2
    return left, top, left + cw, top + ch


def preprocess(image: Image.Image, image_size: Sequence[int] = REFERENCE_SIZE,
               crop_border: int = REFERENCE_CROP_BORDER) -> torch.Tensor:
    """PIL image -> ``(3, H, W)`` float32 tensor in [-1, 1] (SPEC 3): a portrait image is
    rotated 90 degrees first, then centre-cropped (:func:`crop_box`), resized (bilinear,
    antialiased) and scaled."""
    target = parse_size(image_size)
    image = image.convert("RGB")
    if image.height > image.width:
        image = image.rotate(90, expand=True)
    box = crop_box((image.height, image.width), target, crop_border)
    image = image.crop(box).resize((target[1], target[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` tensor in [-1, 1] -> ``(H, W, 3)`` uint8 array."""
    array = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    return np.clip(np.rint((array + 1.0) * 127.5), 0, 255).astype(np.uint8)


def fake_variants(fakes: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """The three saved fakes from the fakes of the last three iterations: as is, flipped
    horizontally, rotated 90 degrees clockwise (the reference's ``np.rot90(img, -1)``)."""
    first, second, third = (to_uint8(f) for f in fakes)
    return [first, np.ascontiguousarray(second[:, ::-1]), np.ascontiguousarray(np.rot90(third, -1))]


def jpeg_bytes(array: np.ndarray, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# --------------------------------------------------------------------------- training


@dataclass
class WGANConfig:
    """WGAN-GP settings for one image (defaults: the reference recipe, SPEC 3)."""

    iterations: int = REFERENCE_ITERATIONS
    image_size: tuple[int, int] = REFERENCE_SIZE
    width: int = REFERENCE_WIDTH
    batch_size: int = 1
    critic_steps: int = 5
    gp_weight: float = 10.0
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    flip_prob: float = 0.1
    noise_dim: int = NOISE_DIM
    crop_border: int = REFERENCE_CROP_BORDER

    def __post_init__(self) -> None:
        self.image_size = parse_size(self.image_size)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.iterations < 3:
            raise ValueError(f"iterations must be at least 3 (three fakes), got {self.iterations}")
        if self.batch_size < 1 or self.critic_steps < 1 or self.width < 1:
            raise ValueError("batch_size, critic_steps and width must be positive")
        architecture(self.image_size)


def image_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The seed of one image's WGAN: from the run seed and the image name only."""
    digest = hashlib.sha256(str(name).encode("utf-8")).digest()
    return np.random.SeedSequence([int(seed), int.from_bytes(digest[:16], "little")])


@dataclass
class GroupResult:
    """Output of :func:`train_group` for K images."""

    fakes: torch.Tensor          # (3, K, 3, H, W): fakes of the last three iterations
    critic_loss: np.ndarray      # (iterations, K): mean critic loss over the critic steps
    generator_loss: np.ndarray   # (iterations, K)
    generator: nn.Module
    critic: nn.Module


def train_group(images: torch.Tensor, seeds: Sequence[np.random.SeedSequence | int],
                config: WGANConfig, *, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32,
                on_iteration: Callable[[int], None] | None = None) -> GroupResult:
    """Train K single-image WGAN-GPs at once as one grouped network (module docstring).

    ``images``: ``(K, 3, H, W)`` in [-1, 1]; ``seeds[k]`` seeds image k's generator of
    random numbers. Per iteration each image draws, in this order, ``m`` flip uniforms and
    ``critic_steps * m`` interpolation weights (one ``random`` call), then
    ``(critic_steps + 1) * m`` noise vectors (one ``standard_normal`` call)."""
    device = torch.device(device)
    k = images.shape[0]
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != config.image_size:
        raise ValueError(f"images must be (K, 3, {config.image_size[0]}, {config.image_size[1]}),"
                         f" got {tuple(images.shape)}")
    if len(seeds) != k:
        raise ValueError(f"{k} images but {len(seeds)} seeds")
    m, steps, nz = config.batch_size, config.critic_steps, config.noise_dim
    height, width = config.image_size
    rngs = [np.random.default_rng(s) for s in seeds]

    gen = build_generator(config.image_size, config.width, k, nz)
    crit = build_critic(config.image_size, config.width, k)
    init_grouped(gen, rngs)
    init_grouped(crit, rngs)
    gen.to(device=device, dtype=dtype).train()
    crit.to(device=device, dtype=dtype).train()
    gen_opt = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=config.betas)
    crit_opt = torch.optim.Adam(crit.parameters(), lr=config.lr, betas=config.betas)
    gen_params = list(gen.parameters())

    real = images.to(device=device, dtype=dtype)
    real_flipped = real.flip(-2)
    critic_loss = torch.zeros(config.iterations, k, dtype=torch.float64, device=device)
    generator_loss = torch.zeros(config.iterations, k, dtype=torch.float64, device=device)
    fakes = torch.zeros(3, k, 3, height, width, dtype=dtype, device=device)

    for it in range(config.iterations):
        uniforms = np.stack([rng.random((1 + steps) * m) for rng in rngs], axis=1)
        noise = np.stack([rng.standard_normal((steps + 1, m, nz)) for rng in rngs], axis=2)
        uniforms_t = torch.from_numpy(uniforms).to(device=device, dtype=dtype)
        noise_t = torch.from_numpy(noise).to(device=device, dtype=dtype)  # (steps+1, m, K, nz)
        flips = (uniforms_t[:m] < config.flip_prob).view(m, k, 1, 1, 1)   # (m, K)
        eps = uniforms_t[m:].view(steps, m, k, 1, 1, 1)
        real_batch = torch.where(flips, real_flipped.unsqueeze(0), real.unsqueeze(0))
        real_stacked = real_batch.reshape(m, k * 3, height, width)

        for step in range(steps):
            z = noise_t[step].reshape(m, k * nz, 1, 1)
            with torch.no_grad():
                fake = gen(z)
            crit_fake = crit(fake).view(m, k)
            crit_real = crit(real_stacked).view(m, k)
            e = eps[step]
            mixed = (e * real_batch + (1 - e) * fake.view(m, k, 3, height, width))
            mixed = mixed.reshape(m, k * 3, height, width).requires_grad_(True)
            crit_mixed = crit(mixed)
            (grad,) = torch.autograd.grad(crit_mixed.sum(), mixed, create_graph=True)
            penalty = (grad.reshape(m, k, -1).norm(2, dim=2) - 1) ** 2
            loss = (crit_fake - crit_real + config.gp_weight * penalty).mean(0)  # (K,)
            crit_opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            crit_opt.step()
            critic_loss[it] += loss.detach().double() / steps
        if it >= config.iterations - 3:
            fakes[it - (config.iterations - 3)] = fake[0].view(k, 3, height, width)

        z = noise_t[steps].reshape(m, k * nz, 1, 1)
        gen_loss = -crit(gen(z)).view(m, k).mean(0)
        grads = torch.autograd.grad(gen_loss.sum(), gen_params)
        for param, g in zip(gen_params, grads, strict=True):
            param.grad = g
        gen_opt.step()
        generator_loss[it] = gen_loss.detach().double()
        if on_iteration is not None:
            on_iteration(it)

    return GroupResult(fakes=fakes.cpu(), critic_loss=critic_loss.cpu().numpy(),
                       generator_loss=generator_loss.cpu().numpy(), generator=gen, critic=crit)


def generator_block(generator: nn.Module, k: int, groups: int) -> dict[str, torch.Tensor]:
    """Model k's parameters out of a grouped network (solo shapes, for comparisons)."""
    return {name: p.detach().chunk(groups, dim=0)[k]
            for name, p in generator.named_parameters()}


# --------------------------------------------------------------------------- dataset run


def aug_names(name: str) -> list[str]:
    """The three generated image names of a training image (SPEC 3)."""
    stem = str(PurePosixPath(name).with_suffix(""))
    return [f"{stem}{suffix}.jpeg" for suffix in AUG_SUFFIXES]


def _log_path(root: Path, name: str) -> Path:
    return root / LOG_DIR / f"{PurePosixPath(name).with_suffix('')}.csv"


def is_done(root: Path, name: str) -> bool:
    """True when all three fakes of ``name`` exist."""
    return all((root / "images" / aug).is_file() for aug in aug_names(name))


def training_order(root: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """``(labels, names, targets)`` of every image of ``train.json`` in file order (a carved
    validation split is not carved: the reference augments all training images; ``lib.data``
    holds the fakes of carved validation images out of training). Annotations only: the
    images are checked by :func:`augment` before training."""
    from lib.data import load_dataset

    ds = load_dataset(root, check_images=False, val_fraction=0.0)
    train = ds.splits["train"]
    stems: dict[str, str] = {}
    for name in train.names:
        stem = str(PurePosixPath(name).with_suffix(""))
        if stem in stems:
            from lib.data import DatasetError

            raise DatasetError(f"{Path(root) / 'train.json'}: images {stems[stem]!r} and "
                               f"{name!r} would give the same generated names ({stem}_aug...)")
        stems[stem] = name
    return ds.labels, list(train.names), train.targets


def write_train_aug(root: str | Path) -> Path:
    """(Re)build ``train_aug.json`` from every training image whose three fakes exist, in
    training order (deterministic whatever the shards did); atomic, under a file lock."""
    root = Path(root)
    labels, names, targets = _annotations(root)
    # scan and write under one lock: a shard finishing later never loses to a stale scan
    with _lock(root / LOG_DIR / ".train_aug.lock"):
        samples = []
        for name, row in zip(names, targets, strict=True):
            if is_done(root, name):
                image_labels = [labels[j] for j in np.flatnonzero(row)]
                samples += [{"image_name": aug, "image_labels": image_labels}
                            for aug in aug_names(name)]
        return atomic_write_json(root / TRAIN_AUG_FILE, {"labels": labels, "samples": samples})


def _annotations(root: Path) -> tuple[list[str], list[str], np.ndarray]:
    from lib.data import load_dataset

    ds = load_dataset(root, check_images=False, val_fraction=0.0)
    return ds.labels, list(ds.splits["train"].names), ds.splits["train"].targets


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_config(root: Path, settings: dict[str, Any], names: list[str],
                  overwrite: bool) -> None:
    path = root / LOG_DIR / CONFIG_FILE
    if path.is_file() and not overwrite:
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != settings and any(is_done(root, n) for n in names):
            diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
            raise ValueError(f"{path}: the existing fakes were made with other settings "
                             f"(old, new): {diff}; pass overwrite=True (--overwrite) to redo them")
    atomic_write_json(path, settings)


def parse_shard(value: str | Sequence[int]) -> tuple[int, int]:
    """``"1/4"`` or ``(1, 4)`` -> ``(1, 4)``: shard 1 of 4 takes images 1::4."""
    if isinstance(value, str):
        try:
            index, count = (int(v) for v in value.split("/"))
        except ValueError:
            raise ValueError(f"shard {value!r}: expected I/N, e.g. 0/2") from None
    else:
        index, count = (int(v) for v in value)
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= I < N")
    return index, count


def augment(dataset_root: str | Path, *, iterations: int = REFERENCE_ITERATIONS,
            batch_images: int = 8, image_size: str | Sequence[int] = REFERENCE_SIZE,
            width: int = REFERENCE_WIDTH, batch_size: int = 1, lr: float = 2e-4,
            crop_border: int = REFERENCE_CROP_BORDER, limit: int | None = None,
            shard: str | Sequence[int] = (0, 1), seed: int = 0, device: str = "cpu",
            threads: int | None = 1, overwrite: bool = False,
            progress: bool = True) -> dict[str, Any]:
    """Write the three fakes of every (pending) training image and ``train_aug.json``.

    Images are taken in ``train.json`` order, the first ``limit`` of them, and of those the
    shard ``I/N`` takes ``I::N``; images whose three fakes exist are skipped (resume), K =
    ``batch_images`` are trained at once. Per image, the loss curves go to
    ``DATA_DIR/augment_logs/<stem>.csv`` (columns ``iteration``, ``critic_loss``,
    ``generator_loss``); the settings to ``augment_logs/config.json``. Returns a summary.

    ``threads``: torch intra-op threads while training on the CPU (restored afterwards;
    None leaves torch's setting). The default 1 is deliberate: these small grouped
    convolutions gain little from a second thread and lose a lot when the cores are
    shared, so use more cores by running shards as separate processes."""
    root = Path(dataset_root)
    config = WGANConfig(iterations=iterations, image_size=image_size, width=width,
                        batch_size=batch_size, lr=lr, crop_border=crop_border)
    index, count = parse_shard(shard)
    if batch_images < 1:
        raise ValueError(f"batch_images must be positive, got {batch_images}")
    labels, names, _ = training_order(root)
    selected = names if limit is None else names[: int(limit)]
    mine = selected[index::count]
    settings = {**asdict(config), "seed": int(seed)}
    settings["image_size"] = list(config.image_size)
    settings["betas"] = list(config.betas)
    _check_config(root, settings, selected, overwrite)
    pending = [n for n in mine if overwrite or not is_done(root, n)]
    from lib.data import read_image

    for name in tqdm(pending, desc="checking images", leave=False, disable=not progress):
        read_image(root / "images" / name)  # DatasetError naming a missing/unreadable image

    start = time.perf_counter()
    trained = 0
    cpu_threads = threads if torch.device(device).type == "cpu" else None
    with _threads(cpu_threads), tqdm(total=len(pending), desc=f"ML-WGAN shard {index}/{count}",
                                     unit="img", disable=not progress) as bar:
        for b in range(0, len(pending), batch_images):
            batch = pending[b: b + batch_images]
            images = torch.stack([_load(root, n, config) for n in batch])
            done_before = bar.n

            def tick(it: int, batch=batch, done_before=done_before) -> None:
                if (it + 1) % 10 == 0 or it + 1 == config.iterations:
                    bar.n = done_before + len(batch) * (it + 1) / config.iterations
                    elapsed = time.perf_counter() - start
                    bar.set_postfix(img_per_h=f"{3600 * bar.n / max(elapsed, 1e-9):.0f}",
                                    refresh=False)
                    bar.refresh()

            result = train_group(images, [image_seed(seed, n) for n in batch], config,
                                 device=device, on_iteration=tick)
            for j, name in enumerate(batch):
                _save_image_outputs(root, name, result, j)
            trained += len(batch)
            bar.n = done_before + len(batch)
            bar.refresh()
    seconds = time.perf_counter() - start
    out = write_train_aug(root)
    entries = len(json.loads(out.read_text(encoding="utf-8"))["samples"])
    return {
        "dataset": str(root), "shard": f"{index}/{count}", "images_selected": len(selected),
        "images_in_shard": len(mine), "skipped_done": len(mine) - len(pending),
        "trained": trained, "seconds": round(seconds, 2),
        "images_per_hour": round(3600 * trained / seconds, 1) if trained else None,
        "train_aug_entries": entries, "train_aug": str(out),
        "image_size": f"{config.image_size[0]}x{config.image_size[1]}", "width": config.width,
        "iterations": config.iterations, "batch_images": batch_images, "device": str(device),
        "labels": len(labels),
    }


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for a block (None: leave it)."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _load(root: Path, name: str, config: WGANConfig) -> torch.Tensor:
    from lib.data import read_image

    return preprocess(read_image(root / "images" / name), config.image_size, config.crop_border)


def _save_image_outputs(root: Path, name: str, result: GroupResult, j: int) -> None:
    """Loss log first, then the three fakes (the last file written marks the image done)."""
    log = pd.DataFrame({"iteration": np.arange(len(result.critic_loss)),
                        "critic_loss": result.critic_loss[:, j],
                        "generator_loss": result.generator_loss[:, j]})
    atomic_save(_log_path(root, name), lambda p: log.to_csv(p, index=False))
    variants = fake_variants([result.fakes[i, j] for i in range(3)])
    for aug, array in zip(aug_names(name), variants, strict=True):
        atomic_write_bytes(root / "images" / aug, jpeg_bytes(array))


def load_logs(dataset_root: str | Path, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Loss curves of augmented images (all, or ``names``), long format with an ``image``
    column, in training order."""
    root = Path(dataset_root)
    if names is None:
        _, names, _ = _annotations(root)
    frames = []
    for name in names:
        path = _log_path(root, name)
        if path.is_file():
            frames.append(pd.read_csv(path).assign(image=name))
    if not frames:
        return pd.DataFrame(columns=["image", "iteration", "critic_loss", "generator_loss"])
    return pd.concat(frames, ignore_index=True)[
        ["image", "iteration", "critic_loss", "generator_loss"]]


def done_images(dataset_root: str | Path) -> list[str]:
    """Training images (training order) whose three fakes exist."""
    root = Path(dataset_root)
    _, names, _ = _annotations(root)
    return [n for n in names if is_done(root, n)]


# --------------------------------------------------------------------------- CLI


def augment_main(argv: list[str]) -> int:
    """``python -m lib augment DATA_DIR ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m lib augment",
        description="ML-WGAN augmentation: three fakes per training image and train_aug.json "
                    "(resumable: done images are skipped; shard with --shard I/N).")
    parser.add_argument("data", help="dataset folder (Corel-5k JSON format)")
    parser.add_argument("--iterations", type=int, default=REFERENCE_ITERATIONS)
    parser.add_argument("--batch-images", type=int, default=8,
                        help="K images trained at once as one grouped network")
    parser.add_argument("--image-size", default="128x192", help="HxW of the fakes")
    parser.add_argument("--width", type=int, default=REFERENCE_WIDTH,
                        help="base channel width w (generator 16w-8w-4w-2w-w at 128x192)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="copies of the image per step (reference 1)")
    parser.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate")
    parser.add_argument("--crop-border", type=int, default=REFERENCE_CROP_BORDER,
                        help="pixels cut from every side after the aspect crop (0: none)")
    parser.add_argument("--limit", type=int, default=None, help="first N training images")
    parser.add_argument("--shard", default="0/1", help="I/N: this process takes images I::N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:I, ...")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads on the CPU (default 1; use shards for more cores)")
    parser.add_argument("--overwrite", action="store_true", help="redo images already done")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from lib.paths import dataset_dir

    summary = augment(dataset_dir(args.data), iterations=args.iterations,
                      batch_images=args.batch_images, image_size=args.image_size,
                      width=args.width, batch_size=args.batch_size, lr=args.lr,
                      crop_border=args.crop_border,
                      limit=args.limit, shard=args.shard, seed=args.seed, device=args.device,
                      threads=args.threads or None, overwrite=args.overwrite,
                      progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0


__all__ = [
    "AUG_SUFFIXES", "GroupResult", "WGANConfig", "architecture", "augment", "augment_main",
    "aug_names", "build_critic", "build_generator", "crop_box", "done_images", "fake_variants",
    "image_seed", "init_grouped", "load_logs", "parse_shard", "parse_size", "preprocess",
    "train_group", "write_train_aug",
]
