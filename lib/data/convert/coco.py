"""MS-COCO 2014 instances files (``python -m lib convert coco``).

``SOURCE/annotations/instances_{train,val}2014.json`` (or the two files in ``SOURCE``
itself), images under ``train2014/`` and ``val2014/`` of ``SOURCE`` (or of ``--images``):
train2014 is train.json and val2014 test.json, as ML-GCN does. An image's labels are the
categories of its annotations (crowd annotations included); images without any annotation
are left out, as ML-GCN does (82,081 train and 40,137 val images remain), and listed in
conversion.json; ``--keep-unlabeled`` keeps them. Category names are kept as they are
("traffic light", "hair drier"), in category-id order; both files must have the same
categories.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tqdm.auto import tqdm

from lib.data.convert.common import Conversion, ConvertError, Sample, check_labels


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
            labels = check_labels([categories[c] for c in order], path)
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

