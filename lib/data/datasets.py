"""Datasets in the Corel-5k JSON format (docs/method.md, "Data"): loading, checking,
statistics.

A dataset is a folder with ``images/``, ``train.json`` and ``test.json`` (required),
``val.json``, ``train_aug.json`` and ``vocabulary.txt`` (optional). Each JSON file is
``{"labels": [...], "samples": [{"image_name": ..., "image_labels": [...]}, ...]}``.
:func:`load_dataset` turns it into the vocabulary, the image names per split and an
N x C uint8 multi-hot matrix per split; every bad input raises :class:`DatasetError`
naming the file and the problem. Image names are normalised (``./x.png`` is ``x.png``)
before the duplicate and overlap checks; the train and test splits (and a validation
split, given or carved) must not be empty. :func:`read_image` is the one image decoder
(every PIL mode, 16-bit included, to 8-bit RGB). ``python -m lib stats DATA_DIR`` checks
every image and prints the label statistics (:func:`stats_main`).
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.data.decoding import DECODE_ERRORS, open_image, read_image  # noqa: F401 - re-exported
from lib.core.errors import DatasetError  # noqa: F401 - re-exported: lib.data.datasets.DatasetError
from lib.core.logs import progress as tqdm
from lib.core.fileio import read_json, read_text
from lib.core import paths
from lib.core.fileio import atomic_save, clean_stale_temps
from lib.method import graph

#: split files in the order they are read; ``val`` and ``train_aug`` are optional
SPLIT_FILES = {"train": "train.json", "val": "val.json", "test": "test.json",
               "train_aug": "train_aug.json"}
#: the splits that are real (not generated) images
REAL_SPLITS = ("train", "val", "test")
VOCABULARY_FILE = "vocabulary.txt"
#: ``<stem>_aug.jpeg``, ``<stem>_aug_hor_flip.jpeg``, ``<stem>_aug_rot_90.jpeg``
#: (docs/method.md, "ML-WGAN augmentation")
_AUG_NAME = re.compile(r"^(?P<source>.+)_aug(?:_hor_flip|_rot_90)?$")


@dataclass
class Split:
    """Image names and their N x C uint8 multi-hot label matrix (vocabulary order)."""

    names: list[str]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class AnnotatedDataset:
    """A loaded dataset: vocabulary, splits and where the images are.

    ``val_carved`` is True when ``val.json`` was absent and the validation split was cut
    out of ``train.json``; ``aug_held_out`` lists the ``train_aug.json`` entries left out
    of ``splits["train_aug"]`` because their source image went to that carved
    validation split (training on them would leak validation images)."""

    root: Path
    labels: list[str]
    splits: dict[str, Split]
    val_carved: bool
    image_dir: Path
    aug_held_out: list[str] = field(default_factory=list)

    def image_path(self, name: str) -> Path:
        return self.image_dir / name

    @property
    def num_labels(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------- loading


def _read_json(path: Path) -> dict:
    obj = read_json(path, error=DatasetError)
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a JSON object with a 'samples' key, "
                           f"got {type(obj).__name__}")
    return obj


def _check_vocabulary(labels: Any, where: str) -> list[str]:
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise DatasetError(f"{where}: the vocabulary must be a list of strings")
    labels = [x.strip() for x in labels]
    if not labels:
        raise DatasetError(f"{where}: the vocabulary is empty")
    if any(not x for x in labels):
        raise DatasetError(f"{where}: the vocabulary contains an empty label")
    seen: set[str] = set()
    dupes = sorted({x for x in labels if x in seen or seen.add(x)})
    if dupes:
        raise DatasetError(f"{where}: the vocabulary repeats labels {dupes}")
    return labels


def _read_vocabulary_file(path: Path) -> list[str]:
    lines = read_text(path, error=DatasetError).splitlines()
    return _check_vocabulary([x for x in lines if x.strip()], str(path))


def _describe_difference(a: list[str], b: list[str]) -> str:
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if not only_a and not only_b:
        return "same labels in a different order (the order fixes the target columns)"
    parts = []
    if only_a:
        parts.append(f"missing {only_a[:10]}{' ...' if len(only_a) > 10 else ''}")
    if only_b:
        parts.append(f"extra {only_b[:10]}{' ...' if len(only_b) > 10 else ''}")
    return ", ".join(parts)


def normalise_image_name(name: str) -> str | None:
    """``name`` as a normalised POSIX path relative to ``images/`` (``./a//b.png`` ->
    ``a/b.png``), or None when it is absolute or leaves ``images/`` (``../x.png``)."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", name):
        return None
    norm = posixpath.normpath(name)
    if norm in (".", "..") or norm.startswith("../"):
        return None
    return norm


def _parse_samples(
    obj: dict, path: Path, vocab_index: dict[str, int]
) -> Split:
    samples = obj.get("samples")
    if samples is None:
        raise DatasetError(f"{path}: missing the 'samples' key")
    if not isinstance(samples, list):
        raise DatasetError(f"{path}: 'samples' must be a list")
    names: list[str] = []
    targets = np.zeros((len(samples), len(vocab_index)), dtype=np.uint8)
    first_seen: dict[str, tuple[int, str]] = {}
    for k, sample in enumerate(samples):
        if not isinstance(sample, dict):
            raise DatasetError(f"{path}: sample #{k} is not an object")
        for key in ("image_name", "image_labels"):
            if key not in sample:
                raise DatasetError(f"{path}: sample #{k} has no {key!r} key")
        raw_name, labels = sample["image_name"], sample["image_labels"]
        if not isinstance(raw_name, str) or not raw_name.strip():
            raise DatasetError(f"{path}: sample #{k} has an empty or non-string image_name")
        name = normalise_image_name(raw_name)
        if name is None:
            raise DatasetError(f"{path}: sample #{k}: image_name {raw_name!r} must be a file "
                               "inside images/ (a relative path without '..' leaving it)")
        if name in first_seen:
            first, first_raw = first_seen[name]
            spelled = (f", written {first_raw!r} and {raw_name!r}" if first_raw != raw_name
                       else "")
            raise DatasetError(f"{path}: duplicate image name {name!r} "
                               f"(samples #{first} and #{k}{spelled})")
        first_seen[name] = (k, raw_name)
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise DatasetError(f"{path}: image {name!r}: image_labels must be a list of strings")
        labels = [x.strip() for x in labels]  # as the vocabulary is
        if not all(labels):
            raise DatasetError(f"{path}: image {name!r} has an empty label")
        if len(set(labels)) != len(labels):
            raise DatasetError(f"{path}: image {name!r} lists a label twice: {labels}")
        for label in labels:
            j = vocab_index.get(label)
            if j is None:
                raise DatasetError(f"{path}: image {name!r} has label {label!r}, "
                                   "which is not in the vocabulary")
            targets[k, j] = 1
        names.append(name)
    return Split(names, targets)


def _check_images(image_dir: Path, splits: dict[str, Split], files: dict[str, Path]) -> None:
    if not image_dir.is_dir():
        raise DatasetError(f"{image_dir}: the images folder is missing "
                           "(use check_images=False for annotation-only work)")
    total = sum(len(s) for s in splits.values())
    with tqdm(total=total, desc="checking images", leave=False) as bar:
        for split, part in splits.items():
            for name in part.names:
                path = image_dir / name
                if not path.is_file():
                    raise DatasetError(f"{path}: image listed in {files[split]} is missing")
                try:
                    with open_image(path, listed_in=files[split]) as img:
                        img.verify()
                except DECODE_ERRORS as exc:
                    raise DatasetError(f"{path}: unreadable image listed in {files[split]} "
                                       f"({exc})") from exc
                bar.update()


def _carve(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Deterministic seeded carve of ``fraction`` of a split (both parts keep file order)."""
    n = len(split)
    n_val = int(round(fraction * n))
    if fraction > 0 and n > 1:
        n_val = min(max(n_val, 1), n - 1)
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    def take(mask: np.ndarray) -> Split:
        return Split([split.names[i] for i in np.flatnonzero(mask)], split.targets[mask])
    return take(~chosen), take(chosen)


def aug_source_stem(name: str) -> str | None:
    """The source image stem of a generated image name (``1000_aug_rot_90.jpeg`` -> ``1000``),
    or None when the name does not follow the ML-WGAN naming (docs/method.md,
    "ML-WGAN augmentation")."""
    match = _AUG_NAME.match(Path(name).stem)
    return match["source"] if match else None


def load_dataset(
    root: str | Path, *, check_images: bool = True, val_fraction: float = 0.1, seed: int = 0,
    aug_list: str = SPLIT_FILES["train_aug"],
) -> AnnotatedDataset:
    """Load and check a dataset folder in the Corel-5k JSON format.

    ``check_images=False`` reads the annotations only (statistics, the label graph);
    ``val_fraction`` of ``train.json`` becomes the validation split (seeded by ``seed``)
    when ``val.json`` is absent; ``aug_list`` is the file read as the ``train_aug`` split
    (``train_aug_<name>.json``: a named set of fakes, :mod:`lib.data.augmentation`). Raises
    :class:`DatasetError` on any bad input."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found (the embedded default is drawn "
                           "with `python -m lib synth data/scenes`)")
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"{root}: val_fraction must be in [0, 1), got {val_fraction}")
    files = {split: root / name for split, name in {**SPLIT_FILES, "train_aug": aug_list}.items()}
    for split in ("train", "test"):
        if not files[split].is_file():
            raise DatasetError(f"{files[split]}: required {split} file is missing")
    present = [s for s in SPLIT_FILES if files[s].is_file()]
    raw = {s: _read_json(files[s]) for s in present}

    # vocabulary: vocabulary.txt, else the first "labels" key; every file must agree
    vocab_path = root / VOCABULARY_FILE
    if vocab_path.is_file():
        labels, vocab_source = _read_vocabulary_file(vocab_path), str(vocab_path)
    else:
        labels, vocab_source = None, ""
    for split in present:
        if "labels" not in raw[split]:
            continue
        file_labels = _check_vocabulary(raw[split]["labels"], f"{files[split]} ('labels')")
        if labels is None:
            labels, vocab_source = file_labels, str(files[split])
        elif file_labels != labels:
            raise DatasetError(f"{files[split]}: its 'labels' disagree with the vocabulary "
                               f"of {vocab_source}: {_describe_difference(labels, file_labels)}")
    if labels is None:
        raise DatasetError(f"{root}: no vocabulary: neither {VOCABULARY_FILE} nor a 'labels' "
                           "key in train.json / test.json")
    index = {label: j for j, label in enumerate(labels)}
    splits = {s: _parse_samples(raw[s], files[s], index) for s in present}
    for split in ("train", "val", "test"):
        if split in splits and not len(splits[split]):
            hint = (" (delete it to carve the validation split out of train.json)"
                    if split == "val" else "")
            raise DatasetError(f"{files[split]}: no samples: the {split} split is empty{hint}")

    # no image may be in two split files
    for a_i, a in enumerate(present):
        for b in present[a_i + 1:]:
            common = sorted(set(splits[a].names) & set(splits[b].names))
            if common:
                raise DatasetError(f"{files[a]} and {files[b]} share {len(common)} image(s), "
                                   f"e.g. {common[:5]}")
    if check_images:
        _check_images(root / "images", splits, files)

    val_carved = "val" not in splits
    held_out: list[str] = []
    if val_carved:
        splits["train"], splits["val"] = _carve(splits["train"], val_fraction, seed)
        if val_fraction > 0 and not len(splits["val"]):
            raise DatasetError(f"{files['train']}: a validation split of {val_fraction:g} cannot "
                               f"be carved out of {len(splits['train'])} image(s); add a "
                               "val.json or more training images")
        if "train_aug" in splits and len(splits["val"]):
            val_stems = {Path(n).stem for n in splits["val"].names}
            aug = splits["train_aug"]
            leak = np.array([aug_source_stem(n) in val_stems for n in aug.names], dtype=bool)
            if leak.any():
                held_out = [n for n, bad in zip(aug.names, leak, strict=True) if bad]
                warnings.warn(f"{files['train_aug']}: {len(held_out)} generated image(s) come "
                              "from images carved into the validation split; they are left out "
                              "of train_aug (AnnotatedDataset.aug_held_out)", stacklevel=2)
                splits["train_aug"] = Split([n for n, bad in zip(aug.names, leak, strict=True)
                                             if not bad], aug.targets[~leak])
    order = [s for s in ("train", "val", "test", "train_aug") if s in splits]
    return AnnotatedDataset(root=root, labels=labels, splits={s: splits[s] for s in order},
                            val_carved=val_carved, image_dir=root / "images",
                            aug_held_out=held_out)


# --------------------------------------------------------------------------- images
# (decoding: lib.data.decoding.read_image)


class _ImageDatasetBody:
    """The methods of :class:`ImageDataset` (which adds torch's ``Dataset`` base)."""

    def __init__(self, image_dir: str | Path, names: list[str],
                 targets: np.ndarray | None = None, transform=None, num_labels: int = 0):
        self.image_dir = Path(image_dir)
        self.names = list(names)
        if targets is not None:
            targets = np.asarray(targets)
            if targets.ndim != 2 or targets.shape[0] != len(self.names):
                raise ValueError(f"targets must be ({len(self.names)}, C), got {targets.shape}")
            num_labels = targets.shape[1]
        self.targets = targets
        self.num_labels = num_labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int):
        import torch  # lazy import (torch)

        image = read_image(self.image_dir / self.names[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.targets is None:
            target = torch.zeros(self.num_labels, dtype=torch.float32)
        else:
            target = torch.from_numpy(self.targets[index].astype(np.float32))
        return image, target


def __getattr__(name: str):
    """``ImageDataset`` is built on first use, so that the annotation side (``stats``,
    ``score``, the label graph) does not pay torch's import time."""
    if name != "ImageDataset":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:  # torch is a dependency; keep the annotation side importable without it
        from torch.utils.data import Dataset as base  # lazy import (torch)
    except ImportError:  # pragma: no cover
        base = object
    cls = type("ImageDataset", (_ImageDatasetBody, base), {
        "__module__": __name__,
        "__doc__": "Torch dataset of ``(transform(image), target)``; target is float32 of "
                   "length C (zeros when ``targets`` is None). Without a transform the image "
                   "is the PIL image."})
    globals()["ImageDataset"] = cls
    return cls


def example_images(
    ds: AnnotatedDataset, n: int, seed: int = 0, split: str = "train"
) -> tuple[list[Path], list[str]]:
    """Up to ``n`` random images of a split that exist on disk (seeded), with their labels
    joined as captions; empty lists when the images are absent (annotation-only data)."""
    part = ds.splits[split]
    if not ds.image_dir.is_dir() or n <= 0:
        return [], []
    order = np.random.default_rng(seed).permutation(len(part))
    paths, captions = [], []
    for i in order:
        path = ds.image_path(part.names[i])
        if path.is_file():
            paths.append(path)
            labels = [ds.labels[j] for j in np.flatnonzero(part.targets[i])]
            captions.append(f"{part.names[i]}: " + (", ".join(labels) or "(no labels)"))
            if len(paths) == n:
                break
    return paths, captions


# --------------------------------------------------------------------------- statistics


def split_files(ds: AnnotatedDataset) -> dict[str, Split]:
    """The real-image splits as they are in their files: a carved validation split goes
    back into ``train`` (``train_aug`` is excluded)."""
    out = {}
    for split in REAL_SPLITS:
        if split not in ds.splits:
            continue
        if split == "val" and ds.val_carved:
            continue
        part = ds.splits[split]
        if split == "train" and ds.val_carved and len(ds.splits["val"]):
            val = ds.splits["val"]
            part = Split(part.names + val.names, np.concatenate([part.targets, val.targets]))
        out[split] = part
    return out


def dataset_statistics(ds: AnnotatedDataset) -> dict[str, Any]:
    """Label statistics over the real images of every split file (train_aug excluded).

    Keys: ``n_labels``, ``n_images`` (per split file), ``n_label_assignments``,
    ``mean_labels_per_image``, ``max_labels_per_image``, ``images_without_labels``
    (total) and ``images_without_labels_per_split``, ``label_counts`` (label -> images,
    vocabulary order), ``labels_absent`` (split -> labels with no image there),
    ``n_augmented`` (only when train_aug.json exists)."""
    parts = split_files(ds)
    all_targets = np.concatenate([p.targets for p in parts.values()]).astype(np.int64)
    per_image = all_targets.sum(axis=1)
    counts = all_targets.sum(axis=0)
    n = int(all_targets.shape[0])
    stats: dict[str, Any] = {
        "n_labels": len(ds.labels),
        "n_images": {s: len(p) for s, p in parts.items()},
        "n_label_assignments": int(per_image.sum()),
        "mean_labels_per_image": float(per_image.mean()) if n else 0.0,
        "max_labels_per_image": int(per_image.max()) if n else 0,
        "images_without_labels": int((per_image == 0).sum()),
        "images_without_labels_per_split": {
            s: int((p.targets.sum(axis=1) == 0).sum()) for s, p in parts.items()},
        "label_counts": {label: int(c) for label, c in zip(ds.labels, counts, strict=True)},
        "labels_absent": {
            s: [ds.labels[j] for j in np.flatnonzero(p.targets.sum(axis=0) == 0)]
            for s, p in parts.items()},
    }
    if "train_aug" in ds.splits:
        stats["n_augmented"] = len(ds.splits["train_aug"]) + len(ds.aug_held_out)
    return stats


def label_table(ds: AnnotatedDataset) -> pd.DataFrame:
    """Images per label and split file (columns ``train``, [``val``], ``test``, ``total``,
    ``fraction`` of all images), sorted by total descending then vocabulary order."""
    parts = split_files(ds)
    table = pd.DataFrame({"label": ds.labels})
    for split, part in parts.items():
        table[split] = part.targets.sum(axis=0).astype(np.int64)
    table["total"] = table[list(parts)].sum(axis=1)
    n = sum(len(p) for p in parts.values())
    table["fraction"] = table["total"] / max(n, 1)
    table["vocab_index"] = np.arange(len(ds.labels))
    table = table.sort_values(["total", "vocab_index"], ascending=[False, True], kind="stable")
    return table.drop(columns="vocab_index").reset_index(drop=True)


def summary_table(stats: dict[str, Any]) -> pd.DataFrame:
    """The scalar statistics as a two-column table (quantity, value) for display."""
    rows = [("labels", stats["n_labels"])]
    rows += [(f"images ({s})", n) for s, n in stats["n_images"].items()]
    rows += [
        ("images (all split files)", sum(stats["n_images"].values())),
        ("label assignments", stats["n_label_assignments"]),
        ("mean labels per image", round(stats["mean_labels_per_image"], 4)),
        ("max labels per image", stats["max_labels_per_image"]),
        ("images without labels", stats["images_without_labels"]),
    ]
    if "n_augmented" in stats:
        rows.append(("generated images (train_aug)", stats["n_augmented"]))
    return pd.DataFrame({"quantity": [r[0] for r in rows],
                         "value": pd.Series([r[1] for r in rows], dtype=object)})


def write_tables(ds: AnnotatedDataset, out_dir: str | Path) -> list[Path]:
    """Write ``label_counts.csv`` and ``cooccurrence_train.csv`` (images with both labels,
    over train.json) atomically into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    clean_stale_temps(out_dir, "*.csv")
    counts = label_table(ds)
    train = split_files(ds)["train"]
    cooc = pd.DataFrame(graph.cooccurrence(train.targets), index=ds.labels, columns=ds.labels)
    cooc.index.name = "label"
    return [
        atomic_save(out_dir / "label_counts.csv", lambda p: counts.to_csv(p, index=False)),
        atomic_save(out_dir / "cooccurrence_train.csv", lambda p: cooc.to_csv(p)),
    ]


def check_image_files(ds: AnnotatedDataset, *, progress: bool = True) -> int:
    """Decode every image of every split with :func:`read_image` (what training and
    evaluation do); returns how many. All problems are collected first, then one
    :class:`DatasetError` names how many images fail and the first few."""
    split_of = {name: split for split, part in ds.splits.items() for name in part.names}
    names = list(split_of)
    problems: list[str] = []
    for name in tqdm(names, desc="opening images", disable=not progress, file=sys.stderr):
        try:
            read_image(ds.image_path(name))
        except DatasetError as exc:
            problems.append(f"{exc} [{SPLIT_FILES[split_of[name]]}]")
    if problems:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        raise DatasetError(f"{ds.image_dir}: {len(problems)} of {len(names)} image(s) cannot be "
                           f"used: {shown}")
    return len(names)


def stats_main(argv: list[str]) -> int:
    """``python -m lib stats DATA_DIR [--json] [--fast] [--out DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m lib stats",
        description="Check a dataset folder in the Corel-5k JSON format (the annotation "
                    "files, and that every image opens) and print its label statistics. "
                    "Writes nothing unless --out is given.")
    parser.add_argument("data_dir", help="dataset folder or name (e.g. scenes, "
                                         "corel5k-annotations)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of the summary")
    parser.add_argument("--fast", action="store_true",
                        help="check the annotation files only; do not open the images")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="also write label_counts.csv and cooccurrence_train.csv here")
    args = parser.parse_args(argv)
    root = paths.dataset_dir(args.data_dir)
    ds = load_dataset(root, check_images=False, val_fraction=0.0)
    if args.fast:
        checked, note = None, "not opened (--fast)"
    elif not ds.image_dir.is_dir():
        checked, note = None, f"not opened: no images folder {ds.image_dir} (annotations only)"
    else:
        checked = check_image_files(ds)
        note = f"all {checked} open"
    stats = dataset_statistics(ds)
    written = write_tables(ds, args.out) if args.out else []
    if args.json:
        print(json.dumps({**stats, "images_checked": checked}))
        return 0
    print(f"dataset {root}")
    print(f"images: {note}")
    print(summary_table(stats).to_string(index=False))
    table = label_table(ds)
    print("\nmost frequent labels:")
    print(table.head(10).to_string(index=False))
    print("\nrarest labels:")
    print(table.tail(5).to_string(index=False))
    for split, absent in stats["labels_absent"].items():
        if absent:
            print(f"labels with no image in {split}: {absent}")
    if written:
        print("\ntables written:", *map(str, written), sep="\n  ")
    return 0
