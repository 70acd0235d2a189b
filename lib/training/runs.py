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

The folder is the one record of a run, so it is never trusted blindly: config.json is
validated on every read as strictly as the command line checks its options
(:func:`validate_config`), a checkpoint's own record (settings, labels, sizes) must agree
with it (:func:`check_checkpoint`), and the dataset a run is scored on must have its labels
in its order (:meth:`RunFolder.check_dataset_labels`); a disagreement stops the command with
one line saying which file disagrees with which.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import types
import typing
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lib.core import config as settings
from lib.core import paths
from lib.core.errors import AIAError
from lib.core.fileio import atomic_write_json, atomic_write_text, load_torch

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


# --------------------------------------------------------------------------- the run's record

def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, numbers.Real) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _kind(check: Callable[[Any], bool], what: str) -> Callable[[Any], str | None]:
    return lambda v: None if check(v) else f"must be {what}"


def _int_at_least(low: int) -> Callable[[Any], str | None]:
    return lambda v: (None if _is_int(v) and v >= low else f"must be an integer >= {low}")


def _triple(positive: bool) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = (isinstance(v, list) and len(v) == 3 and all(_is_number(x) for x in v)
              and (not positive or all(x > 0 for x in v)))
        return None if ok else ("must be a list of 3 finite numbers"
                                + (" > 0" if positive else ""))
    return check


def _labels_check(v: Any) -> str | None:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        return "must be a non-empty list of non-empty strings"
    if len(set(v)) != len(v):
        dupes = sorted({x for x in v if v.count(x) > 1})
        return f"must not repeat a label (repeated: {dupes[:5]})"
    return None


_STR = _kind(lambda v: isinstance(v, str), "a string")
_BOOL = _kind(lambda v: isinstance(v, bool), "true or false")
#: what config.json records besides the TrainConfig settings: key -> check (None when the
#: value is valid, else what is wrong). The trainer writes exactly these keys
#: (lib.training.trainer.Trainer.run_config); a key not here, or not a TrainConfig setting, is an
#: error of every reader (register new keys here).
RECORD_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "run_name": _STR,
    "dataset": _STR,
    "dataset_name": _STR,
    "standin": _BOOL,
    "leaky": _BOOL,
    "selection_split": _kind(lambda v: v in ("val", "test"), "'val' or 'test'"),
    "tuning_split": _kind(lambda v: v in ("val", "train"), "'val' or 'train'"),
    "labels": _labels_check,
    "num_labels": _int_at_least(1),
    "n_train": _int_at_least(1),
    "val_carved": _BOOL,
    "augmentation": _kind(lambda v: v is None or isinstance(v, dict), "null or an object"),
    "normalization_source": _STR,
    "normalization_mean": _triple(False),
    "normalization_std": _triple(True),
    "precision": _kind(lambda v: v in ("fp32", "fp32+tf32", "bf16-autocast"),
                       "'fp32', 'fp32+tf32' or 'bf16-autocast'"),
    "tf32": _kind(lambda v: isinstance(v, dict)
                  and all(isinstance(x, bool) for x in v.values()),
                  "an object of booleans"),
    "world_size": _int_at_least(1),
    "batch_size_per_process": _int_at_least(1),
    "cpu_threads": _int_at_least(1),
    "git_commit": _STR,
    "versions": _kind(lambda v: isinstance(v, dict)
                      and all(isinstance(x, str) for x in v.values()),
                      "an object of version strings"),
}


def _setting_type_problem(hint: Any, value: Any) -> str | None:
    """What is wrong with the JSON type of ``value`` for a TrainConfig field of type
    ``hint`` (no coercion: config.json holds typed values, not command-line strings)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if value is None:
        return "may not be null"
    if typing.get_origin(hint) is tuple:
        items = [a for a in args if a is not Ellipsis]
        if not isinstance(value, list) or (Ellipsis not in args and len(value) != len(items)):
            return f"must be a list of {len(items)} values"
        return next((p for p in (_setting_type_problem(items[0] if items else float, x)
                                 for x in value) if p), None)
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        return None if _is_int(value) else "must be an integer"
    if hint is float:
        return None if _is_number(value) else "must be a finite number"
    if hint is str:
        return None if isinstance(value, str) else "must be a string"
    return None


def validate_config(config: Any, where: str | os.PathLike) -> dict[str, Any]:
    """``config`` (the parsed config.json of a run folder) checked as strictly as the
    command line checks its options: every TrainConfig setting present, of its type and in
    its range (through ``TrainConfig.validate``), every recorded key (:data:`RECORD_CHECKS`)
    valid, no unknown key, ``num_labels`` equal to the number of labels. Returns it; else
    :class:`RunError` naming the file and the key."""
    from lib.training.settings import TrainConfig  # lazy import (sklearn, timm, torch)

    where = paths.portable(Path(where))
    if not isinstance(config, dict):
        raise RunError(f"{where}: expected a JSON object, got {type(config).__name__}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(config) - set(fields) - set(RECORD_CHECKS))
    if unknown:
        raise RunError(f"{where}: unknown key {unknown[0]!r}"
                       + (f" (and {len(unknown) - 1} more: {unknown[1:4]})"
                          if len(unknown) > 1 else "")
                       + "; config.json is written by the training run, do not add keys")
    missing = [k for k in (*fields, *RECORD_CHECKS) if k not in config]
    if missing:
        raise RunError(f"{where}: no {missing[0]!r} entry"
                       + (f" (missing {len(missing)} keys: {missing[:5]})"
                          if len(missing) > 1 else "")
                       + " (written by another version? train the run again)")
    for key, check in RECORD_CHECKS.items():
        problem = check(config[key])
        if problem:
            raise RunError(f"{where}: {key!r} {problem}, got {config[key]!r:.80}")
    for key in fields:
        problem = _setting_type_problem(hints[key], config[key])
        if problem:
            raise RunError(f"{where}: {key!r} {problem}, got {config[key]!r:.80}")
    try:
        settings.build(TrainConfig, None, None, {k: config[k] for k in fields})
    except settings.ConfigError as exc:
        raise RunError(f"{where}: {exc}") from None
    if config["num_labels"] != len(config["labels"]):
        raise RunError(f"{where}: 'num_labels' is {config['num_labels']} but 'labels' lists "
                       f"{len(config['labels'])}")
    return config


def make_config(labels: Sequence[str], dataset: str | os.PathLike, **values: Any
                ) -> dict[str, Any]:
    """A complete, valid config.json record for ``labels`` and ``dataset``: the TrainConfig
    defaults, the recorded keys a training run writes, then ``values`` (validated). For
    tools and tests that write a run folder without training one."""
    from lib.training.settings import TrainConfig  # lazy import (sklearn, timm, torch)

    settings = TrainConfig().to_dict()
    record = {**settings, "amp": False}
    protocol = values.get("protocol", settings["protocol"])
    labels = list(labels)
    record.update({
        "run_name": "run", "dataset": str(dataset), "data": str(dataset),
        "dataset_name": Path(str(dataset)).name, "standin": False,
        "leaky": protocol == "reference",
        "selection_split": "test" if protocol == "reference" else "val",
        "tuning_split": "train" if protocol == "reference" else "val",
        "labels": labels, "num_labels": len(labels), "n_train": 1, "val_carved": True,
        "augmentation": None, "normalization_source": "computed",
        "normalization_mean": [0.5, 0.5, 0.5],
        "normalization_std": [0.25, 0.25, 0.25], "world_size": 1,
        "batch_size_per_process": values.get("batch_size", settings["batch_size"]),
        "precision": "fp32", "tf32": {"matmul_allow_tf32": False, "cudnn_allow_tf32": False},
        "cpu_threads": 1, "git_commit": "unknown", "versions": {},
    })
    record.update(values)
    return validate_config(_jsonish(record), "config.json")


def label_differences(expected: Sequence[str], got: Sequence[str]) -> str | None:
    """How label list ``got`` differs from ``expected`` (None when equal): labels missing,
    extra, or the same labels in another order (the first position that differs)."""
    expected, got = list(expected), list(got)
    if expected == got:
        return None
    missing = [x for x in expected if x not in set(got)]
    extra = [x for x in got if x not in set(expected)]
    parts = [f"{len(got)} labels instead of {len(expected)}"] if len(got) != len(expected) \
        else []
    if missing:
        parts.append(f"{len(missing)} missing ({', '.join(map(repr, missing[:5]))}"
                     f"{', ...' if len(missing) > 5 else ''})")
    if extra:
        parts.append(f"{len(extra)} extra ({', '.join(map(repr, extra[:5]))}"
                     f"{', ...' if len(extra) > 5 else ''})")
    if not missing and not extra:
        i = next(i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b)
        parts.append(f"same labels in another order (position {i}: {got[i]!r} instead of "
                     f"{expected[i]!r})" if len(got) == len(expected)
                     else "repeated labels")
    return "; ".join(parts)


def check_labels(expected: Sequence[str], expected_from: str | os.PathLike,
                 got: Sequence[str], got_from: str | os.PathLike) -> None:
    """:class:`RunError` saying which file disagrees with which when two label lists of a
    run differ (scores computed against the wrong labels are never reported)."""
    diff = label_differences(expected, got)
    if diff:
        raise RunError(f"{paths.portable(Path(got_from))}: labels disagree with "
                       f"{paths.portable(Path(expected_from))}: {diff}")


def _jsonish(value: Any) -> Any:
    """A value as JSON would hold it (tuples as lists), for comparing records."""
    return json.loads(json.dumps(value, default=str))


#: settings config.json records resolved (the dataset folder of ``data``, the run name
#: ``run_name`` defaults to), so not as the checkpoint's copy of the settings holds them
_RESOLVED = ("data", "run_name")


def check_checkpoint(state: Any, path: Path, config: dict[str, Any], config_path: Path,
                     ) -> dict[str, Any]:
    """A loaded checkpoint (best.pt or checkpoint.pt) checked against the run's config.json:
    every setting recorded in both agrees (except those a continuation may change,
    ``lib.training.settings.RESUME_FREE``), and so do its labels and the sizes of the label
    vectors and the
    adjacency it stores. Returns ``state``; else :class:`RunError` naming both files."""
    from lib.training.settings import RESUME_FREE  # lazy import (sklearn, timm, torch)

    where = paths.portable(path)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise RunError(f"{where}: not a checkpoint of a training run (no 'model' and "
                       "'config' entries)")
    saved = state["config"]
    if not isinstance(saved, dict):
        raise RunError(f"{where}: its 'config' entry is not a mapping")
    cfg = paths.portable(config_path)
    for key in sorted(set(saved) - set(RESUME_FREE) - set(_RESOLVED)):
        if key not in config:
            raise RunError(f"{where}: records setting {key!r} that {cfg} lacks")
        if _jsonish(saved[key]) != _jsonish(config[key]):
            raise RunError(f"{where}: disagrees with {cfg} on {key!r} "
                           f"({_jsonish(saved[key])!r:.60} vs {config[key]!r:.60})")
    labels = config["labels"]
    if "labels" in state:
        check_labels(labels, config_path, list(state["labels"]), path)
    for key, shape in (("label_vectors", (len(labels), None)),
                       ("adjacency", (len(labels), len(labels)))):
        value = state.get(key)
        if value is None:
            continue
        got = tuple(getattr(value, "shape", ()))
        if len(got) != 2 or any(s is not None and g != s for g, s in zip(got, shape,
                                                                          strict=True)):
            raise RunError(f"{where}: {key} of shape {got} but {cfg} has "
                           f"{len(labels)} labels")
    return state


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint of the run folder, loaded with ``weights_only=True`` (no code runs from
    the file); a truncated or foreign file is an error naming it (lib.core.fileio.load_torch)."""
    return load_torch(path)


class RunFolder:
    """One run folder; properties read lazily, writers are atomic."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def resolve(cls, run: str | os.PathLike | RunFolder) -> RunFolder:
        """A run given by folder path or by name under :func:`lib.core.paths.runs_dir`; it must
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
        """config.json, validated (:func:`validate_config`): a bad type, range, unknown or
        missing key is a :class:`RunError` naming the file and the key."""
        return validate_config(self.raw_config(), self.config_path)

    def raw_config(self) -> Any:
        """config.json as parsed, not validated (for comparing with a new run's)."""
        return _read_json(self.config_path)

    def checkpoint(self, which: str = "best") -> dict[str, Any]:
        """``best.pt`` (``best``) or ``checkpoint.pt`` (``last``), loaded safely and checked
        against config.json (:func:`check_checkpoint`)."""
        files = {"best": self.best_path, "last": self.checkpoint_path}
        if which not in files:
            raise ValueError(f"which={which!r}; expected 'best' or 'last'")
        path = files[which]
        if not path.exists():
            raise RunError(f"{paths.portable(path)}: missing (training not run or not "
                           "finished)")
        return check_checkpoint(load_checkpoint(path), path, self.config, self.config_path)

    def check_dataset_labels(self, labels: Sequence[str], where: str | os.PathLike) -> None:
        """:class:`RunError` unless the dataset's vocabulary ``labels`` (read from
        ``where``) is the run's, in the same order."""
        check_labels(self.labels, self.config_path, labels, where)

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
        return list(self.config["labels"])

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def dataset(self) -> Path:
        """The dataset folder the run trained on (stored portable, see lib.core.paths)."""
        if "dataset" not in self.config:
            raise RunError(f"{self.config_path}: no 'dataset' entry")
        return paths.from_portable(self.config["dataset"])

    @property
    def dataset_name(self) -> str:
        return str(self.config.get("dataset_name") or Path(str(self.config.get("dataset",
                                                                           "?"))).name)

    @property
    def standin(self) -> bool:
        """Trained on stand-in images (see lib.data.drawn.standin), not on the real dataset."""
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
        from lib.data import predictions  # lazy import (sklearn)

        if not self.thresholds_path.is_file():
            raise RunError(f"{self.thresholds_path}: missing (training not finished)")
        return predictions.read_thresholds(self.thresholds_path,
                                           list(labels) if labels is not None else self.labels)

    def threshold_info(self) -> dict[str, Any]:
        return _read_json(self.thresholds_path)

    def predictions(self, split: str = "test") -> pd.DataFrame:
        """Scores indexed by image name, one column per label (vocabulary order)."""
        from lib.data import predictions  # lazy import (sklearn)

        path = self.predictions_path(split)
        if not path.is_file():
            raise RunError(f"{path}: missing")
        return predictions.read_predictions(path, self.labels)

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
        validate_config(_jsonish(config), self.config_path)  # readers will accept it
        return atomic_write_json(self.config_path, config)

    def write_history(self, rows: Sequence[dict[str, Any]]) -> Path:
        frame = pd.DataFrame(list(rows))
        return atomic_write_text(self.history_path, frame.to_csv(index=False))

    def write_thresholds(self, labels: Sequence[str], thresholds: np.ndarray,
                         **info: Any) -> Path:
        return atomic_write_json(self.thresholds_path, {
            "labels": list(labels), "thresholds": [float(t) for t in thresholds], **info})

    def write_predictions(self, names: Sequence[str], labels: Sequence[str], scores: np.ndarray,
                          split: str = "test") -> Path:
        frame = pd.DataFrame(np.asarray(scores, dtype=np.float64), columns=list(labels))
        frame.insert(0, "image_name", list(names))
        return atomic_write_text(self.predictions_path(split),
                                 frame.to_csv(index=False, float_format="%.8g"))

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
