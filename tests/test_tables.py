"""Results tables from hand-made run folders (one folder per configuration and seed): means
and sample standard deviations over seeds, paired differences against scipy, comparisons,
leaky / stand-in / published marks, Markdown and the README block."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lib.analysis import comparisons, seedstats, tables
from lib.pipeline.results import build_tables, tables_main
from lib.training.runs import METRIC_KEYS, RunFolder, list_runs, make_config


def metrics_block(f1: float, n_plus: int) -> dict:
    """A metrics block whose numbers all follow from ``f1`` (so every value is known)."""
    return {"per_class_precision": f1 + 0.01, "per_class_recall": f1 - 0.01,
            "per_class_f1": f1, "per_image_precision": f1 + 0.11,
            "per_image_recall": f1 + 0.09, "per_image_f1": f1 + 0.1, "n_plus": n_plus}


def make_run(runs: Path, name: str, seed: int, f1: float, *, labels: int = 20,
             metrics: bool = True, **config) -> Path:
    """``runs/<name>/seed-<seed>/`` with config.json and (unless ``metrics=False``)
    metrics.json: per-class F1 ``f1`` at 0.5, ``f1 + 0.05`` with MCC thresholds, ``f1 - 0.05``
    top-3, ``f1 - 0.07`` ML-GCN's top-3, N+ ``round(100 f1)``, mAP ``f1 + 0.2``."""
    folder = runs / name / f"seed-{seed}"
    folder.mkdir(parents=True)
    dataset = config.pop("dataset", "data/scenes")
    cfg = make_config([f"l{i}" for i in range(labels)], dataset, **{
        "run_name": name, "seed": seed, "backbone": "resnet10t", "image_size": 64,
        "epochs": 5, "batch_size": 32, "lr": 2e-3, "loss": "asl", "head": "gcn",
        "adjacency": "seed", "embeddings": "glove-6b-50d", "augmented": False,
        "protocol": "holdout", **config})  # a complete config.json (readers validate it)
    (folder / "config.json").write_text(json.dumps(cfg))
    if metrics:
        n_plus = round(f1 * 100)
        (folder / "metrics.json").write_text(json.dumps({
            "split": "test", "leaky": cfg["leaky"], "mean_average_precision": f1 + 0.2,
            "at_0.5": metrics_block(f1, n_plus), "mcc": metrics_block(f1 + 0.05, n_plus + 1),
            "top5": metrics_block(f1 - 0.1, n_plus), "top3": metrics_block(f1 - 0.05, n_plus),
            "top3_mlgcn": metrics_block(f1 - 0.07, n_plus - 2)}))
    return folder


GCN = [0.50, 0.52, 0.57]          # per-class F1 at 0.5 of gcn-asl, seeds 0, 1, 2
LINEAR = [0.48, 0.47, 0.55]
IDENTITY = [0.51, 0.50, 0.60]     # differences to GCN: +0.01, -0.02, +0.03 (straddle 0)
RESIDUAL = [0.60, 0.62, 0.66]     # differences to GCN: +0.10, +0.10, +0.09 (clearly > 0)


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    runs = tmp_path / "runs"
    for seed in range(3):
        make_run(runs, "gcn-asl", seed, GCN[seed])
        make_run(runs, "linear-asl", seed, LINEAR[seed], head="linear")
        make_run(runs, "gcn-identity-asl", seed, IDENTITY[seed], head="gcn-identity")
        make_run(runs, "gcn-residual-asl", seed, RESIDUAL[seed], head="gcn-residual")
    make_run(runs, "gcn-bce", 0, 0.40, loss="bce")
    make_run(runs, "gcn-bce", 1, 0.0, loss="bce", metrics=False)        # not finished
    make_run(runs, "linear-bce", 0, 0.35, loss="bce", head="linear")
    make_run(runs, "gcn-random-asl", 1, 0.45, embeddings="random")     # seed 1 only
    make_run(runs, "gcn-random-asl", 2, 0.55, embeddings="random")
    make_run(runs, "gcn-augmented-asl", 0, 0.53, augmented=True,
             augmentation={"images": 16, "of": 1500, "select": "first"})
    make_run(runs, "gcn-mlgcn-asl", 0, 0.49, adjacency="ml-gcn")
    make_run(runs, "gcn-asl-long", 0, 0.60, epochs=50, embeddings="random")  # no baseline
    return runs


def test_main_table_mean_and_sample_std(runs_dir, tmp_path):
    out = tmp_path / "tables"
    build_tables(runs_dir, out)
    main = pd.read_csv(out / "main.csv").set_index(["run", "thresholds"])
    # candidate heads on their baseline settings only: no identity, random, augmented, ml-gcn
    assert set(main.index.get_level_values(0)) == {"gcn-asl", "linear-asl",
                                                   "gcn-residual-asl", "gcn-bce", "linear-bce"}
    row = main.loc[("gcn-asl", "0.5")]
    assert row["n_seeds"] == 3 and row["seeds"] == "0 1 2"
    assert row["per_class_f1_mean"] == pytest.approx(0.53)
    # sample sd by hand: deviations -0.03, -0.01, +0.04 -> sqrt(0.0026 / 2)
    assert row["per_class_f1_std"] == pytest.approx(math.sqrt(0.0026 / 2))
    assert row["per_image_f1_mean"] == pytest.approx(0.63)
    assert row["mAP_std"] == pytest.approx(math.sqrt(0.0026 / 2))
    assert row["n_plus_mean"] == pytest.approx((50 + 52 + 57) / 3)
    mcc = main.loc[("gcn-asl", "MCC")]
    assert mcc["per_class_f1_mean"] == pytest.approx(0.58)
    assert mcc["n_plus_mean"] == pytest.approx((51 + 53 + 58) / 3)
    # both top-3s, named apart, from their own blocks; the ablations compare 0.5 and MCC only
    top3, mlgcn = main.loc[("gcn-asl", "top-3")], main.loc[("gcn-asl", "top-3 (ML-GCN)")]
    assert top3["per_class_f1_mean"] == pytest.approx(0.48)
    assert mlgcn["per_class_f1_mean"] == pytest.approx(0.46)
    assert mlgcn["n_plus_mean"] == pytest.approx((48 + 50 + 55) / 3)
    assert list(dict.fromkeys(main.loc["gcn-asl"].index)) == [
        "0.5", "MCC", "top-3", "top-3 (ML-GCN)"]
    assert set(pd.read_csv(out / "ablations.csv")["thresholds"].astype(str)) == {"0.5", "MCC"}
    # the unfinished seed of gcn-bce is left out: one seed, no spread
    bce = main.loc[("gcn-bce", "0.5")]
    assert bce["n_seeds"] == 1 and bce["seeds"] == "0" and math.isnan(bce["per_class_f1_std"])
    assert [f"{k}_{s}" for k in METRIC_KEYS for s in ("mean", "std")] == \
        [c for c in main.columns if c.split("_")[-1] in ("mean", "std")][:14]
    # order: loss (bce, focal, asl), then head (linear, gcn, others)
    order = pd.read_csv(out / "main.csv")["run"].drop_duplicates().tolist()
    assert order == ["linear-bce", "gcn-bce", "linear-asl", "gcn-asl", "gcn-residual-asl"]
    md = (out / "main.md").read_text()
    assert f"| gcn-asl | asl | GCN | 0.5 | 3 | 0.540 ± {math.sqrt(0.0026 / 2):.3f} |" in md
    assert "| 53.0 ± 3.6 |" in md                      # N+ with one decimal
    assert "| gcn-bce | bce | GCN | 0.5 | 1 | 0.410 | 0.390 | 0.400 |" in md
    assert "mean ± the sample standard deviation" in md   # the caption says what ± is
    assert (out / "main_per_class_f1.png").stat().st_size > 1000


def test_runs_without_ml_gcn_top3_get_no_such_row(tmp_path):
    """Run folders written before ML-GCN's top-3 was recorded: their other rows stay."""
    runs = tmp_path / "runs"
    for seed in range(2):
        folder = make_run(runs, "gcn-asl", seed, 0.5)
        m = json.loads((folder / "metrics.json").read_text())
        if seed == 1:
            del m["top3_mlgcn"]
        (folder / "metrics.json").write_text(json.dumps(m))
    main = build_tables(runs, tmp_path / "tables")["main"]
    assert main["thresholds"].tolist() == ["0.5", "MCC", "top-3"]


def test_ablation_paired_difference_against_scipy(runs_dir, tmp_path):
    result = build_tables(runs_dir, tmp_path / "t")
    abl = result["ablations"].set_index(["run", "baseline", "thresholds"])
    for run, values, claim in (("gcn-identity-asl", IDENTITY, seedstats.NOT_DISTINGUISHABLE),
                               ("gcn-residual-asl", RESIDUAL, seedstats.DIFFERS)):
        row = abl.loc[(run, "gcn-asl", "0.5")]
        ref = stats.ttest_rel(values, GCN).confidence_interval(0.95)
        d = np.subtract(values, GCN)
        assert row["per_class_f1_delta_mean"] == pytest.approx(d.mean())
        assert row["per_class_f1_delta_std"] == pytest.approx(d.std(ddof=1))
        assert (row["per_class_f1_delta_low"], row["per_class_f1_delta_high"]) == \
            pytest.approx((ref.low, ref.high))
        assert row["per_class_f1_delta_claim"] == claim
        assert row["per_class_f1_mean"] == pytest.approx(np.mean(values))
        assert row["per_class_f1_baseline_mean"] == pytest.approx(0.53)
        assert row["n_seeds"] == 3
    # a new GCN variant is compared with both the CNN-only head and the GCN
    assert ("gcn-residual-asl", "linear-asl", "MCC") in abl.index
    gcn_vs_linear = abl.loc[("gcn-asl", "linear-asl", "0.5")]
    assert gcn_vs_linear["per_class_f1_delta_mean"] == pytest.approx(np.mean(
        np.subtract(GCN, LINEAR)))
    # random vectors ran seeds 1 and 2 only: paired with the baseline's seeds 1 and 2
    random = abl.loc[("gcn-random-asl", "gcn-asl", "0.5")]
    assert random["seeds"] == "1 2" and random["n_seeds"] == 2
    assert random["per_class_f1_delta_mean"] == pytest.approx(((0.45 - 0.52) + (0.55 - 0.57)) / 2)
    assert random["per_class_f1_baseline_mean"] == pytest.approx((0.52 + 0.57) / 2)
    one = abl.loc[("gcn-augmented-asl", "gcn-asl", "0.5")]
    assert one["per_class_f1_delta_claim"] == seedstats.NO_CLAIM
    assert one["augmentation"] == "16 of 1500 training images"
    assert abl.loc[("gcn-mlgcn-asl", "gcn-asl", "MCC"), "per_class_f1_delta_mean"] == \
        pytest.approx(-0.01)
    assert abl.loc[("gcn-bce", "linear-bce", "0.5"), "n_plus_delta_mean"] == 40 - 35


def test_which_comparisons_are_made(runs_dir):
    confs = comparisons.configurations(list_runs(runs_dir))
    found = {(c.what, c.run.name, c.baseline.name if c.baseline else None)
             for c in comparisons.comparisons(confs)}
    assert found == {
        ("GCN head instead of CNN only (linear)", "gcn-asl", "linear-asl"),
        ("GCN head instead of CNN only (linear)", "gcn-bce", "linear-bce"),
        ("identity graph (A = I) instead of the label graph", "gcn-identity-asl", "gcn-asl"),
        ("linear + GCN correction head instead of CNN only (linear)", "gcn-residual-asl",
         "linear-asl"),
        ("linear + GCN correction head instead of GCN", "gcn-residual-asl", "gcn-asl"),
        ("random label vectors instead of GloVe", "gcn-random-asl", "gcn-asl"),
        ("with WGAN augmentation", "gcn-augmented-asl", "gcn-asl"),
        ("adjacency ml-gcn instead of seed", "gcn-mlgcn-asl", "gcn-asl"),
        # 50 epochs: nothing else was trained that long
        ("random label vectors instead of GloVe", "gcn-asl-long", None),
    }
    pairs = comparisons.head_pairs(confs)
    assert sorted((p.run.name, p.baseline.name) for p in pairs) == [
        ("gcn-asl", "linear-asl"), ("gcn-bce", "linear-bce")]


def test_ablation_markdown_marks(runs_dir, tmp_path):
    build_tables(runs_dir, tmp_path / "t")
    md = (tmp_path / "t" / "ablations.md").read_text()
    d = np.subtract(IDENTITY, GCN)
    assert f"| {d.mean():+.3f} ± {d.std(ddof=1):.3f} (≈ 0) |" in md
    d = np.subtract(RESIDUAL, GCN)
    assert f"| {d.mean():+.3f} ± {d.std(ddof=1):.3f} |" in md
    assert "+0.030 (1 seed: no claim)" in md                     # augmented, seed 0 only
    assert "paired t-interval of its mean (t quantile with n - 1" in md   # the rule
    assert "with WGAN augmentation (16 of 1500 training images)" in md
    assert "| gcn-asl-long | None |" not in md and tables.NO_BASELINE in md


def test_leaky_standin_and_published_rows(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, "gcn-asl", seed, 0.40 + seed / 100, labels=260, dataset_name="corel5k",
                 protocol="reference", leaky=True)
        make_run(runs, "linear-asl", seed, 0.38, labels=260, dataset_name="corel5k",
                 protocol="reference", leaky=True, head="linear")
    result = build_tables(runs, tmp_path / "t")
    main = result["main"]
    published = main[main["source"] == tables.PUBLISHED]
    assert len(published) == 4 and published["leaky"].all()
    gcn = published[published["run"].str.startswith("reference GCN")].iloc[0]
    assert (gcn["per_class_precision_mean"], gcn["per_class_recall_mean"],
            gcn["per_class_f1_mean"], gcn["n_plus_mean"], gcn["per_image_f1_mean"]) == \
        (0.453, 0.495, 0.473, 175, 0.630)
    assert sorted(published["n_plus_mean"]) == [175, 184, 191, 202]
    md = (tmp_path / "t" / "main.md").read_text()
    assert "| gcn-asl\u2020 |" in md and tables.LEAKY_NOTE in md
    assert f"| {tables.PUBLISHED} | reference GCN (TResNet-M 448, ASL, threshold 0.5)\u2020 |" \
        in md and "Numbers to beat" in md
    assert json.loads((tmp_path / "t" / "main.meta.json").read_text())["reference"] is True
    assert result["ablations"]["leaky"].all()
    assert "gcn-asl\u2020 | linear-asl\u2020" in (tmp_path / "t" / "ablations.md").read_text()

    # the same runs on stand-in images: no published rows, and a note saying why
    standin = tmp_path / "standin"
    for seed in (0, 1):
        make_run(standin, "gcn-asl", seed, 0.4, labels=260, standin=True)
    result = build_tables(standin, tmp_path / "u")
    assert (result["main"]["source"] == "ours").all()
    md = (tmp_path / "u" / "main.md").read_text()
    assert "Stand-in data: not comparable with published Corel-5k numbers." in md
    assert json.loads((tmp_path / "u" / "main.meta.json").read_text())["standin"] is True
    # 259 labels is not Corel-5k
    other = tmp_path / "other"
    make_run(other, "gcn-asl", 0, 0.4, labels=259)
    assert (build_tables(other, tmp_path / "v")["main"]["source"] == "ours").all()


def test_configurations_must_be_consistent(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "gcn-asl", 0, 0.4)
    make_run(runs, "gcn-asl", 1, 0.4, loss="bce")
    with pytest.raises(tables.TableError, match=r"differ in \['loss'\]"):
        build_tables(runs, tmp_path / "t")
    again = tmp_path / "again"
    make_run(again, "gcn-asl", 0, 0.4)
    (again / "gcn-asl" / "config.json").write_text(
        (again / "gcn-asl" / "seed-0" / "config.json").read_text())   # old flat layout
    with pytest.raises(tables.TableError, match="seed 0 is in two folders"):
        build_tables(again, tmp_path / "t")
    bad = make_run(tmp_path / "bad", "gcn-asl", 0, 0.4)
    (bad / "metrics.json").write_text(json.dumps({"at_0.5": {}, "mcc": {}}))
    with pytest.raises(Exception, match=r"metrics\.json.*lacks"):
        tables.metric_values(RunFolder(bad), "at_0.5")


def test_params_restrict_runs(runs_dir, tmp_path, caplog):
    import yaml

    result = build_tables(runs_dir, tmp_path / "t", run_names=["gcn-asl", "gcn-random-asl"])
    assert set(result["main"]["run"]) == {"gcn-asl"}
    assert set(result["ablations"]["run"]) == {"gcn-random-asl"}
    with pytest.raises(tables.TableError, match="nope"):
        build_tables(runs_dir, tmp_path / "t", run_names=["nope"])
    params = tmp_path / "set.yaml"
    params.write_text(yaml.safe_dump({"runs": {"gcn-asl": {}, "linear-asl": {},
                                               "not-trained": {}}}))
    result = build_tables(runs_dir, tmp_path / "t", params=str(params))
    assert set(result["ablations"]["run"]) == {"gcn-asl"}
    assert "not-trained" in caplog.text
    assert json.loads((tmp_path / "t" / "main.meta.json").read_text())["params"] == "set"
    params.write_text(yaml.safe_dump({"runs": {"nothing": {}}}))
    with pytest.raises(tables.TableError, match="none of the runs"):
        build_tables(runs_dir, tmp_path / "t", params=str(params))


def test_tables_cli_and_readme_block(runs_dir, tmp_path, capsys):
    out = tmp_path / "t"
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{tables.README_START}\nOLD\n{tables.README_END}\nafter\n")
    assert tables_main(["--runs", str(runs_dir), "--out", str(out),
                               "--readme", str(readme)]) == 0
    assert "wrote" in capsys.readouterr().out
    text = readme.read_text()
    assert "OLD" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    assert "#### Main results" in text and "#### Ablations" in text
    assert "![per-class F1 by loss and head](t/main_per_class_f1.png)" in text
    d05, dmcc = np.subtract(IDENTITY, GCN), np.subtract(IDENTITY, GCN)   # MCC = 0.5 + 0.05
    assert ("- Identity graph (A = I) instead of the label graph (`gcn-identity-asl` against "
            f"`gcn-asl`) changes per-class F1 by {d05.mean():+.3f} ± {d05.std(ddof=1):.3f} at "
            "threshold 0.5 (3 seeds; not distinguishable from zero) and by "
            f"{dmcc.mean():+.3f} ± {dmcc.std(ddof=1):.3f} with MCC thresholds (3 seeds; not "
            "distinguishable from zero).") in text
    assert ("- With WGAN augmentation, 16 of 1500 training images augmented "
            "(`gcn-augmented-asl` against `gcn-asl`) changes per-class F1 by +0.030 at "
            "threshold 0.5 (1 seed: no claim)") in text
    assert "(`gcn-asl-long`): no matching baseline run." in text
    bad = tmp_path / "R.md"
    bad.write_text("no markers")
    with pytest.raises(tables.TableError, match="markers"):
        tables.update_readme(bad, out)


def test_seed_statistics_by_hand_and_against_scipy():
    mean, sd, n = seedstats.mean_std([0.5, 0.52, 0.57])
    assert (mean, n) == (pytest.approx(0.53), 3) and sd == pytest.approx(math.sqrt(0.0013))
    assert math.isnan(seedstats.mean_std([0.5])[1]) and seedstats.mean_std([])[2] == 0
    a, b = [0.61, 0.60, 0.64, 0.62], [0.55, 0.57, 0.59, 0.58]
    diff = seedstats.paired_difference(a, b)
    ref = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (diff.low, diff.high) == pytest.approx((ref.low, ref.high))
    # by hand: d = .06 .03 .05 .04, mean .045, sd sqrt(.0005 / 3), t(.975, 3) = 3.182446
    half = 3.182446 * math.sqrt(0.0005 / 3) / 2
    assert (diff.mean, diff.std, diff.low) == pytest.approx((0.045, math.sqrt(0.0005 / 3),
                                                            0.045 - half))
    assert diff.claim == seedstats.DIFFERS                     # 0.045 - 0.0205 > 0
    wide = seedstats.paired_difference([0.61, 0.58, 0.66, 0.60], b)   # d .06 .01 .07 .02
    assert wide.low == pytest.approx(0.04 - 3.182446 * math.sqrt(0.0026 / 3) / 2)
    assert wide.low < 0 and wide.claim == seedstats.NOT_DISTINGUISHABLE
    assert seedstats.paired_difference([1, 2], [2, 1]).claim == seedstats.NOT_DISTINGUISHABLE
    assert seedstats.paired_difference([0.4], [0.3]).claim == seedstats.NO_CLAIM
    assert seedstats.format_mean_std(0.5123, 0.0114) == "0.512 ± 0.011"
    assert seedstats.format_difference(seedstats.paired_difference([0.4], [0.3])) == \
        "+0.100 (1 seed: no claim)"
    with pytest.raises(ValueError, match="different lengths"):
        seedstats.paired_difference([1, 2], [1])


def test_tables_cli_reads_the_sets_results_folder(runs_dir, tmp_path, monkeypatch, caplog,
                                                 capsys):
    import shutil

    import yaml

    monkeypatch.setenv("AIA_RESULTS_BASE", str(tmp_path / "res"))
    params = tmp_path / "mine.yaml"
    params.write_text(yaml.safe_dump({"runs": {"gcn-asl": {}, "linear-asl": {}}}))
    assert tables_main(["--params", str(params)]) == 1
    assert "res/mine/runs: none of the runs of parameter set 'mine'" in caplog.text
    shutil.copytree(runs_dir, tmp_path / "res" / "mine" / "runs")
    assert tables_main(["--params", str(params)]) == 0
    main = pd.read_csv(tmp_path / "res" / "mine" / "tables" / "main.csv")
    assert set(main["run"]) == {"gcn-asl", "linear-asl"}
    assert "main.csv" in capsys.readouterr().out


def test_head_settings_pair_only_where_both_heads_take_them(tmp_path):
    """A CSRA run is compared with the CNN-only head whatever its csra_lambda (the linear head
    takes no such setting); its augmented twin is its baseline only with the same lambda;
    seeds of one configuration must share it."""
    aug = {"augmented": True, "augmentation": {"images": 16, "of": 1500, "select": "first"}}

    def found(runs):
        confs = comparisons.configurations(list_runs(runs))
        return {(c.run.name, c.baseline.name if c.baseline else None)
                for c in comparisons.comparisons(confs)}

    runs = tmp_path / "runs"
    make_run(runs, "linear-asl", 0, 0.40, head="linear")
    make_run(runs, "csra-asl", 0, 0.45, head="csra", csra_lambda=0.3)
    make_run(runs, "csra-augmented-asl", 0, 0.47, head="csra", csra_lambda=0.1, **aug)
    got = found(runs)
    assert ("csra-asl", "linear-asl") in got
    assert ("csra-augmented-asl", "csra-asl") not in got
    same = tmp_path / "same"
    make_run(same, "csra-asl", 0, 0.45, head="csra", csra_lambda=0.3)
    make_run(same, "csra-augmented-asl", 0, 0.47, head="csra", csra_lambda=0.3, **aug)
    assert ("csra-augmented-asl", "csra-asl") in found(same)
    make_run(runs, "csra-asl", 1, 0.46, head="csra", csra_lambda=0.1)
    with pytest.raises(comparisons.ComparisonError, match="csra_lambda"):
        comparisons.configurations(list_runs(runs))
