"""Seeding and provenance: every random source from one seed; the commit and library
versions a result came from."""

from __future__ import annotations

import random
import subprocess
from importlib import metadata

import numpy as np

from lib.core.paths import ROOT


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when imported) torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - legacy global state used by libraries
    try:
        import torch  # lazy import (torch)
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(seed)


def git_commit() -> str:
    """Commit of the checkout (with ``-dirty`` when a tracked file outside ``results/`` has
    changes: regenerating the committed results does not make their code dirty), or
    ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
             ":(exclude)results"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def library_versions(names: tuple[str, ...] = (
    "torch", "torchvision", "timm", "numpy", "scikit-learn", "gensim", "pandas",
)) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
