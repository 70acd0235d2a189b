"""The one place paths come from.

Everything is relative to the repository root (found from this file, not from the
working directory, so notebooks run by papermill from ``notebooks/``, by JupyterLab, plain
Jupyter or VS Code see the same paths as the CLI).

The results rule (one rule for every way a notebook or command runs):

- ``AIA_RESULTS_DIR`` names the results folder a notebook or command reads and writes
  (``runs/``, ``tables/``, ``figures/``, ``executed/``, ``reports/`` under it). The pipeline
  (``make reproduce``) sets it explicitly for every notebook it runs, to the parameter set's
  folder ``results/<set>/``; that is the only way a notebook learns it (no notebook
  parameter). A relative value is taken from the repository root.
- Unset (stepping through in ``make lab``, plain Jupyter, VS Code, a bare
  ``python -m lib train``), it is the scratch folder ``results/lab/``, so interactive work
  never overwrites the committed results of a parameter set. To look at a pipeline's run
  interactively, give notebooks 05/06 its folder's path as ``run_name`` (figures still go to
  ``results/lab/``).
- The parameter sets' folders ``results/<set>/`` lie under :func:`results_base`
  (``<root>/results``; ``AIA_RESULTS_BASE`` moves it, which is how tests isolate it).

``AIA_DATA_DIR`` moves the datasets and derived data (default ``<root>/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


#: the scratch results folder of interactive work, under :func:`results_base`
LAB_RESULTS = "lab"


def _from_root(text: str) -> Path:
    p = Path(text).expanduser()
    return (p if p.is_absolute() else ROOT / p).resolve()


def results_base() -> Path:
    """The folder holding the parameter sets' results folders (``results/<set>/``) and the
    scratch folder ``results/lab/``: ``AIA_RESULTS_BASE``, default ``<root>/results``."""
    return _from_root(os.environ.get("AIA_RESULTS_BASE") or str(ROOT / "results"))


def set_results_dir(name: str) -> Path:
    """The results folder of parameter set ``name``: ``results/<name>/``."""
    return results_base() / name


def results_root() -> Path:
    """The results folder of this process: ``AIA_RESULTS_DIR`` when set (the pipeline sets
    it to ``results/<set>/``), else the scratch folder ``results/lab/``."""
    given = os.environ.get("AIA_RESULTS_DIR")
    return _from_root(given) if given else results_base() / LAB_RESULTS


def results_origin() -> str:
    """One phrase saying which results folder is in use and why, for messages:
    ``results/lab (AIA_RESULTS_DIR unset: the scratch folder of interactive work)``."""
    where = portable(results_root())
    if os.environ.get("AIA_RESULTS_DIR"):
        return f"{where} (from AIA_RESULTS_DIR)"
    return f"{where} (AIA_RESULTS_DIR unset: the scratch folder of interactive work)"


def missing_run_hint(name: str) -> str:
    """What to do when run ``name`` has no folder: train it here, or point at the folder of
    a pipeline run that has it."""
    sets = sorted(p.parent.parent.name for p in results_base().glob(f"*/runs/{name}")
                  if p.parent.parent != results_root())
    hint = (f"train it here with notebook 04 (run_name={name!r}) or "
            f"`python -m lib train --run-name {name}`")
    if sets:
        folder = results_base() / sets[0] / "runs" / name
        hint += (f"; or read the pipeline's run without writing into its folder: "
                 f"run_name={str(folder)!r} (a run folder's path)")
    return hint


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
