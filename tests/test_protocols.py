"""The reference protocol over several epochs: the epoch is selected on the test split, and
that epoch (not the last) is the model that is scored (docs/method.md, "Training and
protocols")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.training import launch, settings
from lib.training import trainer as trainer_module
from lib.training.runs import RunFolder


@pytest.mark.slow
def test_reference_protocol_keeps_the_test_selected_epoch_not_the_last(tiny_scenes, tmp_path,
                                                                       monkeypatch):
    """The selection metric is scripted (0.2, 0.9, 0.4, 0.3 over four epochs, on the test
    images: training dynamics differ between CPUs), so epoch 2 is selected; the run must keep
    that epoch's weights and score them, not the last epoch's."""
    script, seen = [0.2, 0.9, 0.4, 0.3], []
    real = trainer_module.epoch_metrics

    def scripted(y_true, scores):
        out = real(y_true, scores)
        seen.append(len(y_true))
        out["per_class_f1"] = script[len(seen) - 1]
        return out

    monkeypatch.setattr(trainer_module, "epoch_metrics", scripted)
    config = settings.TrainConfig(data=str(tiny_scenes), out=str(tmp_path / "ref"), epochs=4,
                                  image_size=32, batch_size=16, seed=0, protocol="reference",
                                  head="linear", lr=0.03, schedule="constant",
                                  select_metric="per_class_f1")
    run = RunFolder(launch.train(config))
    hist = run.history()
    assert seen == [32] * 4                                  # the 32 test images, each epoch
    np.testing.assert_array_equal(hist["select_score"].to_numpy(), script)
    np.testing.assert_array_equal(hist["best"].to_numpy(), [True, True, False, False])
    assert torch.load(run.best_path, weights_only=True)["epoch"] == 2
    # the scored model is epoch 2's: its test mAP, not the last epoch's
    test_map = hist["test_mean_average_precision"].to_numpy()
    final = run.metrics()["mean_average_precision"]
    assert final == pytest.approx(test_map[1], abs=1e-9)
    assert abs(final - test_map[-1]) > 1e-4
