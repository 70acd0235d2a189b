"""ML-WGAN throughput: image-iterations per second, sequential (K = 1) against grouped (K > 1).

``python benchmarks/wgan_throughput.py [--sizes 32x32:16] [--reference] [--ks 1 8 32]
[--iterations N] [--device cpu] [--threads T] [--out table.csv]`` prints a table, and with
``AIA_BENCH_DIR`` set also writes it to ``$AIA_BENCH_DIR/wgan_throughput.json``.
One "image-iteration" is one WGAN-GP iteration (5 critic steps + 1 generator step) of one
image; K = 1 is the sequential baseline, speed-up = rate(K) / rate(1).

The default is the size of the embedded default preset (``lib.method.wgan.PRESETS["default"]``,
100 iterations; under a minute on one CPU thread). ``--reference`` adds the reference size
(the ``WGANConfig`` defaults) at a few iterations: several minutes on a CPU (K = 1 runs about
0.3 image-iterations/s), meant for a GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance import fast, provenance  # noqa: E402 - beside this script

from lib.core.config import build  # noqa: E402
from lib.core.fileio import atomic_write_json  # noqa: E402
from lib.core.provenance import git_commit
from lib.method import wgan  # noqa: E402

_REF = wgan.WGANConfig()
_EMB = build(wgan.WGANConfig, wgan.PRESETS, "default")
#: HxW:width of the embedded default preset and of the reference recipe
EMBEDDED = f"{_EMB.image_size[0]}x{_EMB.image_size[1]}:{_EMB.width}"
REFERENCE = f"{_REF.image_size[0]}x{_REF.image_size[1]}:{_REF.width}"


def measure(size: tuple[int, int], width: int, k: int, iterations: int, device: str) -> float:
    """Image-iterations per second for K images trained at once (after one warm-up run)."""
    config = wgan.WGANConfig(iterations=max(iterations, 3), image_size=size, width=width)
    images = torch.rand(k, 3, *size) * 2 - 1
    seeds = [wgan.image_seed(0, f"bench{i}") for i in range(k)]
    if size[0] * size[1] < 128 * 192:  # warm-up (skipped at large sizes: seconds per iteration)
        warm = wgan.WGANConfig(iterations=3, image_size=size, width=width)
        wgan.train_group(images, seeds, warm, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    wgan.train_group(images, seeds, config, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return k * config.iterations / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=[EMBEDDED],
                        help=f"HxW:width entries (default {EMBEDDED}, the embedded size)")
    parser.add_argument("--reference", action="store_true",
                        help=f"also the reference size {REFERENCE} (slow on a CPU)")
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--reference-iterations", type=int, default=3,
                        help="iterations at sizes of 128x192 and larger (slow on CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1, as lib.data.augmentation.augment uses on the CPU)")
    parser.add_argument("--out", default=None, help="also write the table as CSV")
    args = parser.parse_args()
    if fast():  # a step or two: does the script run (tests/test_benchmarks.py)
        args.ks, args.iterations, args.reference = [1, 2], 3, False
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = args.sizes + ([REFERENCE] if args.reference and REFERENCE not in args.sizes else [])
    rows = []
    for entry in sizes:
        size_text, _, width_text = entry.partition(":")
        size = wgan.parse_size(size_text)
        width = int(width_text or _REF.width)
        iters = args.reference_iterations if size[0] * size[1] >= 128 * 192 else args.iterations
        base = None
        for k in args.ks:
            rate = measure(size, width, k, iters, args.device)
            base = rate if k == 1 else base
            rows.append({"size": size_text, "width": width, "K": k, "iterations": iters,
                         "image_iters_per_s": round(rate, 3),
                         "seconds_per_image_1001_iters": round(1001 / rate, 1),
                         "speedup_vs_K1": round(rate / base, 2) if base else None})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(f"\ndevice={args.device} threads={torch.get_num_threads()}")
    print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)
    if os.environ.get("AIA_BENCH_DIR"):
        result = {
            "benchmark": "grouped K-in-one ML-WGAN against K sequential WGANs "
                         "(image-iterations/s; speed-up = rate(K) / rate(1))",
            "speedup": {f"{r['size']}_w{r['width']}_K{r['K']}": r["speedup_vs_K1"]
                        for r in rows if r["K"] != 1 and r["speedup_vs_K1"] is not None},
            "table": {f"{r['size']}_w{r['width']}_K{r['K']}":
                      # "iters", not "iterations": the summary's headline matches "ratio"
                      {"iters": r["iterations"], "image_iters_per_s": r["image_iters_per_s"],
                       "seconds_per_image_1001_iters": r["seconds_per_image_1001_iters"]}
                      for r in rows},
            "device": args.device, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "machine": platform.platform(), "commit": git_commit(),
            "provenance": provenance(),
        }
        out = Path(os.environ["AIA_BENCH_DIR"]) / "wgan_throughput.json"
        atomic_write_json(out, result)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
