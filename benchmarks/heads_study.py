"""Heads study: does a label-graph or attention head beat the CNN-only (linear) head?

Trains the embedded default configuration (``TrainConfig()``: resnet10t from scratch, ASL)
with each head in ``--heads`` (default: every head of :mod:`lib.method.heads` that is not an
ablation: linear, the GCN heads, CSRA, ML-Decoder) and each seed in ``--seeds`` (default
0 1 2) on two datasets drawn by :mod:`lib.data.drawn.synth` with seed 0:

- ``scenes``: the embedded default dataset;
- ``scenes-implied``: variant ``"implied"``, where six labels (fish, car, stars, mushroom,
  umbrella, sheep) are drawn barely or not at all and implied by a visible label of the scene.

Model selection is the trainer's own (best validation mAP; MCC thresholds tuned on
validation); test numbers are read once from each finished run. Nothing here is chosen on
test numbers. Reported per run: test per-class F1 and N+ at 0.5 and with the MCC thresholds,
mAP, the best validation mAP, and for the graph heads the mean graph share of the classifiers
(``AnnotationModel.graph_share``). Over seeds: mean +- std, the paired difference to the
linear head of the same seed, and the mean per-label F1 gain over the linear head per
label-frequency bucket (rare / medium / frequent = terciles of the training counts) and on the
six implied labels.

Writes ``$AIA_BENCH_DIR/heads_study.json`` and ``heads_study.md`` (default
``results/benchmarks/``). Datasets go to ``--data-dir`` (default ``$AIA_DATA_DIR``), runs to
``<results>/runs/heads_study/`` (``$AIA_RESULTS_DIR``); a finished run is reused, so an
interrupted study continues where it stopped. Test-sample uncertainty comes from a paired
bootstrap over the test images (``N_BOOT`` resamples, the same for every run).

Cost: about 30 s a run on 2 idle CPU cores. On a shared 2-core box, 24 runs took 32 minutes
with ``OMP_NUM_THREADS=1``. With 2 threads per process under a load of 6 the same steps ran
about 15 times slower (4.5 s instead of 0.28 s a batch), so set it when the box is busy.

    .venv/bin/python benchmarks/heads_study.py [--seeds 0 1 2] [--heads linear gcn ...]
    .venv/bin/python benchmarks/heads_study.py --summarize   # tables from finished runs only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # provenance.py, beside this script

from provenance import provenance  # noqa: E402 - beside this script

from lib.core import paths  # noqa: E402
from lib.core.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from lib.core.provenance import git_commit  # noqa: E402
from lib.data import datasets, predictions  # noqa: E402
from lib.data.drawn import synth  # noqa: E402
from lib.method import heads as head_registry  # noqa: E402
from lib.method import metrics, models  # noqa: E402
from lib.training.inference import load_model  # noqa: E402
from lib.training.launch import train  # noqa: E402
from lib.training.settings import TrainConfig  # noqa: E402

#: dataset folder name -> lib.data.drawn.synth variant
DATASETS = {"scenes": "default", "scenes-implied": "implied"}
#: every registered head that is not an ablation, in registration order
DEFAULT_HEADS = tuple(h for h in head_registry.names() if not head_registry.get(h).ablation)
BUCKETS = ("rare", "medium", "frequent", "implied")
HEADLINE = (("f1_0.5", "per-class F1 @0.5"), ("n_plus_0.5", "N+ @0.5"),
            ("f1_mcc", "per-class F1 @MCC"), ("n_plus_mcc", "N+ @MCC"), ("map", "mAP"),
            ("val_map", "val mAP (selection)"))


# --------------------------------------------------------------------------- set-up


def study_config(**fields: Any) -> TrainConfig:
    """The study's training configuration (the embedded default otherwise)."""
    return TrainConfig(**fields)


#: dataset sizes: the embedded default, and a tiny one for --smoke (a check of the harness)
SIZES = {"full": dict(size=64, n_train=1500, n_val=300, n_test=500),
         "smoke": dict(size=32, n_train=96, n_val=48, n_test=48)}


def ensure_dataset(root: Path, variant: str, seed: int = 0, sizes: str = "full") -> Path:
    """The dataset drawn with ``variant``, ``seed`` and ``SIZES[sizes]`` (drawn if absent or
    different)."""
    manifest = root / "synth.json"
    want = SIZES[sizes]
    if manifest.exists():
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        if (meta.get("variant", "default") == variant and meta["seed"] == seed
                and all(meta[k] == v for k, v in want.items())):
            return root
    print(f"drawing {root} (variant {variant}, seed {seed})", flush=True)
    return synth.generate(root, seed=seed, variant=variant, progress=True, **want)


def frequency_buckets(train_targets: np.ndarray) -> dict[str, np.ndarray]:
    """Label indices of the rare, medium and frequent thirds by training count (labels
    sorted by count, ties by vocabulary order, split into three near-equal parts)."""
    counts = np.asarray(train_targets).sum(axis=0)
    order = np.argsort(counts, kind="stable")
    parts = np.array_split(order, 3)
    return {name: np.sort(part) for name, part in zip(("rare", "medium", "frequent"), parts,
                                                       strict=True)}


# --------------------------------------------------------------------------- one run


def run_record(run_dir: Path, dataset, head: str) -> dict[str, Any]:
    """The numbers of a finished run folder."""
    labels = list(dataset.labels)
    m = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    hist = pd.read_csv(run_dir / "history.csv").to_dict("records")
    best = [row for row in hist if str(row["best"]).lower() == "true"][-1]
    y_true = dataset.splits["test"].targets
    scores = predictions.read_predictions(run_dir / "predictions.csv", labels)
    scores = scores.loc[list(dataset.splits["test"].names)].to_numpy()
    thresholds = predictions.read_thresholds(run_dir / "thresholds.json", labels)
    record = {
        "f1_0.5": m["at_0.5"]["per_class_f1"], "n_plus_0.5": m["at_0.5"]["n_plus"],
        "f1_mcc": m["mcc"]["per_class_f1"], "n_plus_mcc": m["mcc"]["n_plus"],
        "map": m["mean_average_precision"], "val_map": float(best["val_mean_average_precision"]),
        "best_epoch": int(best["epoch"]),
        "trained_at": json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        .get("git_commit"),
        "train_seconds": float(sum(float(row["seconds"]) for row in hist)),
        "label_f1_0.5": metrics.per_label_metrics(y_true, scores >= 0.5)["f1"].tolist(),
        "label_f1_mcc": metrics.per_label_metrics(y_true, scores >= thresholds)["f1"].tolist(),
    }
    if head != "linear":
        model, _ = load_model(run_dir)
        with torch.no_grad():
            share = model.net.graph_share().numpy()
        record["graph_share"] = share.tolist()
        record["graph_share_mean"] = float(share.mean())
    return record


def run_one(dataset_root: Path, head: str, seed: int, out: Path, **overrides: Any) -> Path:
    config = study_config(data=str(dataset_root), out=str(out), head=head, seed=seed,
                          loss="asl", run_name=out.name, **overrides)
    if (out / "metrics.json").exists():
        done = json.loads((out / "config.json").read_text(encoding="utf-8"))
        if all(done.get(k) == v for k, v in config.to_dict().items()
               if k not in ("out", "device", "num_workers", "overwrite")):
            return out
    t0 = time.perf_counter()
    train(config)
    print(f"  {out.parent.name}/{out.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


# --------------------------------------------------------------------------- summary


def _mean_std(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "n": int(len(arr))}


#: bootstrap resamples of the test images (seeded) for the test-sample uncertainty
N_BOOT = 300
BOOT_METRICS = (("f1_mcc", "per-class F1 @MCC"), ("map", "mAP"))


def bootstrap_metrics(run_dir: Path, dataset, n_boot: int = N_BOOT, seed: int = 0
                      ) -> dict[str, list[float]]:
    """Per-class F1 at the run's MCC thresholds and mAP on ``n_boot`` resamples (with
    replacement) of the test images; the resamples depend only on ``seed`` and the number of
    test images, so every run of a dataset sees the same ones (a paired bootstrap)."""
    labels = list(dataset.labels)
    y_true = dataset.splits["test"].targets
    scores = predictions.read_predictions(run_dir / "predictions.csv", labels)
    scores = scores.loc[list(dataset.splits["test"].names)].to_numpy()
    pred = scores >= predictions.read_thresholds(run_dir / "thresholds.json", labels)
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {"f1_mcc": [], "map": []}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y_true), size=len(y_true))
        out["f1_mcc"].append(metrics.prediction_metrics(y_true[idx], pred[idx])["per_class_f1"])
        out["map"].append(metrics.mean_average_precision(y_true[idx], scores[idx]))
    return out


def summarize(runs: list[dict[str, Any]], buckets: dict[str, dict[str, list[int]]]
              ) -> dict[str, Any]:
    """Mean +- std over seeds per (dataset, head); paired differences and per-bucket per-label
    F1 gains against the linear head of the same seed; and, where the runs carry bootstrap
    values, a 95 % interval of the seed-mean difference over resampled test images."""
    out: dict[str, Any] = {}
    for ds in sorted({r["dataset"] for r in runs}):
        rows = [r for r in runs if r["dataset"] == ds]
        linear = {r["seed"]: r for r in rows if r["head"] == "linear"}
        per_head: dict[str, Any] = {}
        for head in [h for h in models.HEADS if any(r["head"] == h for r in rows)]:
            mine = sorted((r for r in rows if r["head"] == head), key=lambda r: r["seed"])
            entry: dict[str, Any] = {"seeds": [r["seed"] for r in mine]}
            for key, _ in HEADLINE:
                entry[key] = _mean_std([r[key] for r in mine])
            if head != "linear":
                entry["graph_share_mean"] = _mean_std([r["graph_share_mean"] for r in mine])
            paired = [r for r in mine if r["seed"] in linear]
            if head != "linear" and paired:
                entry["minus_linear"] = {key: _mean_std([r[key] - linear[r["seed"]][key]
                                                         for r in paired])
                                         for key, _ in HEADLINE}
                gains: dict[str, Any] = {}
                for at in ("0.5", "mcc"):
                    gains[at] = {}
                    for bucket, idx in buckets[ds].items():
                        idx = np.asarray(idx, dtype=int)
                        diffs = [float(np.mean(np.asarray(r[f"label_f1_{at}"])[idx]
                                               - np.asarray(linear[r["seed"]][f"label_f1_{at}"])
                                               [idx])) for r in paired]
                        gains[at][bucket] = _mean_std(diffs)
                entry["label_f1_gain"] = gains
                if all("bootstrap" in r and "bootstrap" in linear[r["seed"]] for r in paired):
                    entry["bootstrap_minus_linear"] = {}
                    for key, _ in BOOT_METRICS:
                        diff = np.mean([np.asarray(r["bootstrap"][key])
                                        - np.asarray(linear[r["seed"]]["bootstrap"][key])
                                        for r in paired], axis=0)
                        entry["bootstrap_minus_linear"][key] = {
                            "low": float(np.percentile(diff, 2.5)),
                            "high": float(np.percentile(diff, 97.5)),
                            "fraction_le_0": float(np.mean(diff <= 0)),
                            "n_boot": int(len(diff))}
            per_head[head] = entry
        out[ds] = per_head
    return out


def _fmt(stat: dict[str, float], digits: int = 3, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{stat['mean']:{sign}.{digits}f} ± {stat['std']:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    trained = ", ".join(sorted({str(r["trained_at"]) for r in result["runs"]}))
    lines = ["# Graph heads study", "",
             f"Machine: {result['machine']}. Summarised at commit {result['git_commit']}, "
             f"runs trained at {trained}. "
             f"Embedded default configuration (`TrainConfig()`: {result['config']}), "
             f"seeds {result['seeds']}. Test split numbers of the epoch selected on validation "
             "mAP; MCC thresholds tuned on validation. mean ± std (sample std) over seeds.", ""]
    for ds, heads in result["summary"].items():
        info = result["datasets"][ds]
        lines += [f"## {ds} (lib.data.drawn.synth variant `{info['variant']}`)", "",
                  "| head | " + " | ".join(name for _, name in HEADLINE) + " | graph share |",
                  "|---|" + "---|" * (len(HEADLINE) + 1)]
        for head, entry in heads.items():
            cells = [_fmt(entry[k], 1 if k.startswith("n_plus") else 3) for k, _ in HEADLINE]
            share = _fmt(entry["graph_share_mean"], 2) if "graph_share_mean" in entry else "0"
            lines.append(f"| {head} | " + " | ".join(cells) + f" | {share} |")
        lines += ["", "Paired difference to the linear head (same seed):", "",
                  "| head | " + " | ".join(name for _, name in HEADLINE) + " |",
                  "|---|" + "---|" * len(HEADLINE)]
        for head, entry in heads.items():
            if "minus_linear" in entry:
                cells = [_fmt(entry["minus_linear"][k], 1 if k.startswith("n_plus") else 3,
                              signed=True) for k, _ in HEADLINE]
                lines.append(f"| {head} | " + " | ".join(cells) + " |")
        if any("bootstrap_minus_linear" in e for e in heads.values()):
            n_boot = next(e["bootstrap_minus_linear"]["map"]["n_boot"] for e in heads.values()
                          if "bootstrap_minus_linear" in e)
            lines += ["", "The seed std above holds the test images fixed. Test-sample "
                      f"uncertainty: paired bootstrap over the test images ({n_boot} "
                      "resamples), 95 % interval of the seed-mean difference to the linear "
                      "head, and the fraction of resamples where it is <= 0:", "",
                      "| head | " + " | ".join(name for _, name in BOOT_METRICS) + " |",
                      "|---|" + "---|" * len(BOOT_METRICS)]
            for head, entry in heads.items():
                if "bootstrap_minus_linear" in entry:
                    b = entry["bootstrap_minus_linear"]
                    cells = [f"[{b[k]['low']:+.3f}, {b[k]['high']:+.3f}] "
                             f"(<= 0: {b[k]['fraction_le_0']:.2f})" for k, _ in BOOT_METRICS]
                    lines.append(f"| {head} | " + " | ".join(cells) + " |")
        sizes = {b: len(v) for b, v in result["buckets"][ds].items()}
        ranges = info["bucket_train_counts"]
        lines += ["", "Mean per-label F1 gain over the linear head, by training-frequency "
                  "tercile (train counts " + ", ".join(
                      f"{b} {ranges[b][0]}-{ranges[b][1]} ({sizes[b]} labels)"
                      for b in ("rare", "medium", "frequent"))
                  + f") and on the {sizes['implied']} implied labels "
                  f"({', '.join(info['implied_labels'])}; "
                  + ("hidden in the pictures here" if info["variant"] == "implied"
                     else "visible in this dataset") + "):", "",
                  "| head | thresholds | " + " | ".join(BUCKETS) + " |",
                  "|---|---|" + "---|" * len(BUCKETS)]
        for head, entry in heads.items():
            if "label_f1_gain" in entry:
                for at in ("0.5", "mcc"):
                    cells = [_fmt(entry["label_f1_gain"][at][b], 3, signed=True)
                             for b in BUCKETS]
                    lines.append(f"| {head} | {at} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heads", nargs="+", default=list(DEFAULT_HEADS),
                        choices=models.HEADS)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the two datasets are drawn (default: the data root)")
    parser.add_argument("--summarize", action="store_true",
                        help="only tabulate the runs already finished")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny datasets, 32 px, 1 epoch: a quick check of the harness")
    args = parser.parse_args(argv)
    sizes = "smoke" if args.smoke else "full"
    overrides = dict(image_size=32, epochs=1, batch_size=16) if args.smoke else {}
    if "linear" not in args.heads:
        parser.error("--heads must include linear (the gains are measured against it)")

    data_dir = (args.data_dir or paths.data_root()).expanduser().resolve()
    runs_root = paths.runs_dir() / ("heads_study_smoke" if args.smoke else "heads_study")
    bench_dir = Path(os.environ.get("AIA_BENCH_DIR", paths.results_root() / "benchmarks"))
    loaded, buckets, infos = {}, {}, {}
    for name in args.datasets:
        variant = DATASETS[name]
        root = data_dir / (f"{name}-smoke" if args.smoke else name)
        if not args.summarize:
            ensure_dataset(root, variant, sizes=sizes)
        loaded[name] = datasets.load_dataset(root, seed=0)
        train_targets = loaded[name].splits["train"].targets
        b = frequency_buckets(train_targets)
        implied = [loaded[name].labels.index(lab) for lab in synth.implied_labels()]
        counts = np.asarray(train_targets).sum(axis=0)
        buckets[name] = {**{k: v.tolist() for k, v in b.items()}, "implied": implied}
        infos[name] = {"variant": variant, "folder": root.name,
                       "implied_labels": list(synth.implied_labels()),
                       "bucket_train_counts": {k: [int(counts[v].min()), int(counts[v].max())]
                                               for k, v in b.items()},
                       "implied_train_counts": {lab: int(counts[i]) for lab, i in
                                                zip(synth.implied_labels(), implied,
                                                    strict=True)}}

    runs: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        for name in args.datasets:
            for head in args.heads:
                out = runs_root / name / f"{head}-seed{seed}"
                if not args.summarize:
                    run_one(data_dir / infos[name]["folder"], head, seed, out, **overrides)
                if not (out / "metrics.json").exists():
                    continue
                record = run_record(out, loaded[name], head)
                record["bootstrap"] = bootstrap_metrics(out, loaded[name])
                runs.append({"dataset": name, "head": head, "seed": seed,
                             "run_dir": str(out.relative_to(paths.runs_dir())), **record})
    config = TrainConfig(**overrides)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
        "git_commit": git_commit(),
        "provenance": provenance(),
        "config": f"{config.backbone}, {config.image_size} px, {config.epochs} epochs, "
                  f"batch {config.batch_size}, lr {config.lr}, loss asl, "
                  f"adjacency {config.adjacency}, embeddings {config.embeddings}",
        "seeds": args.seeds, "heads": args.heads, "datasets": infos, "buckets": buckets,
        "wall_seconds": time.perf_counter() - t0,
        "summary": summarize(runs, buckets),
        # per-run numbers without the bootstrap draws (summarised above; recomputable)
        "runs": [{k: v for k, v in r.items() if k != "bootstrap"} for r in runs],
    }
    bench_dir.mkdir(parents=True, exist_ok=True)
    stem = "heads_study_smoke" if args.smoke else "heads_study"
    atomic_write_json(bench_dir / f"{stem}.json", result)
    text = markdown(result)
    atomic_write_text(bench_dir / f"{stem}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
