"""The one place paths come from.

Everything is relative to the repository root (found from this file, not from the
working directory, so notebooks run by papermill from ``notebooks/`` see the same
paths as the CLI). Two environment variables move the writable trees, which is how
tests and ``make reproduce DATA=... RESULTS=...`` redirect them:

- ``AIA_DATA_DIR``: datasets and derived data (default ``<root>/data``);
- ``AIA_RESULTS_DIR``: tables, figures, runs, executed notebooks, reports
  (default ``<root>/results``).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
PARAMS_DIR = ROOT / "params"
#: the real Corel-5k annotation files (tests, notebook 01, stand-in data): the folder in
#: ``AIA_COREL5K_ANNOTATIONS``, default ``../shared/corel5k`` beside the checkout
SHARED_COREL5K = Path(os.environ.get("AIA_COREL5K_ANNOTATIONS",
                                     ROOT.parent / "shared" / "corel5k"))
#: name of the embedded default dataset under the data folder
DEFAULT_DATASET = "scenes"


def data_root() -> Path:
    return Path(os.environ.get("AIA_DATA_DIR", ROOT / "data")).resolve()


def results_root() -> Path:
    return Path(os.environ.get("AIA_RESULTS_DIR", ROOT / "results")).resolve()


def dataset_dir(name_or_path: str | os.PathLike = DEFAULT_DATASET) -> Path:
    """Resolve a dataset given by name (a folder under the data root) or by path.

    A path that exists as given (absolute, or relative to the working directory) or
    relative to the repository root wins; otherwise the name is taken under
    :func:`data_root`. The special name ``corel5k-annotations`` is the real
    Corel-5k annotation folder beside the checkout.
    """
    text = str(name_or_path)
    if text == "corel5k-annotations":
        return SHARED_COREL5K
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    for candidate in (Path.cwd() / path, ROOT / path):
        if candidate.exists():
            return candidate.resolve()
    return data_root() / path


def cache_dir() -> Path:
    """Derived, re-computable files (label-vector cache, decoded image caches)."""
    return data_root() / "cache"


def runs_dir() -> Path:
    return results_root() / "runs"


def run_dir(name: str) -> Path:
    return runs_dir() / name


def tables_dir() -> Path:
    return results_root() / "tables"


def figures_dir() -> Path:
    return results_root() / "figures"


def executed_dir() -> Path:
    return results_root() / "executed"


def reports_dir() -> Path:
    return results_root() / "reports"


def portable(path: str | os.PathLike) -> str:
    """A path as it may be written for people and configs: relative to the repository when
    it lies inside it (``data/scenes``), else as given. Never this machine's absolute path
    for files of the repository."""
    p = Path(path).expanduser()
    absolute = p if p.is_absolute() else (Path.cwd() / p)
    try:
        return absolute.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def from_portable(text: str | os.PathLike) -> Path:
    """Inverse of :func:`portable`: a relative path is taken from the repository root."""
    p = Path(text).expanduser()
    return p if p.is_absolute() else (ROOT / p).resolve()


def ensure(path: Path) -> Path:
    """Create a folder (and parents) and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
