"""TagProp's release of Corel-5k, IAPR TC-12 and ESP-Game (``python -m lib convert tagprop``).

The annotation archives that come with TagProp (Guillaumin, Mensink, Verbeek and Schmid,
"TagProp: Discriminative metric learning in nearest neighbor models for image
auto-annotation", ICCV 2009), ``<name>.20091111.tar.bz2`` on the LEAR data page, with
``<name>`` one of ``corel5k``, ``iaprtc12``, ``espgame``, hold per set:

- ``<name>_dictionary.txt``: the vocabulary, one word per line; column j of the vectors is
  line j;
- ``<name>_train_list.txt`` / ``<name>_test_list.txt``: one image per line, a path relative
  to the image folder without extension (IAPR TC-12: ``00/25`` for ``images/00/25.jpg``);
- ``<name>_train_annot.hvecs`` / ``<name>_test_annot.hvecs``: one binary vector per image,
  in list order.

Vector files: for every vector a header (its dimension d) followed by d values; the
extension gives the types: ``.hvecs`` uint16 header and uint16 values, ``.hvecs32`` uint32
and uint32, ``.fvecs`` uint32 and float32, ``.dvecs`` uint32 and float64, little-endian (the
files were written on x86 machines and are read in native order). Sources for these facts:
LEAR's MATLAB reader ``vec_read.m`` (public copies sit beside the data's ``demo.m``, which
reads ``<name>_<split>_annot.hvecs`` with it: its ``class_head`` / ``class_data`` table per
extension, file size / (header + d values) vectors, native byte order), and the Python
reader ``parse_LEAR_annotation_file`` of the attalos project (``iaprtc12_prep.py``: a 2-byte
dimension, then d 2-byte values, the dimension repeated before every row,
``<name>_dictionary.txt`` line i naming column i).

List entries resolve against the image folder (``--images``; default ``SOURCE/images`` if
it exists, else ``SOURCE``): the entry as written, then with ``.jpg``/``.jpeg``/``.png``, then
its last component alone (flat folders such as Kaggle's Corel-5k ``1000.jpeg``). The output
image name is the found file's path relative to the image folder. Dictionary words are kept
as written.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lib.data.convert.common import Conversion, ConvertError, Sample, check_labels, read_lines

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")

#: vector files by extension: (header dtype, value dtype), little-endian (see the docstring)
VEC_TYPES = {
    "hvec": ("<u2", "<u2"), "hvec32": ("<u4", "<u4"),
    "fvec": ("<u4", "<f4"), "dvec": ("<u4", "<f8"),
}


def find_image(root: Path, entry: str) -> Path | None:
    """``root/entry`` as written, with an image suffix, or its last component alone."""
    rel = Path(entry)
    for base in dict.fromkeys((rel, Path(rel.name))):
        candidates = [root / base] if base.suffix else []
        candidates += [root / f"{base}{suffix}" for suffix in IMAGE_SUFFIXES]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    return None


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
    labels = check_labels(read_lines(dict_path, "dictionary"), dict_path)
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
        entries = read_lines(list_path, "image list")
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
            path = find_image(image_root, entry)
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

