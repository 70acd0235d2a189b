"""Predictions files and the ``score`` command: a predictions CSV (``image_name``, then one
score column per label) and a ``thresholds.json``, read with errors that name the file, the
line and the column; a predictions file scored against a dataset split
(:func:`lib.method.metrics.evaluate_scores`)."""

from __future__ import annotations

import argparse
import errno
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core.config import check_probability
from lib.core.errors import AIAError, SettingsError, one_line
from lib.core.fileio import atomic_write_text, clean_stale_temps, read_json, read_text
from lib.core.paths import dataset_dir
from lib.data.datasets import load_dataset, normalise_image_name
from lib.method.metrics import evaluate_scores


class PredictionsError(AIAError):
    """A predictions CSV or thresholds file that cannot be scored; the message names the
    file, and the row and column where it matters."""


def _where_cells(frame: pd.DataFrame, mask: np.ndarray) -> str:
    """``line 3 (image 'a.jpeg'), column 'sky'`` for the first few True cells of ``mask``
    (line numbers of the CSV file: the header is line 1)."""
    rows, cols = np.nonzero(mask)
    cells = [f"line {r + 2} (image {frame.index[r]!r}), column {frame.columns[c]!r}"
             for r, c in zip(rows[:3], cols[:3], strict=True)]
    return "; ".join(cells) + (f"; {len(rows)} cells in all" if len(rows) > 3 else "")


def read_predictions(path, labels: list[str]) -> pd.DataFrame:
    """A predictions CSV (``image_name`` then one score column per label) as a float frame
    indexed by image name, columns in ``labels`` order. Scores must be numbers in [0, 1]
    (probabilities, not logits). Errors name the file, and the line and column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "predictions file not found", str(path))
    text = read_text(path, error=PredictionsError)
    try:
        df = pd.read_csv(io.StringIO(text), dtype={"image_name": str})
    except pd.errors.EmptyDataError as err:
        raise PredictionsError(f"{path}: the file is empty (expected a header 'image_name,"
                               "<label>,...' and one row per image)") from err
    except (pd.errors.ParserError, ValueError) as err:
        raise PredictionsError(f"{path}: malformed CSV ({one_line(str(err))})") from err
    df.columns = [str(c).strip() for c in df.columns]  # as the vocabulary is
    if df.columns[0] != "image_name":
        raise PredictionsError(f"{path}: first column must be 'image_name', got "
                               f"{df.columns[0]!r}")
    if df.empty:
        raise PredictionsError(f"{path}: no rows (a header only)")
    columns = list(df.columns[1:])
    missing = [c for c in labels if c not in columns]
    extra = [c for c in columns if c not in labels]
    if missing or extra or len(columns) != len(labels):
        raise PredictionsError(
            f"{path}: score columns do not match the vocabulary ({len(labels)} labels): "
            f"missing {missing[:10]}, unknown {extra[:10]}"
            + (", duplicated columns" if not (missing or extra) else ""))
    names = df["image_name"]
    if names.isna().any():
        rows = np.flatnonzero(names.isna().to_numpy())
        raise PredictionsError(f"{path}: empty image_name on line(s) {(rows[:5] + 2).tolist()}")
    names = names.map(lambda n: normalise_image_name(n) or n)  # as the dataset's are
    dup = names[names.duplicated()].tolist()
    if dup:
        raise PredictionsError(f"{path}: duplicate image names {dup[:10]}")
    scores = df.assign(image_name=names).set_index("image_name")[labels]
    numeric = scores.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    values = numeric.to_numpy()
    bad = numeric.isna().to_numpy()
    if bad.any():
        raise PredictionsError(f"{path}: non-numeric or empty scores at "
                               f"{_where_cells(scores, bad)}")
    bad = ~np.isfinite(values)
    if bad.any():
        raise PredictionsError(f"{path}: infinite scores at {_where_cells(scores, bad)}")
    bad = (values < 0) | (values > 1)
    if bad.any():
        raise PredictionsError(
            f"{path}: scores must be probabilities in [0, 1] (sigmoid outputs, not logits); "
            f"{int(bad.sum())} are outside, from {values.min():g} to {values.max():g}, at "
            f"{_where_cells(scores, bad)}")
    return numeric


def read_thresholds(path, labels: list[str]) -> np.ndarray:
    """Per-label thresholds from a ``thresholds.json`` (``{"labels": [...], "thresholds":
    [...]}``), in ``labels`` order; each a number in [0, 1]. Errors name the file and the
    label."""
    path = Path(path)
    data = read_json(path, error=PredictionsError)
    form = "a thresholds file with 'labels' and 'thresholds' lists of equal length"
    if not isinstance(data, dict) or not {"labels", "thresholds"} <= set(data):
        raise PredictionsError(f"{path}: not {form}")
    names, values = data["labels"], data["thresholds"]
    if (not isinstance(names, list) or not isinstance(values, list)
            or len(names) != len(values) or not all(isinstance(x, str) for x in names)):
        raise PredictionsError(f"{path}: not {form}")
    names = [x.strip() for x in names]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise PredictionsError(f"{path}: labels listed twice: {dup[:10]}")
    by_label = dict(zip(names, values, strict=True))
    missing = [c for c in labels if c not in by_label]
    if missing:
        raise PredictionsError(f"{path}: no threshold for labels {missing[:10]}")
    unknown = [c for c in names if c not in set(labels)]
    if unknown:
        raise PredictionsError(f"{path}: thresholds for labels not in the vocabulary "
                               f"{unknown[:10]}")
    out = []
    for label in labels:
        try:
            check_probability(f"threshold of {label!r}", by_label[label], where=str(path))
        except SettingsError as err:
            raise PredictionsError(str(err)) from err
        out.append(float(by_label[label]))
    return np.array(out)


def score_predictions(predictions, data, split: str = "test", thresholds=None) -> dict:
    """Score a predictions CSV against a dataset split (the ``score`` command's result)."""
    dataset = load_dataset(dataset_dir(data), check_images=False)
    if split not in dataset.splits:
        raise PredictionsError(f"{dataset.root}: no split {split!r} "
                               f"(have {sorted(dataset.splits)})")
    truth = dataset.splits[split]
    scores = read_predictions(predictions, dataset.labels)
    unknown = sorted(set(scores.index) - set(truth.names))
    missing = sorted(set(truth.names) - set(scores.index))
    if unknown or missing:
        raise PredictionsError(f"{predictions}: images do not match the {split} split of "
                         f"{dataset.root}: {len(unknown)} unknown {unknown[:5]}, "
                         f"{len(missing)} missing {missing[:5]}")
    y_score = scores.loc[truth.names].to_numpy()
    t = None if thresholds is None else read_thresholds(thresholds, dataset.labels)
    out = {"split": split, "predictions": str(Path(predictions).resolve()),
           "dataset": str(dataset.root), "n_images": len(truth.names)}
    out.update(evaluate_scores(truth.targets, y_score, t))
    return out


def score_main(argv: list[str]) -> int:
    """``python -m lib score PREDICTIONS.csv --data DIR [--split test] [--thresholds FILE]``"""
    parser = argparse.ArgumentParser(
        prog="python -m lib score",
        description="Score a predictions CSV (image_name, then one score column per label) "
                    "against a dataset split; prints metrics.json-style JSON.")
    parser.add_argument("predictions", help="predictions CSV")
    parser.add_argument("--data", required=True, help="dataset folder or name")
    parser.add_argument("--split", default="test", help="split to score against (test)")
    parser.add_argument("--thresholds", default=None,
                        help="thresholds.json with per-label thresholds (fills the 'mcc' block)")
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    result = score_predictions(args.predictions, args.data, args.split, args.thresholds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        clean_stale_temps(Path(args.out).parent, Path(args.out).name)
        atomic_write_text(args.out, text + "\n")
    return 0
