"""The embedded default dataset: procedurally drawn scenes in the Corel-5k JSON format.

Every image is one of a dozen scene types (beach, harbour, lake, river, forest, city,
mountain, underwater, garden, night, desert, farm). A scene type fixes the layout (sky,
horizon, ground) and a set of objects drawn with given probabilities, so labels co-occur
the way Corel's do (sea with beach, car with road, fish with coral). Look-alikes are
drawn the same way and told apart only by context: sea, lake and harbour water share one
palette; sun and moon are the same pale disc (day sky or night sky); beach, sand and snow
are the same pale ground; deer and horse, house and barn, car and bus, fish and shark
share a shape. Birds, butterflies and flowers are a few pixels wide; cars hide behind
buildings, fish behind coral, and objects are cut by the frame. At most five labels per
image, like Corel.

Variant ``"implied"`` (``generate(..., variant="implied")``): a few labels are drawn barely or
not at all (``IMPLIED``: fish, car, stars, mushroom, umbrella, sheep) while a visible label
of the same scene implies them (fish only with coral, car with a road, stars with the
moon, ...): a test of whether a label graph helps with labels the pixels do not show. Scene
types and everything else are drawn as in the default, which stays byte-identical.

Output (``generate``): ``images/<split>_NNNNN.png``, ``train.json``, ``val.json``,
``test.json``, ``vocabulary.txt`` and a ``synth.json`` manifest. Images are written
first and the JSON files last, all atomically, so an interrupted run never leaves a
folder that looks like a complete dataset. Each image has its own random generator
seeded from (seed, split, index): the output is byte-identical for a seed, and a split
does not depend on the sizes of the others.
"""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from lib.data.drawn.painting import MAX_LABELS, Canvas
from lib.data.drawn.scenes import IMPLIED, LABELS, SCENES, implied_labels
from lib.core.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from tqdm.auto import tqdm

#: the generator named in synth.json: its module's name when format version 1 was fixed (kept
#: after the move to lib.data.drawn, so drawn folders and their digests stay the same)
GENERATOR = "lib.synth"
VERSION = 1
VARIANTS = ("default", "implied")
SPLITS = ("train", "val", "test")
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_IMAGE_RE = re.compile(r"^(train|val|test)_\d{5,}\.png$")


# --------------------------------------------------------------------------- images
def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image, independent of every other image and split size."""
    return np.random.default_rng([int(seed), _SPLIT_IDS[split], int(index), VERSION])


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown synth variant {variant!r}; expected one of {VARIANTS}")


def draw_image(seed: int, split: str, index: int, size: int, variant: str = "default"
               ) -> tuple[Image.Image, str, list[str]]:
    """Draw one image: returns (RGB image of ``size`` x ``size``, scene type, labels).
    The scene type depends only on (seed, split, index), not on the variant."""
    _check_variant(variant)
    rng = image_rng(seed, split, index)
    names = list(SCENES)
    weights = np.array([SCENES[n][0] for n in names])
    scene = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    c = Canvas(size, rng)
    if variant == "implied":
        rules = {hidden: rule for (kind, hidden), rule in IMPLIED.items() if kind == scene}
        c.hidden = frozenset(rules)
        c.probs = {hidden: p for hidden, (_, p) in rules.items()}
        c.requires = {hidden: implier for hidden, (implier, _) in rules.items()}
    labels = SCENES[scene][1](c)
    img = c.img.resize((size, size), Image.Resampling.BOX)
    # photometric variation: exposure, contrast, colour cast and sensor noise
    arr = np.asarray(img, dtype=np.float32)
    mean = arr.mean()
    arr = (arr - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.15)
    arr = arr + rng.normal(0, 6, size=3) + rng.normal(0, rng.uniform(2, 7), size=arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "RGB")
    if not 0 < len(labels) == len(set(labels)) <= MAX_LABELS:  # pragma: no cover - a bug
        raise RuntimeError(f"scene {scene!r} produced bad labels {labels}")
    return img, scene, sorted(labels, key=LABELS.index)


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


# --------------------------------------------------------------------------- dataset
def generate(out_dir: str | Path, seed: int = 0, size: int = 64, n_train: int = 1500,
             n_val: int = 300, n_test: int = 500, progress: bool = False,
             variant: str = "default") -> Path:
    """Draw the scenes dataset into ``out_dir`` (Corel-5k JSON format); returns the folder.

    ``variant``: ``"default"`` (the embedded dataset) or ``"implied"`` (labels hidden in the
    picture but implied by the scene; see :data:`IMPLIED`).

    Images first, then ``vocabulary.txt``, the split JSONs and ``synth.json`` last, each
    written atomically. A folder that already holds a dataset not drawn by this module is
    refused; an earlier synthetic dataset there is replaced."""

    _check_variant(variant)
    out = Path(out_dir)
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in counts.items():
        if n < 0:
            raise ValueError(f"n_{split} must be >= 0, got {n}")
    if (out / "train.json").exists() and not (out / "synth.json").exists():
        raise FileExistsError(f"{out} holds a dataset not drawn by lib.data.drawn.synth (train.json "
                              "without synth.json); choose another folder")
    # the folder stops looking complete before anything changes
    for name in ("synth.json", "train.json", "test.json", "val.json", "vocabulary.txt"):
        (out / name).unlink(missing_ok=True)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)

    samples: dict[str, list[dict]] = {s: [] for s in SPLITS}
    scenes: dict[str, str] = {}
    total = sum(counts.values())
    with tqdm(total=total, desc="synth", unit="img", disable=not progress) as bar:
        for split in SPLITS:
            for i in range(counts[split]):
                img, scene, labels = draw_image(seed, split, i, size, variant)
                name = f"{split}_{i:05d}.png"
                atomic_write_bytes(images / name, _png_bytes(img))
                samples[split].append({"image_name": name, "image_labels": labels})
                scenes[name] = scene
                bar.update()
    keep = set(scenes)
    for path in images.iterdir():  # images left over from a larger earlier draw
        if _IMAGE_RE.match(path.name) and path.name not in keep:
            path.unlink()

    atomic_write_text(out / "vocabulary.txt", "\n".join(LABELS) + "\n")
    for split in ("val", "test", "train"):
        atomic_write_json(out / f"{split}.json", {"labels": LABELS, "samples": samples[split]})
    weights = {name: w for name, (w, _) in SCENES.items()}
    manifest = {
        "generator": GENERATOR, "version": VERSION, "seed": seed, "size": size,
        "n_train": n_train, "n_val": n_val, "n_test": n_test,
        "scene_types": weights, "labels": LABELS, "scenes": scenes,
    }
    if variant != "default":  # the default manifest keeps its original bytes
        manifest["variant"] = variant
        manifest["implied"] = [{"scene": kind, "hidden": hidden, "implied_by": implier,
                                "probability": p}
                               for (kind, hidden), (implier, p) in IMPLIED.items()]
    atomic_write_json(out / "synth.json", manifest)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m lib synth OUT_DIR [--seed N] [--size PX] [--n-train N] ...``"""
    parser = argparse.ArgumentParser(
        prog="python -m lib synth",
        description="Draw the embedded scenes dataset (Corel-5k JSON format) into OUT_DIR.")
    parser.add_argument("out_dir", type=Path, help="output folder, e.g. data/scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-val", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--variant", choices=VARIANTS, default="default",
                        help="implied: some labels hidden in the picture, implied by the scene")
    args = parser.parse_args(argv)
    try:
        out = generate(args.out_dir, seed=args.seed, size=args.size, n_train=args.n_train,
                       n_val=args.n_val, n_test=args.n_test, progress=True,
                       variant=args.variant)
    except (ValueError, FileExistsError) as err:
        parser.exit(2, f"python -m lib synth: error: {err}\n")
    meta = json.loads((out / "synth.json").read_text(encoding="utf-8"))
    print(f"wrote {meta['n_train']} train, {meta['n_val']} val, {meta['n_test']} test images "
          f"({meta['size']} px, {len(meta['labels'])} labels) to {out}")
    return 0


__all__ = ["GENERATOR", "IMPLIED", "LABELS", "SCENES", "SPLITS", "VARIANTS", "VERSION",
           "draw_image", "generate", "image_rng", "implied_labels", "main"]
