"""Backbone choice for the embedded default, and the cost of the MCC threshold search.

1. Forward + backward of a batch of 32 random 64 x 64 images for a few small timm backbones
   (from scratch, train mode, CPU threads as given), median of several repeats: the embedded
   default (``lib.models.DEFAULT_BACKBONE``) should be among the fastest residual nets.
2. ``lib.metrics.mcc_thresholds`` (vectorised) against the plain double loop over labels and
   thresholds with scikit-learn's ``matthews_corrcoef`` on a Corel-sized case (499 x 260).

    .venv/bin/python benchmarks/backbone_speed.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import matthews_corrcoef

from lib import models
from lib.metrics import MCC_GRID, mcc_thresholds
from lib.utils import atomic_write_json

CANDIDATES = ("resnet10t", "resnet18", "resnet14t", "efficientnet_b0", "mobilenetv3_small_100")


def time_backbone(name: str, repeats: int, batch: int = 32, size: int = 64) -> dict:
    torch.manual_seed(0)
    net = models.create_backbone(name, pretrained=False).train()
    x = torch.randn(batch, 3, size, size)
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        net(x).sum().backward()
        if i >= 2:                                    # two warm-up steps
            times.append(time.perf_counter() - t0)
    return {"ms_forward_backward": 1000 * statistics.median(times),
            "params_millions": sum(p.numel() for p in net.parameters()) / 1e6,
            "num_features": int(net.num_features)}


def time_mcc(n: int = 499, c: int = 260) -> dict:
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=(n, c)) < 0.013).astype(int)
    s = np.clip(y * 0.3 + rng.uniform(size=(n, c)) * 0.7, 0, 1)
    t0 = time.perf_counter()
    fast = mcc_thresholds(y, s)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = np.array([MCC_GRID[int(np.argmax([matthews_corrcoef(y[:, j], s[:, j] >= t)
                                             for t in MCC_GRID]))] for j in range(c)])
    t_slow = time.perf_counter() - t0
    present = y.any(axis=0)
    return {"vectorised_s": t_fast, "sklearn_loop_s": t_slow,
            "speedup": t_slow / t_fast, "agree": bool((fast[present] == slow[present]).all())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "default_backbone": models.DEFAULT_BACKBONE,
              "backbones_batch32_64px": {}}
    for name in CANDIDATES:
        result["backbones_batch32_64px"][name] = r = time_backbone(name, args.repeats)
        print(f"{name:24s} {r['ms_forward_backward']:7.1f} ms  {r['params_millions']:5.2f} M  "
              f"D={r['num_features']}")
    result["mcc_threshold_search"] = m = time_mcc()
    print(f"MCC search 499 x 260 x {len(MCC_GRID)}: vectorised {m['vectorised_s']:.3f} s, "
          f"sklearn loop {m['sklearn_loop_s']:.1f} s (x{m['speedup']:.0f}), agree={m['agree']}")
    out = Path(os.environ.get("AIA_BENCH_DIR", "results/benchmarks")) / "backbone_speed.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
