"""Where the fakes land: ML-WGAN augmentation of the rarest-label images against a random pick.

On the embedded scenes dataset (drawn with seed 0), the same number of training images is
augmented twice with the embedded default preset (``lib.method.wgan.PRESETS["default"]``), once
with ``select="rare"`` and once with ``select="random"`` (two copies of the dataset folder:
the fakes live in ``images/``); then the embedded default training configuration
(``TrainConfig(data=..., augmented=...)``) is trained for each seed on the rare copy, the
random copy and without augmentation. Reported per arm, as mean +- standard deviation over
the seeds: test per-class F1 and N+ at 0.5 and at the MCC thresholds (metrics.json), and the
mean per-label F1 over the rarest third of the labels (by training frequency; per-label F1
from predictions.csv against the test split, ``lib.method.metrics.per_label_metrics``), plus each
selection's label coverage (``lib.data.augmentation.augmentation_coverage``).

    python benchmarks/wgan_selection.py [--images 64] [--iterations N] [--seeds 0 1 2]
        [--work DIR]

Writes ``wgan_selection.json`` and ``wgan_selection.md`` to ``$AIA_BENCH_DIR`` (default
``results/benchmarks/``). Everything else (datasets, runs) goes to ``--work`` (default a
temporary folder, removed at the end); given a ``--work`` folder, an interrupted measurement
resumes there (augmentation and finished runs are reused). About 15 to 25 minutes on 2 CPU
cores at the defaults.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.core import paths  # noqa: E402
from lib.core.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from lib.core.provenance import git_commit

ARMS = ("baseline", "rare", "random")


def prepare(work: Path, images: int, iterations: int | None) -> dict[str, dict]:
    """Draw the scenes dataset and augment its two copies; returns per-arm dataset info."""
    from lib.core.config import build
    from lib.data import augmentation
    from lib.data.drawn import synth
    from lib.method import wgan

    base = work / "data" / "scenes"
    if not (base / "train.json").is_file():
        synth.generate(base, seed=0)
    out: dict[str, dict] = {"baseline": {"data": base}}
    for select in ("rare", "random"):
        root = work / "data" / f"scenes-{select}"
        if not (root / "train.json").is_file():
            shutil.copytree(base, root)
        overrides = {"select": select, "limit": images}
        if iterations is not None:
            overrides["iterations"] = iterations
        config = build(wgan.WGANConfig, wgan.PRESETS, "default", overrides)
        start = time.perf_counter()
        summary = augmentation.augment(root, config, progress=False)
        coverage = augmentation.augmentation_coverage(root)
        third = coverage.head(max(1, len(coverage) // 3))
        out[select] = {
            "data": root, "augment_seconds": round(time.perf_counter() - start, 1),
            "images": summary["images"], "of": summary["of"],
            "iterations": config.iterations,
            "labels_with_fakes": int((coverage["augmented_images"] > 0).sum()),
            "labels": len(coverage),
            "share_rarest_third": round(float(third["share"].mean()), 4),
            "share_all_labels": round(float(coverage["share"].mean()), 4),
        }
        print(f"augmented {select}: {out[select]}", flush=True)
    return out


def rarest_third(root: Path) -> tuple[list[str], np.ndarray]:
    """The labels and the mask of the rarest third by training frequency (ties by name)."""
    from lib.data import augmentation

    labels, _, targets = augmentation.training_order(root)
    frequency = np.asarray(targets, dtype=bool).sum(axis=0)
    order = sorted(range(len(labels)), key=lambda j: (frequency[j], labels[j]))
    mask = np.zeros(len(labels), dtype=bool)
    mask[order[: max(1, len(labels) // 3)]] = True
    return labels, mask


def score_run(run_dir: Path, data: Path, mask: np.ndarray) -> dict[str, float]:
    from lib.data.datasets import load_dataset
    from lib.method.metrics import per_label_metrics
    from lib.training.runs import RunFolder

    run = RunFolder(run_dir)
    m = run.metrics("test")
    test = load_dataset(data, check_images=False).splits["test"]
    scores = run.predictions("test").loc[test.names].to_numpy()
    thresholds = run.thresholds()
    rare_05 = per_label_metrics(test.targets, scores >= 0.5)["f1"][mask]
    rare_mcc = per_label_metrics(test.targets, scores >= thresholds[None, :])["f1"][mask]
    return {
        "per_class_f1_0.5": m["at_0.5"]["per_class_f1"], "n_plus_0.5": m["at_0.5"]["n_plus"],
        "per_class_f1_mcc": m["mcc"]["per_class_f1"], "n_plus_mcc": m["mcc"]["n_plus"],
        "rarest_third_f1_0.5": float(rare_05.mean()),
        "rarest_third_f1_mcc": float(rare_mcc.mean()),
        "mAP": m["mean_average_precision"],
    }


def train_arms(work: Path, arms: dict[str, dict], seeds: list[int],
               epochs: int | None = None) -> dict[str, list[dict]]:
    from lib.training.launch import train
    from lib.training.runs import RunFolder
    from lib.training.settings import TrainConfig

    _, mask = rarest_third(arms["baseline"]["data"])
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for seed in seeds:
        for arm in ARMS:
            out = work / "runs" / f"{arm}-seed{seed}"
            start = time.perf_counter()
            if RunFolder(out).metrics("test", required=False) is None:
                extra = {} if epochs is None else {"epochs": epochs}
                config = TrainConfig(data=str(arms[arm]["data"]), augmented=arm != "baseline",
                                     out=str(out), seed=seed, **extra)
                train(config)
            row = {"seed": seed, **score_run(out, arms[arm]["data"], mask),
                   "seconds": round(time.perf_counter() - start, 1)}
            results[arm].append(row)
            print(f"{arm} seed {seed}: {row}", flush=True)
    return results


def summarize(results: dict[str, list[dict]]) -> dict[str, dict[str, dict[str, float]]]:
    keys = [k for k in results["baseline"][0] if k not in ("seed", "seconds")]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for arm, rows in results.items():
        out[arm] = {}
        for key in keys:
            values = [r[key] for r in rows]
            out[arm][key] = {"mean": round(statistics.fmean(values), 4),
                             "std": round(statistics.stdev(values), 4) if len(values) > 1
                             else 0.0}
    return out


def markdown(summary: dict, arms: dict[str, dict], results: dict, meta: dict) -> str:
    keys = list(summary["baseline"])
    lines = [
        "# ML-WGAN selection: rare against random (embedded scenes dataset)", "",
        f"{meta['images']} training images augmented per selection (of {arms['rare']['of']}), "
        f"embedded default preset at {arms['rare']['iterations']} iterations; the embedded "
        f"default training configuration, seeds {meta['seeds']}; mean +- sd over seeds; "
        f"{meta['machine_words']}.", "",
        "| arm | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for arm in ARMS:
        cells = [f"{summary[arm][k]['mean']:.1f} +- {summary[arm][k]['std']:.1f}"
                 if k.startswith("n_plus") else
                 f"{summary[arm][k]['mean']:.3f} +- {summary[arm][k]['std']:.3f}" for k in keys]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "Label coverage of the fakes (share of a label's training images with fakes):",
              "", "| selection | images | labels with fakes | mean share, rarest third | "
              "mean share, all labels | augmentation seconds |", "|---|---|---|---|---|---|"]
    for select in ("rare", "random"):
        a = arms[select]
        lines.append(f"| {select} | {a['images']} | {a['labels_with_fakes']} of {a['labels']} | "
                     f"{a['share_rarest_third']:.3f} | {a['share_all_labels']:.3f} | "
                     f"{a['augment_seconds']} |")
    lines += ["", "Per seed:", "", "| arm | seed | " + " | ".join(keys) + " |",
              "|---|---|" + "---|" * len(keys)]
    for arm in ARMS:
        for row in results[arm]:
            lines.append(f"| {arm} | {row['seed']} | "
                         + " | ".join(f"{row[k]:.3f}" if isinstance(row[k], float)
                                      else str(row[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64,
                        help="training images augmented per selection (default 64)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="WGAN iterations (default: the embedded default preset's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the embedded default's; for a smoke test)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: a second thread loses on shared cores)")
    parser.add_argument("--work", default=None,
                        help="folder for the datasets and runs (kept; default: a temporary one)")
    args = parser.parse_args()
    temporary = args.work is None
    work = Path(tempfile.mkdtemp(prefix="wgan-selection-") if temporary else args.work)
    work.mkdir(parents=True, exist_ok=True)
    # the runs and caches go under the work folder, never the repository's results
    os.environ["AIA_DATA_DIR"] = str(work / "data")
    os.environ["AIA_RESULTS_DIR"] = str(work / "results")
    bench_dir = Path(os.environ.get("AIA_BENCH_DIR", paths.ROOT / "results" / "benchmarks"))
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        arms = prepare(work, args.images, args.iterations)
        results = train_arms(work, arms, args.seeds, args.epochs)
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    summary = summarize(results)
    meta = {"images": args.images, "seeds": args.seeds, "cpu_count": os.cpu_count(),
            "threads": args.threads, "epochs": args.epochs,
            "machine": platform.platform(), "commit": git_commit(),
            "machine_words": f"{os.cpu_count()}-core CPU, {args.threads} torch thread(s)",
            "wall_seconds": round(time.perf_counter() - start, 1)}
    selections = {s: {k: v for k, v in arms[s].items() if k != "data"} for s in ("rare", "random")}
    atomic_write_json(bench_dir / "wgan_selection.json", {
        "benchmark": "ML-WGAN select=rare against select=random (and no augmentation): "
                     "test metrics, mean and sd over seeds",
        "summary": summary, "selections": selections, "per_seed": results, **meta})
    atomic_write_text(bench_dir / "wgan_selection.md", markdown(summary, arms, results, meta))
    print(markdown(summary, arms, results, meta))
    print(f"wrote {paths.portable(bench_dir / 'wgan_selection.json')} and .md")


if __name__ == "__main__":
    main()
