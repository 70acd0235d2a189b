"""Scoring with a trained model: the normalising wrapper, one scoring path, evaluate, annotate.

Every score of a run, during training (validation, selection, threshold tuning) and after
it (``python -m lib evaluate``, ``annotate``, notebooks), comes from :class:`Scorer` built
with the run's own precision settings (``amp``, ``channels_last``), so ``evaluate`` rewrites
``metrics.json`` from the same kind of scores the thresholds were tuned on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib import paths
from lib.device import autocast, resolve_device
from lib.images import decode_images, expand_images, image_cache, random_flips
from lib.logs import progress as tqdm
from lib.runs import RunError, RunFolder, load_checkpoint


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

    def graph_share(self):
        """Per label, the share of its classifier's norm that comes from the graph."""
        return self.net.graph_share()


def build_annotator(cfg: dict[str, Any], num_labels: int, label_vectors, adjacency, mean, std,
                    *, for_loading: bool = False) -> Annotator:
    """The network of configuration ``cfg`` (a TrainConfig dict) wrapped in an Annotator;
    ``for_loading`` skips pretrained weights (a state dict follows)."""
    from lib import models

    net = models.build_model(
        num_labels, head=cfg["head"], backbone=cfg["backbone"],
        pretrained=bool(cfg["pretrained"]) and not for_loading,
        weights=None if for_loading else cfg["weights"],
        label_vectors=label_vectors, adjacency=adjacency, hidden=cfg["hidden"],
    )
    return Annotator(net, mean, std)


class Scorer:
    """Logits and sigmoid scores of a model on uint8 ``N x H x W x 3`` images, in eval mode,
    with one precision setting (bf16 autocast on CUDA when ``amp``) for every caller."""

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu", *,
                 amp: bool = False, channels_last: bool = False, batch_size: int = 128):
        self.model = model
        self.device = torch.device(device)
        self.amp = bool(amp)
        self.channels_last = bool(channels_last)
        self.batch_size = int(batch_size)

    @classmethod
    def for_run(cls, model: nn.Module, config: dict[str, Any], device: torch.device | str
                ) -> Scorer:
        """The scorer of a run: its ``amp``, ``channels_last`` and ``eval_batch_size``."""
        return cls(model, device, amp=bool(config.get("amp", False)),
                   channels_last=bool(config.get("channels_last", False)),
                   batch_size=int(config.get("eval_batch_size", 128)))

    @torch.no_grad()
    def logits(self, images: np.ndarray | torch.Tensor, *,
               flips: torch.Generator | None = None, desc: str = "predict") -> torch.Tensor:
        """Logits (float32, CPU); ``flips`` applies the training-time random flips (the
        reference protocol tunes thresholds on flipped training images)."""
        was_training = self.model.training
        self.model.eval()
        out = []
        n = len(images)
        for start in tqdm(range(0, n, self.batch_size), desc=desc, leave=False,
                          disable=n <= self.batch_size):
            batch = torch.from_numpy(np.array(images[start:start + self.batch_size]))
            x = batch.permute(0, 3, 1, 2).contiguous()
            if flips is not None:
                x = random_flips(x, flips)
            x = x.to(self.device)
            if self.device.type == "cuda" and self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.amp):
                out.append(self.model(x).float().cpu())
        self.model.train(was_training)
        if not out:
            raise ValueError("no images to score")
        return torch.cat(out)

    def scores(self, images, **kwargs) -> np.ndarray:
        return torch.sigmoid(self.logits(images, **kwargs)).numpy()


def load_model(run: str | os.PathLike | RunFolder, which: str = "best",
               device: str = "cpu") -> tuple[Annotator, dict[str, Any]]:
    """The model of a run folder (``best`` = best.pt, ``last`` = checkpoint.pt) in eval mode,
    and its config.json. The model is an :class:`Annotator` (takes uint8 or [0, 1] images)."""
    folder = RunFolder.resolve(run)
    cfg = folder.config
    files = {"best": folder.best_path, "last": folder.checkpoint_path}
    if which not in files:
        raise ValueError(f"which={which!r}; expected 'best' or 'last'")
    if not files[which].exists():
        raise RunError(f"{files[which]}: missing (training not run or not finished)")
    state = load_checkpoint(files[which])
    aux = state if "label_vectors" in state else load_checkpoint(folder.best_path)
    model = build_annotator(cfg, cfg["num_labels"], aux["label_vectors"], aux["adjacency"],
                            cfg["normalization_mean"], cfg["normalization_std"],
                            for_loading=True)
    model.load_state_dict(state["model"])
    model.to(resolve_device(device)).eval()
    return model, cfg


def predict(model: nn.Module, dataset, split: str = "test", *, config: dict[str, Any],
            device: str = "auto") -> np.ndarray:
    """Sigmoid scores (N x C) of a run's model on a split of a dataset (an
    ``AnnotatedDataset`` or a dataset folder), through the shared uint8 image cache."""
    from lib import data

    if not hasattr(dataset, "splits"):
        dataset = data.load_dataset(paths.dataset_dir(dataset))
    if split not in dataset.splits:
        raise ValueError(f"{dataset.root}: no split {split!r} (has {sorted(dataset.splits)})")
    images = image_cache(dataset, split, list(dataset.splits[split].names),
                         config["image_size"])
    dev = resolve_device(device)
    return Scorer.for_run(model.to(dev), config, dev).scores(images, desc=f"predict {split}")


def predict_files(model: nn.Module, files: Sequence[str | os.PathLike], *,
                  config: dict[str, Any], device: str = "auto") -> np.ndarray:
    """Sigmoid scores (N x C) of a run's model on image files."""
    images = decode_images(files, config["image_size"])
    dev = resolve_device(device)
    return Scorer.for_run(model.to(dev), config, dev).scores(images)


def run_dataset(folder: RunFolder, *, check_images: bool = True):
    """The dataset a run was trained on, with the run's validation carve."""
    from lib import data

    cfg = folder.config
    val_fraction = 0.0 if cfg.get("protocol") == "reference" else cfg.get("val_fraction", 0.1)
    return data.load_dataset(folder.dataset, check_images=check_images,
                             val_fraction=val_fraction, seed=cfg.get("seed", 0))


def evaluate_run(run: str | os.PathLike | RunFolder, split: str = "test",
                 device: str = "auto") -> dict[str, Any]:
    """Re-evaluate a run's best model on a split with its thresholds; writes
    ``metrics.json`` (``metrics-<split>.json`` for other splits) and returns the dict."""
    from lib import metrics

    folder = RunFolder.resolve(run)
    model, cfg = load_model(folder, device=device)
    dataset = run_dataset(folder)
    scores = predict(model, dataset, split, config=cfg, device=device)
    result = {"split": split, "leaky": folder.leaky,
              **metrics.evaluate_scores(dataset.splits[split].targets, scores,
                                        thresholds=folder.thresholds())}
    folder.write_metrics(result, split)
    return result


def annotate(run: str | os.PathLike | RunFolder, inputs: Sequence[str | os.PathLike], *,
             top_k: int | None = None, thresholds: str = "mcc",
             device: str = "auto") -> list[dict[str, Any]]:
    """Labels (and scores) a trained run gives image files or folders of images.

    With ``top_k`` the k highest-scoring labels; otherwise every label whose score reaches
    its threshold (``mcc``: the run's thresholds.json, ``0.5``: a fixed 0.5)."""
    if top_k is not None and int(top_k) < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if thresholds not in ("mcc", "0.5", 0.5):
        raise ValueError(f"thresholds={thresholds!r}; expected 'mcc' or '0.5'")
    folder = RunFolder.resolve(run)
    files = expand_images(inputs)
    model, cfg = load_model(folder, device=device)
    labels = cfg["labels"]
    cut = folder.thresholds() if thresholds == "mcc" else np.full(len(labels), 0.5)
    scores = predict_files(model, files, config=cfg, device=device)
    out = []
    for f, s in zip(files, scores, strict=True):
        order = np.argsort(-s, kind="stable")
        chosen = order[:top_k] if top_k else [i for i in order if s[i] >= cut[i]]
        out.append({"image": str(f), "labels": [labels[i] for i in chosen],
                    "scores": {lab: float(v) for lab, v in zip(labels, s, strict=True)}})
    return out


# --------------------------------------------------------------------------- CLI


def evaluate_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m lib evaluate",
                                description="Evaluate a run folder; writes metrics.json.")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=("test", "val", "train"))
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    result = evaluate_run(args.run_dir, split=args.split, device=args.device)
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
    if args.top_k is not None and args.top_k < 1:
        p.error(f"--top-k must be at least 1, got {args.top_k}")
    rows = annotate(args.run_dir, args.inputs, top_k=args.top_k,
                    thresholds=args.thresholds, device=args.device)
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
