"""The ML-WGAN augmentation job over a dataset: which training images, their fakes,
resuming, shards and ``train_aug.json`` (the records that never mix settings, and which
fakes are ours: :mod:`lib.data.augment_records`).

The method (settings, networks, preprocessing, one grouped WGAN-GP per K images) is
:mod:`lib.method.wgan`; docs/method.md, "ML-WGAN augmentation", describes both. :func:`augment`
trains the pending selected images K at a time with :func:`lib.method.wgan.train_group` and saves the
three fakes of each as ``<stem>_aug.jpeg``, ``<stem>_aug_hor_flip.jpeg`` and
``<stem>_aug_rot_90.jpeg`` under ``images/``; :func:`write_train_aug` lists them.

Which images (``select``, ``limit``): ``first`` takes training images in ``train.json`` order,
``random`` a seeded permutation, ``rare`` the images carrying the rarest labels first (by the
smallest training frequency of an image's labels, ties in training order, images without
labels last); ``limit`` keeps the first ``limit`` of that order. :func:`augmentation_coverage`
gives, per label, the share of its training images that have fakes.

Records and sets (:mod:`lib.data.augment_records`, which says which fakes are ours): settings
never mix silently. An image is done when its three fakes exist and its settings record
matches the current settings; a job whose settings differ from those recorded in
``augment_logs/config.json`` is refused (:class:`~lib.data.augment_records.SettingsMismatch`)
unless ``overwrite``, which records the new settings first; a later plain run then redoes
every image whose record differs. The check and the record happen under
``augment_logs/.lock``, shared by all shards; stale temporary files of an interrupted save are
removed at the start. Fakes or a ``train_aug.json`` without our record (e.g. the Kaggle
release's shipped fakes) are never written; an augmented run trains on them as they are
(``TrainConfig.aug_list``, default ``train_aug.json``). This project's fakes go beside them in
a named set, ``fakes=NAME`` (``--fakes NAME``: ``images/NAME/``, ``augment_logs/NAME/``,
``train_aug_NAME.json``; training: ``aug_list: train_aug_NAME.json``). A name whose folder
holds training images is refused.

CPU threads: ``augment`` trains with one torch thread by default (``threads``): these small
grouped convolutions gain little from a second intra-op thread and slow down badly when the
cores are shared; use more cores with shards (one process each). On a GPU, K = 32 or more.

CLI: ``python -m lib augment DATA_DIR [--preset default|corel5k] [--<setting> VALUE ...]
[--shard I/N] [--overwrite] [--no-progress]`` (:func:`augment_main`; one option per
:class:`WGANConfig` field, and only the options given override the preset), e.g. two CPU
processes: ``python -m lib augment data/scenes --shard 0/2 & python -m lib augment data/scenes
--shard 1/2``; beside the Kaggle release's fakes: ``python -m lib augment data/corel5k
--preset corel5k --fakes ours``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import torch

from lib.core import paths
from lib.data.augment_records import (
    CONFIG_FILE,
    Presence,
    SettingsMismatch,
    aug_names,
    check_and_record,
    is_done,
    list_file,
    lock,
    log_path,
    read_config,
    record_path,
    recorded_config,
    records_dir,
    remove_stale_temps,
    write_config,
)
from lib.core.config import ConfigError, add_arguments, build, given
from lib.core.logs import progress as tqdm
from lib.core.fileio import atomic_save, atomic_write_bytes, atomic_write_json
from lib.method.wgan import (
    AUG_SUFFIXES,
    PRESETS,
    SELECTIONS,
    GroupResult,
    WGANConfig,
    fake_settings,
    fake_variants,
    image_seed,
    jpeg_bytes,
    preprocess,
    settings_hash,
    train_group,
)
from lib.data.datasets import DatasetError
from lib.data.datasets import DatasetError, load_dataset
from lib.data.datasets import read_image

# --------------------------------------------------------------------------- which images


def training_order(root: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """``(labels, names, targets)`` of every image of ``train.json`` in file order (a carved
    validation split is not carved: the reference augments all training images; ``lib.data.datasets``
    holds the fakes of carved validation images out of training). Annotations only: the
    images are checked by :func:`augment` before training."""
    ds = load_dataset(root, check_images=False, val_fraction=0.0)
    train = ds.splits["train"]
    stems: dict[str, str] = {}
    for name in train.names:
        stem = str(PurePosixPath(name).with_suffix(""))
        if stem in stems:
            raise DatasetError(f"{Path(root) / 'train.json'}: images {stems[stem]!r} and "
                               f"{name!r} would give the same generated names ({stem}_aug...)")
        stems[stem] = name
    return ds.labels, list(train.names), train.targets


def selection_order(names: Sequence[str], targets: np.ndarray, select: str,
                    seed: int) -> list[str]:
    """Every training image in the order ``select`` takes them (``limit`` keeps a prefix).

    ``first``: training order; ``random``: a permutation seeded from ``seed``; ``rare``: by
    the smallest training frequency of the image's labels, ties in training order, images
    without labels last."""
    n = len(names)
    if select == "first":
        order = np.arange(n)
    elif select == "random":
        stream = int.from_bytes(b"select", "little")  # apart from the per-image WGAN streams
        order = np.random.default_rng(np.random.SeedSequence([int(seed), stream])).permutation(n)
    elif select == "rare":
        carries = np.asarray(targets, dtype=bool).reshape(n, -1)
        never = np.iinfo(np.int64).max  # images without labels: last
        frequency = carries.sum(axis=0).astype(np.int64)
        rarest = np.where(carries, frequency[None, :], never).min(axis=1, initial=never)
        order = np.argsort(rarest, kind="stable")
    else:
        raise ConfigError(f"select={select!r}; expected one of {', '.join(SELECTIONS)}")
    return [names[i] for i in order]


def select_images(dataset_root: str | Path, config: WGANConfig) -> list[str]:
    """The training images ``config`` augments (``select``, then ``limit``), in that order."""
    _, names, targets = training_order(dataset_root)
    return selection_order(names, targets, config.select, config.seed)[: config.limit]


# --------------------------------------------------------------------------- dataset run


def write_train_aug(dataset_root: str | Path, fakes: str = "") -> Path:
    """(Re)build the set's list (``train_aug.json``, or ``train_aug_<fakes>.json``) from the
    selected training images whose fakes were made with the recorded settings, in training
    order (deterministic whatever the shards did), and update the counts of the set's
    ``config.json``; under the lock. A set without a record is never written."""
    root = Path(dataset_root)
    labels, names, targets = training_order(root)
    # scan and write under one lock: a shard finishing later never loses to a stale scan
    with lock(root):
        config = recorded_config(root, fakes)
        if config is None:
            raise FileNotFoundError(f"{records_dir(root, fakes) / CONFIG_FILE}: no recorded "
                                    "settings (run `python -m lib augment` first)")
        selected = selection_order(names, targets, config.select, config.seed)[: config.limit]
        done = write_config(root, config, names, selected)
        done_set = set(done)
        samples = []
        for name, row in zip(names, targets, strict=True):
            if name in done_set:
                image_labels = [labels[j] for j in np.flatnonzero(row)]
                samples += [{"image_name": aug, "image_labels": image_labels}
                            for aug in aug_names(name, fakes)]
        return atomic_write_json(root / list_file(fakes),
                                 {"labels": labels, "samples": samples})


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


def augment(dataset_root: str | Path, config: WGANConfig | None = None, *,
            shard: str | Sequence[int] = (0, 1), overwrite: bool = False, progress: bool = True,
            preset: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Write the three fakes of every pending selected training image and ``train_aug.json``.

    ``config`` holds every setting; without it, ``lib.core.config.build(WGANConfig, PRESETS,
    preset, overrides)`` makes one (``preset`` None: the reference defaults). The images are
    ``select``-ed, the first ``limit`` kept, and shard ``I/N`` takes ``I::N`` of them; an image
    whose fakes were made with these settings is skipped (resume) unless ``overwrite``; K =
    ``batch_images`` are trained at once. Settings other than those recorded in
    ``augment_logs/config.json`` are refused (:class:`SettingsMismatch`) unless ``overwrite``.
    Per image, the loss curves go to ``augment_logs/<stem>.csv`` (``iteration``,
    ``critic_loss``, ``generator_loss``). Returns a summary (``images`` augmented ``of`` the
    training images: all shards so far, with these settings).

    ``threads``: torch intra-op threads while training on the CPU (restored afterwards;
    None leaves torch's setting). The reference's 1 is deliberate: these small grouped
    convolutions gain little from a second thread and lose a lot when the cores are
    shared, so use more cores by running shards as separate processes."""
    if config is None:
        config = build(WGANConfig, PRESETS, preset, overrides, where="lib.data.augmentation.augment")
    elif overrides or preset is not None:
        raise ConfigError("lib.data.augmentation.augment: pass either a WGANConfig or preset/overrides, "
                          f"not both (got config and {sorted(overrides) or ['preset']})")
    root = Path(dataset_root)
    index, count = parse_shard(shard)
    labels, names, targets = training_order(root)
    inside = [n for n in names if n.startswith(f"{config.fakes}/")] if config.fakes else []
    if inside:  # their fakes or records could be those of the named set
        raise ConfigError(f"{root / 'train.json'}: training image {inside[0]!r} is in "
                          f"images/{config.fakes}/; choose another fakes name")
    config_hash = settings_hash(config)
    with contextlib.ExitStack() as stack:
        presence = Presence(root)
        stack.callback(presence.close)
        with lock(root):
            alone = presence.alone()
            removed = remove_stale_temps(root, alone)
            selected = selection_order(names, targets, config.select, config.seed)
            selected = selected[: config.limit]
            check_and_record(root, config, names, selected, overwrite, alone)
            presence.share()
            mine = selected[index::count]
            pending = [n for n in mine
                       if overwrite or not is_done(root, n, config_hash, config.fakes)]
        trained, seconds = _train_pending(root, pending, config, f"{index}/{count}", progress)
    out = write_train_aug(root, config.fakes)
    info = read_config(root, config.fakes) or {}
    return {
        "dataset": paths.portable(root), "fakes": config.fakes, "shard": f"{index}/{count}",
        "select": config.select,
        "images": info.get("images"), "of": len(names), "selected": len(selected),
        "images_in_shard": len(mine), "skipped_done": len(mine) - len(pending),
        "trained": trained, "seconds": round(seconds, 2),
        "images_per_hour": round(3600 * trained / seconds, 1) if trained else None,
        "train_aug_entries": 3 * (info.get("images") or 0), "train_aug": paths.portable(out),
        "settings_hash": config_hash, "stale_temps_removed": removed,
        "image_size": f"{config.image_size[0]}x{config.image_size[1]}", "width": config.width,
        "iterations": config.iterations, "batch_images": config.batch_images,
        "device": config.device, "labels": len(labels),
    }


def _train_pending(root: Path, pending: list[str], config: WGANConfig, shard: str,
                   progress: bool) -> tuple[int, float]:
    """Train and save the fakes of ``pending``, K at a time; ``(trained, seconds)``."""
    for name in tqdm(pending, desc="checking images", leave=False, disable=not progress):
        read_image(root / "images" / name)  # DatasetError naming a missing/unreadable image
    record = {"settings_hash": settings_hash(config), "settings": fake_settings(config)}
    start = time.perf_counter()
    trained = 0
    cpu_threads = config.threads if torch.device(config.device).type == "cpu" else None
    k_max = config.batch_images
    with _threads(cpu_threads), tqdm(total=len(pending), desc=f"ML-WGAN shard {shard}",
                                     unit="img", disable=not progress) as bar:
        for b in range(0, len(pending), k_max):
            batch = pending[b: b + k_max]
            images = torch.stack([_load(root, n, config) for n in batch])
            done_before = bar.n

            def tick(it: int, batch=batch, done_before=done_before) -> None:
                if (it + 1) % 10 == 0 or it + 1 == config.iterations:
                    bar.n = done_before + len(batch) * (it + 1) / config.iterations
                    elapsed = time.perf_counter() - start
                    bar.set_postfix(img_per_h=f"{3600 * bar.n / max(elapsed, 1e-9):.0f}",
                                    refresh=False)
                    bar.refresh()

            result = train_group(images, [image_seed(config.seed, n) for n in batch], config,
                                 on_iteration=tick)
            for j, name in enumerate(batch):
                _save_image_outputs(root, name, result, j, {"image": name, **record},
                                    config.fakes)
            trained += len(batch)
            bar.n = done_before + len(batch)
            bar.refresh()
    return trained, time.perf_counter() - start


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
    return preprocess(read_image(root / "images" / name), config.image_size, config.crop_border)


def _save_image_outputs(root: Path, name: str, result: GroupResult, j: int,
                        record: dict[str, Any], fakes: str = "") -> None:
    """The last fake of a redone image goes first; then the loss log, the settings record
    and the three fakes: the last file written marks the image done, with these settings.
    Only files of the set ``fakes`` are written (its settings record guards them)."""
    files = aug_names(name, fakes)
    (root / "images" / files[-1]).unlink(missing_ok=True)
    log = pd.DataFrame({"iteration": np.arange(len(result.critic_loss)),
                        "critic_loss": result.critic_loss[:, j],
                        "generator_loss": result.generator_loss[:, j]})
    atomic_save(log_path(root, name, fakes), lambda p: log.to_csv(p, index=False))
    atomic_write_json(record_path(root, name, fakes), record)
    variants = fake_variants([result.fakes[i, j] for i in range(3)])
    for aug, array in zip(files, variants, strict=True):
        atomic_write_bytes(root / "images" / aug, jpeg_bytes(array))


# --------------------------------------------------------------------------- reading results


def done_images(dataset_root: str | Path, fakes: str = "") -> list[str]:
    """The selected training images (training order) whose fakes were made with the recorded
    settings: those of the set's list once it is rebuilt; [] when nothing is recorded."""
    root = Path(dataset_root)
    config = recorded_config(root, fakes)
    if config is None:
        return []
    _, names, targets = training_order(root)
    chosen = set(selection_order(names, targets, config.select, config.seed)[: config.limit])
    config_hash = settings_hash(config)
    return [n for n in names if n in chosen and is_done(root, n, config_hash, fakes)]


def load_logs(dataset_root: str | Path, names: Sequence[str] | None = None,
              fakes: str = "") -> pd.DataFrame:
    """Loss curves of augmented images (all, or ``names``) of the set ``fakes``, long format
    with an ``image`` column, in training order."""
    root = Path(dataset_root)
    if names is None:
        _, names, _ = training_order(root)
    frames = []
    for name in names:
        path = log_path(root, name, fakes)
        if path.is_file():
            frames.append(pd.read_csv(path).assign(image=name))
    if not frames:
        return pd.DataFrame(columns=["image", "iteration", "critic_loss", "generator_loss"])
    return pd.concat(frames, ignore_index=True)[
        ["image", "iteration", "critic_loss", "generator_loss"]]


def augmentation_coverage(dataset_root: str | Path, fakes: str = "") -> pd.DataFrame:
    """Per label: ``train_images`` (training images carrying it), ``augmented_images`` (those
    of them whose fakes the set's list file lists) and their ``share`` (NaN for a label
    without training images); rarest labels first, ties by name."""
    root = Path(dataset_root)
    labels, names, targets = training_order(root)
    sources: set[str] = set()
    path = root / list_file(fakes)
    if path.is_file():
        prefix, suffix = f"{fakes}/" if fakes else "", f"{AUG_SUFFIXES[0]}.jpeg"
        listed = json.loads(path.read_text(encoding="utf-8")).get("samples", [])
        sources = {s["image_name"][len(prefix): -len(suffix)] for s in listed
                   if str(s.get("image_name", "")).startswith(prefix)
                   and str(s.get("image_name", "")).endswith(suffix)}
    has = np.array([str(PurePosixPath(n).with_suffix("")) in sources for n in names], dtype=bool)
    carries = np.asarray(targets, dtype=bool)
    n_train = carries.sum(axis=0)
    n_aug = carries[has].sum(axis=0) if len(names) else np.zeros(len(labels), dtype=int)
    share = np.divide(n_aug, n_train, out=np.full(len(labels), np.nan), where=n_train > 0)
    table = pd.DataFrame({"label": labels, "train_images": n_train.astype(int),
                          "augmented_images": n_aug.astype(int), "share": share})
    return table.sort_values(["train_images", "label"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m lib augment`` parser: one option per :class:`WGANConfig` field."""
    parser = argparse.ArgumentParser(
        prog="python -m lib augment",
        description="ML-WGAN augmentation: three fakes per selected training image and "
                    "train_aug.json (resumable: images done with the same settings are skipped; "
                    "shard with --shard I/N).")
    parser.add_argument("data", help="dataset folder or name (Corel-5k JSON format)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default",
                        help="settings to start from (default: default, the embedded "
                             "configuration; corel5k: the reference recipe); the options "
                             "given below override it")
    add_arguments(parser, WGANConfig)
    parser.add_argument("--shard", default="0/1", help="I/N: this process takes images I::N")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo the selected images, recording these settings even when "
                             "they differ from the recorded ones")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def config_from_args(args: argparse.Namespace) -> WGANConfig:
    """The preset of ``args`` overridden by the options the user typed."""
    return build(WGANConfig, PRESETS, args.preset, given(args, WGANConfig),
                 where="python -m lib augment")


def augment_main(argv: list[str]) -> int:
    """``python -m lib augment DATA_DIR ...``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        shard = parse_shard(args.shard)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        summary = augment(paths.dataset_dir(args.data), config, shard=shard,
                          overwrite=args.overwrite, progress=not args.no_progress)
    except (SettingsMismatch, DatasetError, ConfigError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


__all__ = [
    "augment", "augment_main", "augmentation_coverage", "build_parser", "config_from_args",
    "done_images", "load_logs", "parse_shard", "select_images", "selection_order",
    "training_order", "write_train_aug",
]
