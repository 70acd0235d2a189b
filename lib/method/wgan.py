"""Multi-label WGAN augmentation (ML-WGAN, Ke et al. 2019), batched, resumable and recorded.

The method is described in docs/method.md, "ML-WGAN augmentation". One WGAN-GP is trained per
training image, with that single image as the whole "real" distribution; the fakes of its last
three iterations inherit its labels and are saved as ``<stem>_aug.jpeg``,
``<stem>_aug_hor_flip.jpeg`` (flipped horizontally) and ``<stem>_aug_rot_90.jpeg`` (rotated 90
degrees clockwise), listed in ``train_aug.json``.

Settings: :class:`WGANConfig` holds every setting of an augmentation job, its defaults being
the reference recipe; :data:`PRESETS` holds partial mappings over it (``default``: the small
embedded configuration of notebook 03; ``corel5k``: the reference recipe). The notebook, the
command line and :func:`lib.data.augmentation.augment` all go through :func:`lib.core.config.build`.

This module is the method (settings, the networks, preprocessing, :func:`train_group`); the
dataset job that runs it over a dataset's training images (which images, resuming, shards,
``train_aug.json``, the ``augment`` command) is :mod:`lib.data.augmentation`, and the records of
which
fakes are ours (sets, settings records, the lock) are :mod:`lib.data.augment_records`.

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

Real batch: the reference trains with a batch of one image; ``batch_size`` m > 1 repeats the
image m times with independent vertical flips (default 1, as the reference).

"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from lib.core.config import ConfigError, check_choice, check_range, setting, to_dict

NOISE_DIM = 100
#: the three fakes per image, in the order of the last three iterations
AUG_SUFFIXES = ("_aug", "_aug_hor_flip", "_aug_rot_90")
#: how the images to augment are chosen (``select``)
SELECTIONS = ("first", "random", "rare")
#: initialisations: ``dcgan`` (BN scales N(1, 0.02), no bias before BN, last biases 0; the
#: project's) and ``reference`` (the reference's: BN scales N(0, 0.02), every convolution
#: with a bias at PyTorch's default uniform(+-1/sqrt(fan_in)) initialisation)
INITS = ("dcgan", "reference")
#: settings that change how fast the fakes are made, not what they are (never recorded)
EXECUTION_ONLY = ("batch_images", "device", "threads")
#: settings that choose the images, not their fakes (recorded per job, not per image)
SELECTION_SETTINGS = ("select", "limit")
#: the setting that names where a set of fakes goes (its folder of records says it: never
#: recorded in it)
PLACE_SETTINGS = ("fakes",)
#: a name of a set of fakes (``fakes``): a folder name under ``images/`` and ``augment_logs/``
FAKES_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


# --------------------------------------------------------------------------- settings


@dataclass
class WGANConfig:
    """Every setting of an ML-WGAN augmentation job; the defaults are the reference recipe
    (docs/method.md, "ML-WGAN augmentation"), :data:`PRESETS` the named variants."""

    iterations: int = setting(1001, help="WGAN-GP iterations per image (critic_steps critic "
                                         "steps and one generator step each); the last three "
                                         "give the fakes")
    image_size: tuple[int, int] = setting((128, 192), help="H W of the fakes")
    width: int = setting(64, help="base channel width w (generator 16w-8w-4w-2w-w at 128x192)")
    batch_size: int = setting(1, help="copies of the image per step, each with its own "
                                      "vertical flip (the reference: 1)")
    critic_steps: int = setting(5, help="critic steps per generator step")
    gp_weight: float = setting(10.0, help="gradient-penalty weight")
    lr: float = setting(2e-4, help="Adam learning rate")
    betas: tuple[float, float] = setting((0.5, 0.999), help="Adam betas")
    flip_prob: float = setting(0.1, help="probability of a vertical flip of the real image")
    noise_dim: int = setting(NOISE_DIM, help="noise dimension")
    crop_border: int = setting(3, help="pixels cut from every side after the aspect crop")
    seed: int = setting(0, help="seed of every image's WGAN (with the image name) and of "
                                "select=random")
    select: str = setting("first", choices=SELECTIONS,
                          help="which training images first: train.json order, a seeded "
                               "random order, or those with the rarest labels")
    limit: int | None = setting(None, help="augment only the first N images of that order "
                                           "(none: all)")
    fakes: str = setting("", help="the set of fakes written: empty: images/<stem>_aug*.jpeg, "
                                  "augment_logs/ and train_aug.json; NAME: images/NAME/, "
                                  "augment_logs/NAME/ and train_aug_NAME.json, beside "
                                  "shipped fakes (the Kaggle release's)")
    init: str = setting("dcgan", choices=INITS,
                        help="dcgan: BN scales N(1, 0.02), no bias before BN; reference: the "
                             "reference's BN scales N(0, 0.02) and PyTorch-default biases")
    batch_images: int = setting(8, help="K images trained at once as one grouped network")
    device: str = setting("cpu", help="cpu, cuda, cuda:I, ...")
    threads: int | None = setting(1, help="torch threads on the CPU (none: torch's setting; "
                                          "use shards for more cores)")

    def __post_init__(self) -> None:
        try:
            self.image_size = parse_size(self.image_size)
            architecture(self.image_size)
        except ValueError as exc:
            raise ConfigError(f"WGANConfig.image_size: {exc}") from None
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        check_range(self, "iterations", 3)  # the last three iterations give the fakes
        for name in ("width", "batch_size", "critic_steps", "noise_dim", "batch_images",
                     "limit", "threads"):
            check_range(self, name, 1)
        check_range(self, "crop_border", 0)
        check_range(self, "gp_weight", 0)
        check_range(self, "lr", 0, low_open=True)
        check_range(self, "flip_prob", 0, 1)
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"WGANConfig.betas must be in [0, 1), got {self.betas}")
        check_choice(self, "select")
        check_choice(self, "init")
        if self.fakes and not FAKES_NAME.match(self.fakes):
            raise ConfigError(f"WGANConfig.fakes={self.fakes!r}: a name of letters, digits, _ "
                              "and - (a folder under images/ and augment_logs/), or empty")
        try:
            torch.device(self.device)
        except (RuntimeError, ValueError):
            raise ConfigError(f"WGANConfig.device: {self.device!r} is not a torch device "
                              "(cpu, cuda, cuda:I, ...)") from None


#: partial settings over the reference defaults of :class:`WGANConfig`
PRESETS: dict[str, dict[str, Any]] = {
    # the embedded default (notebook 03, `make reproduce`): small fakes, a higher learning
    # rate than the reference, a few training images (those with the rarest labels), one
    # grouped network on one CPU thread
    "default": {"iterations": 500, "image_size": (32, 32), "width": 16, "lr": 1e-3,
                "crop_border": 0, "limit": 16, "batch_images": 16, "select": "rare"},
    # the reference recipe: the dataclass defaults with the reference's initialisation
    # (run it on GPUs: --device cuda)
    "corel5k": {"init": "reference"},
}


def fake_settings(config: WGANConfig) -> dict[str, Any]:
    """The settings an image's fakes depend on (with the image name), JSON-ready."""
    skip = set(EXECUTION_ONLY) | set(SELECTION_SETTINGS) | set(PLACE_SETTINGS)
    if config.init == "dcgan":  # the original initialisation: hashes of existing fakes hold
        skip.add("init")
    return {k: v for k, v in to_dict(config).items() if k not in skip}


def job_settings(config: WGANConfig) -> dict[str, Any]:
    """What ``augment_logs/config.json`` records: :func:`fake_settings` and the selection."""
    skip = set(EXECUTION_ONLY) | set(PLACE_SETTINGS)
    return {k: v for k, v in to_dict(config).items() if k not in skip}


def settings_hash(config: WGANConfig) -> str:
    """Short hash of :func:`fake_settings`, recorded per image."""
    text = json.dumps(fake_settings(config), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

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


def build_generator(image_size: Sequence[int], width: int, groups: int = 1,
                    noise_dim: int = NOISE_DIM, bias: bool = False) -> nn.Sequential:
    """Generator of ``groups`` independent models: noise ``(m, groups*noise_dim, 1, 1)`` ->
    images ``(m, groups*3, H, W)`` in [-1, 1] (model k's channels are block k). ``bias``:
    the layers before BN have a bias too (the reference's network)."""
    stages, first = architecture(image_size)
    k = groups
    channels = width * 2 ** (stages - 1)
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(k * noise_dim, k * channels, first, stride=1, groups=k, bias=bias),
        nn.BatchNorm2d(k * channels), nn.ReLU(inplace=True),
    ]
    for _ in range(stages - 1):
        layers += [nn.ConvTranspose2d(k * channels, k * channels // 2, 4, stride=2, padding=1,
                                      groups=k, bias=bias),
                   nn.BatchNorm2d(k * channels // 2), nn.ReLU(inplace=True)]
        channels //= 2
    layers += [nn.ConvTranspose2d(k * channels, k * 3, 4, stride=2, padding=1, groups=k),
               nn.Tanh()]
    return nn.Sequential(*layers)


def build_critic(image_size: Sequence[int], width: int, groups: int = 1,
                 bias: bool = False) -> nn.Sequential:
    """Critic of ``groups`` independent models: images ``(m, groups*3, H, W)`` -> scores
    ``(m, groups, 1, 1)``; the mirror image of :func:`build_generator`."""
    stages, first = architecture(image_size)
    k = groups
    layers: list[nn.Module] = []
    c_in, c_out = 3, width
    for _ in range(stages):
        layers += [nn.Conv2d(k * c_in, k * c_out, 4, stride=2, padding=1, groups=k, bias=bias),
                   nn.BatchNorm2d(k * c_out), nn.LeakyReLU(0.2, inplace=True)]
        c_in, c_out = c_out, c_out * 2
    layers += [nn.Conv2d(k * c_in, k, first, stride=1, groups=k)]
    return nn.Sequential(*layers)


def init_grouped(model: nn.Module, rngs: Sequence[np.random.Generator],
                 init: str = "dcgan") -> None:
    """Initialisation ``init`` (:data:`INITS`), block k drawn from ``rngs[k]`` exactly as a
    one-model network of the same architecture would draw it (parameter order, solo shapes),
    so that the grouped network starts as the K solo networks. ``dcgan``: conv weights
    N(0, 0.02), BN scales N(1, 0.02), biases 0. ``reference``: conv weights N(0, 0.02), BN
    scales N(0, 0.02), BN shifts 0, conv biases uniform(+-1/sqrt(fan_in)) as PyTorch's
    default (fan_in of one model's block)."""
    if init not in INITS:
        raise ValueError(f"unknown WGAN initialisation {init!r}; choose one of {INITS}")
    k = len(rngs)
    with torch.no_grad():
        for module in model.modules():
            params = [(n, p) for n, p in module.named_parameters(recurse=False)]
            for name, param in params:
                solo_shape = (param.shape[0] // k, *param.shape[1:])
                blocks = []
                for rng in rngs:
                    bn = isinstance(module, nn.BatchNorm2d)
                    if bn and name == "weight":
                        values = rng.normal(1.0 if init == "dcgan" else 0.0, 0.02, solo_shape)
                    elif name == "weight":
                        values = rng.normal(0.0, 0.02, solo_shape)
                    elif init == "reference" and not bn:  # a conv bias: PyTorch's default
                        fan_in = module.weight.shape[1] * math.prod(module.weight.shape[2:])
                        bound = 1.0 / math.sqrt(fan_in)
                        values = rng.uniform(-bound, bound, solo_shape)
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
             border: int) -> tuple[int, int, int, int]:
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


def preprocess(image: Image.Image, image_size: Sequence[int],
               crop_border: int) -> torch.Tensor:
    """PIL image -> ``(3, H, W)`` float32 tensor in [-1, 1]: a portrait image is
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
                config: WGANConfig, *, device: str | torch.device | None = None,
                dtype: torch.dtype = torch.float32,
                on_iteration: Callable[[int], None] | None = None) -> GroupResult:
    """Train K single-image WGAN-GPs at once as one grouped network (module docstring).

    ``images``: ``(K, 3, H, W)`` in [-1, 1]; ``seeds[k]`` seeds image k's generator of
    random numbers. Per iteration each image draws, in this order, ``m`` flip uniforms and
    ``critic_steps * m`` interpolation weights (one ``random`` call), then
    ``(critic_steps + 1) * m`` noise vectors (one ``standard_normal`` call). ``device``:
    default ``config.device``."""
    device = torch.device(config.device if device is None else device)
    k = images.shape[0]
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != config.image_size:
        raise ValueError(f"images must be (K, 3, {config.image_size[0]}, {config.image_size[1]}),"
                         f" got {tuple(images.shape)}")
    if len(seeds) != k:
        raise ValueError(f"{k} images but {len(seeds)} seeds")
    m, steps, nz = config.batch_size, config.critic_steps, config.noise_dim
    height, width = config.image_size
    rngs = [np.random.default_rng(s) for s in seeds]

    bias = config.init == "reference"
    gen = build_generator(config.image_size, config.width, k, nz, bias=bias)
    crit = build_critic(config.image_size, config.width, k, bias=bias)
    init_grouped(gen, rngs, config.init)
    init_grouped(crit, rngs, config.init)
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


__all__ = [
    "AUG_SUFFIXES", "INITS", "NOISE_DIM", "PRESETS", "SELECTIONS", "GroupResult", "WGANConfig",
    "architecture", "build_critic", "build_generator", "crop_box", "fake_settings",
    "fake_variants", "generator_block", "image_seed", "init_grouped", "job_settings",
    "jpeg_bytes", "parse_size", "preprocess", "settings_hash", "to_uint8", "train_group",
]
