"""Two-process DistributedDataParallel training on CPU (gloo): one short epoch."""

from __future__ import annotations

import json
import os
import socket

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from lib import training


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str, dump: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank), TQDM_DISABLE="1")
    torch.set_num_threads(1)
    config = training.TrainConfig(data=data, out=out, epochs=1, image_size=32, batch_size=32,
                                  seed=0, device="cpu")
    from lib.trainer import Trainer

    trainer = Trainer(config)
    trainer.run()
    torch.save({"model": trainer.module.state_dict(), "n_batches": trainer.steps_per_epoch,
                "sampled": list(iter(trainer.sampler))}, f"{dump}/rank{rank}.pt")


@pytest.mark.slow
def test_two_process_ddp_epoch(tiny_scenes, tmp_path):
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_scenes), str(out), str(tmp_path)),
             nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # the ranks end the epoch with identical weights (gradients were all-reduced)
    assert r0["model"].keys() == r1["model"].keys()
    for key in r0["model"]:
        assert torch.equal(r0["model"][key], r1["model"][key]), key
    # each rank saw its own half of the training images
    assert not set(r0["sampled"]) & set(r1["sampled"])
    assert len(r0["sampled"]) + len(r1["sampled"]) == 96
    assert r0["n_batches"] == 3  # 48 images per rank; global batch 32 = 16 per rank
    # rank 0 wrote one complete run folder
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["world_size"] == 2 and cfg["batch_size_per_process"] == 16
    assert len(pd.read_csv(out / "history.csv")) == 1
    assert json.loads((out / "metrics.json").read_text())["split"] == "test"
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    for key in saved:
        assert torch.equal(saved[key], r0["model"][key]), key
