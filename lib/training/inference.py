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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib.core import paths
from lib.core.errors import EXIT_ERROR, describe, is_user_error
from lib.core.fileio import atomic_write_text, check_output_file
from lib.core.logs import progress as tqdm
from lib.data import datasets
from lib.method import heads
from lib.training.device import autocast, resolve_device
from lib.training.images import decode_image, decode_images, find_images, image_cache, random_flips
from lib.training.runs import RunError, RunFolder


class Annotator(nn.Module):
    """A ``lib.method.models`` network with its input normalisation built in.

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
    from lib.method import models  # lazy import (timm)

    net = models.build_model(
        num_labels, head=cfg["head"], backbone=cfg["backbone"],
        pretrained=bool(cfg["pretrained"]) and not for_loading,
        weights=None if for_loading else cfg["weights"],
        label_vectors=label_vectors, adjacency=adjacency, hidden=cfg["hidden"],
        head_settings={k: cfg[k] for k in heads.get(cfg["head"]).settings},
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


def _stored(state: dict[str, Any], aux: dict[str, Any], name: str) -> torch.Tensor | None:
    """A buffer the network needs to be built (``label_vectors``, ``adjacency``): from the
    model's state dict (where the GCN heads keep it), else from an older best.pt's own
    copy (checkpoints before the adjacency was stored once)."""
    found = [v for k, v in state["model"].items() if k.split(".")[-1] == name]
    if found:
        return torch.zeros_like(found[0])  # placeholder of the right shape; loaded below
    return aux.get(name)


def load_model(run: str | os.PathLike | RunFolder, which: str = "best",
               device: str = "cpu") -> tuple[Annotator, dict[str, Any]]:
    """The model of a run folder (``best`` = best.pt, ``last`` = checkpoint.pt) in eval mode,
    and its config.json. The model is an :class:`Annotator` (takes uint8 or [0, 1] images).

    config.json is validated and the checkpoint checked against it (labels, settings,
    sizes; :meth:`lib.training.runs.RunFolder.checkpoint`); weights that do not fit the network
    config.json describes are an error naming both files."""
    folder = RunFolder.resolve(run)
    cfg = folder.config
    state = folder.checkpoint(which)
    where = paths.portable(folder.best_path if which == "best" else folder.checkpoint_path)
    aux = state if which == "best" else {}
    vectors, adjacency = _stored(state, aux, "label_vectors"), _stored(state, aux, "adjacency")
    if heads.get(cfg["head"]).uses_vectors and vectors is None:
        raise RunError(f"{where}: holds no label vectors for head {cfg['head']!r}")
    model = build_annotator(cfg, cfg["num_labels"], vectors, adjacency,
                            cfg["normalization_mean"], cfg["normalization_std"],
                            for_loading=True)
    expected = model.state_dict()
    weights = state["model"]
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    if missing or extra:
        raise RunError(f"{where}: weights do not fit the network "
                       f"{paths.portable(folder.config_path)} describes (head "
                       f"{cfg['head']!r}, backbone {cfg['backbone']!r}): "
                       f"{len(missing)} missing {missing[:3]}, {len(extra)} unexpected "
                       f"{extra[:3]}")
    for key, value in weights.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise RunError(f"{where}: {key} has shape {tuple(value.shape)} but the network "
                           f"{paths.portable(folder.config_path)} describes needs "
                           f"{tuple(expected[key].shape)}")
    model.load_state_dict(weights)
    model.to(resolve_device(device)).eval()
    return model, cfg


def predict(model: nn.Module, dataset, split: str = "test", *, config: dict[str, Any],
            device: str = "auto") -> np.ndarray:
    """Sigmoid scores (N x C) of a run's model on a split of a dataset (an
    ``AnnotatedDataset`` or a dataset folder), through the shared uint8 image cache."""
    if not hasattr(dataset, "splits"):
        dataset = datasets.load_dataset(paths.dataset_dir(dataset))
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


def vocabulary_file(dataset) -> Path:
    """The file a dataset's vocabulary is read from (vocabulary.txt, else train.json)."""
    root = Path(dataset.root)
    return root / datasets.VOCABULARY_FILE if (root / datasets.VOCABULARY_FILE).is_file() \
        else root / "train.json"


def run_dataset(folder: RunFolder, *, check_images: bool = True):
    """The dataset a run was trained on, with the run's validation carve; its vocabulary
    must be the run's (same labels, same order), else :class:`lib.training.runs.RunError` naming the
    dataset's file and config.json."""
    cfg = folder.config
    val_fraction = 0.0 if cfg["protocol"] == "reference" else cfg["val_fraction"]
    dataset = datasets.load_dataset(folder.dataset, check_images=check_images,
                                val_fraction=val_fraction, seed=cfg["seed"])
    folder.check_dataset_labels(dataset.labels, vocabulary_file(dataset))
    return dataset


def evaluate_run(run: str | os.PathLike | RunFolder, split: str = "test",
                 device: str = "auto") -> dict[str, Any]:
    """Re-evaluate a run's best model on a split with its thresholds; writes
    ``metrics.json`` (``metrics-<split>.json`` for other splits) and returns the dict.

    Nothing is scored against labels other than the run's: config.json, best.pt and the
    dataset's vocabulary must agree (labels and their order), else an error naming the file
    that disagrees and metrics.json is left as it was."""
    from lib.method import metrics  # lazy import (sklearn)

    folder = RunFolder.resolve(run)
    model, cfg = load_model(folder, device=device)
    dataset = run_dataset(folder)
    if split not in dataset.splits:
        raise RunError(f"{paths.portable(dataset.root)}: no split {split!r} (has "
                       f"{sorted(dataset.splits)})")
    scores = predict(model, dataset, split, config=cfg, device=device)
    targets = dataset.splits[split].targets
    if scores.shape != targets.shape:  # cannot happen once the labels agree; never score it
        raise RunError(f"{paths.portable(folder.best_path)}: {scores.shape[1]} scores per "
                       f"image but the dataset has {targets.shape[1]} labels")
    result = {"split": split, "leaky": folder.leaky,
              **metrics.evaluate_scores(targets, scores, thresholds=folder.thresholds())}
    folder.write_metrics(result, split)
    return result


def decode_each(files: Sequence[Path], size: int,
                failures: list[tuple[Path, str]] | None = None) -> tuple[list[Path], np.ndarray]:
    """Decode ``files`` one by one: (the files decoded, ``N x size x size x 3`` uint8). A file
    that cannot be read is appended to ``failures`` as ``(file, problem)`` and skipped; with
    ``failures=None`` it raises its error."""
    good, arrays = [], []
    for f in tqdm(files, desc="decode", leave=False, disable=len(files) < 50):
        try:
            arrays.append(decode_image(f, size))
        except Exception as exc:
            if failures is None or not is_user_error(exc):
                raise
            problem = describe(exc)
            failures.append((f, problem if str(f) in problem else f"{f}: {problem}"))
            continue
        good.append(f)
    images = np.stack(arrays) if arrays else np.empty((0, size, size, 3), dtype=np.uint8)
    return good, images


def annotate(run: str | os.PathLike | RunFolder, inputs: Sequence[str | os.PathLike], *,
             top_k: int | None = None, thresholds: str = "mcc", device: str = "auto",
             recursive: bool = True,
             failures: list[tuple[Path, str]] | None = None) -> list[dict[str, Any]]:
    """Labels (and scores) a trained run gives image files or folders of images (folders
    scanned with their subfolders unless ``recursive=False``).

    With ``top_k`` the k highest-scoring labels; otherwise every label whose score reaches
    its threshold (``mcc``: the run's thresholds.json, ``0.5``: a fixed 0.5). The labels are
    config.json's, checked against best.pt's. An image that cannot be read raises, or with a
    ``failures`` list is appended to it as ``(file, problem)`` and the others annotated."""
    if top_k is not None and int(top_k) < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if thresholds not in ("mcc", "0.5", 0.5):
        raise ValueError(f"thresholds={thresholds!r}; expected 'mcc' or '0.5'")
    folder = RunFolder.resolve(run)
    folder.config  # noqa: B018 - validated first: a bad run folder is the first error
    files = find_images(inputs, recursive=recursive)
    model, cfg = load_model(folder, device=device)
    labels = cfg["labels"]
    cut = folder.thresholds() if thresholds == "mcc" else np.full(len(labels), 0.5)
    files, images = decode_each(files, cfg["image_size"], failures)
    if not files:
        return []
    dev = resolve_device(device)
    scores = Scorer.for_run(model.to(dev), cfg, dev).scores(images)
    out = []
    for f, s in zip(files, scores, strict=True):
        order = np.argsort(-s, kind="stable")
        chosen = order[:top_k] if top_k else [i for i in order if s[i] >= cut[i]]
        out.append({"image": str(f), "labels": [labels[i] for i in chosen],
                    "scores": {lab: float(v) for lab, v in zip(labels, s, strict=True)}})
    return out


def annotations_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``annotate``'s CSV: ``image``, ``labels`` (a JSON list, e.g. ``["palm tree", "sky"]``:
    unambiguous for labels with spaces or commas) and one score column per label."""
    frame = pd.DataFrame([{"image": r["image"],
                           "labels": json.dumps(r["labels"], ensure_ascii=False),
                           **r["scores"]} for r in rows])
    return frame.to_csv(index=False, float_format="%.8g")


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
    p = argparse.ArgumentParser(
        prog="python -m lib annotate",
        description="Annotate images with a trained run. Folders are scanned with their "
                    "subfolders (--no-recursive: only the folder itself). The CSV's 'labels' "
                    "column is a JSON list (labels may contain spaces). An image that cannot "
                    "be read is reported on stderr (one line each) and the others annotated; "
                    "the exit code is then 2.")
    p.add_argument("run_dir")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--top-k", type=int, default=None,
                   help="the k best labels per image (else labels above threshold)")
    p.add_argument("--thresholds", choices=("0.5", "mcc"), default="mcc")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--output", default=None, help="file to write (default: stdout)")
    p.add_argument("--no-recursive", dest="recursive", action="store_false",
                   help="do not scan the subfolders of a given folder")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if args.top_k is not None and args.top_k < 1:
        p.error(f"--top-k must be at least 1, got {args.top_k}")

    if args.output:
        check_output_file(args.output)  # before loading the model
    failures: list[tuple[Path, str]] = []
    rows = annotate(args.run_dir, args.inputs, top_k=args.top_k,
                    thresholds=args.thresholds, device=args.device,
                    recursive=args.recursive, failures=failures)
    if rows:
        text = (json.dumps(rows, indent=2) + "\n" if args.format == "json"
                else annotations_csv(rows))
        if args.output:
            atomic_write_text(args.output, text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    for _, problem in failures:
        print(f"error: {problem}", file=sys.stderr)
    if failures:
        print(f"error: {len(failures)} of {len(failures) + len(rows)} images could not be "
              f"read{'; the others are annotated' if rows else ''}", file=sys.stderr)
        return EXIT_ERROR
    return 0
