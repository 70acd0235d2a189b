"""Where the graph helps (lib.analysis.graph_gain, notebook 07) on hand-made run folders: a dataset
of six labels, GCN and CNN-only runs for two seeds whose per-label F1 is set by hand through
their predictions.csv, and the bucket means checked against a hand computation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_notebook

from lib.analysis import graph_gain, seedstats
from lib.core import paths
from lib.core.glue import notebook_records
from lib.data import datasets
from lib.training.runs import RunFolder, make_config

LABELS = ["a", "b", "c", "d", "e", "f"]
# training counts a 1, b 2, c 2, d 3, e 3, f 4
TRAIN = [["a", "b"], ["b", "c"], ["c", "d"], ["d", "e"], ["e", "f"], ["f"], ["f", "e"],
         ["d", "f"]]
# every label but c has two positive test images
TEST = [["a", "e"], ["b", "d", "f"], ["a", "b"], ["e", "f", "d"]]
# per-label F1 by construction: 1 (both positives), 2/3 (one positive), 0.5 (one positive,
# one negative), 0 (nothing predicted); label c (no positive) predicts nothing
F1 = {("gcn-asl", 0): {"a": 1, "b": 1, "d": 2 / 3, "e": 1, "f": 0.5},
      ("gcn-asl", 1): {"a": 1, "b": 2 / 3, "d": 1, "e": 1, "f": 1},
      ("linear-asl", 0): {"a": 2 / 3, "b": 0.5, "d": 2 / 3, "e": 1, "f": 0},
      ("linear-asl", 1): {"a": 0.5, "b": 2 / 3, "d": 1, "e": 2 / 3, "f": 1}}


def scores_for(f1: dict[str, float]) -> np.ndarray:
    names = range(len(TEST))
    out = np.full((len(TEST), len(LABELS)), 0.1)
    for c, label in enumerate(LABELS):
        positives = [i for i in names if label in TEST[i]]
        negatives = [i for i in names if label not in TEST[i]]
        value = f1.get(label, 0)
        chosen = {1: positives, 0: [], 0.5: positives[:1] + negatives[:1]}.get(
            value, positives[:1])
        out[chosen, c] = 0.9
    return out


@pytest.fixture
def runs(tmp_path) -> Path:
    ds = tmp_path / "ds"
    ds.mkdir()
    for split, samples in (("train", TRAIN), ("test", TEST)):
        (ds / f"{split}.json").write_text(json.dumps({"labels": LABELS, "samples": [
            {"image_name": f"{split}{i}.jpg", "image_labels": s}
            for i, s in enumerate(samples)]}))
    runs = paths.runs_dir()
    for (name, seed), f1 in F1.items():
        run = RunFolder(runs / name / f"seed-{seed}")
        run.write_config(make_config(LABELS, str(ds), run_name=name, seed=seed, loss="asl",
                                     head=name.split("-")[0], embeddings="glove-6b-50d",
                                     adjacency="seed", augmented=False))
        run.write_predictions([f"test{i}.jpg" for i in range(len(TEST))], LABELS,
                              scores_for(f1))
        # MCC thresholds: 0.5 except on linear-asl seed 1, where 0.95 predicts nothing
        high = name == "linear-asl" and seed == 1
        run.write_thresholds(LABELS, np.full(len(LABELS), 0.95 if high else 0.5))
        run.write_metrics({})
    return runs


def test_label_statistics_by_hand(runs):
    stats = graph_gain.label_statistics(RunFolder(runs / "gcn-asl" / "seed-0").dataset)
    assert stats["train_images"].tolist() == [1, 2, 2, 3, 3, 4]
    # max_j P(j|i): a->b 1; b->a,c 1/2; c->b,d 1/2; d->c,e,f 1/3; e->f 2/3; f->e 2/4
    assert stats["cooccurrence_max"].tolist() == pytest.approx([1, 0.5, 0.5, 1 / 3, 2 / 3, 0.5])
    assert stats["cooccurrence_sum"].tolist() == pytest.approx(
        [1, 1, 1, 1, 1 / 3 + 2 / 3, 0.5 + 0.25])
    assert stats["frequency_bucket"].tolist() == ["rare", "rare", "medium", "medium",
                                                  "frequent", "frequent"]
    # ranked by max P: d, b, c, f (ties in vocabulary order), e, a
    assert stats["cooccurrence_bucket"].tolist() == ["strong", "weak", "medium", "weak",
                                                     "strong", "medium"]


def hand_buckets(groups: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    out = {}
    for bucket, labels in groups.items():
        means = [np.mean([F1[("gcn-asl", s)][x] - F1[("linear-asl", s)][x] for x in labels])
                 for s in (0, 1)]
        out[bucket] = (np.mean(means), abs(means[0] - means[1]) / math.sqrt(2))
    return out


def test_bucket_means_match_a_hand_computation(runs):
    [result] = graph_gain.analyse(runs, setting="at_0.5")
    assert result.pair == "gcn-asl against linear-asl" and result.seeds == [0, 1]
    assert "c" not in set(result.per_label["label"])          # no positive test image
    a = result.per_label.set_index("label").loc["a"]
    assert a["gain_mean"] == pytest.approx(((1 - 2 / 3) + (1 - 0.5)) / 2)
    by_freq = result.by_frequency.set_index("bucket")
    # rare a, b: seed 0 (1/3 + 1/2) / 2, seed 1 (1/2 + 0) / 2 -> mean 1/3
    expected = hand_buckets({"rare": ["a", "b"], "medium": ["d"], "frequent": ["e", "f"]})
    assert expected["rare"] == pytest.approx((1 / 3, (5 / 12 - 1 / 4) / math.sqrt(2)))
    for bucket, (mean, sd) in expected.items():
        assert by_freq.loc[bucket, "gain_mean"] == pytest.approx(mean, abs=1e-6)
        assert by_freq.loc[bucket, "gain_std"] == pytest.approx(sd, abs=1e-6)
    assert by_freq["n_labels"].tolist() == [2, 1, 2]
    assert by_freq.loc["medium", "claim"] == seedstats.NOT_DISTINGUISHABLE  # 0 and 0
    by_co = result.by_cooccurrence.set_index("bucket")
    expected = hand_buckets({"weak": ["b", "d"], "medium": ["f"], "strong": ["a", "e"]})
    for bucket, (mean, sd) in expected.items():
        assert by_co.loc[bucket, "gain_mean"] == pytest.approx(mean, abs=1e-6)
        assert by_co.loc[bucket, "gain_std"] == pytest.approx(sd, abs=1e-6)
    assert graph_gain.summary_records(result)["frequency.rare"] == pytest.approx(1 / 3)


def test_mcc_setting_reads_the_thresholds(runs):
    run = RunFolder(runs / "linear-asl" / "seed-1")
    test = datasets.load_dataset(run.dataset, check_images=False).splits["test"]
    assert graph_gain.per_label_f1(run, test.names, test.targets, "mcc").tolist() == [0] * 6
    at05 = graph_gain.per_label_f1(run, test.names, test.targets, "at_0.5")
    assert at05 == pytest.approx([0.5, 2 / 3, 0, 1, 2 / 3, 1], abs=1e-6)
    with pytest.raises(graph_gain.GraphGainError, match="no gcn configuration"):
        graph_gain.analyse(runs, loss="bce")


@pytest.mark.slow
def test_notebook_07_graph_gain(runs, tmp_path):
    out = run_notebook("07_graph_gain", {"setting": "at_0.5"}, tmp_path)
    records = notebook_records(out)
    assert records["pairs"] == ["gcn-asl against linear-asl"]
    expected = hand_buckets({"rare": ["a", "b"], "medium": ["d"], "frequent": ["e", "f"]})
    got = records["gcn-asl against linear-asl"]
    for bucket, (mean, _) in expected.items():
        assert got[f"frequency.{bucket}"] == pytest.approx(mean, abs=1e-6)
    figures = paths.figures_dir() / "07_graph_gain"
    for name in ("by_frequency", "by_cooccurrence", "gcn-asl_per_label"):
        assert (figures / f"{name}.png").stat().st_size > 1000
    table = pd.read_csv(paths.tables_dir() / "graph_gain" / "by_frequency.csv")
    assert table["gain_mean"].tolist() == pytest.approx([m for m, _ in expected.values()])
