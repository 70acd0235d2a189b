"""Memory and disk of the training image cache at Corel-5k scale, on stand-in images.

    python benchmarks/corel_memory.py [--annotations DIR] [--size 448] [--val-fraction 0]
        [--work DIR] [--keep] [--limit N]

Corel-5k's augmented training set is 4,500 real images plus 13,500 ML-WGAN fakes; at 448 px
its uint8 decode cache is 18,000 x 448 x 448 x 3 bytes (about 10.8 GB). This script measures
that cache through the real code path, on data of the right shape:

1. draws the stand-in of the Corel-5k annotation folder (``lib.data.drawn.standin``; 4,999 JPEGs);
2. writes placeholder fakes (benchmark only, not WGAN outputs): for every training image the
   three files ``lib.data.augmentation`` writes, ``<stem>_aug.jpeg``,
    ``<stem>_aug_hor_flip.jpeg`` and
   ``<stem>_aug_rot_90.jpeg``, made from the stand-in the way the ML-WGAN's inputs and outputs
   are shaped (``lib.method.wgan.preprocess``: 128x192; ``lib.method.wgan.fake_variants``: as is,
    flipped,
   rotated to 192x128), and ``train_aug.json`` with ``lib.data.augmentation.write_train_aug``;
3. builds the decode caches as the trainer does (``lib.training.images.image_cache`` on
   ``lib.data.datasets.load_dataset``; train + train_aug, then test): under a temporary
   ``AIA_DATA_DIR``, so nothing lands in ``data/``;
4. reads the memory-mapped training cache through one shuffled epoch of batch-32 fetches
   (``lib.training.images.CachedImages.__getitems__``, as the DataLoader does).

Measured: cache size on disk, build time, and the process's resident memory, peak over each
step: ``VmRSS`` (all resident pages) split into ``RssAnon`` (private memory) and ``RssFile``
(pages of mapped files: the memory-mapped cache, shared libraries; the kernel can drop them
under pressure), sampled from ``/proc/self/status`` every 0.1 s, plus ``ru_maxrss``.
``--val-fraction 0`` (default) is the reference protocol (all 4,500 training images); 0.1
carves a validation split as the trainer does by default (4,050 + 12,150 training images).

Writes ``$AIA_BENCH_DIR/corel_memory.json`` (default ``results/benchmarks``) and prints a
readable report (``make bench`` keeps it as ``corel_memory.log``). The work folder (cache
included) is deleted at the end unless ``--keep``. Needs about 12 GB of free disk at 448 px;
with less it records why it skipped and exits 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import fast, provenance  # noqa: E402 - beside this script

from lib.core import paths  # noqa: E402
from lib.core.fileio import atomic_write_bytes, atomic_write_json  # noqa: E402
from lib.core.provenance import git_commit  # noqa: E402

GB = 1024**3
DISK_MARGIN = 2 * GB


def bench_dir() -> Path:
    return Path(os.environ.get("AIA_BENCH_DIR", ROOT / "results" / "benchmarks"))


# --------------------------------------------------------------------------- memory


def memory_now() -> dict[str, int]:
    """Resident memory of this process in bytes: ``rss``, ``anon``, ``file`` (Linux
    ``/proc/self/status``; elsewhere psutil's rss only)."""
    try:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in {"VmRSS", "RssAnon", "RssFile", "RssShmem"}:
                fields[key] = int(value.split()[0]) * 1024
        return {"rss": fields["VmRSS"], "anon": fields.get("RssAnon", 0),
                "file": fields.get("RssFile", 0) + fields.get("RssShmem", 0)}
    except (OSError, KeyError, ValueError):
        import psutil

        rss = psutil.Process().memory_info().rss
        return {"rss": rss, "anon": 0, "file": 0}


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class Step:
    """Time a step and sample this process's memory meanwhile (peaks of rss, anon, file)."""

    def __init__(self, name: str, interval: float = 0.1):
        self.name, self.interval = name, interval
        self.peak = memory_now()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            self._update()

    def _update(self) -> None:
        now = memory_now()
        self.peak = {k: max(self.peak[k], now[k]) for k in now}

    def __enter__(self) -> Step:
        print(f"== {self.name}", flush=True)
        self.before = memory_now()
        self.start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self._halt.set()
        self._thread.join()
        self._update()
        self.after = memory_now()

    def result(self, **extra: Any) -> dict[str, Any]:
        out = {"seconds": round(self.seconds, 1),
               "rss_before_gb": _gb(self.before["rss"]),
               "peak_vmrss_gb": _gb(self.peak["rss"]),
               "peak_anon_gb": _gb(self.peak["anon"]),
               "peak_file_gb": _gb(self.peak["file"]),
               "rss_after_gb": _gb(self.after["rss"]),
               "ru_maxrss_gb": _gb(max_rss())}
        out.update(extra)
        print("   " + ", ".join(f"{k}={v}" for k, v in out.items()), flush=True)
        return out


def _gb(n: float) -> float:
    return round(n / GB, 3)


# --------------------------------------------------------------------------- placeholder fakes


def placeholder_fakes(root: Path, progress: bool = True) -> Path:
    """For every training image of ``root``, the three files ``python -m lib augment`` would
    write (names from ``lib.data.augment_records.aug_names``), made cheaply from the stand-in
    itself: the ML-WGAN's input (``lib.method.wgan.preprocess``, 128x192) saved as is, flipped and
    rotated
    (``lib.method.wgan.fake_variants``); then ``train_aug.json``
    (``lib.data.augmentation.write_train_aug``).
    For this benchmark only: these are not WGAN outputs."""
    from tqdm.auto import tqdm

    from lib.data import augment_records, augmentation
    from lib.data.datasets import read_image
    from lib.method import wgan

    reference = wgan.WGANConfig()  # the reference recipe's size and crop
    _, names, _ = augmentation.training_order(root)
    for name in tqdm(names, desc="placeholder fakes", unit="img", disable=not progress):
        x = wgan.preprocess(read_image(root / "images" / name), reference.image_size,
                            reference.crop_border)
        variants = wgan.fake_variants([x, x, x])
        for aug, array in zip(augment_records.aug_names(name), variants, strict=True):
            atomic_write_bytes(root / "images" / aug, wgan.jpeg_bytes(array))
    # train_aug.json as lib.data.augmentation writes it (3 entries per image, training order, the
    # source's labels); written here because these placeholders carry no recorded WGAN settings
    labels, names, targets = augmentation.training_order(root)
    samples = [{"image_name": aug, "image_labels": [labels[j] for j in np.flatnonzero(row)]}
               for name, row in zip(names, targets, strict=True)
               for aug in augment_records.aug_names(name)]
    return atomic_write_json(root / "train_aug.json", {"labels": labels, "samples": samples})


# --------------------------------------------------------------------------- benchmark


def folder_bytes(path: Path) -> tuple[int, int]:
    """(apparent size, allocated blocks) of the files under ``path``, in bytes."""
    size = blocks = 0
    for p in path.rglob("*"):
        if p.is_file():
            st = p.stat()
            size += st.st_size
            blocks += st.st_blocks * 512
    return size, blocks


def evict_page_cache(path: Path) -> bool:
    """Drop ``path``'s pages from the page cache (``posix_fadvise(DONTNEED)`` after an
    ``fsync``; no root needed). False where the call is not available."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def run(annotations: Path, work: Path, size: int, val_fraction: float, batch: int,
        limit: int | None, seed: int = 0) -> dict[str, Any]:
    from lib.data.datasets import load_dataset
    from lib.data.drawn import standin
    from lib.training import images

    os.environ["AIA_DATA_DIR"] = str(work / "data")  # the caches go under the work folder
    dataset_root = work / "corel5k-standin"
    steps: dict[str, Any] = {}

    with Step("stand-in images (lib.data.drawn.standin)") as step:
        standin.generate_standin(annotations, dataset_root, seed=seed, limit=limit,
                                 progress=sys.stderr.isatty())
    n_images = sum(1 for _ in (dataset_root / "images").iterdir())
    steps["standin"] = step.result(images=n_images,
                                   images_per_s=round(n_images / step.seconds, 1))

    with Step("placeholder fakes (benchmark only)") as step:
        placeholder_fakes(dataset_root, progress=sys.stderr.isatty())
    n_fakes = sum(1 for _ in (dataset_root / "images").iterdir()) - n_images
    steps["fakes"] = step.result(images=n_fakes)

    ds = load_dataset(dataset_root, check_images=False, val_fraction=val_fraction, seed=seed)
    names = list(ds.splits["train"].names) + list(ds.splits["train_aug"].names)
    targets = np.concatenate([ds.splits["train"].targets, ds.splits["train_aug"].targets])
    with Step(f"train + train_aug cache, {len(names)} images at {size} px "
              "(lib.training.images.image_cache)") as step:
        train_cache = images.image_cache(ds, "train+train_aug", names, size)
    cache_file = Path(train_cache.filename)
    steps["train_cache_build"] = step.result(
        images=len(names), real=len(ds.splits["train"]), fakes=len(ds.splits["train_aug"]),
        cache_bytes=cache_file.stat().st_size,
        build_throughput_images_per_s=round(len(names) / step.seconds, 1))

    eval_splits = [s for s in ("val", "test") if len(ds.splits[s])]
    with Step(f"eval caches ({', '.join(eval_splits)})") as step:
        eval_images = {s: len(images.image_cache(ds, s, list(ds.splits[s].names), size))
                       for s in eval_splits}
    steps["eval_cache_build"] = step.result(images=eval_images)

    del train_cache  # read back as the trainer does: a fresh memory map
    order = np.random.default_rng(seed).permutation(len(names))
    # cold: the file's pages evicted from the page cache first (right after the build they
    # are all in memory, which is not what a training run started later sees); warm: again
    evicted = evict_page_cache(cache_file)
    for key, label in (("epoch_read", "cold" if evicted else "page cache not evicted"),
                       ("epoch_read_warm", "warm")):
        cached = np.load(cache_file, mmap_mode="r")
        dataset = images.CachedImages(cached, targets)
        with Step(f"one epoch of batch-{batch} fetches from the memory-mapped cache "
                  f"({label})") as step:
            checksum = 0
            for start in range(0, len(order), batch):
                x, _ = dataset.__getitems__(order[start:start + batch].tolist())
                checksum += int(x[:, :, 0, 0].sum())  # touch the batch
        steps[key] = step.result(
            batches=-(-len(order) // batch), batch_size=batch, page_cache=label,
            read_throughput_images_per_s=round(len(order) / step.seconds, 1))
        del dataset, cached
    del images

    cache_size, cache_blocks = folder_bytes(paths.cache_dir())
    image_size_, image_blocks = folder_bytes(dataset_root / "images")
    return {
        "steps": steps,
        "disk": {"cache_gb": _gb(cache_size), "cache_allocated_gb": _gb(cache_blocks),
                 "train_cache_gb": _gb(cache_file.stat().st_size),
                 "images_gb": _gb(image_size_), "images_allocated_gb": _gb(image_blocks)},
        "n_train_real": len(ds.splits["train"]), "n_train_aug": len(ds.splits["train_aug"]),
        "n_eval": eval_images,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=Path, default=paths.SHARED_COREL5K,
                        help="real annotation folder (default: ../shared/corel5k)")
    parser.add_argument("--size", type=int, default=448, help="cache side in pixels")
    parser.add_argument("--val-fraction", type=float, default=0.0,
                        help="validation carve (0 = reference protocol, all 4,500 images)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None,
                        help="first N images of each split file (a quick check of the harness)")
    parser.add_argument("--work", type=Path, default=None,
                        help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if fast():  # a step or two: does the script run (tests/test_benchmarks.py)
        args.limit, args.size = 4, 32

    if not (args.annotations / "train.json").is_file():
        raise SystemExit(f"{args.annotations}: no train.json (the Corel-5k annotation folder)")
    base = args.work or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    n_max = 18_000 + 499 if args.limit is None else 5 * args.limit
    need = n_max * args.size * args.size * 3 + DISK_MARGIN
    free = shutil.disk_usage(base).free
    result: dict[str, Any] = {
        "benchmark": "Corel-5k-scale training image cache on stand-in data: disk, build time, "
                     "resident memory (build and one epoch of batch fetches)",
        "annotations": os.path.relpath(args.annotations, ROOT), "size": args.size,
        "val_fraction": args.val_fraction, "limit": args.limit,
        "free_disk_before_gb": _gb(free), "disk_needed_gb": _gb(need),
        "cpu_count": os.cpu_count(), "machine": platform.platform(),
        "memory_total_gb": _gb(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "commit": git_commit(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "provenance": provenance(),
    }
    out = bench_dir() / "corel_memory.json"
    print(f"free disk {_gb(free)} GB where the work folder goes, needed about {_gb(need)} GB",
          flush=True)
    if free < need:
        result["skipped"] = (f"not enough free disk where the work folder goes: {_gb(free)} GB "
                             f"< {_gb(need)} GB")
        print(result["skipped"])
        atomic_write_json(out, result)
        return 0

    work = args.work if args.work else Path(tempfile.mkdtemp(prefix="aia-corel-memory-"))
    try:
        result.update(run(args.annotations, work, args.size, args.val_fraction, args.batch,
                          args.limit))
        result["free_disk_min_gb"] = _gb(shutil.disk_usage(base).free)
    finally:
        if not args.keep:
            shutil.rmtree(work / "data", ignore_errors=True)
            shutil.rmtree(work / "corel5k-standin", ignore_errors=True)
            if not args.work:
                shutil.rmtree(work, ignore_errors=True)
    result["free_disk_after_gb"] = _gb(shutil.disk_usage(base).free)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["work_kept"] = str(work) if args.keep else None

    s, d = result["steps"], result["disk"]
    print("\nsummary")
    print(f"  stand-in: {s['standin']['images']} images in {s['standin']['seconds']} s")
    print(f"  cache: {s['train_cache_build']['images']} training images "
          f"({result['n_train_real']} real + {result['n_train_aug']} fakes) at {args.size} px "
          f"= {d['train_cache_gb']} GB on disk; all caches {d['cache_gb']} GB")
    print(f"  build: {s['train_cache_build']['seconds']} s, peak VmRSS "
          f"{s['train_cache_build']['peak_vmrss_gb']} GB (anon "
          f"{s['train_cache_build']['peak_anon_gb']} GB, mapped files "
          f"{s['train_cache_build']['peak_file_gb']} GB)")
    print(f"  epoch of batch-{args.batch} reads ({s['epoch_read']['page_cache']}): "
          f"{s['epoch_read']['seconds']} s, warm {s['epoch_read_warm']['seconds']} s, peak VmRSS "
          f"{s['epoch_read']['peak_vmrss_gb']} GB (anon {s['epoch_read']['peak_anon_gb']} GB, "
          f"mapped files {s['epoch_read']['peak_file_gb']} GB)")
    print(f"  ru_maxrss {s['epoch_read']['ru_maxrss_gb']} GB; machine {os.cpu_count()} CPUs, "
          f"{result['memory_total_gb']} GB RAM")
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    if not sys.stderr.isatty():  # a log file (make bench): no progress bars in it
        os.environ.setdefault("TQDM_DISABLE", "1")
    raise SystemExit(main())
