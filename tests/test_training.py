"""Training runs: the run folder contract, evaluate/score/annotate agreement, resume, the leaky
switch, the image cache, and the configuration/CLI surface."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from lib import data, metrics, training

# the session's tiny_run is built once per worker group (make test: --dist loadgroup)
slow_group = [pytest.mark.slow, pytest.mark.xdist_group("tiny_run")]

SEVEN = {"per_class_precision", "per_class_recall", "per_class_f1", "per_image_precision",
         "per_image_recall", "per_image_f1", "n_plus"}


def tiny_config(tiny_scenes, out, **kw) -> training.TrainConfig:
    base = dict(data=str(tiny_scenes), out=str(out), epochs=2, image_size=32, batch_size=16,
                seed=0)
    base.update(kw)
    return training.TrainConfig(**base)


# ----------------------------------------------------------------------------- fast unit tests


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="loss"):
        training.TrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="selection_split"):
        training.TrainConfig(selection_split="train")
    with pytest.raises(ValueError, match="schedule_epochs"):
        training.TrainConfig(epochs=10, schedule_epochs=5)
    with pytest.raises(ValueError, match="mean and TrainConfig.std"):
        training.TrainConfig(mean=(0.5, 0.5, 0.5))


def test_corel5k_preset_is_the_reference_recipe():
    c = training.TrainConfig.corel5k_reference("corel", "out")
    assert (c.backbone, c.image_size, c.batch_size, c.lr) == ("tresnet_m", 448, 32, 1e-4)
    assert (c.epochs, c.schedule_epochs, c.warmup, c.loss) == (60, 80, 0.2, "asl")
    assert c.flips and c.pretrained and c.mean == (0.3928, 0.4079, 0.3531)
    assert c.std == (0.2559, 0.2436, 0.2544) and not c.leaky
    assert training.TrainConfig.preset("corel5k", data="x", selection_split="test").leaky


def test_cli_options_map_to_config_fields():
    args = vars(training.train_parser().parse_args(
        ["--data", "d", "--out", "o", "--image-size", "48", "--select-on", "test",
         "--no-flips", "--augmented", "--loss", "focal", "--lr", "0.01", "--resume"]))
    given = {k: v for k, v in args.items() if v is not None and k != "preset"}
    config = training.TrainConfig(**given)
    assert (config.image_size, config.selection_split, config.flips) == (48, "test", False)
    assert (config.augmented, config.loss, config.lr, config.resume) == (True, "focal", 0.01, True)
    fields = {f.replace("_", "-") for f in training.TrainConfig.__dataclass_fields__}
    help_text = training.train_parser().format_help()
    for name in fields - {"selection-split", "mean", "std"}:
        assert f"--{name}" in help_text, name


def test_random_flips_are_flips_and_seeded():
    images = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).view(4, 3, 2, 2).repeat(8, 1, 1, 1)
    a = training.random_flips(images, torch.Generator().manual_seed(1))
    b = training.random_flips(images, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    variants = [images[:1], images[:1].flip(-1), images[:1].flip(-2), images[:1].flip(-1, -2)]
    seen = set()
    for out, src in zip(a, images, strict=True):
        matches = [i for i, v in enumerate([src, src.flip(-1), src.flip(-2), src.flip(-1, -2)])
                   if torch.equal(out, v)]
        assert matches
        seen.add(matches[0])
    assert len(variants) == 4 and len(seen) > 1  # 32 images: both flipped and unflipped occur


def test_random_flips_follow_the_documented_coins():
    images = torch.randint(0, 256, (16, 3, 5, 7), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    before = images.clone()
    out = training.random_flips(images, torch.Generator().manual_seed(4))
    coins = torch.rand(16, 2, generator=torch.Generator().manual_seed(4)) < 0.5
    for img, got, (h, v) in zip(images, out, coins.tolist(), strict=True):
        ref = img.flip(-1) if h else img
        assert torch.equal(got, ref.flip(-2) if v else ref)
    assert torch.equal(images, before)  # the input batch is not modified


def test_cache_stats_match_numpy():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 5, 4, 3), dtype=np.uint8)
    mean, std = training.cache_channel_stats(images, chunk=3)
    x = images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-10)
    np.testing.assert_allclose(std, x.std(0), rtol=1e-8)


def test_image_cache_decodes_once(tiny_scenes, monkeypatch):
    ds = data.load_dataset(tiny_scenes)
    names = ds.splits["val"].names
    calls = []
    real = data.read_image
    monkeypatch.setattr(data, "read_image", lambda p: calls.append(p) or real(p))
    first = training.image_cache(ds, "val", names, 24)
    assert len(calls) == len(names) and first.shape == (len(names), 24, 24, 3)
    assert isinstance(first, np.memmap) and first.dtype == np.uint8
    second = training.image_cache(ds, "val", names, 24)
    assert len(calls) == len(names)  # reused, not re-decoded
    np.testing.assert_array_equal(first, second)
    # the cache holds exactly the shared decoding (PIL resize of read_image)
    np.testing.assert_array_equal(first[3], training.decode_image(ds.image_path(names[3]), 24))
    n = len(calls)
    training.image_cache(ds, "val", names, 16)  # another size is another cache
    assert len(calls) == n + len(names)


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_run_folder_contract(tiny_run, tiny_scenes):
    files = {p.name for p in tiny_run.iterdir()}
    assert {"config.json", "history.csv", "checkpoint.pt", "best.pt", "thresholds.json",
            "predictions.csv", "metrics.json"} <= files
    cfg = json.loads((tiny_run / "config.json").read_text())
    for key in ("run_name", "dataset", "dataset_name", "backbone", "image_size", "epochs",
                "batch_size", "lr", "loss", "head", "adjacency", "embeddings", "augmented",
                "selection_split", "leaky", "seed", "git_commit", "versions"):
        assert key in cfg, key
    assert cfg["dataset"] == str(tiny_scenes.resolve()) and cfg["leaky"] is False
    assert (cfg["epochs"], cfg["image_size"], cfg["run_name"]) == (2, 32, tiny_run.name)
    assert "torch" in cfg["versions"]

    hist = pd.read_csv(tiny_run / "history.csv")
    assert list(hist["epoch"]) == [1, 2]
    for col in ("train_loss", "val_loss", "val_mean_average_precision", "val_per_class_f1",
                "lr", "seconds"):
        assert hist[col].notna().all(), col

    ckpt = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    best = torch.load(tiny_run / "best.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    assert {"model", "optimizer", "scheduler", "rng", "best_score"} <= set(ckpt)
    assert best["epoch"] == int(hist.loc[hist["select_score"].idxmax(), "epoch"])
    assert best["score"] == pytest.approx(hist["select_score"].max())

    ds = data.load_dataset(tiny_scenes)
    thr = json.loads((tiny_run / "thresholds.json").read_text())
    assert thr["labels"] == ds.labels and thr["tuned_on"] == "val"
    grid = np.round(np.arange(0.05, 0.701, 0.05), 2)
    assert all(np.isclose(t, grid).any() or t == 0.5 for t in thr["thresholds"])

    pred = pd.read_csv(tiny_run / "predictions.csv")
    assert list(pred.columns) == ["image_name", *ds.labels]
    assert list(pred["image_name"]) == ds.splits["test"].names
    scores = pred[ds.labels].to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all()

    m = json.loads((tiny_run / "metrics.json").read_text())
    assert m["split"] == "test" and m["leaky"] is False
    for block in ("at_0.5", "mcc", "top5", "top3"):
        assert set(m[block]) >= SEVEN
    # metrics.json is exactly the metrics of predictions.csv with the tuned thresholds
    expected = metrics.evaluate_scores(ds.splits["test"].targets, scores,
                                       np.asarray(thr["thresholds"]))
    assert m["mean_average_precision"] == pytest.approx(expected["mean_average_precision"],
                                                        abs=1e-6)
    for block in ("at_0.5", "mcc", "top5", "top3"):
        for key in SEVEN:
            assert m[block][key] == pytest.approx(expected[block][key], abs=1e-6), (block, key)


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_evaluate_and_score_agree(tiny_run, tiny_scenes, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "metrics.json").unlink()
    assert training.evaluate_main([str(run)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert json.loads((run / "metrics.json").read_text()) == evaluated
    assert metrics.score_main([str(run / "predictions.csv"), "--data", str(tiny_scenes),
                               "--thresholds", str(run / "thresholds.json")]) == 0
    scored = json.loads(capsys.readouterr().out)
    original = json.loads((tiny_run / "metrics.json").read_text())
    for result in (scored, original):
        assert evaluated["mean_average_precision"] == pytest.approx(
            result["mean_average_precision"], abs=1e-6)
        for block in ("at_0.5", "mcc", "top5", "top3"):
            for key in SEVEN:
                assert evaluated[block][key] == pytest.approx(result[block][key], abs=1e-6)


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_annotate_agrees_with_predictions(tiny_run, tiny_scenes, tmp_path):
    ds = data.load_dataset(tiny_scenes)
    names = ds.splits["test"].names[:10]
    out = tmp_path / "labels.json"
    argv = [str(tiny_run), *[str(ds.image_path(n)) for n in names], "--format", "json",
            "--output", str(out)]
    assert training.annotate_main(argv) == 0
    rows = json.loads(out.read_text())
    pred = pd.read_csv(tiny_run / "predictions.csv").set_index("image_name")
    thr = np.asarray(json.loads((tiny_run / "thresholds.json").read_text())["thresholds"])
    for name, row in zip(names, rows, strict=True):
        got = np.array([row["scores"][lab] for lab in ds.labels])
        np.testing.assert_allclose(got, pred.loc[name, ds.labels].to_numpy(), atol=1e-5)
        assert set(row["labels"]) == {lab for lab, s, t in zip(ds.labels, got, thr,
                                                                strict=True) if s >= t}
    # top-k in csv, from a folder copy
    folder = tmp_path / "imgs"
    folder.mkdir()
    for n in names[:3]:
        shutil.copy(ds.image_path(n), folder / n)
    csv = tmp_path / "labels.csv"
    assert training.annotate_main([str(tiny_run), str(folder), "--top-k", "2", "--output",
                                   str(csv)]) == 0
    table = pd.read_csv(csv)
    assert len(table) == 3
    for _, r in table.iterrows():
        best2 = pred.loc[r["image"].split("/")[-1], ds.labels].astype(float).nlargest(2).index
        assert r["labels"].split(" ") == list(best2)


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_resume_gives_the_uninterrupted_result(tiny_scenes, tmp_path):
    full = training.train(tiny_config(tiny_scenes, tmp_path / "full"))
    part = tmp_path / "part"
    training.train(tiny_config(tiny_scenes, part), max_epochs_this_call=1)
    assert not (part / "metrics.json").exists()
    assert len(pd.read_csv(part / "history.csv")) == 1
    training.train(tiny_config(tiny_scenes, part, resume=True))
    assert json.loads((part / "metrics.json").read_text()) == json.loads(
        (full / "metrics.json").read_text())
    for name in ("best.pt", "checkpoint.pt"):
        a = torch.load(full / name, weights_only=True)["model"]
        b = torch.load(part / name, weights_only=True)["model"]
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    hist_a = pd.read_csv(full / "history.csv").drop(columns="seconds")
    hist_b = pd.read_csv(part / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(hist_a, hist_b)


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_leaky_switch_and_cache_reuse(tiny_scenes, tmp_path, monkeypatch):
    out = training.train(tiny_config(tiny_scenes, tmp_path / "leaky", epochs=1,
                                     selection_split="test", head="linear", loss="bce"))
    cfg = json.loads((out / "config.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    hist = pd.read_csv(out / "history.csv")
    assert cfg["leaky"] is True and cfg["selection_split"] == "test" and m["leaky"] is True
    assert hist["select_score"].iloc[0] == hist["test_mean_average_precision"].iloc[0]
    # a second run on the same data and size decodes no image: the caches are reused
    calls = []
    monkeypatch.setattr(data, "read_image", lambda p: calls.append(p))
    training.train(tiny_config(tiny_scenes, tmp_path / "again", epochs=1, head="linear"))
    assert calls == []


# ------------------------------------------------------------- early stopping and EMA


@pytest.mark.slow
def test_early_stopping_stops_after_patience_epochs_without_improvement(
        tiny_scenes, tmp_path, monkeypatch):
    """With a selection score that never improves after the first epoch, a 6-epoch run with
    patience 2 trains exactly 3 epochs, keeps epoch 1 as best, and still writes its results."""
    real_scores = training.Trainer.scores

    def flat_scores(self, split, module=None):
        scores, loss = real_scores(self, split, module)
        return np.full_like(scores, 0.5), loss

    monkeypatch.setattr(training.Trainer, "scores", flat_scores)
    run = training.train(tiny_config(tiny_scenes, tmp_path / "run", epochs=6, patience=2))
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["best"].tolist() == [True, False, False]
    best = torch.load(run / "best.pt", weights_only=True)
    assert best["epoch"] == 1
    assert (run / "metrics.json").exists()


@pytest.mark.slow
def test_ema_changes_what_is_evaluated_not_how_the_model_trains(tiny_scenes, tmp_path):
    """EMA weights are what best.pt holds (and so what is evaluated), while the trained weights
    are exactly those of the same run without EMA."""
    plain = training.train(tiny_config(tiny_scenes, tmp_path / "plain", epochs=1))
    ema = training.train(tiny_config(tiny_scenes, tmp_path / "ema", epochs=1, ema=0.5))
    plain_ckpt = torch.load(plain / "checkpoint.pt", weights_only=True)
    ema_ckpt = torch.load(ema / "checkpoint.pt", weights_only=True)
    ema_best = torch.load(ema / "best.pt", weights_only=True)
    assert plain_ckpt["ema"] is None and ema_ckpt["ema"] is not None
    for name, value in plain_ckpt["model"].items():
        torch.testing.assert_close(ema_ckpt["model"][name], value, rtol=0, atol=0)
    ema_weights = {k.removeprefix("module."): v for k, v in ema_ckpt["ema"].items()}
    differs = False
    for name, value in ema_best["model"].items():
        torch.testing.assert_close(value, ema_weights[name], rtol=0, atol=0)
        if value.is_floating_point() and not torch.equal(value, ema_ckpt["model"][name]):
            differs = True
    assert differs, "EMA weights should differ from the raw weights after a few steps"
