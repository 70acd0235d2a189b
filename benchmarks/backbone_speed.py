"""Backbone choice for the embedded default, and the cost of the MCC threshold search.

1. Forward + backward of a batch of 32 random 64 x 64 images for a few small timm backbones
   (from scratch, train mode, CPU threads as given), median of several repeats: the embedded
   default (``lib.method.models.DEFAULT_BACKBONE``) should be among the fastest residual nets.
2. ``lib.method.metrics.mcc_thresholds`` (vectorised) against the plain double loop over labels and
   thresholds with scikit-learn's ``matthews_corrcoef`` on a Corel-sized case (499 x 260):
   the median of several calls of each (one call of a few milliseconds is mostly noise).

    .venv/bin/python benchmarks/backbone_speed.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import matthews_corrcoef

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance import fast, provenance  # noqa: E402 - beside this script

from lib.core.fileio import atomic_write_json  # noqa: E402
from lib.method import models  # noqa: E402
from lib.method.metrics import MCC_GRID, mcc_thresholds  # noqa: E402

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


def _sklearn_loop(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.array([MCC_GRID[int(np.argmax([matthews_corrcoef(y[:, j], s[:, j] >= t)
                                             for t in MCC_GRID]))] for j in range(y.shape[1])])


def _median_seconds(fn, calls: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(calls):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def time_mcc(n: int = 499, c: int = 260, calls: int = 21, loop_calls: int = 3) -> dict:
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=(n, c)) < 0.013).astype(int)
    s = np.clip(y * 0.3 + rng.uniform(size=(n, c)) * 0.7, 0, 1)
    mcc_thresholds(y, s)  # warm-up (first-call allocations)
    t_fast, fast_times, vectorised = _median_seconds(lambda: mcc_thresholds(y, s), calls)
    t_slow, slow_times, loop = _median_seconds(lambda: _sklearn_loop(y, s), loop_calls)
    present = y.any(axis=0)
    return {"vectorised_s": t_fast, "sklearn_loop_s": t_slow, "speedup": t_slow / t_fast,
            "vectorised_calls": calls, "sklearn_loop_calls": loop_calls,
            "vectorised_min_max_s": [min(fast_times), max(fast_times)],
            "sklearn_loop_min_max_s": [min(slow_times), max(slow_times)],
            "estimate": "median of the calls of each",
            "agree": bool((vectorised[present] == loop[present]).all())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mcc-calls", type=int, default=21,
                        help="calls of the vectorised MCC search (the loop gets 3)")
    args = parser.parse_args()
    candidates, mcc_args = CANDIDATES, {"calls": args.mcc_calls}
    if fast():  # a step or two: does the script run (tests/test_benchmarks.py)
        args.repeats, candidates = 1, CANDIDATES[:1]
        mcc_args = {"n": 50, "c": 20, "calls": 2, "loop_calls": 1}
    torch.set_num_threads(args.threads)
    result = {"threads": args.threads, "default_backbone": models.DEFAULT_BACKBONE,
              "backbones_batch32_64px": {}}
    for name in candidates:
        result["backbones_batch32_64px"][name] = r = time_backbone(name, args.repeats)
        print(f"{name:24s} {r['ms_forward_backward']:7.1f} ms  {r['params_millions']:5.2f} M  "
              f"D={r['num_features']}")
    result["mcc_threshold_search"] = m = time_mcc(**mcc_args)
    print(f"MCC search 499 x 260 x {len(MCC_GRID)}: vectorised {m['vectorised_s']:.4f} s "
          f"(median of {m['vectorised_calls']}), sklearn loop {m['sklearn_loop_s']:.1f} s "
          f"(median of {m['sklearn_loop_calls']}) (x{m['speedup']:.0f}), agree={m['agree']}")
    result["provenance"] = provenance()
    out = Path(os.environ.get("AIA_BENCH_DIR", "results/benchmarks")) / "backbone_speed.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
