"""Training settings: ``TrainConfig`` (every training default), the presets, ``build_config``.

``TrainConfig`` is the only place a training default is written (the head settings' defaults
are read from ``lib.method.heads.SETTINGS``, beside the heads that take them): the command line
(``python -m lib train``), notebook 04 (``preset`` + ``overrides``) and the parameter sets
all go through :func:`build_config`, which merges the dataclass defaults, then a preset (a
partial mapping), then the user's values; a value the user sets always wins.

Two protocols (docs/method.md, "Training and protocols"):

- ``holdout`` (default): a validation split is carved from ``train.json`` (``val_fraction``,
  seeded) unless the dataset has ``val.json``; the epoch is selected and the thresholds are
  tuned on validation; the test split is scored once.
- ``reference``: the reference implementation exactly: no carve, every training image trains
  and builds the label graph, the epoch is selected on the test split, the thresholds are
  tuned on the training images with the training flips, fp32. Marked leaky everywhere.

How a training starts is :mod:`lib.training.launch`; the run itself is
:class:`lib.training.trainer.Trainer`; the run folder is :class:`lib.training.runs.RunFolder`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.core import config as settings
from lib.core import paths
from lib.core.config import ConfigError, setting
from lib.method import graph, heads, losses, models
from lib.method.thresholds import FALLBACKS

log = logging.getLogger(__name__)

#: selection metrics (keys of the per-epoch validation metrics)
SELECT_METRICS = ("mean_average_precision", "per_class_f1", "per_image_f1")
PROTOCOLS = ("holdout", "reference")
#: settings that may differ between an interrupted run and its continuation
RESUME_FREE = ("device", "num_workers", "out", "overwrite", "eval_batch_size")


@dataclass
class TrainConfig:
    """One training configuration; field names are the ``python -m lib train`` options.

    Defaults are the embedded default configuration (scenes dataset at 48 px, a small
    backbone trained from scratch for 4 epochs: about 20 s a seed on 2 CPU cores; 48 px and 4
    epochs rather than 64 px and 5 keep three seeds of every configuration within the time of
    one seed before, see results/benchmarks.md); the preset
    ``corel5k`` in :data:`PRESETS` is the Corel-5k reference recipe."""

    data: str = setting(paths.DEFAULT_DATASET, help="dataset folder, or name under data/")
    out: str | None = setting(None, help=f"run folder (default "
                                          f"{paths.portable(paths.runs_dir())}/<run-name>; "
                                          "AIA_RESULTS_DIR moves it)")
    run_name: str | None = setting(None, help="name of the configuration (default: out's name)")
    protocol: str = setting("holdout", choices=PROTOCOLS,
                            help="holdout: select and tune on validation; reference: the "
                                 "reference's protocol (select on test; leaky)")
    val_fraction: float = setting(0.1, help="share of train.json carved into validation "
                                            "(holdout, when there is no val.json)")
    backbone: str = setting(models.DEFAULT_BACKBONE, help="timm backbone")
    image_size: int = setting(48, help="square input size in pixels")
    epochs: int = setting(4, help="epochs trained (early stopping may stop sooner)")
    batch_size: int = setting(32, help="global batch (split over torchrun processes)")
    lr: float = setting(2e-3, help="Adam learning rate (OneCycle maximum)")
    weight_decay: float = setting(0.0, help="Adam weight decay")
    loss: str = setting("asl", choices=tuple(losses.LOSSES), help="training loss")
    head: str = setting("gcn", choices=heads.names, help="label head (lib.method.heads)")
    adjacency: str = setting("seed", choices=graph.RECIPES, help="label-graph recipe")
    embeddings: str = setting("glove-6b-50d", help="label-vector source (lib.method.embeddings)")
    hidden: int = setting(1024, help="GCN hidden size")
    # the attention heads' settings: defaults and ranges in lib.method.heads.SETTINGS
    csra_temperature: float | None = setting(heads.SETTINGS["csra_temperature"].default,
                                             help=heads.SETTINGS["csra_temperature"].help)
    csra_lambda: float = setting(heads.SETTINGS["csra_lambda"].default,
                                 help=heads.SETTINGS["csra_lambda"].help)
    decoder_dim: int = setting(heads.SETTINGS["decoder_dim"].default,
                               help=heads.SETTINGS["decoder_dim"].help)
    decoder_heads: int = setting(heads.SETTINGS["decoder_heads"].default,
                                 help=heads.SETTINGS["decoder_heads"].help)
    decoder_layers: int = setting(heads.SETTINGS["decoder_layers"].default,
                                  help=heads.SETTINGS["decoder_layers"].help)
    decoder_ffn: int = setting(heads.SETTINGS["decoder_ffn"].default,
                               help=heads.SETTINGS["decoder_ffn"].help)
    decoder_groups: int = setting(heads.SETTINGS["decoder_groups"].default,
                                  help=heads.SETTINGS["decoder_groups"].help)
    decoder_dropout: float = setting(heads.SETTINGS["decoder_dropout"].default,
                                     help=heads.SETTINGS["decoder_dropout"].help)
    augmented: bool = setting(False, help="train on train + train_aug (ML-WGAN fakes)")
    aug_list: str = setting("train_aug.json", help="the list of fakes of augmented runs, in the "
                                                   "dataset folder: train_aug.json (the Kaggle "
                                                   "release's: the reference's fakes) or "
                                                   "train_aug_NAME.json (augment --fakes NAME)")
    pretrained: bool = setting(False, help="ImageNet weights from timm")
    weights: str | None = setting(None, help="backbone weights file")
    seed: int = setting(0, help="seed of every random source")
    device: str = setting("auto", help="auto, cpu, cuda or cuda:N")
    overwrite: bool = setting(False, help="start over in a run folder that holds another "
                                          "configuration")
    select_metric: str = setting("mean_average_precision", choices=SELECT_METRICS,
                                 help="metric that selects the epoch")
    patience: int = setting(0, help="early stopping after this many epochs without "
                                    "improvement (0: off)")
    schedule: str = setting("onecycle", choices=("onecycle", "constant"),
                            help="learning-rate schedule")
    schedule_epochs: int | None = setting(None, help="OneCycle length in epochs "
                                                     "(default: epochs)")
    warmup: float = setting(0.2, help="OneCycle warm-up fraction")
    ema: float = setting(0.0, help="EMA decay of the weights (0: off)")
    grad_clip: float = setting(0.0, help="gradient-norm clipping (0: off)")
    num_workers: int = setting(0, help="DataLoader workers")
    normalization: str = setting("backbone", choices=("backbone", "dataset"),
                                 help="input normalisation: the backbone's, or computed from "
                                      "the images trained on")
    mean: tuple[float, float, float] | None = setting(None, help="explicit normalisation mean")
    std: tuple[float, float, float] | None = setting(None, help="explicit normalisation std")
    amp: bool | None = setting(None, help="bf16 autocast on CUDA (default: on under holdout, "
                                          "off under reference)")
    # NCHW until benchmarks/gpu_reference.py has measured both layouts on a GPU: timm's
    # published benchmark has tresnet_m_448 about 4x slower in channels-last (53.5 vs 209.6
    # img/s, RTX 3090, AMP); no effect on the CPU
    channels_last: bool = setting(False, help="channels-last memory format on CUDA (off: "
                                              "NCHW, see benchmarks/gpu_reference.py)")
    flips: bool = setting(True, help="random horizontal and vertical flips in training")
    eval_batch_size: int = setting(128, help="batch size for scoring")
    min_positives: int = setting(1, help="labels with fewer tuning-split positives get the "
                                         "fallback threshold")
    threshold_fallback: str = setting("0.5", choices=FALLBACKS,
                                      help="fallback threshold: 0.5 or the pooled MCC optimum "
                                           "(chosen on validation: 0.5, results/benchmarks.md)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`lib.core.config.ConfigError` naming the bad setting."""
        for name in ("protocol", "loss", "head", "adjacency", "select_metric", "schedule",
                     "normalization", "threshold_fallback"):
            settings.check_choice(self, name)
        settings.check_range(self, "image_size", 16)
        for name in ("epochs", "batch_size", "eval_batch_size", "hidden"):
            settings.check_range(self, name, 1)
        settings.check_range(self, "lr", 0, low_open=True)
        for name in ("weight_decay", "grad_clip", "patience", "num_workers", "min_positives"):
            settings.check_range(self, name, 0)
        settings.check_range(self, "warmup", 0, 1, low_open=True, high_open=True)
        settings.check_range(self, "ema", 0, 1, high_open=True)
        settings.check_range(self, "val_fraction", 0, 1, low_open=True, high_open=True)
        self._check_head_settings()
        if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
            raise ConfigError(f"TrainConfig.schedule_epochs ({self.schedule_epochs}) must be "
                              f">= epochs ({self.epochs})")
        if (self.mean is None) != (self.std is None):
            raise ConfigError("TrainConfig.mean and TrainConfig.std go together")
        if self.std is not None and min(self.std) <= 0:
            raise ConfigError(f"TrainConfig.std must be positive, got {self.std}")
        if not re.fullmatch(r"train_aug(_[A-Za-z0-9][A-Za-z0-9_-]*)?\.json", self.aug_list):
            raise ConfigError(f"TrainConfig.aug_list={self.aug_list!r}: expected train_aug.json "
                              "or train_aug_NAME.json (a file of the dataset folder)")
        if self.protocol == "reference" and self.amp:
            raise ConfigError("TrainConfig.amp: the reference protocol is fp32; leave amp "
                              "unset or false")

    def _check_head_settings(self) -> None:
        for name, spec in heads.SETTINGS.items():
            problem = spec.problem(getattr(self, name))
            if problem:
                raise ConfigError(f"TrainConfig.{name} {problem}")
        if self.decoder_dim % self.decoder_heads:
            raise ConfigError(f"TrainConfig.decoder_dim ({self.decoder_dim}) must divide by "
                              f"decoder_heads ({self.decoder_heads})")

    @property
    def leaky(self) -> bool:
        """Selection on the test split (the reference protocol)."""
        return self.protocol == "reference"

    @property
    def selection_split(self) -> str:
        return "test" if self.protocol == "reference" else "val"

    @property
    def tuning_split(self) -> str:
        return "train" if self.protocol == "reference" else "val"

    def resolved_amp(self, device_type: str) -> bool:
        if self.amp is not None:
            return bool(self.amp) and device_type == "cuda"
        return device_type == "cuda" and self.protocol == "holdout"

    def resolved_out(self) -> Path:
        if self.out is not None:
            return Path(self.out).expanduser().resolve()
        return paths.run_dir(self.run_name or "default")

    def resolved_run_name(self) -> str:
        return self.run_name or self.resolved_out().name

    def to_dict(self) -> dict[str, Any]:
        return settings.to_dict(self)


#: partial mappings merged over the defaults (the user's values win over both)
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # the Corel-5k reference recipe (docs/method.md, "Training and protocols"): ImageNet-
    # pretrained TResNet-M at 448 px, batch 32, Adam 1e-4, OneCycle (20 % warm-up) over 80
    # epochs stopped at 60, flips, normalisation from the images trained on, ASL, GCN head
    # over GloVe 300-d vectors, selection by per-class F1 at 0.5
    "corel5k": {
        "backbone": "tresnet_m", "image_size": 448, "epochs": 60, "schedule_epochs": 80,
        "batch_size": 32, "lr": 1e-4, "loss": "asl", "head": "gcn", "adjacency": "seed",
        "embeddings": "glove-wiki-gigaword-300", "pretrained": True, "flips": True,
        "normalization": "dataset", "select_metric": "per_class_f1", "num_workers": 4,
        "eval_batch_size": 64,
    },
}


def build_config(preset: str | None = "default", overrides: dict[str, Any] | None = None,
                 *, where: str = "") -> TrainConfig:
    """``TrainConfig`` from its defaults, a preset and the user's values (which always win)."""
    return settings.build(TrainConfig, PRESETS, preset, overrides, where=where)

