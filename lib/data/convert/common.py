"""What every converter shares: the error, the intermediate :class:`Conversion`, and
:func:`write_dataset`, which turns a conversion into a dataset folder (``train.json``,
``test.json``, ``vocabulary.txt``, ``conversion.json``, ``images/`` as relative symbolic
links or copies) and checks that it loads with :func:`lib.data.datasets.load_dataset`."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from lib.data.datasets import SPLIT_FILES, VOCABULARY_FILE, DatasetError, load_dataset
from lib.core.fileio import atomic_write_json, atomic_write_text

CONVERSION_FILE = "conversion.json"


class ConvertError(DatasetError):
    """A source release is malformed or incomplete; the message names the file."""


@dataclass
class Sample:
    """One image: its name in the output ``images/``, its labels, its source file."""

    name: str
    labels: list[str]
    source: Path | None = None


@dataclass
class Conversion:
    """What a format reader found: vocabulary, samples per split, and what it left out."""

    format: str
    labels: list[str]
    splits: dict[str, list[Sample]]
    left_out: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)


def read_lines(path: Path, what: str) -> list[str]:
    """Non-empty stripped lines of a text file; :class:`ConvertError` when unreadable."""
    if not path.is_file():
        raise ConvertError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvertError(f"{path}: cannot read the {what} ({exc})") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def check_labels(labels: list[str], where: Path) -> list[str]:
    """The labels unchanged, or :class:`ConvertError` for empty, multi-line or repeated ones."""
    bad = [x for x in labels if not x or x != x.strip() or "\n" in x]
    if bad:
        raise ConvertError(f"{where}: labels must be non-empty single lines without outer "
                           f"spaces, got {bad[:5]}")
    seen: set[str] = set()
    dupes = sorted({x for x in labels if x in seen or seen.add(x)})
    if dupes:
        raise ConvertError(f"{where}: the vocabulary repeats {dupes}")
    return labels


def _place_image(src: Path, dest: Path, copy: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        try:
            shutil.copy2(src, dest)
        except OSError as exc:
            raise ConvertError(f"{src}: cannot copy the image to {dest} ({exc})") from exc
        return
    target = os.path.relpath(os.path.abspath(src), os.path.abspath(dest.parent))
    try:
        os.symlink(target, dest)
    except OSError as exc:
        raise ConvertError(f"{dest}: cannot create a symbolic link to {src} ({exc}); "
                           "use --copy") from exc


def write_dataset(conv: Conversion, out_dir: str | os.PathLike, *, copy: bool = False,
                  options: dict | None = None) -> Path:
    """Write a :class:`Conversion` as a dataset folder (module docstring) and check that
    it loads. ``out_dir`` must not exist or be empty; returns it. The folder is built
    beside it under a temporary name and renamed at the end, so a failed conversion
    leaves nothing behind."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConvertError(f"{out}: output folder exists and is not empty (remove it or "
                           "pick another)")
    names: dict[str, str] = {}
    for split, samples in conv.splits.items():
        for s in samples:
            if s.name in names:
                raise ConvertError(f"{out}: image name {s.name!r} occurs in {names[s.name]} "
                                   f"and {split}")
            names[s.name] = split
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir()
    try:
        _write(conv, partial, copy, options)
        if out.exists():
            out.rmdir()  # empty, checked above
        partial.rename(out)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return out


def _write(conv: Conversion, out: Path, copy: bool, options: dict | None) -> None:
    with_images = any(s.source is not None for ss in conv.splits.values() for s in ss)
    if with_images:
        total = sum(len(ss) for ss in conv.splits.values())
        with tqdm(total=total, desc="copying images" if copy else "linking images",
                  leave=False) as bar:
            for samples in conv.splits.values():
                for s in samples:
                    _place_image(s.source, out / "images" / s.name, copy)
                    bar.update()
    for split, samples in conv.splits.items():
        atomic_write_json(out / SPLIT_FILES[split], {
            "labels": conv.labels,
            "samples": [{"image_name": s.name, "image_labels": s.labels} for s in samples],
        }, indent=None)
    atomic_write_text(out / VOCABULARY_FILE, "".join(f"{x}\n" for x in conv.labels))
    atomic_write_json(out / CONVERSION_FILE, {
        "format": conv.format,
        "options": options or {},
        "notes": conv.notes,
        "images": ("copies" if copy else "symbolic links") if with_images else "none",
        "n_labels": len(conv.labels),
        "n_images": {split: len(samples) for split, samples in conv.splits.items()},
        "n_left_out": {why: len(items) for why, items in conv.left_out.items()},
        "left_out": conv.left_out,
    })
    try:
        load_dataset(out, check_images=False, val_fraction=0.0)
    except DatasetError as exc:  # a converter bug, not a user error: say so
        raise ConvertError(f"{out}: the converted folder does not load ({exc})") from exc


