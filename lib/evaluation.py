"""Reading a run folder for analysis (notebooks 05 and 06): scores, ground truth, tables,
and the label vectors before and after the GCN.

A run is named (a folder under :func:`lib.paths.runs_dir`) or given by its path. The
test split's scores come from ``predictions.csv`` and its numbers from ``metrics.json``;
another split is predicted with the run's best model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from lib import metrics, paths

SETTINGS = {"at_0.5": "threshold 0.5", "mcc": "MCC thresholds", "top5": "top-5",
            "top3": "top-3"}
METRIC_NAMES = {
    "per_class_precision": "per-class P", "per_class_recall": "per-class R",
    "per_class_f1": "per-class F1", "per_image_precision": "per-image P",
    "per_image_recall": "per-image R", "per_image_f1": "per-image F1", "n_plus": "N+",
}


def resolve_run(run: str | os.PathLike) -> Path:
    """A run folder given by path (an existing folder) or by name (under the runs folder)."""
    path = Path(run).expanduser()
    if not path.is_dir():
        path = paths.run_dir(str(run))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"run {str(run)!r}: no run folder with config.json at {path} "
                                "(train it with notebook 04 or `python -m lib train`)")
    return path.resolve()


@dataclass
class RunResults:
    """One run's scores on one split, with everything needed to analyse them."""

    run_dir: Path
    config: dict[str, Any]
    dataset: Any                   #: lib.data.AnnotatedDataset
    split: str
    labels: list[str]
    names: list[str]
    y_true: np.ndarray             #: N x C 0/1
    y_score: np.ndarray            #: N x C sigmoid scores
    thresholds: np.ndarray         #: C, tuned on validation (thresholds.json)
    metrics: dict[str, Any]        #: metrics.json (test) or computed here

    @property
    def name(self) -> str:
        return str(self.config.get("run_name") or self.run_dir.name)


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A run folder's config.json."""
    path = resolve_run(run_dir) / "config.json"
    return json.loads(path.read_text(encoding="utf-8"))


def run_dataset(config: dict[str, Any]):
    """The dataset a run was trained on (images not checked; same validation carve)."""
    from lib import data

    return data.load_dataset(Path(config["dataset"]), check_images=False,
                             seed=config.get("seed", 0))


def load_results(run: str | os.PathLike, split: str = "test") -> RunResults:
    """Scores, ground truth, thresholds and metrics of a run on ``split``."""
    run_dir = resolve_run(run)
    config = read_config(run_dir)
    dataset = run_dataset(config)
    if split not in dataset.splits:
        raise ValueError(f"{dataset.root}: no split {split!r} (has {sorted(dataset.splits)})")
    labels = list(dataset.labels)
    if list(config.get("labels", labels)) != labels:
        raise ValueError(f"{run_dir / 'config.json'}: labels differ from the dataset's "
                         f"vocabulary at {dataset.root}")
    truth = dataset.splits[split]
    names = list(truth.names)
    thresholds = metrics.read_thresholds(run_dir / "thresholds.json", labels)
    predictions = run_dir / "predictions.csv"
    if split == "test" and predictions.is_file():
        scores = metrics.read_predictions(predictions, labels)
        missing = sorted(set(names) - set(scores.index))
        if missing:
            raise ValueError(f"{predictions}: {len(missing)} test images missing {missing[:5]}")
        y_score = scores.loc[names].to_numpy()
    else:
        from lib import training

        model, cfg = training.load_model(run_dir)
        y_score = training.predict(model, dataset, split, image_size=cfg["image_size"],
                                   device="cpu")
    metrics_file = run_dir / ("metrics.json" if split == "test" else f"metrics-{split}.json")
    if metrics_file.is_file():
        result = json.loads(metrics_file.read_text(encoding="utf-8"))
    else:
        result = {"split": split, "leaky": bool(config.get("leaky", False)),
                  **metrics.evaluate_scores(truth.targets, y_score, thresholds)}
    return RunResults(run_dir, config, dataset, split, labels, names,
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
    from scipy.stats import spearmanr

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
    it learnt: the GCN's output W (C x D), or for a linear head the rows of the linear
    classifier's weight. Returns ``(before, after, description of after)``."""
    from lib import embeddings
    from lib.models import GCNHead

    net = getattr(model, "net", model)              # lib.training.Annotator wraps the net
    head = net.head
    if isinstance(head, GCNHead):
        before = head.label_vectors.detach().cpu().numpy()
        graph = "A = I" if config.get("head") == "gcn-identity" else "label graph"
        description = f"GCN output W ({graph})"
    else:
        before = embeddings.cached_label_vectors(Path(config["dataset"]), config["labels"],
                                                 config["embeddings"],
                                                 seed=config.get("seed", 0))
        description = "linear classifier weights (no GCN: the label vectors are unused)"
    after = (net.label_classifiers() if isinstance(head, GCNHead) else head.weight)
    return np.asarray(before, dtype=np.float64), after.detach().cpu().double().numpy(), \
        description
