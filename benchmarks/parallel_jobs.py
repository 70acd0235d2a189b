"""Why ``make reproduce`` runs several notebooks at once on a CPU: ``N`` training runs of the
embedded default one after another with every core's thread, against the same runs as ``N``
processes side by side with ``cores / N`` threads each (what the Snakemake workflow does).

Each run is ``python -m lib train`` of configuration gcn-asl (seeds 0 .. N-1) into a
temporary folder; the wall time of each arm is measured from the first start to the last
end, the two arms alternate ``rounds`` times (so both see the same machine), and the best
round of each is reported with its ratio. Also recorded: the test mAP of every run in both
arms, which differ by float summation order only (the thread count), not by method.

    .venv/bin/python benchmarks/parallel_jobs.py [--data DIR] [--runs 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import fast, provenance  # noqa: E402 - beside this script
from reproduce_bench import bench_dir  # noqa: E402 - beside this script

from lib.core import paths  # noqa: E402
from lib.core.fileio import atomic_write_json  # noqa: E402
from lib.core.provenance import git_commit  # noqa: E402


def start(data: Path, out: Path, seed: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "lib", "train", "--data", str(data), "--out", str(out),
         "--seed", str(seed), "--loss", "asl", "--head", "gcn",
         *(["--epochs", "1", "--image-size", "16"] if fast() else [])],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def arm(data: Path, folder: Path, runs: int, side_by_side: bool) -> tuple[float, list[float]]:
    """Wall seconds of ``runs`` trainings, and their test mAPs."""
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // runs) if side_by_side else cores
    t0 = time.perf_counter()
    if side_by_side:
        procs = [start(data, folder / f"seed-{s}", s, threads) for s in range(runs)]
    else:
        procs = []
        for s in range(runs):
            p = start(data, folder / f"seed-{s}", s, threads)
            p.wait()
            procs.append(p)
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"training failed:\n{err[-2000:]}")
    seconds = time.perf_counter() - t0
    maps = [json.loads((folder / f"seed-{s}" / "metrics.json").read_text())
            ["mean_average_precision"] for s in range(runs)]
    return seconds, maps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="dataset (default data/scenes, drawn "
                                                     "when missing)")
    parser.add_argument("--runs", type=int, default=None,
                        help="trainings per arm (default: the cores, at least 2)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    data = paths.dataset_dir(args.data or paths.DEFAULT_DATASET)
    if not (data / "train.json").exists():
        from lib.data.drawn import synth

        if fast():  # a step or two: does the script run (tests/test_benchmarks.py)
            data = Path(tempfile.mkdtemp(prefix="bench-parallel-scenes-")) / "scenes"
            synth.generate(data, seed=0, size=16, n_train=32, n_val=8, n_test=8)
        else:
            synth.generate(data, seed=0)
    runs = 2 if fast() else args.runs or max(2, len(os.sched_getaffinity(0)))
    best: dict[str, float] = {}
    maps: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        for r in range(args.rounds):
            for name, side in (("one_after_another", False), ("side_by_side", True)):
                seconds, got = arm(data, Path(tmp) / f"{name}-{r}", runs, side)
                print(f"round {r}: {name}: {seconds:.1f} s", flush=True)
                best[name] = min(best.get(name, float("inf")), seconds)
                maps[name] = got
    cores = len(os.sched_getaffinity(0))
    result = {
        "benchmark": "N trainings of the embedded default (gcn-asl): one after another with "
                     "every core's thread, against side by side with cores / N threads each",
        "runs": runs, "rounds": args.rounds, "cpu_count": cores,
        "threads_one_after_another": cores, "threads_side_by_side": max(1, cores // runs),
        "seconds_one_after_another": round(best["one_after_another"], 1),
        "seconds_side_by_side": round(best["side_by_side"], 1),
        "time_ratio_side_by_side": round(best["side_by_side"] / best["one_after_another"], 3),
        "test_map_one_after_another": [round(m, 4) for m in maps["one_after_another"]],
        "test_map_side_by_side": [round(m, 4) for m in maps["side_by_side"]],
        "machine": f"{platform.platform()}, {cores} cores",
        "commit": git_commit(),
        "provenance": provenance(),
    }
    out = atomic_write_json(bench_dir() / "parallel_jobs.json", result)
    print(json.dumps(result, indent=2))
    print(f"wrote {paths.portable(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
