"""GPU check of the Corel-5k reference configuration on the stand-in data (one script).

Measures, on one GPU:

1. one training epoch of the reference recipe (TResNet-M at 448 px, batch 32, GCN head,
   ASL, 260 labels, 300-d label vectors) on the Corel-shaped stand-in images: seconds per
   epoch, images/s and peak GPU memory, in fp32 (the reference protocol) and in bf16 autocast;
   the reference reports 135 s per epoch on its GPU (4,500 images); each precision in both
   memory layouts, NCHW (contiguous) and channels-last, so that the default of
   ``TrainConfig.channels_last`` (NCHW) is a measured one;
2. the ML-WGAN at 128x192, width 64: image-iterations per second with K = 1 against K = 32
   images trained as one grouped network.

Usage (a GPU machine; the annotation folder holds the real Corel-5k train.json/test.json)::

    python benchmarks/gpu_reference.py --annotations ANNOTATIONS_DIR [--out DIR]

Writes ``gpu_reference.json`` to ``--out`` (default ``$AIA_BENCH_DIR`` or
``results/benchmarks``). Label vectors are drawn at random (300-d): they do not change the
cost, and the GPU machine need not have gensim or the GloVe file. No pretrained weights are
downloaded (random initialisation costs the same).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance import provenance  # noqa: E402 - beside this script

from lib.core import paths  # noqa: E402
from lib.data.drawn import standin
from lib.method import wgan
from lib.training import settings
from lib.training.trainer import Trainer  # noqa: E402

REFERENCE_EPOCH_SECONDS = 135.0


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def train_epoch(data: Path, out: Path, *, amp: bool, protocol: str, steps: int | None,
                smoke: dict | None = None, channels_last: bool = False) -> dict:
    overrides = {"data": str(data), "out": str(out), "pretrained": False,
                 "embeddings": "random", "epochs": 1, "num_workers": 8,
                 "protocol": protocol, "amp": amp, "overwrite": True,
                 "channels_last": channels_last, **(smoke or {})}
    config = settings.build_config("corel5k", overrides)
    trainer = Trainer(config)
    _sync()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    gen = torch.Generator().manual_seed(0)
    trainer.model.train()
    trainer.sampler.set_epoch(0)
    n_images, t0, warm = 0, None, 3
    for i, (images, targets) in enumerate(trainer.loader):
        if i == warm:
            _sync()
            t0 = time.perf_counter()
        trainer.step(images, targets, gen)
        if i >= warm:
            n_images += len(images)
        if steps is not None and i + 1 >= steps + warm:
            break
    _sync()
    seconds = time.perf_counter() - t0
    ips = n_images / seconds
    n_train = len(trainer.train_data)
    return {"precision": trainer.precision, "protocol": protocol,
            "memory_format": "channels_last" if channels_last else "nchw",
            "layout_applies": trainer.device.type == "cuda",
            "train_images": n_train, "timed_images": n_images, "timed_seconds": round(seconds, 2),
            "images_per_s": round(ips, 1),
            "epoch_seconds_4500_images": round(4500 / ips, 1),
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if torch.cuda.is_available() else None,
            "batch_size": config.batch_size, "image_size": config.image_size,
            "backbone": config.backbone, "head": config.head, "labels": len(trainer.labels)}


def wgan_speed(k: int, iterations: int, size=(128, 192), width: int = 64) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = wgan.WGANConfig(iterations=iterations, image_size=size, width=width)
    images = torch.rand(k, 3, *size) * 2 - 1
    seeds = list(range(k))
    wgan.train_group(images, seeds, wgan.WGANConfig(iterations=3, image_size=size,
                                                    width=width), device=device)  # warm-up
    _sync()
    t0 = time.perf_counter()
    wgan.train_group(images, seeds, config, device=device)
    _sync()
    seconds = time.perf_counter() - t0
    return {"K": k, "iterations": iterations, "seconds": round(seconds, 2),
            "image_iterations_per_s": round(k * iterations / seconds, 1),
            "hours_for_4500_images_x_1001_iterations": round(4500 * 1001 / (k * iterations
                                                                          / seconds) / 3600, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--annotations", default=str(paths.SHARED_COREL5K),
                   help="folder with the real train.json, test.json (default: ../shared/corel5k)")
    p.add_argument("--out", default=None)
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per precision (default: the whole epoch)")
    p.add_argument("--wgan-iterations", type=int, default=30)
    p.add_argument("--smoke", action="store_true",
                   help="check the script on any device at a tiny scale (numbers meaningless)")
    args = p.parse_args(argv)
    smoke = {"backbone": "resnet10t", "image_size": 32, "eval_batch_size": 256,
             "num_workers": 0} if args.smoke else None
    if not torch.cuda.is_available() and not args.smoke:  # make bench on a CPU machine
        print("skipped: no CUDA device (this benchmark needs a GPU)")
        return 0
    if not (Path(args.annotations) / "train.json").is_file():
        print(f"skipped: no Corel-5k annotation files in {args.annotations}")
        return 0
    torch.backends.cudnn.benchmark = True
    out_dir = Path(args.out or os.environ.get("AIA_BENCH_DIR", paths.ROOT / "results" /
                                              "benchmarks"))
    result: dict = {"benchmark": "Corel-5k reference configuration on stand-in data, one GPU",
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                    else "cpu", "torch": torch.__version__,
                    "machine": platform.platform(), "cpu_count": os.cpu_count(),
                    "reference_epoch_seconds": REFERENCE_EPOCH_SECONDS,
                    "provenance": provenance()}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AIA_DATA_DIR"] = str(Path(tmp) / "data")
        t0 = time.perf_counter()
        data = standin.generate_standin(args.annotations, Path(tmp) / "corel5k-standin",
                                        seed=0, progress=False)
        result["standin_seconds"] = round(time.perf_counter() - t0, 1)
        result["training"] = []
        for amp, protocol in ((False, "reference"), (True, "holdout")):
            pair = {}
            for channels_last in (False, True):
                r = train_epoch(data, Path(tmp) / f"run-{amp}-{channels_last}", amp=amp,
                                protocol=protocol, steps=args.steps, smoke=smoke,
                                channels_last=channels_last)
                print(json.dumps(r), flush=True)
                result["training"].append(r)
                pair[channels_last] = r["images_per_s"]
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            result.setdefault("channels_last_over_nchw", {})[protocol] = round(
                pair[True] / pair[False], 3)
    result["wgan"] = []
    for k in (1, 32):
        r = wgan_speed(k, args.wgan_iterations, *(((32, 32), 4) if args.smoke else ()))
        print(json.dumps(r), flush=True)
        result["wgan"].append(r)
    w1, w32 = result["wgan"]
    result["wgan_speedup_k32_over_k1"] = round(w32["image_iterations_per_s"]
                                               / w1["image_iterations_per_s"], 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_reference.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
