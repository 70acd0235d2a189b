"""The reference protocol over several epochs: the epoch is selected on the test split, and
that epoch (not the last) is the model that is scored (docs/method.md, "Training and
protocols")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib import training
from lib.runs import RunFolder


@pytest.mark.slow
def test_reference_protocol_keeps_the_test_selected_epoch_not_the_last(tiny_scenes, tmp_path):
    # a constant, high learning rate makes the test mAP go up and down over six epochs
    config = training.TrainConfig(data=str(tiny_scenes), out=str(tmp_path / "ref"), epochs=6,
                                  image_size=32, batch_size=16, seed=0, protocol="reference",
                                  head="linear", lr=0.03, schedule="constant")
    run = RunFolder(training.train(config))
    hist = run.history()
    test_map = hist["test_mean_average_precision"].to_numpy()
    np.testing.assert_array_equal(hist["select_score"].to_numpy(), test_map)   # on test
    best = int(np.argmax(test_map)) + 1          # first maximum: ties keep the earlier epoch
    assert best < len(hist), ("the test-selected epoch is the last one: this test needs "
                              "settings under which it is not (change lr or epochs)")
    assert hist["best"].to_numpy().nonzero()[0][-1] + 1 == best
    assert torch.load(run.best_path, weights_only=True)["epoch"] == best
    # the scored model is the selected epoch's: its test mAP, not the last epoch's
    final = run.metrics()["mean_average_precision"]
    assert final == pytest.approx(test_map[best - 1], abs=1e-9)
    assert abs(final - test_map[-1]) > 1e-4
