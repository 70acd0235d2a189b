"""One training run: set-up, epochs, checkpoints, and the run folder's final files.

Design (docs/method.md, "Training and protocols"):

- Every random source comes from ``seed``: data order from a sampler seeded with
  ``(seed, epoch)``, flips from a generator seeded with ``(seed, epoch, rank)``, model init
  from the torch RNG whose state is checkpointed, so continuing an interrupted run gives the
  same weights and metrics as an uninterrupted one.
- The epoch is selected on the selection split (validation under ``holdout``, test under
  ``reference``); thresholds are tuned on the tuning split (validation, or the training
  images with the training flips under ``reference``); every score comes from
  :class:`lib.training.inference.Scorer` with the run's precision.
- The run folder belongs to its run: it is locked while the run writes, files the run did not
  write stop it, and a different configuration in it is an error unless ``overwrite``.
- Under ``torchrun`` the model is wrapped in DistributedDataParallel, ``batch_size`` is the
  global batch (``batch_size / world_size`` per process) and only rank 0 writes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from lib.core import logs, paths
from lib.core.config import ConfigError
from lib.core.fileio import atomic_save_torch, check_output_folder, clean_stale_temps
from lib.core.locking import file_lock
from lib.core.provenance import git_commit, library_versions, seed_everything
from lib.data import augment_records, datasets
from lib.data.drawn import standin
from lib.method import embeddings, graph, heads, losses, metrics, models, thresholds
from lib.training.device import (
    autocast,
    init_distributed,
    precision_label,
    resolve_device,
    set_strict_fp32,
)
from lib.training.images import (
    CachedImages,
    channel_stats,
    identity_collate,
    image_cache,
    random_flips,
)
from lib.training.inference import Scorer, build_annotator
from lib.training.runs import RunError, RunFolder, load_checkpoint
from lib.training.settings import RESUME_FREE, TrainConfig

log = logging.getLogger(__name__)


def _seed_for(*parts: int) -> int:
    digest = hashlib.sha256(",".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


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


def epoch_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The per-epoch numbers of history.csv: mAP, per-class and per-image F1 and N+ at 0.5."""
    at = metrics.annotation_metrics(y_true, scores, threshold=0.5)
    return {
        "mean_average_precision": float(metrics.mean_average_precision(y_true, scores)),
        "per_class_f1": float(at["per_class_f1"]),
        "per_image_f1": float(at["per_image_f1"]),
        "n_plus": int(at["n_plus"]),
    }


class Trainer:
    """One training run: set-up (``__init__``), epochs (``fit``), final files (``finish``).

    :func:`lib.training.launch.train` is ``Trainer(config).run()``; the class is public so tests and
    tools can reach the live model (e.g. to compare DDP ranks)."""

    def __init__(self, config: TrainConfig):
        config.validate()
        self.config = config
        self.dist = init_distributed(config.device)
        device = resolve_device(config.device)
        if device.type == "cuda" and self.dist.world_size > 1:
            device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        if config.batch_size % self.dist.world_size:
            raise ConfigError(f"TrainConfig.batch_size={config.batch_size} is the global batch "
                              f"and must divide by the {self.dist.world_size} processes")
        self.batch_per_process = config.batch_size // self.dist.world_size
        self.amp = config.resolved_amp(device.type)
        # the reference protocol is strict fp32: no TF32 in CUDA matmuls or cuDNN convolutions
        self.tf32 = set_strict_fp32(config.protocol == "reference")
        self.precision = precision_label(self.amp, self.tf32) if device.type == "cuda" \
            else "fp32"
        self.folder = RunFolder(config.resolved_out())
        self.out = self.folder.path
        check_output_folder(self.out)  # before the set-up (a file in the way, read-only)
        self.cfg = {**config.to_dict(), "amp": self.amp}
        seed_everything(config.seed)
        self._load_data()
        mean, std = self._normalization()
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        seed_everything(config.seed)  # model init independent of the set-up above
        self._build_model()
        self.epoch = 0  # epochs completed
        self.best_score = -math.inf
        self.best_epoch = 0
        self.stale = 0
        self.history: list[dict[str, Any]] = []
        self.trained_now = 0  # epochs trained in this call

    # ----------------------------------------------------------------- set-up
    def _load_data(self) -> None:
        c = self.config
        head = heads.get(c.head)
        root = paths.dataset_dir(c.data)
        reference = c.protocol == "reference"
        self.dataset = datasets.load_dataset(root, seed=c.seed,
                                         val_fraction=0.0 if reference else c.val_fraction,
                                         aug_list=c.aug_list)
        if reference:  # the reference has no validation split: every image trains
            self.dataset.splits.pop("val", None)
        self.labels = list(self.dataset.labels)
        train = self.dataset.splits["train"]
        names, targets = list(train.names), np.asarray(train.targets)
        self.train_split = "train"
        self.augmentation: dict[str, Any] | None = None
        if c.augmented:
            # train_aug_NAME.json lists the named set NAME (lib.data.augment_records);
            # train_aug.json ""
            fakes = c.aug_list.removeprefix("train_aug").removeprefix("_").removesuffix(".json")
            if "train_aug" not in self.dataset.splits:
                option = f" --fakes {fakes}" if fakes else ""
                raise datasets.DatasetError(f"{root / c.aug_list}: augmented=True but the "
                                        f"dataset has no {c.aug_list} (run `python -m lib "
                                        f"augment{option}` first)")
            aug = self.dataset.splits["train_aug"]
            names += list(aug.names)
            targets = np.concatenate([targets, aug.targets])
            self.train_split = "train+train_aug"

            sources = {datasets.aug_source_stem(n) for n in aug.names}
            recorded = augment_records.augmentation_info(root, fakes) or {}
            self.augmentation = {"images": len(sources - {None}), "of": len(train.names),
                                 "fakes": len(aug.names), "select": recorded.get("select")}
        self.eval_splits = [s for s in ("val", "test") if s in self.dataset.splits]
        # rank 0 builds the caches first; the other ranks then read them
        for turn in ([0, 1] if self.dist.world_size > 1 else [0]):
            if (turn == 0) == self.dist.main:
                self.train_images = image_cache(self.dataset, self.train_split, names,
                                                c.image_size)
                self.eval_images = {
                    s: image_cache(self.dataset, s, list(self.dataset.splits[s].names),
                                   c.image_size) for s in self.eval_splits}
                # every image trained on (the reference tunes thresholds on its train loader)
                self.eval_images["train"] = self.train_images
                # only for a head that uses them (lib.method.heads); neither draws from a global
                # random source (random vectors have their own seeded generator), so
                # skipping them changes no number of the other heads
                vectors = (embeddings.cached_label_vectors(root, self.labels, c.embeddings,
                                                           seed=c.seed)
                           if head.uses_vectors else None)
            self.dist.barrier()
        # the label graph from the real training labels only (never from fakes)
        adjacency = (graph.adjacency(train.targets, recipe=c.adjacency) if head.uses_graph
                     else None)
        self.label_vectors = (torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
                              if vectors is not None else None)
        self.adjacency = (torch.as_tensor(np.asarray(adjacency), dtype=torch.float32)
                          if adjacency is not None else None)
        self.train_targets = targets
        self.root = root

    def _normalization(self) -> tuple[list[float], list[float]]:
        c = self.config
        if c.mean is not None:
            return list(c.mean), list(c.std)
        if c.protocol == "reference" and c.normalization == "dataset":
            # the reference's fixed constants (augmented ones for augmented runs), not
            # statistics computed here (docs/method.md, "Training and protocols")
            mean, std = models.reference_stats(c.augmented)
            return list(mean), list(std)
        stats = channel_stats(self.train_images) if c.normalization == "dataset" else None
        mean, std = models.normalization(c.backbone, c.normalization, dataset_stats=stats)
        if min(std) <= 0:
            raise ConfigError(f"{paths.portable(self.root)}: the training images have a "
                              "constant colour channel (std 0); normalisation impossible")
        return list(mean), list(std)

    def _normalization_source(self) -> str:
        c = self.config
        if c.mean is not None:
            return "explicit"
        if c.normalization == "dataset":
            if c.protocol == "reference":
                return "reference-corel5k-augmented" if c.augmented else "reference-corel5k"
            return "computed"
        return "backbone"

    def _build_model(self) -> None:
        c, device = self.config, self.device
        self.model = build_annotator(self.cfg, len(self.labels), self.label_vectors,
                                     self.adjacency, self.mean, self.std).to(device)
        if device.type == "cuda" and c.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.module = self.model
        if self.dist.world_size > 1:
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.criterion = losses.build_loss(c.loss)
        # the fused Adam kernel (CPU and CUDA) is several times faster than the per-tensor loop
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=c.lr,
                                          weight_decay=c.weight_decay,
                                          fused=device.type in ("cpu", "cuda"))
        self.train_data = CachedImages(self.train_images, self.train_targets)
        self.sampler = DistributedSampler(self.train_data, num_replicas=self.dist.world_size,
                                          rank=self.dist.rank, shuffle=True, seed=c.seed,
                                          drop_last=self.dist.world_size > 1)
        self.loader = DataLoader(
            self.train_data, batch_size=self.batch_per_process, sampler=self.sampler,
            num_workers=c.num_workers, collate_fn=identity_collate,
            pin_memory=device.type == "cuda", persistent_workers=c.num_workers > 0,
        )
        self.steps_per_epoch = len(self.loader)
        if c.schedule == "onecycle":
            total = max((c.schedule_epochs or c.epochs) * self.steps_per_epoch, 2)
            if abs(c.warmup * total - 1) < 1e-9:  # a one-step warm-up divides by zero in torch
                total += 1
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=c.lr, total_steps=total, pct_start=c.warmup)
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        self.ema = None
        if c.ema > 0:

            self.ema = ModelEmaV3(self.module, decay=c.ema)

    def run_config(self) -> dict[str, Any]:
        """Everything that goes into config.json."""
        return {
            **self.cfg,
            "run_name": self.config.resolved_run_name(),
            "out": paths.portable(self.out),
            "data": paths.portable(self.root),
            "dataset": paths.portable(self.root),
            "dataset_name": self.root.name,
            "standin": standin.is_standin(self.root),
            "leaky": self.config.leaky,
            "selection_split": self.config.selection_split,
            "tuning_split": self.config.tuning_split,
            "labels": self.labels,
            "num_labels": len(self.labels),
            "n_train": int(len(self.train_data)),
            "val_carved": bool(self.dataset.val_carved) and "val" in self.dataset.splits,
            "augmentation": self.augmentation,
            "normalization_source": self._normalization_source(),
            "normalization_mean": self.mean,
            "normalization_std": self.std,
            "precision": self.precision,
            "tf32": self.tf32,
            "world_size": self.dist.world_size,
            "batch_size_per_process": self.batch_per_process,
            # CPU numbers depend on it (float summation order); the workflow sets it (threads:)
            "cpu_threads": torch.get_num_threads(),
            "git_commit": git_commit(),
            "versions": library_versions(),
        }

    # ----------------------------------------------------------------- checkpoints
    def _eval_module(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.module

    def scorer(self, module: nn.Module | None = None) -> Scorer:
        return Scorer(module or self._eval_module(), self.device, amp=self.amp,
                      channels_last=self.config.channels_last,
                      batch_size=self.config.eval_batch_size)

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
            # the label vectors and the adjacency are buffers of the GCN heads, so the model's
            # state dict holds them already: stored once (a 10,000-label adjacency is 400 MB)
            "config": self.cfg,
        }

    def differences(self, saved: dict[str, Any]) -> list[str]:
        """Settings in which a saved configuration differs from this run's."""
        now = {k: v for k, v in self.cfg.items() if k not in RESUME_FREE}
        old = {k: v for k, v in saved.items() if k not in RESUME_FREE}
        return sorted(k for k in set(now) | set(old) if now.get(k) != old.get(k))

    def claim_folder(self) -> bool:
        """Make the run folder this run's; True when a checkpoint of the same configuration
        is there to continue. Refuses files the run did not write, and another
        configuration unless ``overwrite``."""
        folder = self.folder
        if folder.path.is_dir():
            clean_stale_temps(folder.path)
        foreign = folder.foreign_files()
        if foreign:
            shown = ", ".join(p.name for p in foreign[:5])
            raise RunError(f"{paths.portable(self.out)}: the folder holds files a training run "
                           f"does not write ({shown}); choose another --out or move them")
        if self.config.overwrite:
            folder.clear_results()
            return False
        saved = None
        if folder.checkpoint_path.exists():
            saved = load_checkpoint(folder.checkpoint_path)["config"]
        elif folder.config_path.exists():
            raw = folder.raw_config()  # compared, not trusted: another version may differ
            saved = {k: v for k, v in raw.items() if k in self.cfg} if isinstance(raw, dict) \
                else {}
        if saved is None:
            return False
        diff = self.differences(saved)
        if diff:
            raise RunError(f"{paths.portable(folder.config_path)}: the run folder holds another "
                           f"configuration (differs in {diff}); pass --overwrite (overwrite="
                           "True) to start over, or choose another --out")
        return folder.checkpoint_path.exists()

    def resume(self) -> None:
        state = load_checkpoint(self.folder.checkpoint_path)
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

    # ----------------------------------------------------------------- epochs
    def train_epoch(self) -> float:
        c = self.config
        self.model.train()
        self.sampler.set_epoch(self.epoch)
        flip_gen = torch.Generator().manual_seed(_seed_for(c.seed, self.epoch, self.dist.rank))
        total, count = torch.zeros((), dtype=torch.float64), 0
        bar = logs.progress(self.loader, desc=f"epoch {self.epoch + 1}/{c.epochs}", leave=False,
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
        with autocast(self.device, self.amp):
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

    def scores(self, split: str, module: nn.Module | None = None, *,
               flips: torch.Generator | None = None) -> tuple[np.ndarray, float]:
        """(sigmoid scores, mean loss) of a split (eval transforms unless ``flips``)."""
        targets = self._targets(split)
        logits = self.scorer(module).logits(self.eval_images[split], flips=flips,
                                            desc=f"eval {split}")
        loss = float(self.criterion(logits, torch.as_tensor(targets, dtype=torch.float32)))
        return torch.sigmoid(logits).numpy(), loss

    def _targets(self, split: str) -> np.ndarray:
        if split == "train":  # the images trained on, fakes included
            return self.train_targets
        return self.dataset.splits[split].targets

    def fit(self, max_epochs_this_call: int | None = None) -> bool:
        """Train until ``epochs`` (or early stop); returns True when training is complete.
        ``max_epochs_this_call`` stops earlier (an interruption, for tests and time limits)."""
        c = self.config
        done_here = 0
        epochs = logs.progress(total=c.epochs, initial=self.epoch, desc="training",
                               disable=not self.dist.main)
        while not self._complete():
            if max_epochs_this_call is not None and done_here >= max_epochs_this_call:
                epochs.close()
                return False
            t0 = time.perf_counter()
            lr = self.scheduler.get_last_lr()[0]
            train_loss = self.train_epoch()
            self.epoch += 1
            row: dict[str, Any] = {"epoch": self.epoch, "train_loss": train_loss}
            for split in self.eval_splits if c.protocol == "reference" else ["val"]:
                scores, loss = self.scores(split)
                row[f"{split}_loss"] = loss
                for k, v in epoch_metrics(self._targets(split), scores).items():
                    row[f"{split}_{k}"] = v
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
                if improved:
                    best = self._best()
                    atomic_save_torch(self.folder.best_path, best)
                ckpt = self._checkpoint()
                atomic_save_torch(self.folder.checkpoint_path, ckpt)
                self.folder.write_history(self.history)
            done_here += 1
            self.trained_now = done_here
            epochs.update(1)
            if self.dist.main:
                logs.line(self.epoch_line(row), log)
        epochs.close()
        return True

    #: short names of the selection metrics in the epoch lines
    SHORT = {"mean_average_precision": "mAP", "per_class_f1": "per-class F1",
             "per_image_f1": "per-image F1"}

    def epoch_line(self, row: dict[str, Any]) -> str:
        """One line a person reads per epoch: ``gcn-asl seed 0 · epoch 2/4 · train loss
        0.0712 · val loss 0.0654 · val mAP 0.6171 (best) · 5.1 s``."""
        c = self.config
        split = c.selection_split
        metric = self.SHORT.get(c.select_metric, c.select_metric)
        parts = [f"{c.resolved_run_name()} seed {c.seed}",
                 f"epoch {row['epoch']}/{c.epochs}",
                 f"train loss {row['train_loss']:.4f}"]
        if f"{split}_loss" in row:
            parts.append(f"{split} loss {row[f'{split}_loss']:.4f}")
        parts.append(f"{split} {metric} {row['select_score']:.4f}"
                     + (" (best)" if row["best"] else ""))
        parts.append(f"{row['seconds']:.1f} s")
        return " · ".join(parts)

    def _complete(self) -> bool:
        c = self.config
        if self.epoch >= c.epochs:
            return True
        return c.patience > 0 and self.stale >= c.patience

    # ----------------------------------------------------------------- final files
    def finish(self) -> None:
        """thresholds.json (tuning split), predictions.csv and metrics.json (test), from
        best.pt."""
        c = self.config
        best = load_checkpoint(self.folder.best_path)
        module = build_annotator(self.cfg, len(self.labels), self.label_vectors, self.adjacency,
                                 self.mean, self.std, for_loading=True)
        module.load_state_dict(best["model"])
        module.to(self.device)
        if c.protocol == "reference":  # the reference tunes on its train loader, flips on
            flips = torch.Generator().manual_seed(_seed_for(c.seed, -1))
            tune_scores, _ = self.scores("train", module, flips=flips if c.flips else None)
        else:
            tune_scores, _ = self.scores("val", module)
            self.folder.write_predictions(self.dataset.splits["val"].names, self.labels,
                                          tune_scores, split="val")
        cut, info = thresholds.tune(self._targets(c.tuning_split), tune_scores,
                                    min_positives=c.min_positives,
                                    fallback=c.threshold_fallback)
        info["fallback_labels"] = [self.labels[i] for i in info["fallback_labels"]]
        self.folder.write_thresholds(self.labels, cut, tuned_on=c.tuning_split,
                                     flips=c.protocol == "reference" and c.flips, **info)
        if info["n_fallback"]:
            log.info("%s: %d of %d labels have fewer than %d %s positives: threshold %s (%s)",
                     self.config.resolved_run_name(), info["n_fallback"], len(self.labels),
                     max(c.min_positives, 1), c.tuning_split, info["fallback_threshold"],
                     c.threshold_fallback)
        test_scores, _ = self.scores("test", module)
        self.folder.write_predictions(self.dataset.splits["test"].names, self.labels,
                                      test_scores)
        result = metrics.evaluate_scores(self._targets("test"), test_scores, thresholds=cut)
        self.folder.write_metrics({"split": "test", "leaky": c.leaky, **result})

    def run(self, max_epochs_this_call: int | None = None) -> RunFolder:
        try:
            if self.dist.main:
                with file_lock(self.folder.lock_path, "training run"):
                    self._run_main(max_epochs_this_call)
            else:
                self._run_other(max_epochs_this_call)
        finally:
            self.dist.close()
        return self.out

    def _run_main(self, max_epochs_this_call: int | None) -> None:
        resumed = self.claim_folder()
        if resumed:
            self.resume()
        elif self.folder.path.exists():
            self.folder.clear_results()
        if not (resumed and self._complete() and self.folder.finished):
            # a finished run that is kept keeps the record of the call that trained it
            self.folder.write_config(self.run_config())
        self.dist.barrier()
        complete = self.fit(max_epochs_this_call)
        if complete and (self.trained_now or not self.folder.finished):
            self.finish()
        self.dist.barrier()

    def _run_other(self, max_epochs_this_call: int | None) -> None:
        self.dist.barrier()
        if self.folder.checkpoint_path.exists():
            self.resume()
        self.fit(max_epochs_this_call)
        self.dist.barrier()


__all__ = ["Trainer", "epoch_metrics"]
