"""``python -m lib embed``: the label vectors of a dataset folder's vocabulary, computed
once (:mod:`lib.method.embeddings`) and cached under ``<data>/cache/embeddings/``."""

from __future__ import annotations

import argparse
from pathlib import Path

from lib.core import paths
from lib.data.datasets import load_dataset
from lib.method.embeddings import PARTS_MEAN, WHEEL_SOURCE, cache_paths, cached_resolution



def _dataset_labels(root: Path) -> list[str]:
    """The vocabulary of a dataset folder (without checking the images)."""
    return load_dataset(root, check_images=False).labels


def embed_main(argv: list[str]) -> int:
    """``python -m lib embed DATA_DIR --source SOURCE [--seed N] [--force]``."""
    parser = argparse.ArgumentParser(
        prog="python -m lib embed",
        description="Compute the label vectors of a dataset and cache them under "
                    "<data>/cache/embeddings/.",
    )
    parser.add_argument("data", help="dataset folder or name under the data root")
    parser.add_argument("--source", default=WHEEL_SOURCE,
                        help="GloVe text file, gensim-data name (e.g. glove-wiki-gigaword-300), "
                             f"{WHEEL_SOURCE} (offline), random[-D] or onehot "
                             f"(default {WHEEL_SOURCE})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random source")
    parser.add_argument("--force", action="store_true", help="recompute even if cached")
    args = parser.parse_args(argv)
    root = paths.dataset_dir(args.data)
    labels = _dataset_labels(root)
    res = cached_resolution(root, labels, args.source, args.seed, force=args.force)
    npy, sidecar = cache_paths(root, args.source, args.seed)
    counts = {k: v for k, v in res.counts().items() if v}
    print(f"{len(labels)} labels x {res.vectors.shape[1]} dimensions from {args.source}")
    print(f"coverage: {counts}")
    for label, kind in res.how.items():
        if kind == PARTS_MEAN:
            lacking = res.parts_missing.get(label)
            note = f" (no vector for {lacking})" if lacking else ""
            print(f"  {label}: mean of {res.parts[label]}{note}")
    print(f"cache: {npy}")
    print(f"sidecar: {sidecar}")
    return 0
