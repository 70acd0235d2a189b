"""Stand-in images for a real annotation folder: the Corel-5k path rehearsed without Corel.

The Corel-5k images are not redistributable, so the Corel-5k configuration (260 labels,
TResNet-M at 448 px, ML-WGAN at 128x192) cannot run on them here. :func:`generate_standin`
draws a stand-in for every image named in a real annotation folder (``train.json``,
``test.json``, optional ``val.json``): the real image names, the real label sets (images
without labels included), JPEG files of Corel's sizes: 192x128 landscape, and 128x192
portrait for about a quarter of the images (so the ML-WGAN's rotation path runs). What an
image shows depends on its labels (``lib.data.drawn.standin_draw``): labels the scenes engine can draw
are drawn as a scene, every other label as its own mark. The annotation files are copied
unchanged; ``train_aug.json`` is not (its fakes are made by ``python -m lib augment``).

The folder says what it is: ``standin.json`` (written last, atomically) carries
``"stand_in": true`` and a note that these are not Corel images; :func:`is_standin` and
:func:`standin_note` let tables and reports say so. Each image has its own random
generator seeded from (seed, image name): the output is byte-identical for a seed.

``python -m lib standin ANNOTATIONS_DIR OUT_DIR [--seed S] [--limit N]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from lib.core import paths
from lib.data.drawn.standin_draw import SCENE_LABELS, mark_table, render
from lib.core.fileio import atomic_write_bytes, atomic_write_json
from tqdm.auto import tqdm

#: the generator named in standin.json: its module's name when format version 1 was fixed
#: (kept after the move to lib.data.drawn, so drawn folders and their digests stay the same)
GENERATOR = "lib.standin"
VERSION = 1
MANIFEST = "standin.json"
#: split files drawn, in order (val.json only when the source has one)
SPLIT_FILES = {"train": "train.json", "val": "val.json", "test": "test.json"}
VOCABULARY_FILE = "vocabulary.txt"
#: Corel-5k's image sizes as (width, height)
LANDSCAPE, PORTRAIT = (192, 128), (128, 192)
PORTRAIT_SHARE = 0.25
JPEG_QUALITY = 90
_FORMATS = {".jpeg": "JPEG", ".jpg": "JPEG", ".png": "PNG"}
NOTE = ("Stand-in data: these are not Corel images but drawings made for the image names and "
        "label sets of a real annotation folder; results measured on them are not comparable "
        "with published Corel-5k results.")


def image_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one image, from (seed, image name) only."""
    words = np.frombuffer(hashlib.sha256(name.encode("utf-8")).digest(), dtype="<u4")
    return np.random.default_rng([int(seed), VERSION, *(int(w) for w in words)])


def draw_standin(seed: int, name: str, labels: list[str],
                 marks: dict) -> tuple[Image.Image, bool]:
    """Draw the stand-in of image ``name`` with ``labels``: (RGB image, is portrait).

    ``marks`` is :func:`lib.data.drawn.standin_draw.mark_table` of the labels that are not scene
    labels (every such label of ``labels`` must be in it)."""
    rng = image_rng(seed, name)
    portrait = bool(rng.random() < PORTRAIT_SHARE)
    objects = {SCENE_LABELS[x] for x in labels if x in SCENE_LABELS}
    image_marks = [marks[x] for x in labels if x not in SCENE_LABELS]
    return render(rng, objects, image_marks, PORTRAIT if portrait else LANDSCAPE), portrait


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _image_format(name: str, where: Path) -> str:
    fmt = _FORMATS.get(PurePosixPath(name).suffix.lower())
    if fmt is None:
        raise ValueError(f"{where}: image {name!r} has no .jpeg/.jpg/.png suffix; cannot "
                         "choose a file format for its stand-in")
    return fmt


def _read_old_names(out: Path) -> set[str]:
    """Image names of an earlier stand-in draw in ``out`` (to remove what is not redrawn)."""
    names: set[str] = set()
    for file in SPLIT_FILES.values():
        try:
            obj = json.loads((out / file).read_text(encoding="utf-8"))
            names |= {s["image_name"] for s in obj["samples"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return names


def _read_manifest(root: Path) -> dict | None:
    try:
        obj = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def generate_standin(annotations_dir: str | Path, out_dir: str | Path, seed: int = 0,
                     progress: bool = True, limit: int | None = None) -> Path:
    """Draw a stand-in image for every image of the annotation folder into ``out_dir``.

    ``annotations_dir`` is a folder (or a name :func:`lib.core.paths.dataset_dir` knows, e.g.
    ``corel5k-annotations``) with ``train.json`` and ``test.json`` (``val.json`` and
    ``vocabulary.txt`` when present), checked with :func:`lib.data.datasets.load_dataset`; they are
    copied into ``out_dir`` unchanged. ``limit`` keeps the first N images of each split file
    (for tests; the copied files then list only those). Images first, then the annotation
    files, then ``standin.json``, each atomically. A folder holding a dataset that is not a
    stand-in is refused; an earlier stand-in there is replaced. Returns ``out_dir``."""

    from lib.data.datasets import load_dataset  # lazy import (pandas)

    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    src = paths.dataset_dir(annotations_dir)
    out = Path(out_dir)
    ds = load_dataset(src, check_images=False, val_fraction=0.0)  # DatasetError if malformed
    if out.resolve() == src.resolve():
        raise ValueError(f"{out}: the output folder is the annotation folder itself")
    if (out / "train.json").exists() and not (out / MANIFEST).exists():
        raise FileExistsError(f"{out} holds a dataset that is not a stand-in (train.json "
                              f"without {MANIFEST}); choose another folder")

    present = [s for s, f in SPLIT_FILES.items() if (src / f).is_file()]
    raw = {s: (src / SPLIT_FILES[s]).read_bytes() for s in present}
    samples = {s: json.loads(raw[s])["samples"][:limit] for s in present}
    for s in present:
        for sample in samples[s]:
            _image_format(sample["image_name"], src / SPLIT_FILES[s])
    marks = mark_table([x for x in ds.labels if x not in SCENE_LABELS])

    # the folder stops looking complete before anything changes
    old = _read_manifest(out)
    old_names = _read_old_names(out)
    for name in (MANIFEST, VOCABULARY_FILE, *SPLIT_FILES.values()):
        (out / name).unlink(missing_ok=True)
    if old and (out / "train_aug.json").exists() and (old.get("seed"), old.get("version"),
                                                      old.get("limit")) != (seed, VERSION, limit):
        warnings.warn(f"{out / 'train_aug.json'}: its fakes were made from an earlier stand-in "
                      "draw with other settings; rerun `python -m lib augment`", stacklevel=2)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)

    total = sum(len(v) for v in samples.values())
    portrait: list[str] = []
    with tqdm(total=total, desc="standin", unit="img", disable=not progress) as bar:
        for s in present:
            for sample in samples[s]:
                name = sample["image_name"]
                image, is_portrait = draw_standin(seed, name, list(sample["image_labels"]), marks)
                atomic_write_bytes(images / name,
                                   _encode(image, _image_format(name, src / SPLIT_FILES[s])))
                if is_portrait:
                    portrait.append(name)
                bar.update()
    drawn = {sample["image_name"] for v in samples.values() for sample in v}
    for name in sorted(old_names - drawn):  # images of a larger earlier draw
        (images / name).unlink(missing_ok=True)

    copied = []
    if (src / VOCABULARY_FILE).is_file():
        atomic_write_bytes(out / VOCABULARY_FILE, (src / VOCABULARY_FILE).read_bytes())
        copied.append(VOCABULARY_FILE)
    for s in sorted(present, key=lambda x: x == "train"):  # train.json last
        if limit is None:
            atomic_write_bytes(out / SPLIT_FILES[s], raw[s])
        else:
            atomic_write_json(out / SPLIT_FILES[s], {**json.loads(raw[s]), "samples": samples[s]})
        copied.append(SPLIT_FILES[s])
    atomic_write_json(out / MANIFEST, {
        "generator": GENERATOR, "version": VERSION, "stand_in": True, "note": NOTE,
        "seed": int(seed), "source": str(annotations_dir), "limit": limit,
        "counts": {
            "images": {s: len(samples[s]) for s in present}, "total": total,
            "landscape": total - len(portrait), "portrait": len(portrait),
            "unlabelled": {s: sum(1 for x in samples[s] if not x["image_labels"])
                           for s in present},
            "labels": len(ds.labels), "scene_labels": len(ds.labels) - len(marks),
            "mark_labels": len(marks)},
        "sizes": {"landscape": list(LANDSCAPE), "portrait": list(PORTRAIT)},
        "portrait_share": PORTRAIT_SHARE, "jpeg_quality": JPEG_QUALITY,
        "copied": copied,
        "scene_labels": {x: SCENE_LABELS[x] for x in ds.labels if x in SCENE_LABELS},
        "marks": {x: m.to_dict() for x, m in marks.items()},
        "portrait_images": portrait,
    })
    return out


def is_standin(dataset_root: str | Path) -> bool:
    """True when ``dataset_root`` holds stand-in images (it has a ``standin.json``; an
    unreadable one counts too, so a stand-in result is never taken for a real one)."""
    return (Path(dataset_root) / MANIFEST).is_file()


def standin_note(dataset_root: str | Path) -> str | None:
    """The sentence a table or report prints under results on stand-in data, or None for a
    dataset that is not a stand-in."""
    if not is_standin(dataset_root):
        return None
    manifest = _read_manifest(Path(dataset_root))
    note = manifest.get("note") if manifest else None
    return note if isinstance(note, str) and note else NOTE


def main(argv: list[str] | None = None) -> int:
    """``python -m lib standin ANNOTATIONS_DIR OUT_DIR [--seed S] [--limit N]``"""
    from lib.data.datasets import DatasetError  # lazy import (pandas)

    parser = argparse.ArgumentParser(
        prog="python -m lib standin",
        description="Draw stand-in images (Corel's sizes, label-dependent content) for every "
                    "image of a real annotation folder, e.g. the Corel-5k annotations, into "
                    "OUT_DIR; the annotation files are copied unchanged.")
    parser.add_argument("annotations_dir",
                        help="folder with train.json and test.json (or corel5k-annotations)")
    parser.add_argument("out_dir", type=Path, help="output folder, e.g. data/corel5k-standin")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="only the first N images of each split file (a quick check)")
    args = parser.parse_args(argv)
    try:
        out = generate_standin(args.annotations_dir, args.out_dir, seed=args.seed,
                               limit=args.limit, progress=True)
    except (ValueError, FileExistsError, DatasetError) as err:
        parser.exit(2, f"python -m lib standin: error: {err}\n")
    meta = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    counts = meta["counts"]
    per_split = ", ".join(f"{n} {s}" for s, n in counts["images"].items())
    print(f"wrote {per_split} stand-in images ({counts['portrait']} portrait, "
          f"{counts['labels']} labels: {counts['scene_labels']} drawn as scenes, "
          f"{counts['mark_labels']} as marks) to {out}\n{NOTE}")
    return 0


if __name__ == "__main__":  # python -m lib.data.drawn.standin (also: python -m lib standin)
    raise SystemExit(main())
