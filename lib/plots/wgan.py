"""Plots of the ML-WGAN augmentation (notebook 03): real images beside their fakes, losses,
and the share of each label's training images that have fakes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from lib.data import augment_records
from lib.data.datasets import read_image
from lib.method import wgan


def real_and_fakes(dataset_root: str | Path, names: Sequence[str], config: wgan.WGANConfig,
                   cell: float = 1.6):
    """One row per training image: the real image as the WGAN saw it (preprocessed with
    ``config``'s image size and crop border) and its three fakes (``_aug``,
    ``_aug_hor_flip``, ``_aug_rot_90``)."""
    root = Path(dataset_root)
    columns = ["real (preprocessed)", *(s.lstrip("_") for s in wgan.AUG_SUFFIXES)]
    rows = max(len(names), 1)
    fig, axes = plt.subplots(rows, 4, figsize=(4 * cell, rows * cell), squeeze=False)
    for r, name in enumerate(names):
        real = wgan.to_uint8(wgan.preprocess(read_image(root / "images" / name),
                                             config.image_size, config.crop_border))
        fakes = [np.asarray(Image.open(root / "images" / aug).convert("RGB"))
                 for aug in augment_records.aug_names(name, config.fakes)]
        for c, image in enumerate([real, *fakes]):
            ax = axes[r, c]
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=8)
        axes[r, 0].set_ylabel(Path(name).stem, fontsize=7)
    fig.tight_layout()
    return fig


def loss_curves(logs: pd.DataFrame):
    """Critic and generator loss per iteration: mean over images with a +-1 sd band."""
    long = logs.melt(id_vars=["image", "iteration"], value_vars=["critic_loss", "generator_loss"],
                     var_name="network", value_name="loss")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, (network, part) in zip(axes, long.groupby("network", sort=True), strict=True):
        sns.lineplot(data=part, x="iteration", y="loss", errorbar="sd", ax=ax)
        ax.set_title(f"{network.replace('_', ' ')} ({logs['image'].nunique()} images)")
        ax.axhline(0, color="grey", lw=0.6)
        if network == "critic_loss":  # the first iterations' penalty dwarfs the rest
            ax.set_yscale("symlog")
    fig.tight_layout()
    return fig


def coverage(table: pd.DataFrame, annotate: int = 8):
    """Share of each label's training images that have fakes against the label's training
    frequency (``lib.data.augmentation.augmentation_coverage``), one point per label; the
    ``annotate``
    rarest labels are listed beside it."""
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    shown = table.dropna(subset=["share"])
    ax.scatter(shown["train_images"], shown["share"], s=18, alpha=0.7)
    rarest = [f"{r.label}: {r.augmented_images}/{r.train_images}"
              for r in shown.head(annotate).itertuples()]
    if rarest:
        ax.text(1.02, 1.0, "rarest labels\n(with fakes / images)\n" + "\n".join(rarest),
                transform=ax.transAxes, va="top", fontsize=7, family="monospace")
    if len(shown) and shown["train_images"].max() > 10 * max(shown["train_images"].min(), 1):
        ax.set_xscale("log")
    ax.set_xlabel("training images carrying the label")
    ax.set_ylabel("share of them with fakes")
    ax.set_ylim(-0.03, 1.03)
    n_aug = int((shown["augmented_images"] > 0).sum())
    ax.set_title(f"{n_aug} of {len(shown)} labels have fakes", fontsize=9)
    fig.tight_layout()
    return fig
