"""Wall time and peak memory of ``make reproduce`` on the embedded default; also the
summariser that turns every benchmark's JSON into ``results/benchmarks.md``.

    python benchmarks/reproduce_bench.py [--params default] [--data DIR]
    python benchmarks/reproduce_bench.py --summarize results/benchmarks \
        --write results/benchmarks.md

The measurement runs the pipeline into a fresh temporary results folder (so nothing is
skipped as up to date), through ``make reproduce`` as a user would. Peak memory is reported
two ways: the largest single process (``getrusage(RUSAGE_CHILDREN).ru_maxrss``, what
``/usr/bin/time -v`` prints) and the whole process tree (driver + notebook kernel), sampled
with psutil twice a second. Targets: about 10 minutes and under 4 GB on 2 cores.

Every benchmark writes ``$AIA_BENCH_DIR/<script stem>.json`` (default ``results/benchmarks``;
this one ``reproduce_bench.<set>.json`` for a set other than ``default``);
``make bench`` also keeps each script's output as ``<stem>.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance import describe, fast, provenance  # noqa: E402 - beside this script

from lib.core.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from lib.core.provenance import git_commit  # noqa: E402

TARGET_SECONDS = 600
TARGET_BYTES = 4 * 1024**3


def bench_dir() -> Path:
    return Path(os.environ.get("AIA_BENCH_DIR", ROOT / "results" / "benchmarks"))


class TreeSampler(threading.Thread):
    """Peak resident memory of a process and all its descendants, sampled periodically."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._halt.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def measure(params: str, data: str | None, keep: Path | None) -> dict[str, Any]:
    """Run ``make reproduce`` into a fresh results folder; wall time and peak memory."""
    results = keep or Path(tempfile.mkdtemp(prefix="aia-bench-"))
    # fast mode (tests/test_benchmarks.py): the dry run, to check the harness only
    target = "reproduce-dry" if fast() else "reproduce"
    command = ["make", "--no-print-directory", target, f"PARAMS={params}",
               f"RESULTS={results}"] + ([f"DATA={data}"] if data else [])
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    code = proc.wait()
    wall = time.perf_counter() - start
    tree_peak = sampler.stop()
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    if code != 0:
        raise SystemExit(f"make {target} failed with exit status {code}")
    return {
        "benchmark": "make reproduce (fresh results folder)",
        "params": params, "data": data or "(parameter set default)", "results": _where(results),
        "wall_seconds": round(wall, 1), "wall_minutes": round(wall / 60, 2),
        "peak_rss_largest_process_gb": round(largest / 1024**3, 3),
        "peak_rss_process_tree_gb": round(tree_peak / 1024**3, 3),
        "target_seconds": TARGET_SECONDS, "target_gb": TARGET_BYTES / 1024**3,
        "within_time_target": wall <= TARGET_SECONDS * 1.1,
        "within_memory_target": max(largest, tree_peak) < TARGET_BYTES,
        "cpu_count": os.cpu_count(), "machine": platform.platform(),
        "commit": git_commit(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "provenance": provenance(),
    }


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        out = []
        for key, value in obj.items():
            out += _flatten(value, f"{prefix}{key}." if isinstance(value, dict) else
                            f"{prefix}{key}")
        return out
    return [(prefix.rstrip("."), obj)]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return f"({len(value)} records: see the JSON file)"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value).replace("|", "\\|")


#: a number is a headline when one of the underscore-separated words of the last part of
#: its key is one of these (whole words: "ratio" must not pick "configurations" or
#: "iterations", as a substring match did)
HEADLINE_WORDS = ("ratio", "speedup", "throughput")
HEADLINE_KEYS = ("wall_minutes", "peak_rss_process_tree_gb", "peak_rss_largest_process_gb")
#: per-source records that are not measurements (shown in the source's provenance line)
PROVENANCE_KEYS = ("provenance", "machine", "commit", "date", "cpu_count", "git_commit")


def is_headline(key: str) -> bool:
    """Whether the flattened ``key`` (``a.b.time_ratio_side_by_side``) is a headline number."""
    last = key.lower().rsplit(".", 1)[-1]
    return last in HEADLINE_KEYS or any(w in HEADLINE_WORDS for w in last.split("_"))


def _where(folder: Path) -> str:
    """A results folder as recorded: repository-relative, else not named (no machine path)."""
    try:
        return Path(folder).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return "(a folder outside the repository)"


def summarize(folder: Path) -> str:
    """Markdown of every ``<stem>.json`` in ``folder`` (plus the log tail of scripts that
    wrote no JSON), headline numbers first."""
    jsons = {p.stem: json.loads(p.read_text(encoding="utf-8"))
             for p in sorted(folder.glob("*.json"))}
    logs = {p.stem: p for p in sorted(folder.glob("*.log"))}
    lines = ["# Benchmarks", "",
             "Generated by `python benchmarks/reproduce_bench.py --summarize "
             "results/benchmarks` (the last step of `make bench`) from the output files of "
             "`benchmarks/*.py` in `results/benchmarks/*.json`; do not edit by hand. Each "
             "source names the machine, commit and date it was measured on.", "",
             "## Headline", "", "| benchmark | number | value |", "|---|---|---|"]
    for stem, data in jsons.items():
        for key, value in _flatten(data):
            if (is_headline(key) and not isinstance(value, list | bool)
                    and not key.startswith(PROVENANCE_KEYS)):
                lines.append(f"| {stem} | {key} | {_fmt(value)} |")
    lines += ["", "## Where each number comes from", ""]
    for stem, data in jsons.items():
        lines.append(f"- `{stem}`: {describe(data.get('provenance'))}")
    unsure = [stem for stem, data in jsons.items()
              if not data.get("provenance") or data["provenance"].get("dirty") is not False
              or data["provenance"].get("fast")]
    if unsure:
        lines += ["", "Not yet regenerated from a clean commit on a named machine (rerun "
                  f"their scripts): {', '.join(f'`{s}`' for s in unsure)}."]
    if "reproduce_bench" in jsons:
        r = jsons["reproduce_bench"]
        lines += ["", f"`make reproduce PARAMS={r.get('params')}`: {r.get('wall_minutes')} min "
                  f"(target about {TARGET_SECONDS // 60} min), peak memory "
                  f"{r.get('peak_rss_process_tree_gb')} GB for the process tree, "
                  f"{r.get('peak_rss_largest_process_gb')} GB for the largest process "
                  f"(target under {TARGET_BYTES // 1024**3} GB)."]
    for stem in sorted(set(jsons) | set(logs)):
        lines += ["", f"## {stem}", ""]
        if stem in jsons:
            lines += ["| key | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in _flatten(jsons[stem])]
        else:
            tail = logs[stem].read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
            lines += ["No JSON written; the end of its output:", "", "```", *tail, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="default", help="parameter set (default: default)")
    parser.add_argument("--data", default=None, help="dataset folder (default: the set's)")
    parser.add_argument("--keep-results", type=Path, default=None,
                        help="results folder to use and keep (default: a temporary one)")
    parser.add_argument("--summarize", type=Path, default=None, metavar="DIR",
                        help="only summarise the JSON files in DIR")
    parser.add_argument("--write", type=Path, default=ROOT / "results" / "benchmarks.md",
                        help="Markdown output of --summarize")
    args = parser.parse_args(argv)
    if args.summarize is not None:
        atomic_write_text(args.write, summarize(args.summarize))
        print(f"wrote {args.write}")
        return 0
    result = measure(args.params, args.data, args.keep_results)
    name = "reproduce_bench" + ("" if args.params == "default" else f".{Path(args.params).stem}")
    out = atomic_write_json(bench_dir() / f"{name}.json", result)
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
