"""Two-process DistributedDataParallel training on CPU (gloo): one short epoch."""

from __future__ import annotations

import json
import os
import socket

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from lib.training import settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str, dump: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank), TQDM_DISABLE="1")
    torch.set_num_threads(1)
    config = settings.TrainConfig(data=data, out=out, epochs=1, image_size=32, batch_size=32,
                                  seed=0, device="cpu")
    from lib.training.trainer import Trainer

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


def _worker_uneven(rank: int, world: int, port: int, data: str, out: str, dump: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank), TQDM_DISABLE="1")
    torch.set_num_threads(1)
    from lib.training.trainer import Trainer

    trainer = Trainer(_uneven_config(data, out))
    trainer.run()
    torch.save({"model": trainer.module.state_dict(), "n_batches": trainer.steps_per_epoch,
                "sampled": list(iter(trainer.sampler))}, f"{dump}/rank{rank}.pt")


def _uneven_config(data: str, out: str) -> settings.TrainConfig:
    # a LayerNorm backbone (no BatchNorm), so that a batch's result does not depend on how it
    # is split over processes, and the same global batch gives the same step
    return settings.TrainConfig(data=data, out=out, epochs=1, image_size=32, batch_size=32,
                                seed=0, device="cpu", backbone="convnext_atto", flips=True)


@pytest.mark.slow
def test_ddp_equals_one_process_with_the_same_global_batch_on_an_uneven_split(tmp_path):
    """Two processes (gloo) against one process stepping the same global batches: the
    weights agree after an epoch. 95 training images do not split evenly: each rank gets 47
    (the sampler drops the last of its permutation) in batches of 16, 16, 15."""
    from lib.data.drawn import synth
    from lib.training.images import random_flips
    from lib.training.trainer import Trainer, _seed_for

    data = tmp_path / "scenes"
    synth.generate(data, seed=0, size=32, n_train=95, n_val=16, n_test=16)
    mp.spawn(_worker_uneven, args=(2, _free_port(), str(data), str(tmp_path / "ddp"),
                                   str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    sampled = [r["sampled"] for r in ranks]
    assert [len(s) for s in sampled] == [47, 47] and ranks[0]["n_batches"] == 3
    assert not set(sampled[0]) & set(sampled[1])
    dropped = set(range(95)) - set(sampled[0]) - set(sampled[1])
    assert len(dropped) == 1

    # the one-process reference: the same initial model, each step on the union of the two
    # ranks' batches, each half flipped by its rank's generator, through Trainer.step
    torch.set_num_threads(1)
    ref = Trainer(_uneven_config(str(data), str(tmp_path / "one")))
    assert ref.dist.world_size == 1 and ref.steps_per_epoch == 3   # ceil(95 / 32)
    gens = [torch.Generator().manual_seed(_seed_for(0, 0, r)) for r in (0, 1)]
    ref.model.train()
    for i in range(3):
        halves = [ref.train_data.__getitems__(s[16 * i:16 * (i + 1)]) for s in sampled]
        images = torch.cat([random_flips(x, g) for (x, _), g in zip(halves, gens, strict=True)])
        targets = torch.cat([t for _, t in halves])
        ref.step(images, targets, None)
    ddp = ranks[0]["model"]
    for key, value in ref.module.state_dict().items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=2e-5, msg=key)
    # and the epoch moved the weights well beyond that tolerance
    start = Trainer(_uneven_config(str(data), str(tmp_path / "start"))).module.state_dict()
    moved = max(float((ddp[k].float() - start[k].float()).abs().max()) for k in start)
    assert moved > 1e-3
