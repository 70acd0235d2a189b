"""PASCAL VOC 2007 (``python -m lib convert voc``).

``SOURCE`` is ``VOC2007/`` or a ``VOCdevkit/`` holding it (the trainval and test archives
unpack into the same folder). ``ImageSets/Main/trainval.txt`` becomes train.json and
``ImageSets/Main/test.txt`` test.json (``--train-set`` / ``--test-set`` pick other lists).
An image's labels are the classes of the ``<object>`` elements of ``Annotations/<id>.xml``,
"difficult" objects included: the multi-label literature's convention (ML-GCN's engine turns
the per-class label 0, difficult-only, into a positive for training); ``--drop-difficult``
leaves them out. Class names become words GloVe covers (``pottedplant`` -> ``potted plant``,
``tvmonitor`` -> ``tv monitor``, ``diningtable`` -> ``dining table``); the image is
``JPEGImages/<filename>`` with the XML's ``<filename>`` (else ``<id>.jpg``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from tqdm.auto import tqdm

from lib.data.convert.common import Conversion, ConvertError, Sample, read_lines

#: the 20 VOC classes in the devkit's order, with the label each becomes
VOC_LABELS = {
    "aeroplane": "aeroplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat",
    "bottle": "bottle", "bus": "bus", "car": "car", "cat": "cat", "chair": "chair",
    "cow": "cow", "diningtable": "dining table", "dog": "dog", "horse": "horse",
    "motorbike": "motorbike", "person": "person", "pottedplant": "potted plant",
    "sheep": "sheep", "sofa": "sofa", "train": "train", "tvmonitor": "tv monitor",
}


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
        ids = [line.split()[0] for line in read_lines(list_path, "image set")]
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

