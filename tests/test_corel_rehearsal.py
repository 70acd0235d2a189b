"""The Corel-5k reference path without the images: the real reference model (TResNet-M at
448 px, 260 labels, GloVe 300-d vectors, GCN head) takes an optimiser step on stand-in
images, and the reference configuration is the same however it is asked for."""

from __future__ import annotations

import pytest
import torch

from lib.core import config
from lib.data.drawn import standin
from lib.training import launch, settings
from lib.training.trainer import Trainer


@pytest.mark.slow
def test_reference_model_takes_an_optimiser_step_on_standin_images(corel_dir, tmp_path):
    data = standin.generate_standin(corel_dir, tmp_path / "standin", seed=0, progress=False,
                                    limit=2)
    cfg = settings.build_config("corel5k", {
        "data": str(data), "out": str(tmp_path / "run"), "pretrained": False,  # no download
        "embeddings": str(corel_dir / "glove300_corel5k.txt"), "protocol": "reference",
        "batch_size": 2, "num_workers": 0, "eval_batch_size": 2, "device": "cpu"})
    assert (cfg.backbone, cfg.image_size, cfg.head, cfg.loss) == ("tresnet_m", 448, "gcn", "asl")
    trainer = Trainer(cfg)
    net = trainer.module.net
    assert net.backbone.num_features == 2048
    assert tuple(net.head.label_vectors.shape) == (260, 300)
    assert tuple(net.head.adjacency.shape) == (260, 260)
    assert trainer.train_images.shape == (2, 448, 448, 3)
    images, targets = next(iter(trainer.loader))
    assert images.shape == (2, 3, 448, 448) and targets.shape == (2, 260)
    before = {k: v.detach().clone() for k, v in trainer.module.named_parameters()}
    loss = trainer.step(images, targets, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    changed = [k for k, v in trainer.module.named_parameters() if not torch.equal(v, before[k])]
    assert any(k.startswith("net.head.") for k in changed)      # the GCN learns
    assert any(k.startswith("net.backbone.") for k in changed)  # and the encoder


def test_reference_configuration_is_one_thing_from_cli_and_api():
    """`python -m lib train --preset corel5k` and the API give the same 300-d recipe."""
    parser = launch.train_parser()
    cli = settings.build_config("corel5k", config.given(parser.parse_args(
        ["--preset", "corel5k", "--protocol", "reference"]), settings.TrainConfig))
    api = settings.build_config("corel5k", {"protocol": "reference"})
    assert cli == api
    assert api.embeddings == "glove-wiki-gigaword-300" and api.amp is None
    assert not api.resolved_amp("cuda") and api.leaky
