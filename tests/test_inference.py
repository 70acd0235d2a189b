"""Scoring a trained run: evaluate, score and annotate agree; one scoring path; evaluate
follows the image files; the Scorer's flips and load_model's two checkpoints against
oracles computed here."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from by_hand import numbers_by_hand
from PIL import Image
from torch import nn

from lib.data import datasets, predictions
from lib.training import inference, settings
from lib.training import trainer as trainer_module
from lib.training.runs import RunFolder

SEVEN = {"per_class_precision", "per_class_recall", "per_class_f1", "per_image_precision",
         "per_image_recall", "per_image_f1", "n_plus"}

# the tests that read the session's tiny_run are slow and in one xdist group (one worker
# builds tiny_run: make test, loadgroup)


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_evaluate_and_score_reproduce_training_metrics(tiny_run, tiny_scenes, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "metrics.json").unlink()
    assert inference.evaluate_main([str(run)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert json.loads((run / "metrics.json").read_text()) == evaluated
    assert predictions.score_main([str(run / "predictions.csv"), "--data", str(tiny_scenes),
                               "--thresholds", str(run / "thresholds.json")]) == 0
    scored = json.loads(capsys.readouterr().out)
    original = RunFolder(tiny_run).metrics()
    for result in (scored, original):
        assert evaluated["mean_average_precision"] == pytest.approx(
            result["mean_average_precision"], abs=1e-6)
        for block in ("at_0.5", "mcc", "top5", "top3"):
            for key in SEVEN:
                assert evaluated[block][key] == pytest.approx(result[block][key], abs=1e-6)
    # and they are the method's numbers, computed by hand from the training's files
    by_hand = numbers_by_hand(tiny_run)
    assert evaluated["mean_average_precision"] == pytest.approx(
        by_hand["mean_average_precision"], abs=1e-6)
    for block in ("at_0.5", "mcc", "top5", "top3"):
        for key in SEVEN:
            assert evaluated[block][key] == pytest.approx(by_hand[f"{block}.{key}"],
                                                          abs=1e-6), (block, key)


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_evaluate_follows_a_replaced_test_image(tiny_run, tiny_scenes, tmp_path):
    """Every test image replaced by a black one: evaluate scores the new pixels (the decode
    cache is keyed by the files' content), so metrics.json changes."""
    root = tmp_path / "scenes"
    shutil.copytree(tiny_scenes, root)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["dataset"] = str(root)
    (run / "config.json").write_text(json.dumps(cfg))
    before = inference.evaluate_run(run, device="cpu")
    ds = datasets.load_dataset(root)
    for name in ds.splits["test"].names:
        path = ds.image_path(name)
        st = os.stat(path)
        Image.new("RGB", (48, 48)).save(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**6))
    after = inference.evaluate_run(run, device="cpu")
    assert after["mean_average_precision"] != before["mean_average_precision"]
    model, cfg = inference.load_model(run)
    scores = inference.predict(model, ds, "test", config=cfg, device="cpu")
    assert np.ptp(scores, axis=0).max() < 1e-6  # identical black images, identical scores


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_run")
def test_annotate_agrees_with_predictions(tiny_run, tiny_scenes, tmp_path):
    ds = datasets.load_dataset(tiny_scenes)
    names = ds.splits["test"].names[:10]
    out = tmp_path / "labels.json"
    argv = [str(tiny_run), *[str(ds.image_path(n)) for n in names], "--format", "json",
            "--output", str(out)]
    assert inference.annotate_main(argv) == 0
    rows = json.loads(out.read_text())
    pred = RunFolder(tiny_run).predictions()
    thr = RunFolder(tiny_run).thresholds()
    for name, row in zip(names, rows, strict=True):
        got = np.array([row["scores"][lab] for lab in ds.labels])
        np.testing.assert_allclose(got, pred.loc[name, ds.labels].to_numpy(), atol=1e-5)
        assert set(row["labels"]) == {lab for lab, s, t in zip(ds.labels, got, thr,
                                                                strict=True) if s >= t}
    folder = tmp_path / "imgs"
    folder.mkdir()
    for n in names[:3]:
        shutil.copy(ds.image_path(n), folder / n)
    csv = tmp_path / "labels.csv"
    assert inference.annotate_main([str(tiny_run), str(folder), "--top-k", "2", "--output",
                                    str(csv)]) == 0
    table = pd.read_csv(csv)
    assert len(table) == 3
    for _, r in table.iterrows():
        best2 = pred.loc[r["image"].split("/")[-1], ds.labels].astype(float).nlargest(2).index
        assert json.loads(r["labels"]) == list(best2)  # a JSON list (labels may hold spaces)
    with pytest.raises(SystemExit):
        inference.annotate_main([str(tiny_run), str(folder), "--top-k", "0"])


# --------------------------------------------------------------------------- Scorer flips


class _Pixels(nn.Module):
    """Fixed random linear functions of every pixel: no symmetry, so a flipped image gets
    other logits."""

    def __init__(self, size: int, labels: int = 4):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("weight", torch.randn(labels, 3 * size * size, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 3  # NCHW
        return x.float().flatten(1) @ self.weight.T / 255


def _flipped_by_hand(images: np.ndarray, seed: int, batch_size: int):
    """``images`` (N x H x W x 3) as the documented flips leave them: per batch of the
    scorer, coins ``torch.rand(B, 2) < 0.5`` from a generator seeded ``seed``, column 0
    flips left-right (the W axis), column 1 upside down (the H axis)."""
    g = torch.Generator().manual_seed(seed)
    out, coins = images.copy(), []
    for start in range(0, len(images), batch_size):
        batch = range(start, min(start + batch_size, len(images)))
        draw = (torch.rand(len(batch), 2, generator=g) < 0.5).numpy()
        for i, (h, v) in zip(batch, draw, strict=True):
            if h:
                out[i] = out[i][:, ::-1]
            if v:
                out[i] = out[i][::-1]
            coins.append((bool(h), bool(v)))
    return out, coins


def test_scorer_flips_are_the_documented_random_flips():
    """``Scorer.logits(flips=generator)``: the model's logits on the images flipped by hand
    with coins drawn from an identically seeded generator; without a generator, the logits
    of the images as they are."""
    size, n, batch = 8, 13, 4
    images = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    model = _Pixels(size)
    scorer = inference.Scorer(model, "cpu", batch_size=batch)

    def direct(x: np.ndarray) -> torch.Tensor:
        return model(torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2))

    plain = scorer.logits(images)
    torch.testing.assert_close(plain, direct(images), rtol=1e-5, atol=1e-5)
    seed = 3
    flipped, coins = _flipped_by_hand(images, seed, batch)
    assert set(coins) == {(False, False), (True, False), (False, True), (True, True)}
    got = scorer.logits(images, flips=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(got, direct(flipped), rtol=1e-5, atol=1e-5)
    for i, coin in enumerate(coins):  # the model is not symmetric: flips show
        same = torch.allclose(got[i], plain[i], rtol=1e-5, atol=1e-5)
        assert same == (coin == (False, False)), (i, coin)


# --------------------------------------------------------------------------- load_model


@pytest.mark.slow
def test_load_model_last_and_best_are_the_two_checkpoints(tiny_scenes, tmp_path, monkeypatch):
    """A run whose validation metric falls (epoch 1 best, epoch 2 last): ``which="best"``
    (the default) gives best.pt's weights, epoch 1's; ``which="last"`` checkpoint.pt's,
    epoch 2's (recorded here as they were trained); another ``which`` is an error."""
    from lib.training.trainer import Trainer

    sequence = iter([0.6, 0.3])
    monkeypatch.setattr(trainer_module, "epoch_metrics", lambda y, s: {
        "mean_average_precision": next(sequence), "per_class_f1": 0.0, "per_image_f1": 0.0,
        "n_plus": 0})
    trainer = Trainer(settings.TrainConfig(
        data=str(tiny_scenes), out=str(tmp_path / "run"), epochs=2, image_size=32,
        batch_size=16, seed=0, device="cpu", backbone="test_resnet"))
    trained: dict[int, dict[str, torch.Tensor]] = {}
    train_epoch = trainer.train_epoch

    def recording() -> float:
        loss = train_epoch()
        trained[trainer.epoch + 1] = {k: v.detach().clone()
                                      for k, v in trainer.module.state_dict().items()}
        return loss

    trainer.train_epoch = recording
    run = trainer.run()
    files = {"best": torch.load(run / "best.pt", weights_only=True),
             "last": torch.load(run / "checkpoint.pt", weights_only=True)}
    assert (files["best"]["epoch"], files["last"]["epoch"]) == (1, 2)
    models = {which: inference.load_model(run, which=which)[0] for which in ("best", "last")}
    default, _ = inference.load_model(run)
    for which, epoch in (("best", 1), ("last", 2)):
        state = models[which].state_dict()
        assert not models[which].training
        assert set(state) == set(trained[epoch]) == set(files[which]["model"])
        for key, value in trained[epoch].items():
            assert torch.equal(state[key], value), (which, key)
            assert torch.equal(state[key], files[which]["model"][key]), (which, key)
    assert any(not torch.equal(v, models["last"].state_dict()[k])
               for k, v in models["best"].state_dict().items())
    for key, value in default.state_dict().items():
        assert torch.equal(value, models["best"].state_dict()[key]), key
    with pytest.raises(ValueError, match=r"which='latest'; expected 'best' or 'last'"):
        inference.load_model(run, which="latest")
