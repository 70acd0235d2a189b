"""Reading a run folder for analysis (notebooks 05 and 06): scores, ground truth, tables,
and the label vectors before and after the GCN.

A run is given by the path of its folder, or by configuration name and seed (the folder
``runs/<name>/seed-<n>/`` under :func:`lib.core.paths.runs_dir`); every read goes through
:class:`lib.training.runs.RunFolder`. The test split's scores come from ``predictions.csv`` and its
numbers from ``metrics.json``; another split is predicted with the run's best model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from lib.analysis.comparisons import augmentation_text as text
from lib.core import paths
from lib.data import datasets
from lib.method import embeddings, metrics
from lib.training.runs import METRIC_BLOCKS, METRIC_KEYS, SEED_FOLDER, RunError, RunFolder

SETTINGS = dict(zip(METRIC_BLOCKS, ("threshold 0.5", "MCC thresholds", "top-5", "top-3"),
                    strict=True))
METRIC_NAMES = dict(zip(METRIC_KEYS, ("per-class P", "per-class R", "per-class F1",
                                      "per-image P", "per-image R", "per-image F1", "N+"),
                        strict=True))


def resolve_run(run: str | os.PathLike | RunFolder, seed: int | None = None) -> RunFolder:
    """A run folder given by path, or by configuration name under the runs folder: with
    ``seed``, ``runs/<name>/seed-<seed>/``; without, the folder itself when it holds a
    config.json, else its lowest seed. A folder whose config.json names another seed than
    ``seed`` is an error, and so is a missing one (the message lists the seeds there)."""
    if isinstance(run, RunFolder):
        return run
    path = Path(run).expanduser()
    folder = path if path.is_dir() else paths.run_dir(str(run))
    seeds = sorted(int(p.parent.name.split("-", 1)[1]) for p in folder.glob("seed-*/config.json")
                   if p.parent.name.split("-", 1)[1].isdigit())
    if seed is not None and seed in seeds:
        return RunFolder(folder / SEED_FOLDER.format(seed=seed))
    if (folder / "config.json").is_file():
        found = RunFolder(folder)
        if seed is not None and int(found.config.get("seed", 0)) != int(seed):
            raise RunError(f"{paths.portable(found.config_path)}: run of seed "
                           f"{found.config.get('seed', 0)}, not seed {seed}")
        return found
    if seed is None and seeds:
        return RunFolder(folder / SEED_FOLDER.format(seed=seeds[0]))
    if seeds:
        raise RunError(f"run {str(run)!r}: no seed {seed} at {paths.portable(folder)} (seeds "
                       f"there: {seeds})")
    return RunFolder.resolve(folder)


@dataclass
class RunResults:
    """One run's scores on one split, with everything needed to analyse them."""

    run: RunFolder
    dataset: Any                   #: lib.data.datasets.AnnotatedDataset
    split: str
    labels: list[str]
    names: list[str]
    y_true: np.ndarray             #: N x C 0/1
    y_score: np.ndarray            #: N x C sigmoid scores
    thresholds: np.ndarray         #: C, tuned on validation (thresholds.json)
    metrics: dict[str, Any]        #: metrics.json (test) or computed here

    @property
    def config(self) -> dict[str, Any]:
        return self.run.config

    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def name(self) -> str:
        return self.run.name


def read_config(run: str | os.PathLike | RunFolder, seed: int | None = None) -> dict[str, Any]:
    """A run folder's config.json."""
    return resolve_run(run, seed).config


def run_dataset(run: str | os.PathLike | RunFolder):
    """The dataset a run was trained on (images not checked; the same validation carve)."""
    folder = resolve_run(run)
    return datasets.load_dataset(folder.dataset, check_images=False,
                             seed=int(folder.config.get("seed", 0)))


def augmentation_text(run: RunFolder) -> str:
    """How many training images were augmented (config.json ``augmentation``)."""
    found = text(run.config)
    return "not augmented" if found is None else f"augmented: {found}"


def load_results(run: str | os.PathLike | RunFolder, split: str = "test",
                 seed: int | None = None) -> RunResults:
    """Scores, ground truth, thresholds and metrics of a run on ``split``."""
    folder = resolve_run(run, seed)
    dataset = run_dataset(folder)
    if split not in dataset.splits:
        raise ValueError(f"{paths.portable(dataset.root)}: no split {split!r} (has "
                         f"{sorted(dataset.splits)})")
    labels = list(dataset.labels)
    from lib.training.inference import vocabulary_file  # lazy import (torch)

    folder.check_dataset_labels(labels, vocabulary_file(dataset))
    truth = dataset.splits[split]
    names = list(truth.names)
    thresholds = folder.thresholds(labels)
    if split == "test" and folder.predictions_path("test").is_file():
        scores = folder.predictions("test")
        missing = sorted(set(names) - set(scores.index))
        if missing:
            raise RunError(f"{paths.portable(folder.predictions_path('test'))}: {len(missing)} "
                           f"test images missing {missing[:5]}")
        y_score = scores.loc[names].to_numpy()
    else:
        from lib.training import inference  # lazy import (torch)

        model, cfg = inference.load_model(folder)  # best.pt checked against config.json
        y_score = inference.predict(model, dataset, split, config=cfg, device="cpu")
    result = folder.metrics(split, required=False)
    if result is None:
        result = {"split": split, "leaky": folder.leaky,
                  **metrics.evaluate_scores(truth.targets, y_score, thresholds)}
    return RunResults(folder, dataset, split, labels, names,
                      np.asarray(truth.targets, dtype=np.uint8), y_score, thresholds, result)


def metrics_table(result: dict[str, Any]) -> pd.DataFrame:
    """The metric blocks of a ``metrics.json`` side by side: one row per metric, one column
    per setting (threshold 0.5, MCC thresholds, top-5, top-3)."""
    columns = {SETTINGS[k]: result[k] for k in SETTINGS if k in result}
    table = pd.DataFrame(columns).loc[list(METRIC_NAMES)]
    table.index = [METRIC_NAMES[k] for k in table.index]
    return table


def per_label_table(results: RunResults) -> pd.DataFrame:
    """One row per label: training and split frequency, AP, the MCC threshold, and
    precision/recall/F1 at 0.5 and at the MCC thresholds."""
    train = results.dataset.splits["train"].targets.sum(axis=0, dtype=np.int64)
    y, s = results.y_true.astype(bool), results.y_score
    table = pd.DataFrame({"label": results.labels, "train_images": train,
                          f"{results.split}_images": y.sum(axis=0)})
    table["ap"] = [average_precision_score(y[:, c], s[:, c]) if y[:, c].any() else np.nan
                   for c in range(y.shape[1])]
    table["mcc_threshold"] = results.thresholds
    for suffix, threshold in (("0.5", 0.5), ("mcc", results.thresholds)):
        per = metrics.per_label_metrics(y, s >= threshold)
        for key in ("precision", "recall", "f1"):
            table[f"{key}_{suffix}"] = per[key]
    return table


def best_and_worst(table: pd.DataFrame, n: int = 10, by: str = "f1_mcc",
                   split_column: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``n`` best and worst labels by ``by`` among labels present in the split (ties:
    the more frequent label first)."""
    split_column = split_column or next(c for c in table.columns
                                        if c.endswith("_images") and c != "train_images")
    present = table[table[split_column] > 0]
    ranked = present.sort_values([by, "train_images"], ascending=[False, False],
                                 kind="stable")
    worst = present.sort_values([by, "train_images"], ascending=[True, False], kind="stable")
    return ranked.head(n).reset_index(drop=True), worst.head(n).reset_index(drop=True)


def frequency_correlation(table: pd.DataFrame, column: str = "f1_mcc") -> float:
    """Spearman correlation between a per-label score and the label's training frequency
    (how much the long tail costs); NaN when undefined."""
    from scipy.stats import spearmanr  # lazy import (scipy)

    if len(table) < 2 or table[column].nunique() < 2 or table["train_images"].nunique() < 2:
        return float("nan")
    return float(spearmanr(table["train_images"], table[column]).statistic)


def example_indices(n_images: int, n_examples: int, seed: int = 0) -> np.ndarray:
    """``n_examples`` distinct image indices drawn with ``seed`` (sorted)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_images, size=min(n_examples, n_images), replace=False))


def main_numbers(result: dict[str, Any]) -> dict[str, float]:
    """The numbers notebook 05 records, flat: ``mean_average_precision`` and
    ``<setting>.<metric>`` for every block of ``metrics.json``."""
    out = {"mean_average_precision": result["mean_average_precision"]}
    for setting in SETTINGS:
        for key, value in result.get(setting, {}).items():
            out[f"{setting}.{key}"] = value
    return out


# --------------------------------------------------------------------------- label vectors


def label_vectors_before_after(model, config: dict[str, Any]
                               ) -> tuple[np.ndarray, np.ndarray, str]:
    """The label vectors a run started from (its GloVe input) and the per-label classifiers
    it learnt: the GCN's output W (C x D), for a linear head the rows of the linear
    classifier's weight, for another head its ``classifiers()`` (CSRA: ``m_i / |m_i|``; an
    ML-Decoder head has none: an error). Returns ``(before, after, description of after)``."""
    from lib.method.models import GCNHead, ResidualGCNHead  # lazy import (timm, torch)

    net = getattr(model, "net", model)              # lib.training.inference.Annotator wraps the net
    head = net.head
    gcn = head.gcn if isinstance(head, ResidualGCNHead) else head
    if isinstance(gcn, GCNHead):
        before = gcn.label_vectors.detach().cpu().numpy()
        graph = {"gcn-identity": "A = I", "gcn-learned": "learnt label graph"}.get(
            config.get("head"), "label graph")
        description = ("effective classifiers W_linear + W_gcn"
                       if isinstance(head, ResidualGCNHead) else "GCN output W") + f" ({graph})"
        after = net.label_classifiers()
    else:
        if hasattr(head, "weight"):
            after = head.weight
            description = "linear classifier weights (no GCN: the label vectors are unused)"
        else:  # a head of lib.method.heads with its own per-label classifiers (CSRA), or none
            after = net.label_classifiers()
            if after is None:
                raise ValueError(f"head {config.get('head')!r} has no per-label classifiers "
                                 "(C x D) to set beside the label vectors")
            description = "the head's per-label classifiers (label_classifiers())"
        before = embeddings.cached_label_vectors(paths.from_portable(config["dataset"]),
                                                 config["labels"],
                                                 config["embeddings"],
                                                 seed=config.get("seed", 0))
    return np.asarray(before, dtype=np.float64), after.detach().cpu().double().numpy(), \
        description
