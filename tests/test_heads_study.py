"""benchmarks/heads_study.py: its bookkeeping (buckets, paired gains, config shim)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from lib.core.paths import ROOT


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("heads_study",
                                                  ROOT / "benchmarks" / "heads_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_frequency_buckets(study):
    counts = [5, 1, 9, 3, 7, 2, 8]          # label i appears counts[i] times
    y = np.zeros((10, len(counts)), dtype=int)
    for j, n in enumerate(counts):
        y[:n, j] = 1
    b = study.frequency_buckets(y)
    assert b["rare"].tolist() == [1, 3, 5]   # counts 1, 2, 3
    assert b["medium"].tolist() == [0, 4]    # 5, 7
    assert b["frequent"].tolist() == [2, 6]  # 8, 9


def _run(head, seed, f1_05, f1_mcc, value):
    keys = ("f1_0.5", "n_plus_0.5", "f1_mcc", "n_plus_mcc", "map", "val_map")
    return {"dataset": "d", "head": head, "seed": seed, **dict.fromkeys(keys, value),
            "label_f1_0.5": f1_05, "label_f1_mcc": f1_mcc, "graph_share_mean": 0.5}


def test_summary_pairs_seeds_and_averages_buckets(study):
    runs = [_run("linear", 0, [0.1, 0.2, 0.3, 0.4], [0.0] * 4, 0.50),
            _run("linear", 1, [0.2, 0.2, 0.2, 0.2], [0.0] * 4, 0.60),
            _run("gcn-residual", 0, [0.3, 0.2, 0.3, 0.5], [0.1] * 4, 0.55),
            _run("gcn-residual", 1, [0.2, 0.6, 0.2, 0.2], [0.2] * 4, 0.61)]
    buckets = {"d": {"rare": [0, 1], "frequent": [2, 3]}}
    s = study.summarize(runs, buckets)["d"]
    assert list(s) == ["linear", "gcn-residual"]     # in lib.method.models.HEADS order
    res = s["gcn-residual"]
    assert res["map"]["mean"] == pytest.approx(0.58)
    assert res["map"]["std"] == pytest.approx(np.std([0.55, 0.61], ddof=1))
    assert res["minus_linear"]["map"]["mean"] == pytest.approx((0.05 + 0.01) / 2)
    # seed 0: rare gain mean(0.2, 0.0) = 0.1; seed 1: mean(0.0, 0.4) = 0.2
    assert res["label_f1_gain"]["0.5"]["rare"]["mean"] == pytest.approx(0.15)
    # seed 0: mean(0.0, 0.1) = 0.05; seed 1: 0.0
    assert res["label_f1_gain"]["0.5"]["frequent"]["mean"] == pytest.approx(0.025)
    assert res["label_f1_gain"]["mcc"]["rare"]["mean"] == pytest.approx(0.15)
    assert "minus_linear" not in s["linear"]
    assert "bootstrap_minus_linear" not in res       # no bootstrap draws in these runs


def test_study_config_accepts_every_head_and_still_validates(study):
    from lib.method import models

    for head in models.HEADS:
        assert study.study_config(head=head).head == head
    with pytest.raises(ValueError, match="TrainConfig.head"):
        study.study_config(head="mlp")
    with pytest.raises(ValueError, match="lr"):
        study.study_config(head="gcn-residual", lr=0)
    assert study.study_config(head="gcn-learned").to_dict()["head"] == "gcn-learned"
