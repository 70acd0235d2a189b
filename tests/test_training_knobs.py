"""The training knobs off by default, against oracles computed here (docs/method.md,
"Training and protocols": early stopping ``patience``, EMA of the weights, gradient
clipping): each test recomputes what the documented method gives from what it can observe
(the raw weights after every step, the gradient of a twin of the model, a known sequence of
validation metrics) and never reads back the number under test from the code's own output."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from by_hand import seven_by_hand

from lib.training import launch, settings
from lib.training import trainer as trainer_module
from lib.training.trainer import Trainer


def tiny_config(tiny_scenes, out, **kw) -> settings.TrainConfig:
    base = dict(data=str(tiny_scenes), out=str(out), epochs=2, image_size=32, batch_size=16,
                seed=0, device="cpu")
    base.update(kw)
    return settings.TrainConfig(**base)


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


def _assert_state_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor],
                        *, what: str) -> None:
    assert set(got) == set(want), what
    for key, value in want.items():
        if value.is_floating_point():
            np.testing.assert_allclose(got[key].double().numpy(), value.double().numpy(),
                                       rtol=1e-5, atol=1e-6, err_msg=f"{what}: {key}")
        else:
            assert torch.equal(got[key], value), f"{what}: {key}"


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a
               if a[k].is_floating_point())


def _record_epochs(trainer: Trainer, snapshots: dict[int, dict[str, torch.Tensor]]) -> None:
    """After every epoch, the raw trained weights in ``snapshots[epoch]`` (1-based)."""
    train_epoch = trainer.train_epoch

    def recording() -> float:
        loss = train_epoch()
        snapshots[trainer.epoch + 1] = _clone(trainer.module.state_dict())
        return loss

    trainer.train_epoch = recording


# --------------------------------------------------------------------------- EMA


@pytest.mark.slow
def test_ema_weights_are_the_moving_average_of_the_trained_weights(tiny_scenes, tmp_path):
    """``ema=d``: after every optimisation step ``ema <- d ema + (1 - d) w`` (w: the weights
    just trained; every floating entry of the state dict, BN statistics included, as timm's
    ModelEmaV3 does; integer counters copied), starting from the initial weights. The EMA
    weights, not the raw ones, are what each epoch is scored with (history.csv) and what
    best.pt holds; checkpoint.pt keeps both."""
    d = 0.8
    trainer = Trainer(tiny_config(tiny_scenes, tmp_path / "ema", ema=d, head="linear"))
    ema = {k: v.double() for k, v in _clone(trainer.module.state_dict()).items()
           if v.is_floating_point()}
    counters: dict[str, torch.Tensor] = {}
    by_epoch: dict[int, dict[str, torch.Tensor]] = {}
    raw: dict[int, dict[str, torch.Tensor]] = {}
    steps = []
    step, train_epoch = trainer.step, trainer.train_epoch

    def stepping(images, targets, flip_gen=None):
        loss = step(images, targets, flip_gen)
        for key, value in trainer.module.state_dict().items():
            if value.is_floating_point():
                ema[key] = d * ema[key] + (1 - d) * value.detach().double()
            else:
                counters[key] = value.detach().clone()
        steps.append(1)
        return loss

    def epoch() -> float:
        loss = train_epoch()
        by_epoch[trainer.epoch + 1] = {**{k: v.float() for k, v in ema.items()},
                                       **_clone(counters)}
        raw[trainer.epoch + 1] = _clone(trainer.module.state_dict())
        return loss

    trainer.step, trainer.train_epoch = stepping, epoch
    folder = trainer.folder
    trainer.run()
    assert len(steps) == 2 * trainer.steps_per_epoch > 2
    # not vacuous: the average is far from the last raw weights
    assert _max_difference(by_epoch[2], raw[2]) > 1e-3

    best = torch.load(folder.best_path, weights_only=True)
    _assert_state_close(best["model"], by_epoch[best["epoch"]], what="best.pt")
    last = torch.load(folder.checkpoint_path, weights_only=True)
    _assert_state_close({k.removeprefix("module."): v for k, v in last["ema"].items()},
                        by_epoch[2], what="checkpoint.pt ema")
    for key, value in raw[2].items():
        assert torch.equal(last["model"][key], value), key

    # every epoch is scored with the EMA weights
    history = pd.read_csv(folder.path / "history.csv")
    for _, row in history.iterrows():
        twin = copy.deepcopy(trainer.module)
        twin.load_state_dict(by_epoch[int(row["epoch"])])
        scores, loss = trainer.scores("val", twin)
        assert row["val_loss"] == pytest.approx(loss, rel=1e-5)
        expected = trainer_module.epoch_metrics(trainer.dataset.splits["val"].targets, scores)
        assert row["val_mean_average_precision"] == pytest.approx(
            expected["mean_average_precision"], abs=1e-6)


@pytest.mark.slow
def test_an_interrupted_ema_run_continues_its_average(tiny_scenes, tmp_path):
    """checkpoint.pt holds the EMA: a run stopped after epoch 1 and continued ends with the
    EMA weights (checkpoint.pt's EMA, best.pt) of the uninterrupted run, not an average
    restarted at epoch 2."""
    settings = dict(ema=0.8, head="linear", backbone="test_resnet")
    full = launch.train(tiny_config(tiny_scenes, tmp_path / "full", **settings))
    part = tmp_path / "part"
    launch.train(tiny_config(tiny_scenes, part, **settings), max_epochs_this_call=1)
    launch.train(tiny_config(tiny_scenes, part, **settings))
    for name, key in (("best.pt", "model"), ("checkpoint.pt", "ema")):
        a = torch.load(full / name, weights_only=True)
        b = torch.load(part / name, weights_only=True)
        assert a["epoch"] == b["epoch"]
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), (name, k)


# --------------------------------------------------------------------------- clipping


def _adam_first_update(grad: torch.Tensor, lr: float, eps: float = 1e-8) -> torch.Tensor:
    """Adam's first step (bias-corrected m = g, v = g^2, no weight decay): lr g / (|g| +
    eps)."""
    return lr * grad / (grad.abs() + eps)


def test_grad_clip_scales_the_gradient_to_its_norm_before_the_step(tiny_scenes, tmp_path):
    """``grad_clip=c``: the gradient of all parameters together is scaled by
    ``c / (||g|| + 1e-6)`` when its total 2-norm exceeds ``c`` (torch's clip_grad_norm_),
    before the Adam step: the update equals Adam's first step on the clipped gradient,
    computed here from a twin of the model. ``c`` is small enough that the clipped
    gradient's entries are of the order of Adam's eps, where the update depends on the
    scale of the gradient (larger ones give ``lr sign(g)`` whatever the scale)."""
    lr, clip = 1e-3, 1e-5
    trainer = Trainer(tiny_config(tiny_scenes, tmp_path / "clip", grad_clip=clip, lr=lr,
                                  schedule="constant", flips=False, head="linear"))
    images, targets = next(iter(trainer.loader))
    twin = copy.deepcopy(trainer.module).train()
    trainer.criterion(twin(images).float(), targets).backward()
    grads = {n: p.grad.detach().double() for n, p in twin.named_parameters()}
    total = math.sqrt(sum(float(g.pow(2).sum()) for g in grads.values()))
    assert total > 100 * clip  # clipping is active
    scale = clip / (total + 1e-6)
    before = {n: p.detach().double().clone() for n, p in trainer.module.named_parameters()}
    trainer.step(images, targets)
    unclipped_differs = 0.0
    for name, p in trainer.module.named_parameters():
        update = before[name] - p.detach().double()
        expected = _adam_first_update(grads[name] * scale, lr)
        # float32 weights: the update is seen to within the weight's own rounding
        ulp = 2 * float(torch.finfo(torch.float32).eps) * float(before[name].abs().max())
        np.testing.assert_allclose(update.numpy(), expected.numpy(), rtol=1e-4,
                                   atol=ulp + 1e-12, err_msg=name)
        unclipped_differs = max(unclipped_differs, float(
            (_adam_first_update(grads[name], lr) - update).abs().max()))
    assert unclipped_differs > lr / 10  # without clipping the update would be another


# --------------------------------------------------------------------------- patience


def _fake_epoch_metrics(monkeypatch, values, metric="mean_average_precision"):
    """Replace the per-epoch validation numbers by ``values`` in turn (``metric``; the
    other selection metrics get a sequence that would select otherwise)."""
    sequence = iter(values)
    seen = []

    def fake(y_true, scores):
        v = next(sequence)
        seen.append(v)
        others = {k: 1.0 - v for k in settings.SELECT_METRICS}
        return {**others, metric: v, "n_plus": 0}

    monkeypatch.setattr(trainer_module, "epoch_metrics", fake)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["mean_average_precision", "per_class_f1"])
def test_patience_stops_after_epochs_without_strict_improvement(tiny_scenes, tmp_path,
                                                                monkeypatch, metric):
    """patience=2 over the selection metric 0.2, 0.5, 0.5, 0.4, 0.9, 0.9: epoch 3 ties
    (not an improvement), so after epoch 4 two epochs have not improved and training stops;
    best.pt holds epoch 2's weights and the test files come from them."""
    seen = _fake_epoch_metrics(monkeypatch, [0.2, 0.5, 0.5, 0.4, 0.9, 0.9], metric)
    trainer = Trainer(tiny_config(tiny_scenes, tmp_path / "patience", epochs=6, patience=2,
                                  select_metric=metric, backbone="test_resnet",
                                  head="linear"))
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    _record_epochs(trainer, snapshots)
    folder = trainer.folder
    trainer.run()
    assert seen == [0.2, 0.5, 0.5, 0.4]
    history = pd.read_csv(folder.path / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert list(history["best"]) == [True, True, False, False]
    assert list(history["select_score"]) == [0.2, 0.5, 0.5, 0.4]
    best = torch.load(folder.best_path, weights_only=True)
    last = torch.load(folder.checkpoint_path, weights_only=True)
    assert (best["epoch"], best["score"]) == (2, 0.5)
    assert (last["epoch"], last["best_epoch"], last["stale"]) == (4, 2, 2)
    _assert_state_close(best["model"], snapshots[2], what="best.pt")
    assert _max_difference(snapshots[2], snapshots[4]) > 1e-4  # epoch 4 trained on
    # the test predictions are those of epoch 2's weights
    twin = copy.deepcopy(trainer.module)
    twin.load_state_dict(snapshots[2])
    scores, _ = trainer.scores("test", twin)
    test = trainer.dataset.splits["test"]
    written = pd.read_csv(folder.predictions_path()).set_index("image_name")
    np.testing.assert_allclose(written.loc[test.names, trainer.labels].to_numpy(), scores,
                               atol=1e-6)
    assert (folder.path / "metrics.json").is_file()


@pytest.mark.slow
def test_patience_zero_trains_every_epoch(tiny_scenes, tmp_path, monkeypatch):
    """patience=0 (the default) is off: the same falling metrics train all epochs."""
    seen = _fake_epoch_metrics(monkeypatch, [0.5, 0.4, 0.3])
    trainer = Trainer(tiny_config(tiny_scenes, tmp_path / "off", epochs=3,
                                  backbone="test_resnet", head="linear"))
    folder = trainer.folder
    trainer.run()
    assert seen == [0.5, 0.4, 0.3]
    assert list(pd.read_csv(folder.path / "history.csv")["best"]) == [True, False, False]
    assert torch.load(folder.best_path, weights_only=True)["epoch"] == 1


def test_epoch_metrics_are_taken_at_threshold_one_half():
    """history.csv's per-epoch selection numbers: F1 and N+ of s >= 0.5 (by hand), mAP of
    scikit-learn over the labels with a positive."""
    from sklearn.metrics import average_precision_score

    from lib.training.trainer import epoch_metrics

    rng = np.random.default_rng(3)
    y = (rng.random((40, 6)) < 0.3).astype(int)
    y[:, 5] = 0                                            # a label without positives
    s = rng.random((40, 6))
    s[0, 0] = 0.5                                          # on the threshold: predicted
    got = epoch_metrics(y, s)
    hand = seven_by_hand(y.astype(bool), s >= 0.5)
    for key in ("per_class_f1", "per_image_f1", "n_plus"):
        assert got[key] == pytest.approx(hand[key], abs=1e-12), key
    ap = np.mean([average_precision_score(y[:, c], s[:, c]) for c in range(5)])
    assert got["mean_average_precision"] == pytest.approx(ap, abs=1e-12)
