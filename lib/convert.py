"""Converters from the field's benchmark releases to the dataset format of ``lib.data``.

``python -m lib convert FORMAT SOURCE OUT_DIR`` writes ``train.json``, ``test.json``,
``vocabulary.txt`` (one label per line, multi-word labels included), ``conversion.json``
(what was converted, with which options, and everything left out) and ``images/`` holding
relative symbolic links to the source images (``--copy`` copies them instead;
``--no-images`` writes the annotations only). The result loads with
:func:`lib.data.load_dataset` and passes ``python -m lib stats``.

Formats
-------
``tagprop``
    The release of Corel-5k, IAPR TC-12 and ESP-Game that comes with TagProp (Guillaumin,
    Mensink, Verbeek and Schmid, "TagProp: Discriminative metric learning in nearest
    neighbor models for image auto-annotation", ICCV 2009), the ``<name>.20091111.tar.bz2``
    archives of the LEAR data page (``corel5k``, ``iaprtc12``, ``espgame``). Per set
    ``<name>``:

    - ``<name>_dictionary.txt``: the vocabulary, one word per line; column j of the vectors
      is line j;
    - ``<name>_train_list.txt`` / ``<name>_test_list.txt``: one image per line, a path
      relative to the image folder without extension (IAPR TC-12: ``00/25`` for
      ``images/00/25.jpg``);
    - ``<name>_train_annot.hvecs`` / ``<name>_test_annot.hvecs``: one binary vector per
      image, in list order. Layout: for every vector a header (the dimension d) followed
      by d values. The extension gives the types: ``.hvecs`` uint16 header and uint16
      values, ``.hvecs32`` uint32 and uint32, ``.fvecs`` uint32 and float32, ``.dvecs``
      uint32 and float64; the files were written on x86 machines, so little-endian.
      Sources for these facts: LEAR's MATLAB reader ``vec_read.m`` shipped with the data
      (the ``class_head`` / ``class_data`` table per extension, native byte order), and the
      Python reader ``parse_LEAR_annotation_file`` of the attalos project (``iaprtc12_prep.py``:
      2-byte dimension, then d 2-byte values, the dimension repeated before every row).
      Image lists resolve against ``--images`` (default ``SOURCE/images`` if it exists,
      else ``SOURCE``): the entry as written, then with ``.jpg``/``.jpeg``/``.png``, then
      its last component alone (flat image folders such as Kaggle's Corel-5k
      ``1000.jpeg``). The dictionary words are kept as written.
``voc``
    PASCAL VOC 2007 (``SOURCE`` is ``VOC2007/`` or a ``VOCdevkit/`` holding it):
    ``ImageSets/Main/trainval.txt`` becomes train.json and ``ImageSets/Main/test.txt``
    test.json (``--train-set`` / ``--test-set`` pick other lists); the labels of an image
    are the classes of the ``<object>`` elements of ``Annotations/<id>.xml``, "difficult"
    objects included (the multi-label literature's convention: ML-GCN turns the
    difficult-only label 0 into a positive for training); ``--drop-difficult`` leaves them
    out. Class names become words GloVe covers (``pottedplant`` -> ``potted plant``,
    ``tvmonitor`` -> ``tv monitor``, ``diningtable`` -> ``dining table``).
``coco``
    MS-COCO 2014 instances files (``SOURCE/annotations/instances_{train,val}2014.json``,
    or in ``SOURCE`` itself; images under ``train2014/`` and ``val2014/``): train2014 is
    train.json and val2014 test.json, as ML-GCN does. An image's labels are the
    categories of its annotations (crowd annotations included); images without any
    annotation are left out as ML-GCN does (82,081 train / 40,137 val images remain),
    listed in conversion.json; ``--keep-unlabeled`` keeps them. Category names are kept
    as they are ("traffic light", "hair drier"), in category-id order.

Every malformed source raises :class:`ConvertError` naming the file and the problem.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lib.data import SPLIT_FILES, VOCABULARY_FILE, DatasetError, load_dataset
from lib.utils import atomic_write_json, atomic_write_text

FORMATS = ("tagprop", "voc", "coco")
CONVERSION_FILE = "conversion.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")

#: the 20 VOC classes in the devkit's order, with the label each becomes
VOC_LABELS = {
    "aeroplane": "aeroplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat",
    "bottle": "bottle", "bus": "bus", "car": "car", "cat": "cat", "chair": "chair",
    "cow": "cow", "diningtable": "dining table", "dog": "dog", "horse": "horse",
    "motorbike": "motorbike", "person": "person", "pottedplant": "potted plant",
    "sheep": "sheep", "sofa": "sofa", "train": "train", "tvmonitor": "tv monitor",
}

#: vector files by extension: (header dtype, value dtype), little-endian (see the docstring)
VEC_TYPES = {
    "hvec": ("<u2", "<u2"), "hvec32": ("<u4", "<u4"),
    "fvec": ("<u4", "<f4"), "dvec": ("<u4", "<f8"),
}


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


# --------------------------------------------------------------------------- helpers


def _read_lines(path: Path, what: str) -> list[str]:
    """Non-empty stripped lines of a text file; :class:`ConvertError` when unreadable."""
    if not path.is_file():
        raise ConvertError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvertError(f"{path}: cannot read the {what} ({exc})") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _find_image(root: Path, entry: str) -> Path | None:
    """``root/entry`` as written, with an image suffix, or its last component alone."""
    rel = Path(entry)
    for base in dict.fromkeys((rel, Path(rel.name))):
        candidates = [root / base] if base.suffix else []
        candidates += [root / f"{base}{suffix}" for suffix in IMAGE_SUFFIXES]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    return None


def _check_labels(labels: list[str], where: Path) -> list[str]:
    bad = [x for x in labels if not x or x != x.strip() or "\n" in x]
    if bad:
        raise ConvertError(f"{where}: labels must be non-empty single lines without outer "
                           f"spaces, got {bad[:5]}")
    seen: set[str] = set()
    dupes = sorted({x for x in labels if x in seen or seen.add(x)})
    if dupes:
        raise ConvertError(f"{where}: the vocabulary repeats {dupes}")
    return labels


# --------------------------------------------------------------------------- tagprop


def read_vecs(path: str | os.PathLike) -> np.ndarray:
    """An N x d array from a LEAR vector file (``.hvecs``, ``.hvecs32``, ``.fvecs``,
    ``.dvecs``; layout in the module docstring). :class:`ConvertError` when the file is
    empty, its size is not a whole number of vectors or a vector has another dimension."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".").replace("vecs", "vec")
    if kind not in VEC_TYPES:
        raise ConvertError(f"{path}: unknown vector file type {path.suffix!r} "
                           f"(expected .hvecs, .hvecs32, .fvecs or .dvecs)")
    head, value = (np.dtype(t) for t in VEC_TYPES[kind])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConvertError(f"{path}: cannot read the vector file ({exc})") from exc
    if len(raw) < head.itemsize:
        raise ConvertError(f"{path}: empty vector file")
    dim = int(np.frombuffer(raw, dtype=head, count=1)[0])
    if dim == 0:
        raise ConvertError(f"{path}: the first vector has dimension 0")
    record = np.dtype([("d", head), ("v", value, (dim,))])
    if len(raw) % record.itemsize:
        raise ConvertError(
            f"{path}: {len(raw)} bytes is not a whole number of {dim}-dimensional vectors "
            f"({record.itemsize} bytes each: a {head.itemsize}-byte dimension then {dim} "
            f"{value.itemsize}-byte values)")
    rows = np.frombuffer(raw, dtype=record)
    wrong = np.flatnonzero(rows["d"] != dim)
    if len(wrong):
        raise ConvertError(f"{path}: vector #{wrong[0]} has dimension {rows['d'][wrong[0]]}, "
                           f"the first has {dim}")
    return np.array(rows["v"])


def _tagprop_prefix(source: Path, name: str | None) -> str:
    if name:
        return name
    found = sorted(p.name[: -len("_dictionary.txt")] for p in source.glob("*_dictionary.txt"))
    if not found:
        raise ConvertError(f"{source}: no <name>_dictionary.txt here (expected the TagProp "
                           "files, e.g. iaprtc12_dictionary.txt, iaprtc12_train_list.txt, "
                           "iaprtc12_train_annot.hvecs)")
    if len(found) > 1:
        raise ConvertError(f"{source}: several dictionaries {found}; pick one with --name")
    return found[0]


def read_tagprop(source: str | os.PathLike, *, name: str | None = None,
                 images: str | os.PathLike | None = None, with_images: bool = True,
                 skip_missing: bool = False, ext: str = ".jpg") -> Conversion:
    """Read a TagProp-style release (module docstring). ``name`` is the file prefix
    (found from ``<name>_dictionary.txt`` when None); ``ext`` names the images when
    ``with_images`` is False (list entry + ``ext``)."""
    source = Path(source)
    if not source.is_dir():
        raise ConvertError(f"{source}: TagProp source folder not found")
    prefix = _tagprop_prefix(source, name)
    dict_path = source / f"{prefix}_dictionary.txt"
    labels = _check_labels(_read_lines(dict_path, "dictionary"), dict_path)
    image_root = Path(images) if images else (
        source / "images" if (source / "images").is_dir() else source)
    if with_images and not image_root.is_dir():
        raise ConvertError(f"{image_root}: image folder not found (use --images DIR or "
                           "--no-images)")
    splits: dict[str, list[Sample]] = {}
    left_out: dict[str, list[str]] = {}
    for split in ("train", "test"):
        list_path = source / f"{prefix}_{split}_list.txt"
        annot_path = source / f"{prefix}_{split}_annot.hvecs"
        entries = _read_lines(list_path, "image list")
        if not annot_path.is_file():
            raise ConvertError(f"{annot_path}: annotation vectors not found")
        vectors = read_vecs(annot_path)
        if vectors.shape[1] != len(labels):
            raise ConvertError(f"{annot_path}: vectors of dimension {vectors.shape[1]}, but "
                               f"{dict_path} has {len(labels)} words")
        if len(vectors) != len(entries):
            raise ConvertError(f"{annot_path}: {len(vectors)} vectors for {len(entries)} "
                               f"images in {list_path}")
        bad = np.flatnonzero(~np.isin(vectors, (0, 1)).all(axis=1))
        if len(bad):
            raise ConvertError(f"{annot_path}: vector #{bad[0]} ({entries[bad[0]]}) holds "
                               f"values other than 0 and 1: {sorted(set(vectors[bad[0]]))}")
        samples, missing = [], []
        for entry, row in tqdm(zip(entries, vectors, strict=True), total=len(entries),
                               desc=f"{prefix} {split}", leave=False):
            sample_labels = [labels[j] for j in np.flatnonzero(row)]
            if not with_images:
                samples.append(Sample(f"{entry}{ext}", sample_labels))
                continue
            path = _find_image(image_root, entry)
            if path is None:
                if not skip_missing:
                    raise ConvertError(f"{image_root / entry}: image listed in {list_path} "
                                       f"not found (tried {IMAGE_SUFFIXES} and the last "
                                       "path component; --skip-missing leaves such images "
                                       "out)")
                missing.append(entry)
                continue
            samples.append(Sample(path.relative_to(image_root).as_posix(), sample_labels, path))
        splits[split] = samples
        if missing:
            left_out[f"{split}: image file missing"] = missing
    return Conversion("tagprop", labels, splits, left_out, {"name": prefix})


# --------------------------------------------------------------------------- voc


def _voc_root(source: Path) -> Path:
    for root in (source, source / "VOC2007", source / "VOCdevkit" / "VOC2007"):
        if (root / "Annotations").is_dir() and (root / "ImageSets" / "Main").is_dir():
            return root
    raise ConvertError(f"{source}: not a VOC folder (expected Annotations/ and "
                       "ImageSets/Main/ here or in VOC2007/)")


def parse_voc_xml(path: str | os.PathLike) -> tuple[str | None, list[tuple[str, bool]]]:
    """``(filename, [(class, difficult), ...])`` of a VOC annotation file."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError as exc:
        raise ConvertError(f"{path}: annotation file not found") from exc
    except (ET.ParseError, OSError) as exc:
        raise ConvertError(f"{path}: malformed XML ({exc})") from exc
    if root.tag != "annotation":
        raise ConvertError(f"{path}: root element is <{root.tag}>, expected <annotation>")
    objects = []
    for k, obj in enumerate(root.findall("object")):
        cls = (obj.findtext("name") or "").strip()
        if not cls:
            raise ConvertError(f"{path}: <object> #{k} has no <name>")
        difficult = (obj.findtext("difficult") or "0").strip()
        if difficult not in ("0", "1"):
            raise ConvertError(f"{path}: <object> #{k} ({cls}) has <difficult>{difficult}"
                               "</difficult>, expected 0 or 1")
        objects.append((cls, difficult == "1"))
    filename = (root.findtext("filename") or "").strip() or None
    return filename, objects


def read_voc(source: str | os.PathLike, *, drop_difficult: bool = False,
             train_set: str = "trainval", test_set: str = "test",
             with_images: bool = True, skip_missing: bool = False) -> Conversion:
    """Read PASCAL VOC (module docstring): ``train_set`` -> train, ``test_set`` -> test."""
    root = _voc_root(Path(source))
    labels = list(VOC_LABELS.values())
    splits: dict[str, list[Sample]] = {}
    left_out: dict[str, list[str]] = {}
    n_difficult = 0
    for split, set_name in (("train", train_set), ("test", test_set)):
        list_path = root / "ImageSets" / "Main" / f"{set_name}.txt"
        ids = [line.split()[0] for line in _read_lines(list_path, "image set")]
        samples, missing = [], []
        for image_id in tqdm(ids, desc=f"VOC {set_name}", leave=False):
            xml_path = root / "Annotations" / f"{image_id}.xml"
            filename, objects = parse_voc_xml(xml_path)
            unknown = sorted({c for c, _ in objects} - set(VOC_LABELS))
            if unknown:
                raise ConvertError(f"{xml_path}: unknown class(es) {unknown} (VOC has "
                                   f"{list(VOC_LABELS)})")
            n_difficult += sum(d for _, d in objects)
            present = {c for c, difficult in objects if not (drop_difficult and difficult)}
            sample_labels = [VOC_LABELS[c] for c in VOC_LABELS if c in present]
            filename = filename or f"{image_id}.jpg"
            image = root / "JPEGImages" / filename
            if with_images and not image.is_file():
                if not skip_missing:
                    raise ConvertError(f"{image}: image of {xml_path} (listed in {list_path}) "
                                       "not found")
                missing.append(image_id)
                continue
            samples.append(Sample(filename, sample_labels, image if with_images else None))
        splits[split] = samples
        if missing:
            left_out[f"{split}: image file missing"] = missing
    notes = {"train_set": train_set, "test_set": test_set, "drop_difficult": drop_difficult,
             "difficult_objects": n_difficult}
    return Conversion("voc", labels, splits, left_out, notes)


# --------------------------------------------------------------------------- coco


def _coco_file(source: Path, split: str, year: str) -> Path:
    name = f"instances_{split}{year}.json"
    for path in (source / "annotations" / name, source / name):
        if path.is_file():
            return path
    raise ConvertError(f"{source / 'annotations' / name}: COCO instances file not found "
                       f"(looked in {source / 'annotations'} and {source})")


def _load_coco(path: Path) -> tuple[dict[int, str], list[dict], dict[int, set[int]]]:
    """(category id -> name, images, image id -> category ids) of an instances file."""
    try:
        with path.open(encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvertError(f"{path}: cannot read the file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ConvertError(f"{path}: malformed JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: expected a JSON object with images, annotations and "
                           "categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(obj.get(key), list):
            raise ConvertError(f"{path}: missing or non-list {key!r} key")
    try:
        categories = {int(c["id"]): str(c["name"]).strip() for c in obj["categories"]}
        images = [{"id": int(im["id"]), "file_name": str(im["file_name"])}
                  for im in obj["images"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConvertError(f"{path}: a category or image entry lacks 'id', 'name' or "
                           f"'file_name' ({exc!r})") from exc
    ids = {im["id"] for im in images}
    if len(ids) != len(images):
        raise ConvertError(f"{path}: repeated image ids")
    present: dict[int, set[int]] = {}
    for k, ann in enumerate(obj["annotations"]):
        try:
            image_id, cat = int(ann["image_id"]), int(ann["category_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConvertError(f"{path}: annotation #{k} lacks image_id or category_id "
                               f"({exc!r})") from exc
        if cat not in categories:
            raise ConvertError(f"{path}: annotation #{k} (id {ann.get('id')}) has unknown "
                               f"category_id {cat}")
        if image_id not in ids:
            raise ConvertError(f"{path}: annotation #{k} (id {ann.get('id')}) refers to "
                               f"unknown image_id {image_id}")
        present.setdefault(image_id, set()).add(cat)
    return categories, images, present


def read_coco(source: str | os.PathLike, *, year: str = "2014",
              images: str | os.PathLike | None = None, keep_unlabeled: bool = False,
              with_images: bool = True, skip_missing: bool = False) -> Conversion:
    """Read MS-COCO instances files (module docstring): train<year> -> train,
    val<year> -> test."""
    source = Path(source)
    if not source.is_dir():
        raise ConvertError(f"{source}: COCO source folder not found")
    image_root = Path(images) if images else source
    labels: list[str] | None = None
    categories_first: dict[int, str] = {}
    first_file: Path | None = None
    splits: dict[str, list[Sample]] = {}
    left_out: dict[str, list[str]] = {}
    for split, coco_split in (("train", "train"), ("test", "val")):
        path = _coco_file(source, coco_split, year)
        categories, image_list, present = _load_coco(path)
        if labels is None:
            order = sorted(categories)
            labels = _check_labels([categories[c] for c in order], path)
            categories_first, first_file = categories, path
        elif categories != categories_first:
            raise ConvertError(f"{path}: its categories differ from those of {first_file}")
        index = {c: j for j, c in enumerate(sorted(categories))}
        folder = image_root / f"{coco_split}{year}"
        if with_images and not folder.is_dir():
            raise ConvertError(f"{folder}: image folder not found (use --images DIR, the "
                               f"folder holding {coco_split}{year}/, or --no-images)")
        samples, unlabeled, missing = [], [], []
        for im in tqdm(image_list, desc=f"COCO {coco_split}{year}", leave=False):
            cats = present.get(im["id"], set())
            if not cats and not keep_unlabeled:
                unlabeled.append(im["file_name"])
                continue
            sample_labels = [labels[index[c]] for c in sorted(cats, key=index.get)]
            image = folder / im["file_name"]
            if with_images and not image.is_file():
                if not skip_missing:
                    raise ConvertError(f"{image}: image listed in {path} not found")
                missing.append(im["file_name"])
                continue
            samples.append(Sample(im["file_name"], sample_labels,
                                  image if with_images else None))
        splits[split] = samples
        if unlabeled:
            left_out[f"{split}: no annotation ({coco_split}{year})"] = unlabeled
        if missing:
            left_out[f"{split}: image file missing"] = missing
    assert labels is not None
    return Conversion("coco", labels, splits, left_out,
                      {"year": year, "keep_unlabeled": keep_unlabeled})


# --------------------------------------------------------------------------- writing


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


def convert(fmt: str, source: str | os.PathLike, out_dir: str | os.PathLike, *,
            copy: bool = False, **options) -> Path:
    """Convert ``source`` in format ``fmt`` (``tagprop``, ``voc``, ``coco``) into
    ``out_dir``; ``options`` go to :func:`read_tagprop` / :func:`read_voc` /
    :func:`read_coco`."""
    readers = {"tagprop": read_tagprop, "voc": read_voc, "coco": read_coco}
    if fmt not in readers:
        raise ConvertError(f"unknown format {fmt!r} (expected one of {FORMATS})")
    conv = readers[fmt](source, **options)
    return write_dataset(conv, out_dir, copy=copy,
                         options={"source": str(source), "copy": copy, **options})


# --------------------------------------------------------------------------- CLI


def _out_path(text: str) -> Path:
    """A bare name is a folder under the data root (as ``python -m lib stats NAME``
    finds it); anything with a separator is a path."""
    from lib import paths

    path = Path(text).expanduser()
    if path.is_absolute() or len(path.parts) > 1 or text.startswith("."):
        return path
    return paths.data_root() / path


def _summary(out: Path) -> Iterable[str]:
    info = json.loads((out / CONVERSION_FILE).read_text(encoding="utf-8"))
    yield f"converted {info['format']} into {out}"
    yield f"  {info['n_labels']} labels; images: " + ", ".join(
        f"{split} {n}" for split, n in info["n_images"].items()) + f" ({info['images']})"
    for why, n in info["n_left_out"].items():
        yield f"  left out ({why}): {n}, listed in {out / CONVERSION_FILE}"
    yield f"next: python -m lib stats {out}"


def convert_main(argv: list[str]) -> int:
    """``python -m lib convert {tagprop,voc,coco} SOURCE OUT_DIR [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m lib convert",
        description="Convert a benchmark release (TagProp's Corel-5k / IAPR TC-12 / ESP-Game, "
                    "PASCAL VOC 2007, MS-COCO 2014) into the dataset format.")
    sub = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    helps = {"tagprop": "TagProp release: <name>_dictionary.txt, _{train,test}_list.txt, "
                        "_{train,test}_annot.hvecs",
             "voc": "PASCAL VOC: Annotations/*.xml, ImageSets/Main/{trainval,test}.txt",
             "coco": "MS-COCO: annotations/instances_{train,val}2014.json"}
    parsers = {}
    for fmt in FORMATS:
        p = sub.add_parser(fmt, help=helps[fmt], description=helps[fmt])
        p.add_argument("source", help="folder of the release")
        p.add_argument("out_dir", help="new dataset folder: a path, or a bare name for a "
                                       "folder under the data root")
        p.add_argument("--copy", action="store_true",
                       help="copy the images instead of linking them")
        p.add_argument("--no-images", action="store_true",
                       help="write the annotations only (no images/ folder)")
        p.add_argument("--skip-missing", action="store_true",
                       help="leave out images whose file is missing (listed in "
                            "conversion.json) instead of stopping")
        parsers[fmt] = p
    parsers["tagprop"].add_argument("--name", help="file prefix (corel5k, iaprtc12, espgame); "
                                                   "default: from <name>_dictionary.txt")
    parsers["tagprop"].add_argument("--images", help="image folder the list entries are "
                                                     "relative to (default SOURCE/images, "
                                                     "else SOURCE)")
    parsers["tagprop"].add_argument("--ext", default=".jpg",
                                    help="image suffix with --no-images (default .jpg)")
    parsers["voc"].add_argument("--drop-difficult", action="store_true",
                                help="ignore objects marked difficult (default: keep them)")
    parsers["voc"].add_argument("--train-set", default="trainval",
                                help="ImageSets/Main list for train.json (default trainval)")
    parsers["voc"].add_argument("--test-set", default="test",
                                help="ImageSets/Main list for test.json (default test)")
    parsers["coco"].add_argument("--year", default="2014", help="release year (default 2014)")
    parsers["coco"].add_argument("--images", help="folder holding train<year>/ and "
                                                  "val<year>/ (default SOURCE)")
    parsers["coco"].add_argument("--keep-unlabeled", action="store_true",
                                 help="keep images without any annotation (ML-GCN drops them)")
    args = vars(parser.parse_args(argv))
    fmt, source, out = args.pop("format"), args.pop("source"), _out_path(args.pop("out_dir"))
    copy = args.pop("copy")
    args["with_images"] = not args.pop("no_images")
    try:
        written = convert(fmt, source, out, copy=copy, **args)
    except ConvertError as exc:
        parser.exit(1, f"error: {exc}\n")
    print(*_summary(written), sep="\n")
    return 0
