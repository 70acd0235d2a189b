"""Converters from the field's benchmark releases to the dataset format of ``lib.data.datasets``.

``python -m lib convert FORMAT SOURCE OUT_DIR`` writes ``train.json``, ``test.json``,
``vocabulary.txt`` (one label per line, multi-word labels included), ``conversion.json``
(the format, the options, and every image left out, with the reason) and ``images/`` with
relative symbolic links to the source images (``--copy`` copies them; ``--no-images``
writes the annotations only). The result loads with :func:`lib.data.datasets.load_dataset` and
passes ``python -m lib stats``. One module per format, each documenting its layout and
where the facts about it come from:

- ``tagprop`` (:mod:`lib.data.convert.tagprop`): TagProp's release of Corel-5k, IAPR TC-12 and
  ESP-Game (dictionary, per-split image lists, per-split ``.hvecs`` annotation vectors);
- ``voc`` (:mod:`lib.data.convert.voc`): PASCAL VOC 2007, trainval -> train, test -> test;
- ``coco`` (:mod:`lib.data.convert.coco`): MS-COCO 2014, train2014 -> train, val2014 -> test.

Every malformed source raises :class:`ConvertError` (a :class:`lib.data.datasets.DatasetError`)
naming the file and the problem.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path

from lib.data.convert.coco import read_coco
from lib.data.convert.common import (
    CONVERSION_FILE,
    Conversion,
    ConvertError,
    Sample,
    write_dataset,
)
from lib.data.convert.tagprop import IMAGE_SUFFIXES, VEC_TYPES, read_tagprop, read_vecs
from lib.data.convert.voc import VOC_LABELS, parse_voc_xml, read_voc
from lib.core import paths

__all__ = [
    "CONVERSION_FILE", "FORMATS", "IMAGE_SUFFIXES", "VEC_TYPES", "VOC_LABELS", "Conversion",
    "ConvertError", "Sample", "convert", "convert_main", "parse_voc_xml", "read_coco",
    "read_tagprop", "read_vecs", "read_voc", "write_dataset",
]

FORMATS = ("tagprop", "voc", "coco")


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
