"""The run folder: the one reader and writer of what a training run leaves behind.

Layout (docs/CONTRACTS.md, "Run folder")::

    <run>/config.json          every setting, resolved (dataset path portable)
    <run>/history.csv          one row per epoch
    <run>/checkpoint.pt        last epoch, for resuming
    <run>/best.pt              the selected epoch
    <run>/thresholds.json      per-label MCC thresholds and how they were tuned
    <run>/predictions.csv      test scores; val_predictions.csv the tuning split's scores
    <run>/metrics.json         test metrics; metrics-<split>.json for other splits
    <run>/.lock                held by the process writing the run

Training, inference, evaluation, the results tables, plots and notebooks all go through
:class:`RunFolder`; nothing else parses these files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib import paths
from lib.errors import AIAError
from lib.utils import atomic_save, atomic_write_json

#: files a training run writes (anything else in the folder is not the run's)
RUN_FILES = ("config.json", "history.csv", "checkpoint.pt", "best.pt", "thresholds.json",
             "predictions.csv", "val_predictions.csv", "metrics.json", ".lock")
#: metric blocks of metrics.json (threshold 0.5, MCC thresholds, top-5, top-3)
METRIC_BLOCKS = ("at_0.5", "mcc", "top5", "top3")
#: the seven metrics of each block
METRIC_KEYS = (
    "per_class_precision", "per_class_recall", "per_class_f1",
    "per_image_precision", "per_image_recall", "per_image_f1", "n_plus",
)


#: the run folder of seed n of a configuration: runs/<run>/seed-<n>/
SEED_FOLDER = "seed-{seed}"


def seed_dir(runs_dir: str | os.PathLike, run: str, seed: int) -> Path:
    """The run folder of configuration ``run`` trained with ``seed``."""
    return Path(runs_dir) / run / SEED_FOLDER.format(seed=int(seed))


class RunError(AIAError):
    """A run folder that is missing, incomplete or malformed; names the file."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint of the run folder, loaded with ``weights_only=True`` (no code runs from
    the file); a truncated or foreign file is an error naming it (lib.utils.load_torch)."""
    from lib.utils import load_torch

    return load_torch(path)


class RunFolder:
    """One run folder; properties read lazily, writers are atomic."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def resolve(cls, run: str | os.PathLike | RunFolder) -> RunFolder:
        """A run given by folder path or by name under :func:`lib.paths.runs_dir`; it must
        hold a config.json."""
        if isinstance(run, RunFolder):
            return run
        path = Path(run).expanduser()
        if not path.is_dir():
            path = paths.run_dir(str(run))
        folder = cls(path)
        if not folder.config_path.is_file():
            raise RunError(f"run {str(run)!r}: no run folder with config.json at "
                           f"{paths.portable(path)}; results folder "
                           f"{paths.results_origin()}; {paths.missing_run_hint(str(run))}")
        return folder

    def __repr__(self) -> str:
        return f"RunFolder({paths.portable(self.path)!r})"

    # ----------------------------------------------------------------- file names
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def best_path(self) -> Path:
        return self.path / "best.pt"

    @property
    def thresholds_path(self) -> Path:
        return self.path / "thresholds.json"

    @property
    def lock_path(self) -> Path:
        return self.path / ".lock"

    def predictions_path(self, split: str = "test") -> Path:
        return self.path / ("predictions.csv" if split == "test" else f"{split}_predictions.csv")

    def metrics_path(self, split: str = "test") -> Path:
        return self.path / ("metrics.json" if split == "test" else f"metrics-{split}.json")

    # ----------------------------------------------------------------- reading
    @property
    def exists(self) -> bool:
        return self.config_path.is_file()

    @cached_property
    def config(self) -> dict[str, Any]:
        config = _read_json(self.config_path)
        if not isinstance(config, dict):
            raise RunError(f"{self.config_path}: expected a JSON object")
        return config

    def reload(self) -> RunFolder:
        """Forget cached reads (after the run wrote again)."""
        self.__dict__.pop("config", None)
        return self

    @property
    def name(self) -> str:
        return str(self.config.get("run_name") or self.path.name)

    @property
    def leaky(self) -> bool:
        """Selected (or tuned) on the test split: the reference protocol."""
        if self.config.get("protocol") == "reference":
            return True
        return bool(self.config.get("leaky", False))

    @property
    def labels(self) -> list[str]:
        labels = self.config.get("labels")
        if not isinstance(labels, list):
            raise RunError(f"{self.config_path}: no 'labels' list")
        return labels

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def dataset(self) -> Path:
        """The dataset folder the run trained on (stored portable, see lib.paths)."""
        if "dataset" not in self.config:
            raise RunError(f"{self.config_path}: no 'dataset' entry")
        return paths.from_portable(self.config["dataset"])

    @property
    def dataset_name(self) -> str:
        return str(self.config.get("dataset_name") or Path(str(self.config.get("dataset",
                                                                           "?"))).name)

    @property
    def standin(self) -> bool:
        """Trained on stand-in images (see lib.standin), not on the real dataset."""
        return bool(self.config.get("standin", False))

    @property
    def finished(self) -> bool:
        return self.metrics_path().is_file()

    def history(self) -> pd.DataFrame:
        if not self.history_path.is_file():
            raise RunError(f"{self.history_path}: missing (the run has not finished an epoch)")
        return pd.read_csv(self.history_path)

    def metrics(self, split: str = "test", *, required: bool = True) -> dict[str, Any] | None:
        path = self.metrics_path(split)
        if not path.is_file():
            if required:
                raise RunError(f"{path}: missing (training not finished)")
            return None
        m = _read_json(path)
        for block in ("at_0.5", "mcc"):
            if block not in m:
                raise RunError(f"{path}: no {block!r} block")
            absent = [k for k in METRIC_KEYS if k not in m[block]]
            if absent:
                raise RunError(f"{path}: block {block!r} lacks {absent}")
        return m

    def thresholds(self, labels: Sequence[str] | None = None) -> np.ndarray:
        """Per-label thresholds in ``labels`` order (default: the run's vocabulary)."""
        from lib import metrics

        if not self.thresholds_path.is_file():
            raise RunError(f"{self.thresholds_path}: missing (training not finished)")
        return metrics.read_thresholds(self.thresholds_path,
                                       list(labels) if labels is not None else self.labels)

    def threshold_info(self) -> dict[str, Any]:
        return _read_json(self.thresholds_path)

    def predictions(self, split: str = "test") -> pd.DataFrame:
        """Scores indexed by image name, one column per label (vocabulary order)."""
        from lib import metrics

        path = self.predictions_path(split)
        if not path.is_file():
            raise RunError(f"{path}: missing")
        return metrics.read_predictions(path, self.labels)

    def key_metrics(self) -> dict[str, Any]:
        """The headline numbers of a finished run (from metrics.json and history.csv)."""
        m = self.metrics()
        hist = self.history()
        best = hist.loc[hist["best"].astype(bool), "epoch"] if "best" in hist else []
        return {
            "test_mAP": m["mean_average_precision"],
            "test_per_class_f1_0.5": m["at_0.5"]["per_class_f1"],
            "test_per_class_f1_mcc": m["mcc"]["per_class_f1"],
            "test_per_image_f1_0.5": m["at_0.5"]["per_image_f1"],
            "test_n_plus_0.5": m["at_0.5"]["n_plus"],
            "test_per_class_f1_top3": m["top3"]["per_class_f1"],
            "best_epoch": int(best.iloc[-1]) if len(best) else None,
            "epochs_trained": int(hist["epoch"].max()),
            "train_seconds": float(hist["seconds"].sum()),
            "leaky": self.leaky,
        }

    def foreign_files(self) -> list[Path]:
        """Files in the folder that a run does not write (a user's own files)."""
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir()
                      if p.name not in RUN_FILES and not p.name.startswith(".")
                      and not p.name.startswith("metrics-")
                      and not p.name.endswith("_predictions.csv"))

    # ----------------------------------------------------------------- writing
    def write_config(self, config: dict[str, Any]) -> Path:
        self.__dict__.pop("config", None)
        return atomic_write_json(self.config_path, config)

    def write_history(self, rows: Sequence[dict[str, Any]]) -> Path:
        frame = pd.DataFrame(list(rows))
        return atomic_save(self.history_path, lambda p: frame.to_csv(p, index=False))

    def write_thresholds(self, labels: Sequence[str], thresholds: np.ndarray,
                         **info: Any) -> Path:
        return atomic_write_json(self.thresholds_path, {
            "labels": list(labels), "thresholds": [float(t) for t in thresholds], **info})

    def write_predictions(self, names: Sequence[str], labels: Sequence[str], scores: np.ndarray,
                          split: str = "test") -> Path:
        frame = pd.DataFrame(np.asarray(scores, dtype=np.float64), columns=list(labels))
        frame.insert(0, "image_name", list(names))
        return atomic_save(self.predictions_path(split),
                           lambda p: frame.to_csv(p, index=False, float_format="%.8g"))

    def write_metrics(self, result: dict[str, Any], split: str = "test") -> Path:
        return atomic_write_json(self.metrics_path(split), result)

    def clear_results(self) -> None:
        """Remove every file a run writes (before a run starts over in this folder)."""
        for name in RUN_FILES:
            if name != ".lock":
                (self.path / name).unlink(missing_ok=True)
        for p in list(self.path.glob("metrics-*.json")) + list(self.path.glob("*_predictions.csv")):
            p.unlink(missing_ok=True)
        self.__dict__.pop("config", None)


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunFolder]:
    """Every run folder (with config.json) directly or one level below ``runs_dir``
    (``<run>/`` and ``<run>/seed-<n>/``), sorted by path."""
    root = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    if not root.is_dir():
        return []
    found = [RunFolder(p.parent) for p in root.glob("*/config.json")]
    found += [RunFolder(p.parent) for p in root.glob("*/*/config.json")]
    return sorted(found, key=lambda r: str(r.path))
