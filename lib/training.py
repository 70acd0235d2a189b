"""Training, run folders, evaluation and annotation of trained models.

``train(TrainConfig(...))`` trains one configuration into a run folder (layout in
docs/CONTRACTS.md, "Run folder"): ``config.json``, ``history.csv``, ``checkpoint.pt`` (every
epoch, for ``resume``), ``best.pt`` (the selected epoch), ``thresholds.json`` (per-label MCC
thresholds tuned on the validation split), ``predictions.csv`` (test scores) and
``metrics.json``.

Design:

- Images are decoded and resized once into a uint8 cache (``N x H x W x 3`` ``.npy`` under
  :func:`lib.paths.cache_dir`, memory-mapped), so epochs never re-decode; flips and
  normalisation happen on tensors (normalisation inside :class:`Annotator`, so a saved model
  takes raw uint8 images).
- Every random source comes from ``seed``: data order from a sampler seeded with
  ``(seed, epoch)``, flips from a generator seeded with ``(seed, epoch, rank)``, model init and
  dropout from the torch RNG whose state is checkpointed. ``resume=True`` therefore continues
  an interrupted run to the same weights and metrics as an uninterrupted one.
- Model selection: the epoch with the best validation selection metric (``select_metric``,
  default mAP, which is threshold-free and smooth on small data; the Corel-5k reference preset
  uses per-class F1 at 0.5 like the reference). ``selection_split="test"`` reproduces the
  reference's leaky protocol and marks ``leaky: true`` in config.json and metrics.json.
- Multi-GPU / multi-process: under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in
  DistributedDataParallel (gloo on CPU, nccl on CUDA), data is sharded with a
  DistributedSampler and only rank 0 writes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from lib import paths
from lib.utils import atomic_save, atomic_write_json, git_commit, library_versions, seed_everything

#: image file suffixes ``annotate`` picks up from a folder
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: selection metrics (keys of the per-epoch validation metrics)
SELECT_METRICS = ("mean_average_precision", "per_class_f1", "per_image_f1")
#: config fields that may change between an interrupted run and its resumption
_RESUME_FREE = {"resume", "device", "num_workers", "out"}
#: Corel-5k dataset normalisation used by the reference (SPEC section 6)
COREL5K_MEAN = (0.3928, 0.4079, 0.3531)
COREL5K_STD = (0.2559, 0.2436, 0.2544)


def _default_backbone() -> str:
    from lib import models

    return getattr(models, "DEFAULT_BACKBONE", "resnet10t")


@dataclass
class TrainConfig:
    """One training configuration; field names are the ``python -m lib train`` options.

    Defaults are the embedded default configuration (scenes dataset, 64 px, a small backbone
    trained from scratch for a few epochs: about half a minute on 2 CPU cores).
    :meth:`corel5k_reference` gives the full Corel-5k reference recipe.
    """

    data: str = paths.DEFAULT_DATASET  #: dataset folder or name under the data root
    out: str | None = None  #: run folder; default ``lib.paths.run_dir(run_name)``
    run_name: str | None = None  #: default: the name of ``out``, else ``"default"``
    backbone: str = field(default_factory=_default_backbone)
    image_size: int = 64
    epochs: int = 5  #: epochs actually trained (early stopping may stop sooner)
    batch_size: int = 32
    lr: float = 2e-3  #: Adam learning rate (OneCycle maximum)
    weight_decay: float = 0.0
    loss: str = "asl"  #: bce | focal | asl
    head: str = "gcn"  #: gcn | linear | gcn-identity
    adjacency: str = "seed"  #: seed | ml-gcn
    embeddings: str = "glove-6b-50d"  #: label-vector source (lib.embeddings)
    hidden: int = 1024  #: GCN hidden size
    augmented: bool = False  #: train on train + train_aug
    pretrained: bool = False  #: ImageNet weights from timm (needs them cached)
    weights: str | None = None  #: backbone weights file
    seed: int = 0
    device: str = "auto"  #: auto | cpu | cuda | cuda:N
    resume: bool = False  #: continue from checkpoint.pt when its configuration matches
    selection_split: str = "val"  #: val | test (test = the reference's leaky protocol)
    select_metric: str = "mean_average_precision"  #: one of SELECT_METRICS
    patience: int = 0  #: early stopping after this many epochs without improvement (0 = off)
    schedule: str = "onecycle"  #: onecycle | constant
    schedule_epochs: int | None = None  #: OneCycle length in epochs (None = epochs)
    warmup: float = 0.2  #: OneCycle warm-up fraction
    ema: float = 0.0  #: EMA decay of the weights (0 = off)
    grad_clip: float = 0.0  #: gradient-norm clipping (0 = off)
    num_workers: int = 0
    normalization: str = "backbone"  #: backbone | dataset
    mean: tuple[float, float, float] | None = None  #: explicit normalisation (overrides)
    std: tuple[float, float, float] | None = None
    amp: bool = True  #: bf16 autocast (CUDA only)
    channels_last: bool = True  #: channels-last memory format (CUDA only)
    flips: bool = True  #: random horizontal and vertical flips on train
    eval_batch_size: int = 128

    @classmethod
    def corel5k_reference(cls, data: str, out: str | None = None, **overrides: Any) -> TrainConfig:
        """The reference Corel-5k recipe (SPEC section 6): ImageNet-pretrained ``tresnet_m`` at
        448 px, batch 32, Adam lr 1e-4, OneCycle (20 % warm-up) over 80 epochs stopped at 60,
        random horizontal and vertical flips, Corel dataset normalisation, ASL, GCN head with the
        seed adjacency, selection by per-class F1 at 0.5 on the validation split (pass
        ``selection_split="test"`` for the reference's leaky protocol)."""
        base = dict(
            data=data, out=out, backbone="tresnet_m", image_size=448, epochs=60,
            schedule_epochs=80, batch_size=32, lr=1e-4, loss="asl", head="gcn",
            adjacency="seed", pretrained=True, flips=True, normalization="dataset",
            mean=COREL5K_MEAN, std=COREL5K_STD, select_metric="per_class_f1",
            num_workers=4, eval_batch_size=64,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """``default`` (the embedded default) or ``corel5k`` (the reference recipe)."""
        if name == "default":
            return cls(**overrides)
        if name == "corel5k":
            data = overrides.pop("data", "corel5k")
            return cls.corel5k_reference(data, **overrides)
        raise ValueError(f"unknown preset {name!r} (default, corel5k)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        choices = {
            "loss": ("bce", "focal", "asl"), "head": ("gcn", "linear", "gcn-identity"),
            "adjacency": ("seed", "ml-gcn"), "selection_split": ("val", "test"),
            "select_metric": SELECT_METRICS, "schedule": ("onecycle", "constant"),
            "normalization": ("backbone", "dataset"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}; "
                                 f"expected one of {allowed}")
        for name in ("image_size", "epochs", "batch_size", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"TrainConfig.ema must be in [0, 1), got {self.ema}")
        if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
            raise ValueError(f"TrainConfig.schedule_epochs ({self.schedule_epochs}) must be >= "
                             f"epochs ({self.epochs})")
        if (self.mean is None) != (self.std is None):
            raise ValueError("TrainConfig.mean and TrainConfig.std go together")
        if self.mean is not None:
            self.mean = tuple(float(v) for v in self.mean)
            self.std = tuple(float(v) for v in self.std)

    @property
    def leaky(self) -> bool:
        return self.selection_split == "test"

    def resolved_out(self) -> Path:
        if self.out is not None:
            return Path(self.out).expanduser().resolve()
        return paths.run_dir(self.run_name or "default")

    def resolved_run_name(self) -> str:
        return self.run_name or self.resolved_out().name

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("mean", "std"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d


# --------------------------------------------------------------------------- images & cache


def decode_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """Read an image (``lib.data.read_image``) and resize it to ``size x size``: uint8 H x W x 3.
    The one decoding used by training, evaluation and ``annotate``."""
    from PIL import Image

    from lib import data

    image = data.read_image(path)
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


def image_cache(dataset, split: str, names: Sequence[str], size: int) -> np.ndarray:
    """The memory-mapped uint8 cache of ``names`` (images of ``dataset``) at ``size`` px.

    Keyed by the dataset path, the split label, a hash of the names and the size; built once
    (with a progress bar) and written atomically, then reused by every run."""
    names_hash = hashlib.sha1("\n".join(names).encode()).hexdigest()
    key = hashlib.sha1(
        f"{Path(dataset.root).resolve()}|{split}|{names_hash}|{size}".encode()
    ).hexdigest()[:16]
    path = paths.cache_dir() / "images" / f"{Path(dataset.root).name}-{split}-{size}px-{key}.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)

        def build(tmp: Path) -> None:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                            shape=(len(names), size, size, 3))
            for i, name in enumerate(tqdm(names, desc=f"cache {split} {size}px", leave=False)):
                arr[i] = decode_image(dataset.image_path(name), size)
            arr.flush()
            del arr

        atomic_save(path, build)
    arr = np.load(path, mmap_mode="r")
    if arr.shape != (len(names), size, size, 3):
        raise ValueError(f"{path}: image cache has shape {arr.shape}, expected "
                         f"{(len(names), size, size, 3)}; delete it to rebuild")
    return arr


def cache_channel_stats(images: np.ndarray, chunk: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (pixel values in [0, 1]) of a uint8 ``N x H x W x 3`` cache,
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


def _identity_collate(batch):
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


# --------------------------------------------------------------------------- model wrapper


class Annotator(nn.Module):
    """A ``lib.models`` network with its input normalisation built in.

    Takes raw images (uint8 ``B x 3 x H x W``, or float in [0, 1]) and returns logits;
    ``features`` and ``label_classifiers`` delegate to the network."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if images.dtype == torch.uint8:
            x = x / 255.0
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(self.normalize(images))

    def label_classifiers(self):
        return self.net.label_classifiers()


def _build_annotator(cfg: dict, num_labels: int, label_vectors, adjacency, mean, std,
                     *, for_loading: bool = False) -> Annotator:
    from lib import models

    net = models.build_model(
        num_labels, head=cfg["head"], backbone=cfg["backbone"],
        pretrained=bool(cfg["pretrained"]) and not for_loading,
        weights=None if for_loading else cfg["weights"],
        label_vectors=label_vectors, adjacency=adjacency, hidden=cfg.get("hidden", 1024),
    )
    return Annotator(net, mean, std)


# --------------------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 (global state is saved)
    py = random.getstate()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np.asarray(np_state["state"]["key"]).astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],  # noqa: NPY002
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_for(*parts: int) -> int:
    digest = hashlib.sha256(",".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _epoch_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from lib import metrics

    at = metrics.annotation_metrics(y_true, scores, threshold=0.5)
    return {
        "mean_average_precision": float(metrics.mean_average_precision(y_true, scores)),
        "per_class_f1": float(at["per_class_f1"]),
        "per_image_f1": float(at["per_image_f1"]),
        "n_plus": int(at["n_plus"]),
    }


@dataclass
class _Dist:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def _init_distributed(device_name: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    here = False
    if not dist.is_initialized():
        cuda = device_name.startswith("cuda") or (device_name == "auto"
                                                 and torch.cuda.is_available())
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        here = True
    return _Dist(dist.get_world_size(), dist.get_rank(), local, here)


# --------------------------------------------------------------------------- trainer


class Trainer:
    """One training run: set-up, epochs (``fit``) and the final run-folder files (``finish``).

    :func:`train` is ``Trainer(config).run()``; the class is public so tests and tools can
    reach the live model (e.g. to compare DDP ranks)."""

    def __init__(self, config: TrainConfig):
        from lib import data, embeddings, graph, losses

        config.validate()
        self.config = config
        self.dist = _init_distributed(config.device)
        device = resolve_device(config.device)
        if device.type == "cuda" and self.dist.world_size > 1:
            device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        self.out = config.resolved_out()
        self.cfg = config.to_dict()
        seed_everything(config.seed)

        root = paths.dataset_dir(config.data)
        self.dataset = data.load_dataset(root, seed=config.seed)
        self.labels = list(self.dataset.labels)
        train_names = list(self.dataset.splits["train"].names)
        train_targets = self.dataset.splits["train"].targets
        self.train_split = "train"
        if config.augmented:
            if "train_aug" not in self.dataset.splits:
                raise ValueError(f"{root / 'train_aug.json'}: augmented=True but the dataset "
                                 "has no train_aug.json (run `python -m lib augment` first)")
            aug = self.dataset.splits["train_aug"]
            train_names += list(aug.names)
            train_targets = np.concatenate([train_targets, aug.targets])
            self.train_split = "train+train_aug"

        # rank 0 builds the caches first; the other ranks then read them
        for turn in ([0, 1] if self.dist.world_size > 1 else [0]):
            if (turn == 0) == self.dist.main:
                self.train_images = image_cache(self.dataset, self.train_split, train_names,
                                                config.image_size)
                self.eval_images = {
                    s: image_cache(self.dataset, s, list(self.dataset.splits[s].names),
                                   config.image_size) for s in ("val", "test")
                }
                vectors = embeddings.cached_label_vectors(root, self.labels, config.embeddings,
                                                          seed=config.seed)
            self.dist.barrier()
        real_train = self.dataset.splits["train"].targets  # graph from real train labels only
        adjacency = graph.adjacency(real_train, recipe=config.adjacency)
        self.label_vectors = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
        self.adjacency = torch.as_tensor(np.asarray(adjacency), dtype=torch.float32)
        self.train_targets = np.asarray(train_targets)

        mean, std = self._normalization()
        self.mean, self.std = list(mean), list(std)
        seed_everything(config.seed)  # model init independent of the set-up above
        self.model = _build_annotator(self.cfg, len(self.labels), self.label_vectors,
                                      self.adjacency, self.mean, self.std).to(device)
        if device.type == "cuda" and config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.module = self.model
        if self.dist.world_size > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.criterion = losses.build_loss(config.loss)
        # the fused Adam kernel (CPU and CUDA) is several times faster than the per-tensor loop
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=config.lr,
                                          weight_decay=config.weight_decay,
                                          fused=device.type in ("cpu", "cuda"))

        self.train_data = CachedImages(self.train_images, self.train_targets)
        self.sampler = DistributedSampler(self.train_data, num_replicas=self.dist.world_size,
                                          rank=self.dist.rank, shuffle=True, seed=config.seed,
                                          drop_last=self.dist.world_size > 1)
        self.loader = DataLoader(
            self.train_data, batch_size=config.batch_size, sampler=self.sampler,
            num_workers=config.num_workers, collate_fn=_identity_collate,
            pin_memory=device.type == "cuda", persistent_workers=config.num_workers > 0,
        )
        self.steps_per_epoch = len(self.loader)
        if config.schedule == "onecycle":
            total = (config.schedule_epochs or config.epochs) * self.steps_per_epoch
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=config.lr, total_steps=max(total, 2),
                pct_start=config.warmup)
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        self.ema = None
        if config.ema > 0:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.module, decay=config.ema)
        self.epoch = 0  # epochs completed
        self.best_score = -math.inf
        self.best_epoch = 0
        self.stale = 0
        self.history: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- set-up pieces
    def _normalization(self) -> tuple[Sequence[float], Sequence[float]]:
        from lib import models

        c = self.config
        if c.mean is not None:
            return c.mean, c.std
        stats = None
        if c.normalization == "dataset":
            stats = cache_channel_stats(self.train_images)
        mean, std = models.normalization(c.backbone, c.normalization, dataset_stats=stats)
        return [float(v) for v in mean], [float(v) for v in std]

    def run_config(self) -> dict[str, Any]:
        """Everything that goes into config.json."""
        root = Path(self.dataset.root).resolve()
        return {
            **self.cfg,
            "run_name": self.config.resolved_run_name(),
            "out": str(self.out),
            "dataset": str(root),
            "dataset_name": root.name,
            "leaky": self.config.leaky,
            "labels": self.labels,
            "num_labels": len(self.labels),
            "n_train": int(len(self.train_data)),
            "val_carved": bool(getattr(self.dataset, "val_carved", False)),
            "normalization_mean": self.mean,
            "normalization_std": self.std,
            "world_size": self.dist.world_size,
            "git_commit": git_commit(),
            "versions": library_versions(),
        }

    # ----------------------------------------------------------------- checkpoints
    def _eval_module(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.module

    def _checkpoint(self) -> dict[str, Any]:
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": _rng_state(),
            "epoch": self.epoch,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "stale": self.stale,
            "history": self.history,
            "config": self.cfg,
        }

    def _best(self) -> dict[str, Any]:
        return {
            "model": self._eval_module().state_dict(),
            "epoch": self.epoch,
            "score": self.best_score,
            "select_metric": self.config.select_metric,
            "labels": self.labels,
            "label_vectors": self.label_vectors,
            "adjacency": self.adjacency,
            "config": self.cfg,
        }

    def _compatible(self, saved: dict[str, Any]) -> list[str]:
        now = {k: v for k, v in self.cfg.items() if k not in _RESUME_FREE}
        old = {k: v for k, v in saved.items() if k not in _RESUME_FREE}
        return sorted(k for k in set(now) | set(old) if now.get(k) != old.get(k))

    def try_resume(self) -> bool:
        """Restore checkpoint.pt when it exists and its configuration matches."""
        path = self.out / "checkpoint.pt"
        if not path.exists():
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        diff = self._compatible(state["config"])
        if diff:
            warnings.warn(f"{path}: configuration differs in {diff}; training from scratch",
                          stacklevel=2)
            return False
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        _set_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.stale = int(state["stale"])
        self.history = list(state["history"])
        return True

    # ----------------------------------------------------------------- epochs
    def train_epoch(self) -> float:
        c = self.config
        self.model.train()
        self.sampler.set_epoch(self.epoch)
        flip_gen = torch.Generator().manual_seed(_seed_for(c.seed, self.epoch, self.dist.rank))
        total, count = torch.zeros((), dtype=torch.float64), 0
        bar = tqdm(self.loader, desc=f"epoch {self.epoch + 1}/{c.epochs}", leave=False,
                   disable=not self.dist.main)
        for images, targets in bar:
            loss = self.step(images, targets, flip_gen)
            total += loss.double().cpu() * len(targets)
            count += len(targets)
            if self.dist.main:  # refresh=False: tqdm redraws at its own pace, not every step
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        stats = torch.tensor([float(total), float(count)], dtype=torch.float64)
        if self.dist.world_size > 1:
            # BatchNorm running statistics are per rank after the last forward: take rank 0's
            # so every rank (and the checkpoint) holds the same model
            for buffer in self.module.buffers():
                dist.broadcast(buffer, src=0)
            if self.ema is not None:
                for buffer in self.ema.module.buffers():
                    dist.broadcast(buffer, src=0)
            stats = stats.to(self.device)
            dist.all_reduce(stats)
        return float(stats[0] / max(stats[1], 1))

    def step(self, images: torch.Tensor, targets: torch.Tensor,
             flip_gen: torch.Generator | None = None) -> torch.Tensor:
        """One optimisation step on a uint8 batch (flips, forward, loss, backward, clipping,
        Adam, schedule, EMA); returns the detached loss."""
        c = self.config
        if c.flips and flip_gen is not None:
            images = random_flips(images, flip_gen)
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        if self.device.type == "cuda" and c.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(self.device, c.amp):
            logits = self.model(images)
        loss = self.criterion(logits.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.module.parameters(), c.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.module)
        return loss.detach()

    def scores(self, split: str, module: nn.Module | None = None) -> tuple[np.ndarray, float]:
        """(sigmoid scores, mean loss) of a split with eval transforms."""
        module = module or self._eval_module()
        images = self.eval_images[split]
        targets = self.dataset.splits[split].targets
        logits = predict_logits(module, images, batch_size=self.config.eval_batch_size,
                                device=self.device, amp=self.config.amp,
                                channels_last=self.config.channels_last, desc=f"eval {split}")
        loss = float(self.criterion(logits, torch.as_tensor(targets, dtype=torch.float32)))
        return torch.sigmoid(logits).numpy(), loss

    def fit(self, max_epochs_this_call: int | None = None) -> bool:
        """Train until ``epochs`` (or early stop); returns True when training is complete.
        ``max_epochs_this_call`` stops earlier (an interruption, for tests and time limits)."""
        c = self.config
        done_here = 0
        epochs = tqdm(total=c.epochs, initial=self.epoch, desc="training", disable=not
                      self.dist.main)
        while not self._complete():
            if max_epochs_this_call is not None and done_here >= max_epochs_this_call:
                epochs.close()
                return False
            t0 = time.perf_counter()
            lr = self.scheduler.get_last_lr()[0]
            train_loss = self.train_epoch()
            self.epoch += 1
            row: dict[str, Any] = {"epoch": self.epoch, "train_loss": train_loss}
            val_scores, val_loss = self.scores("val")
            row["val_loss"] = val_loss
            for k, v in _epoch_metrics(self.dataset.splits["val"].targets, val_scores).items():
                row[f"val_{k}"] = v
            if c.selection_split == "test":
                test_scores, test_loss = self.scores("test")
                row["test_loss"] = test_loss
                for k, v in _epoch_metrics(self.dataset.splits["test"].targets,
                                           test_scores).items():
                    row[f"test_{k}"] = v
            score = row[f"{c.selection_split}_{c.select_metric}"]
            row["select_score"] = score
            improved = score > self.best_score
            if improved:
                self.best_score, self.best_epoch, self.stale = score, self.epoch, 0
            else:
                self.stale += 1
            row["best"] = improved
            row["lr"] = lr
            row["seconds"] = time.perf_counter() - t0
            self.history.append(row)
            if self.dist.main:
                self.out.mkdir(parents=True, exist_ok=True)
                if improved:
                    best = self._best()
                    atomic_save(self.out / "best.pt", lambda p, b=best: torch.save(b, p))
                ckpt = self._checkpoint()
                atomic_save(self.out / "checkpoint.pt", lambda p, c=ckpt: torch.save(c, p))
                hist = pd.DataFrame(self.history)
                atomic_save(self.out / "history.csv", lambda p, h=hist: h.to_csv(p, index=False))
            done_here += 1
            epochs.update(1)
            epochs.set_postfix({c.select_metric[:12]: f"{score:.4f}"})
        epochs.close()
        return True

    def _complete(self) -> bool:
        c = self.config
        if self.epoch >= c.epochs:
            return True
        return c.patience > 0 and self.stale >= c.patience

    # ----------------------------------------------------------------- final files
    def finish(self) -> None:
        """thresholds.json (MCC on val), predictions.csv and metrics.json (test), from best.pt."""
        from lib import metrics

        best = torch.load(self.out / "best.pt", map_location="cpu", weights_only=True)
        module = _build_annotator(self.cfg, len(self.labels), self.label_vectors, self.adjacency,
                                  self.mean, self.std, for_loading=True)
        module.load_state_dict(best["model"])
        module.to(self.device)
        val_scores, _ = self.scores("val", module)
        thresholds = metrics.mcc_thresholds(self.dataset.splits["val"].targets, val_scores)
        atomic_write_json(self.out / "thresholds.json", {
            "labels": self.labels, "thresholds": [float(t) for t in thresholds],
            "tuned_on": "val",
        })
        test_scores, _ = self.scores("test", module)
        write_predictions(self.out / "predictions.csv", self.dataset.splits["test"].names,
                          self.labels, test_scores)
        result = metrics.evaluate_scores(self.dataset.splits["test"].targets, test_scores,
                                         thresholds=np.asarray(thresholds))
        atomic_write_json(self.out / "metrics.json",
                          {"split": "test", "leaky": self.config.leaky, **result})

    def run(self, max_epochs_this_call: int | None = None) -> Path:
        try:
            resumed = self.config.resume and self.try_resume()
            if self.dist.main:
                self.out.mkdir(parents=True, exist_ok=True)
                if not resumed:
                    for name in ("checkpoint.pt", "best.pt", "history.csv", "thresholds.json",
                                 "predictions.csv", "metrics.json"):
                        (self.out / name).unlink(missing_ok=True)
                atomic_write_json(self.out / "config.json", self.run_config())
            self.dist.barrier()
            complete = self.fit(max_epochs_this_call)
            if complete and self.dist.main:
                self.finish()
            self.dist.barrier()
        finally:
            if self.dist.initialized_here and dist.is_initialized():
                dist.destroy_process_group()
        return self.out


def train(config: TrainConfig, *, max_epochs_this_call: int | None = None) -> Path:
    """Train ``config`` into its run folder and return the folder.

    ``max_epochs_this_call`` trains at most that many epochs in this call (the run folder then
    holds checkpoint.pt and history but no final files; ``resume=True`` continues it)."""
    return Trainer(config).run(max_epochs_this_call)


# --------------------------------------------------------------------------- inference


@torch.no_grad()
def predict_logits(model: nn.Module, images: np.ndarray | torch.Tensor, *, batch_size: int = 128,
                   device: torch.device | str = "cpu", amp: bool = False,
                   channels_last: bool = False, desc: str = "predict") -> torch.Tensor:
    """Logits (float32, CPU) of ``model`` on uint8 ``N x H x W x 3`` images, in eval mode."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    n = len(images)
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False,
                      disable=n <= batch_size):
        batch = torch.from_numpy(np.array(images[start:start + batch_size]))
        x = batch.permute(0, 3, 1, 2).contiguous().to(device)
        if device.type == "cuda" and channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            out.append(model(x).float().cpu())
    model.train(was_training)
    if not out:
        return torch.zeros((0, 0))
    return torch.cat(out)


def predict(model: nn.Module, dataset, split: str = "test", *, image_size: int,
            batch_size: int = 128, device: str = "auto") -> np.ndarray:
    """Sigmoid scores (N x C) of an :class:`Annotator` on a split of a dataset (an
    ``AnnotatedDataset`` or a dataset folder), through the shared uint8 image cache."""
    from lib import data

    if not hasattr(dataset, "splits"):
        dataset = data.load_dataset(paths.dataset_dir(dataset))
    if split not in dataset.splits:
        raise ValueError(f"{dataset.root}: no split {split!r} (has {sorted(dataset.splits)})")
    images = image_cache(dataset, split, list(dataset.splits[split].names), image_size)
    dev = resolve_device(device)
    model.to(dev)
    return torch.sigmoid(predict_logits(model, images, batch_size=batch_size, device=dev)).numpy()


def predict_files(model: nn.Module, files: Sequence[str | os.PathLike], *, image_size: int,
                  batch_size: int = 128, device: str = "auto") -> np.ndarray:
    """Sigmoid scores (N x C) of an :class:`Annotator` on image files."""
    images = decode_images(files, image_size)
    dev = resolve_device(device)
    model.to(dev)
    return torch.sigmoid(predict_logits(model, images, batch_size=batch_size, device=dev)).numpy()


def write_predictions(path: Path, names: Sequence[str], labels: Sequence[str],
                      scores: np.ndarray) -> Path:
    """predictions.csv: ``image_name`` then one score column per label (vocabulary order)."""
    frame = pd.DataFrame(np.asarray(scores, dtype=np.float64), columns=list(labels))
    frame.insert(0, "image_name", list(names))
    return atomic_save(path, lambda p: frame.to_csv(p, index=False, float_format="%.8g"))


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a run folder (config.json missing)")
    return json.loads(path.read_text(encoding="utf-8"))


def load_model(run_dir: str | os.PathLike, which: str = "best",
               device: str = "cpu") -> tuple[Annotator, dict[str, Any]]:
    """The model of a run folder (``best`` = best.pt, ``last`` = checkpoint.pt) in eval mode,
    and its config.json. The model is an :class:`Annotator` (takes uint8 or [0, 1] images)."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    files = {"best": "best.pt", "last": "checkpoint.pt"}
    if which not in files:
        raise ValueError(f"which={which!r}; expected 'best' or 'last'")
    path = run_dir / files[which]
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (training not run or not finished)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    best_path = run_dir / "best.pt"
    aux = state if "label_vectors" in state else torch.load(best_path, map_location="cpu",
                                                            weights_only=True)
    model = _build_annotator(cfg, cfg["num_labels"], aux["label_vectors"], aux["adjacency"],
                             cfg["normalization_mean"], cfg["normalization_std"],
                             for_loading=True)
    model.load_state_dict(state["model"])
    model.to(resolve_device(device)).eval()
    return model, cfg


def read_thresholds(run_dir: str | os.PathLike, labels: Sequence[str]) -> np.ndarray:
    path = Path(run_dir) / "thresholds.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (training not finished)")
    d = json.loads(path.read_text(encoding="utf-8"))
    if list(d["labels"]) != list(labels):
        raise ValueError(f"{path}: labels differ from the run's config.json")
    return np.asarray(d["thresholds"], dtype=np.float64)


def evaluate_run(run_dir: str | os.PathLike, split: str = "test",
                 device: str = "auto") -> dict[str, Any]:
    """Re-evaluate a run's best model on a split with its MCC thresholds; writes
    ``metrics.json`` (``metrics-<split>.json`` for other splits) and returns the dict."""
    from lib import data, metrics

    run_dir = Path(run_dir)
    model, cfg = load_model(run_dir, device=device)
    dataset = data.load_dataset(Path(cfg["dataset"]), seed=cfg["seed"])
    scores = predict(model, dataset, split, image_size=cfg["image_size"],
                     batch_size=cfg.get("eval_batch_size", 128), device=device)
    thresholds = read_thresholds(run_dir, cfg["labels"])
    result = {"split": split, "leaky": bool(cfg["leaky"]),
              **metrics.evaluate_scores(dataset.splits[split].targets, scores,
                                        thresholds=thresholds)}
    name = "metrics.json" if split == "test" else f"metrics-{split}.json"
    atomic_write_json(run_dir / name, result)
    return result


def annotate(run_dir: str | os.PathLike, inputs: Sequence[str | os.PathLike], *,
             top_k: int | None = None, thresholds: str = "mcc",
             device: str = "auto") -> list[dict[str, Any]]:
    """Labels (and scores) a trained run gives image files or folders of images.

    With ``top_k`` the k highest-scoring labels; otherwise every label whose score reaches
    its threshold (``mcc``: the run's thresholds.json, ``0.5``: a fixed 0.5)."""
    files = expand_images(inputs)
    model, cfg = load_model(run_dir, device=device)
    labels = cfg["labels"]
    scores = predict_files(model, files, image_size=cfg["image_size"], device=device)
    if thresholds == "mcc":
        cut = read_thresholds(run_dir, labels)
    elif thresholds in ("0.5", 0.5):
        cut = np.full(len(labels), 0.5)
    else:
        raise ValueError(f"thresholds={thresholds!r}; expected 'mcc' or '0.5'")
    out = []
    for f, s in zip(files, scores, strict=True):
        if top_k:
            chosen = np.argsort(-s, kind="stable")[:top_k]
        else:
            chosen = [i for i in np.argsort(-s, kind="stable") if s[i] >= cut[i]]
        out.append({"image": str(f), "labels": [labels[i] for i in chosen],
                    "scores": {lab: float(v) for lab, v in zip(labels, s, strict=True)}})
    return out


def expand_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Image files given directly or found (sorted, non-recursive) in given folders."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(
                    f"{p}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such image file or folder")
    return files


# --------------------------------------------------------------------------- CLI


def _bool_flag(parser: argparse.ArgumentParser, name: str, default: bool, help_: str) -> None:
    parser.add_argument(f"--{name}", dest=name.replace("-", "_"),
                        action=argparse.BooleanOptionalAction, default=None,
                        help=f"{help_} (default: {default})")


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib train",
                                description="Train a model into a run folder.")
    p.add_argument("--preset", choices=("default", "corel5k"), default="default",
                   help="starting configuration; other options override it")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    defaults = TrainConfig()
    skip = {"resume", "augmented", "pretrained", "amp", "channels_last", "flips", "mean", "std",
            "selection_split"}
    for name in fields:
        if name in skip:
            continue
        opt = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        kind = {int: int, float: float}.get(type(default), str)
        if name in ("schedule_epochs",):
            kind = int
        p.add_argument(opt, dest=name, type=kind, default=None,
                       help=f"default: {default}")
    for name in ("augmented", "pretrained", "amp", "channels-last", "flips"):
        _bool_flag(p, name, getattr(defaults, name.replace("-", "_")), name)
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue from checkpoint.pt when its configuration matches")
    p.add_argument("--select-on", dest="selection_split", choices=("val", "test"), default=None,
                   help="split for model selection (test = leaky reference protocol)")
    p.add_argument("--mean", type=float, nargs=3, default=None)
    p.add_argument("--std", type=float, nargs=3, default=None)
    p.add_argument("--max-epochs-this-call", type=int, default=None, help=argparse.SUPPRESS)
    return p


def train_main(argv: list[str]) -> int:
    args = vars(train_parser().parse_args(argv))
    preset = args.pop("preset")
    stop = args.pop("max_epochs_this_call")
    overrides = {k: v for k, v in args.items() if v is not None}
    try:
        config = TrainConfig.preset(preset, **overrides)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = train(config, max_epochs_this_call=stop)
    if int(os.environ.get("RANK", "0")) == 0 and (out / "metrics.json").exists():
        print(f"run folder: {out}")
        print((out / "metrics.json").read_text(encoding="utf-8"))
    return 0


def evaluate_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m lib evaluate",
                                description="Evaluate a run folder; writes metrics.json.")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=("test", "val", "train"))
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    try:
        result = evaluate_run(args.run_dir, split=args.split, device=args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


def annotate_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m lib annotate",
                                description="Annotate images with a trained run.")
    p.add_argument("run_dir")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--top-k", type=int, default=None,
                   help="the k best labels per image (else labels above threshold)")
    p.add_argument("--thresholds", choices=("0.5", "mcc"), default="mcc")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--output", default=None, help="file to write (default: stdout)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    try:
        rows = annotate(args.run_dir, args.inputs, top_k=args.top_k,
                        thresholds=args.thresholds, device=args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "json":
        text = json.dumps(rows, indent=2) + "\n"
    else:
        frame = pd.DataFrame([{"image": r["image"], "labels": " ".join(r["labels"]),
                               **r["scores"]} for r in rows])
        text = frame.to_csv(index=False, float_format="%.8g")
    if args.output:
        from lib.utils import atomic_write_text

        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0



# --------------------------------------------------------------------------- notebook 04


def config_from_parameters(run_name: str, dataset: str, preset: str = "default",
                           **fields: Any) -> TrainConfig:
    """Notebook 04's configuration: ``preset`` (``default`` or ``corel5k``) overridden by every
    field whose value differs from the embedded default (so a parameter left at its default
    keeps the preset's value), written to ``lib.paths.run_dir(run_name)`` and resuming a
    matching checkpoint (re-running the notebook reproduces, not retrains)."""
    defaults = TrainConfig()
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"unknown training parameters {sorted(unknown)}")
    overrides = {k: (tuple(v) if isinstance(v, list) else v) for k, v in fields.items()
                 if (tuple(v) if isinstance(v, list) else v) != getattr(defaults, k)}
    overrides.update(data=str(paths.dataset_dir(dataset)), out=str(paths.run_dir(run_name)),
                     run_name=Path(run_name).name, resume=True)
    return TrainConfig.preset(preset, **overrides)


def key_metrics(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The headline numbers of a finished run (from metrics.json and history.csv)."""
    run_dir = Path(run_dir)
    m = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    hist = pd.read_csv(run_dir / "history.csv")
    best = hist.loc[hist["best"].astype(bool), "epoch"]
    return {
        "test_mAP": m["mean_average_precision"],
        "test_per_class_f1_0.5": m["at_0.5"]["per_class_f1"],
        "test_per_class_f1_mcc": m["mcc"]["per_class_f1"],
        "test_per_image_f1_0.5": m["at_0.5"]["per_image_f1"],
        "test_n_plus_0.5": m["at_0.5"]["n_plus"],
        "test_per_class_f1_top3": m["top3"]["per_class_f1"],
        "best_epoch": int(best.iloc[-1]) if len(best) else None,
        "epochs_trained": int(hist["epoch"].max()),
        "train_seconds": float(hist["seconds"].sum()),
        "leaky": bool(m["leaky"]),
    }
