"""Training runs: configuration (one source, presets, CLI), the run folder contract, the two
protocols, continuing an interrupted run, a run folder that belongs to its run, learning."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from lib.core import config
from lib.core.locking import LockedError, file_lock
from lib.data import datasets
from lib.method import graph, metrics
from lib.training import images, launch, settings
from lib.training.runs import RunError, RunFolder

SEVEN = {"per_class_precision", "per_class_recall", "per_class_f1", "per_image_precision",
         "per_image_recall", "per_image_f1", "n_plus"}


def tiny_config(tiny_scenes, out, **kw) -> settings.TrainConfig:
    base = dict(data=str(tiny_scenes), out=str(out), epochs=2, image_size=32, batch_size=16,
                seed=0)
    base.update(kw)
    return settings.TrainConfig(**base)


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("bad, match", [
    ({"loss": "hinge"}, "loss"), ({"protocol": "leaky"}, "protocol"),
    ({"epochs": 10, "schedule_epochs": 5}, "schedule_epochs"),
    ({"mean": (0.5, 0.5, 0.5)}, "mean and TrainConfig.std"),
    ({"lr": float("nan")}, "lr"), ({"weight_decay": -1.0}, "weight_decay"),
    ({"hidden": 0}, "hidden"), ({"image_size": 1}, "image_size"),
    ({"mean": (0, 0, 0), "std": (0, 0, 0)}, "std"),
    ({"protocol": "reference", "amp": True}, "fp32"),
])
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(config.ConfigError, match=match):
        settings.TrainConfig(**bad)


def test_a_value_the_user_sets_wins_over_the_preset_even_when_it_is_the_default():
    """Under preset corel5k, settings equal to the embedded defaults are kept, through the
    API and the command line alike."""
    wanted = {"normalization": "backbone", "pretrained": False, "num_workers": 0,
              "select_metric": "mean_average_precision", "embeddings": "glove-6b-50d"}
    api = settings.build_config("corel5k", wanted)
    cli = settings.build_config("corel5k", config.given(launch.train_parser().parse_args(
        ["--normalization", "backbone", "--no-pretrained", "--num-workers", "0",
         "--select-metric", "mean_average_precision", "--embeddings", "glove-6b-50d"]),
        settings.TrainConfig))
    for c in (api, cli):
        for key, value in wanted.items():
            assert getattr(c, key) == value, key
        assert (c.backbone, c.image_size, c.lr) == ("tresnet_m", 448, 1e-4)  # preset kept
    assert settings.build_config("corel5k").normalization == "dataset"


def test_corel5k_preset_is_the_reference_recipe_from_cli_and_api():
    api = settings.build_config("corel5k", {"data": "d"})
    cli = settings.build_config("corel5k", config.given(
        launch.train_parser().parse_args(["--data", "d"]), settings.TrainConfig))
    assert api == cli
    assert (api.backbone, api.image_size, api.batch_size, api.lr) == ("tresnet_m", 448, 32, 1e-4)
    assert (api.epochs, api.schedule_epochs, api.warmup, api.loss) == (60, 80, 0.2, "asl")
    assert api.embeddings == "glove-wiki-gigaword-300" and api.flips and api.pretrained
    assert api.select_metric == "per_class_f1" and api.normalization == "dataset"
    assert (api.head, api.adjacency, api.hidden, api.schedule, api.protocol) == (
        "gcn", "seed", 1024, "onecycle", "holdout")
    assert settings.TrainConfig().normalization == "backbone"
    reference = settings.build_config("corel5k", {"protocol": "reference"})
    assert reference.leaky and not reference.resolved_amp("cuda")
    assert api.resolved_amp("cuda") and not api.resolved_amp("cpu")


def test_cli_lists_every_setting_with_its_choices():
    help_text = launch.train_parser().format_help()
    for f in settings.TrainConfig.__dataclass_fields__:
        assert f"--{f.replace('_', '-')}" in help_text, f
    assert "{gcn,linear,gcn-identity" in help_text and "{bce,focal,asl}" in help_text
    with pytest.raises(config.ConfigError, match="unknown"):
        settings.build_config("default", {"learning_rate": 1.0})


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_run_folder_contract(tiny_run, tiny_scenes):
    files = {p.name for p in tiny_run.iterdir()}
    assert {"config.json", "history.csv", "checkpoint.pt", "best.pt", "thresholds.json",
            "predictions.csv", "val_predictions.csv", "metrics.json"} <= files
    run = RunFolder(tiny_run)
    cfg = run.config
    for key in ("run_name", "dataset", "dataset_name", "backbone", "image_size", "epochs",
                "batch_size", "lr", "loss", "head", "adjacency", "embeddings", "augmented",
                "protocol", "leaky", "seed", "git_commit", "versions", "amp",
                "batch_size_per_process"):
        assert key in cfg, key
    assert run.dataset == tiny_scenes.resolve() and cfg["leaky"] is False
    assert (cfg["epochs"], cfg["image_size"], cfg["run_name"]) == (2, 32, tiny_run.name)
    assert cfg["amp"] is False and cfg["batch_size_per_process"] == 16

    hist = run.history()
    assert list(hist["epoch"]) == [1, 2]
    for col in ("train_loss", "val_loss", "val_mean_average_precision", "val_per_class_f1",
                "lr", "seconds"):
        assert hist[col].notna().all(), col
    assert "test_mean_average_precision" not in hist  # holdout never looks at test

    ckpt = torch.load(run.checkpoint_path, weights_only=True)
    best = torch.load(run.best_path, weights_only=True)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    assert best["epoch"] == int(hist.loc[hist["select_score"].idxmax(), "epoch"])

    ds = datasets.load_dataset(tiny_scenes)
    info = run.threshold_info()
    assert info["labels"] == ds.labels and info["tuned_on"] == "val"
    # thresholds are exactly the tuning of the saved validation scores
    from lib.method import thresholds
    val = run.predictions("val").loc[ds.splits["val"].names, ds.labels].to_numpy()
    expected, _ = thresholds.tune(ds.splits["val"].targets, val,
                                  min_positives=info["min_positives"], fallback=info["fallback"])
    assert (info["min_positives"], info["fallback"]) == (1, "0.5")
    np.testing.assert_allclose(run.thresholds(), expected)

    pred = pd.read_csv(run.predictions_path())
    assert list(pred.columns) == ["image_name", *ds.labels]
    assert list(pred["image_name"]) == ds.splits["test"].names
    scores = pred[ds.labels].to_numpy()
    m = run.metrics()
    assert m["split"] == "test" and m["leaky"] is False
    expected = metrics.evaluate_scores(ds.splits["test"].targets, scores, run.thresholds())
    assert m["mean_average_precision"] == pytest.approx(expected["mean_average_precision"],
                                                        abs=1e-6)
    for block in ("at_0.5", "mcc", "top5", "top3"):
        assert set(m[block]) >= SEVEN
        for key in SEVEN:
            assert m[block][key] == pytest.approx(expected[block][key], abs=1e-6), (block, key)


@pytest.mark.slow
def test_a_tiny_run_learns(tiny_scenes, tmp_path):
    """Four epochs on the tiny scenes: test mAP clearly above the label-prior baseline (every
    image scored by the training frequency of each label, whose expected AP is the label's
    prevalence)."""
    run = RunFolder(launch.train(tiny_config(tiny_scenes, tmp_path / "learn", epochs=4,
                                               head="linear")))
    ds = datasets.load_dataset(tiny_scenes)
    y = ds.splits["test"].targets
    present = y.any(axis=0)
    prior_map = float(y[:, present].mean(axis=0).mean())
    assert run.metrics()["mean_average_precision"] > prior_map + 0.15


@pytest.mark.slow
def test_continuing_gives_the_uninterrupted_result(tiny_scenes, tmp_path):
    full = launch.train(tiny_config(tiny_scenes, tmp_path / "full"))
    part = tmp_path / "part"
    launch.train(tiny_config(tiny_scenes, part), max_epochs_this_call=1)
    assert not (part / "metrics.json").exists()
    assert len(pd.read_csv(part / "history.csv")) == 1
    launch.train(tiny_config(tiny_scenes, part))  # a plain rerun continues
    assert json.loads((part / "metrics.json").read_text()) == json.loads(
        (full / "metrics.json").read_text())
    for name in ("best.pt", "checkpoint.pt"):
        a = torch.load(full / name, weights_only=True)["model"]
        b = torch.load(part / name, weights_only=True)["model"]
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    pd.testing.assert_frame_equal(pd.read_csv(full / "history.csv").drop(columns="seconds"),
                                  pd.read_csv(part / "history.csv").drop(columns="seconds"))
    # a finished run is kept as it is, its config.json the record of the call that trained
    # it (reopened with another evaluation batch: not rewritten, not even touched, which
    # the workflow's mtime staleness relies on)
    before = {f: ((part / f).stat().st_mtime_ns, (part / f).read_bytes())
              for f in ("checkpoint.pt", "config.json", "metrics.json")}
    launch.train(tiny_config(tiny_scenes, part, eval_batch_size=7))
    assert {f: ((part / f).stat().st_mtime_ns, (part / f).read_bytes()) for f in before} == before


@pytest.mark.slow
def test_a_run_folder_belongs_to_its_run(tiny_scenes, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="notes.txt"):
        launch.train(tiny_config(tiny_scenes, out, epochs=1))
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    launch.train(tiny_config(tiny_scenes, out, epochs=1))
    with pytest.raises(RunError, match=r"differs in \['lr'\]"):
        launch.train(tiny_config(tiny_scenes, out, epochs=1, lr=0.01))
    assert RunFolder(out).config["lr"] == 2e-3  # the old run is untouched
    launch.train(tiny_config(tiny_scenes, out, epochs=1, lr=0.01, overwrite=True))
    assert RunFolder(out).config["lr"] == 0.01
    with file_lock(out / ".lock", "training run"), pytest.raises(LockedError, match="pid"):
        launch.train(tiny_config(tiny_scenes, out, epochs=1, lr=0.01))


@pytest.mark.slow
def test_reference_protocol_is_the_reference(tiny_scenes, tmp_path):
    """No carve (all of train.json trains and builds the graph), selection on test, thresholds
    tuned on the training images with flips, fp32, leaky everywhere."""
    run = RunFolder(launch.train(tiny_config(tiny_scenes, tmp_path / "ref", epochs=1,
                                               protocol="reference", head="linear")))
    cfg, m, hist = run.config, run.metrics(), run.history()
    raw = json.loads((tiny_scenes / "train.json").read_text())["samples"]
    assert cfg["n_train"] == len(raw) and cfg["leaky"] is True and m["leaky"] is True
    assert cfg["amp"] is False and cfg["selection_split"] == "test"
    assert hist["select_score"].iloc[0] == hist["test_mean_average_precision"].iloc[0]
    info = run.threshold_info()
    assert info["tuned_on"] == "train" and info["flips"] is True
    assert not run.predictions_path("val").exists()
    # the graph a reference GCN run uses is built from every training image
    ds = datasets.load_dataset(tiny_scenes, val_fraction=0.0)
    # (best.pt keeps the graph once, as a buffer of a GCN head: build a GCN run's trainer)
    from lib.training.trainer import Trainer

    trainer = Trainer(tiny_config(tiny_scenes, tmp_path / "ref-gcn", epochs=1,
                                  protocol="reference", head="gcn"))
    adjacency = trainer.module.net.head.adjacency
    np.testing.assert_allclose(adjacency.numpy(),
                               graph.adjacency(ds.splits["train"].targets), rtol=1e-6)


@pytest.mark.slow
def test_reference_protocol_does_not_carve(tiny_scenes, tmp_path):
    """Without val.json, holdout carves 10 % of train.json; the reference trains on all."""
    import shutil

    root = tmp_path / "noval"
    shutil.copytree(tiny_scenes, root)
    (root / "val.json").unlink()
    n = len(json.loads((root / "train.json").read_text())["samples"])
    ref = RunFolder(launch.train(tiny_config(root, tmp_path / "r", epochs=1, head="linear",
                                               protocol="reference")))
    hold = RunFolder(launch.train(tiny_config(root, tmp_path / "h", epochs=1, head="linear")))
    assert ref.config["n_train"] == n and hold.config["n_train"] == n - round(0.1 * n)
    assert hold.config["val_carved"] is True and ref.config["val_carved"] is False


@pytest.mark.filterwarnings("ignore:.*never occur in the training targets")
def test_graph_and_normalisation_come_from_the_training_split_after_the_carve(tiny_scenes,
                                                                              tmp_path):
    """docs/method.md, "Which images" and item 14: without val.json the holdout protocol
    carves a validation split; the label graph and the dataset normalisation are then
    computed from the remaining training images only (by hand here: the carve of
    lib.data.datasets, the adjacency of those targets, mean and population sd of their pixels)."""
    from lib.training.trainer import Trainer

    root = tmp_path / "scenes"
    shutil.copytree(tiny_scenes, root)
    (root / "val.json").unlink()
    cfg = tiny_config(root, tmp_path / "run", epochs=1, normalization="dataset")
    trainer = Trainer(cfg)
    ds = datasets.load_dataset(root, seed=0, val_fraction=cfg.val_fraction)
    train, val = ds.splits["train"], ds.splits["val"]
    assert len(val.names) == round(0.1 * 96) and len(train.names) == 96 - len(val.names)
    np.testing.assert_array_equal(trainer.adjacency.numpy(), graph.adjacency(train.targets))
    every = np.concatenate([train.targets, val.targets])
    assert not np.allclose(graph.adjacency(every), graph.adjacency(train.targets))

    def stats(names):
        x = np.stack([images.decode_image(ds.image_path(n), 32) for n in names])
        x = x.reshape(-1, 3).astype(np.float64) / 255.0
        return x.mean(axis=0), x.std(axis=0)                     # population sd (ddof 0)

    mean, std = stats(train.names)
    np.testing.assert_allclose(trainer.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(trainer.std, std, rtol=1e-6)
    mean_all, _ = stats([*train.names, *val.names])
    assert np.abs(mean_all - mean).max() > 1e-4                   # the carve matters here
