"""Where and when a benchmark number was measured: every benchmark script records this in
its output file (``"provenance"``), and ``reproduce_bench.py --summarize`` prints it beside
each source and flags numbers from a dirty checkout or without a named machine.

``AIA_BENCH_FAST=1`` puts every script of ``make bench`` in its fast mode: a step or two of
each measurement, to check that the script runs (``tests/test_benchmarks.py``); its numbers
mean nothing and are marked ``"fast": true``.
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAST_ENV = "AIA_BENCH_FAST"


def fast() -> bool:
    """True under ``AIA_BENCH_FAST=1`` (a step or two; numbers meaningless)."""
    return os.environ.get(FAST_ENV, "") not in ("", "0")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS), or
    ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                             text=True, check=True).stdout.strip()
        if out:
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask; a container's quota may be less)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


#: outputs (benchmarks, tables, reports): rewriting them does not make the measured code dirty
OUTPUTS = ("results",)


def commit() -> dict[str, Any]:
    """``{"commit": full sha, "dirty": bool}`` of the checkout (tracked files only, the
    benchmark outputs excepted)."""
    try:
        return {"commit": _git("rev-parse", "HEAD"),
                "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                   *(f":(exclude){p}" for p in OUTPUTS)))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def provenance() -> dict[str, Any]:
    """Machine (CPU model, cores, memory, OS), commit (and whether dirty), date, versions."""
    import torch

    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (AttributeError, ValueError, OSError):
        memory = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu_model": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable_cores(),
        "memory_gib": None if memory is None else round(memory, 1), "gpu": gpu,
        "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, **commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "fast": fast(),
    }


def describe(p: dict[str, Any] | None) -> str:
    """One line for a summary: ``<cpu>, <n> cores; commit abc123 (dirty); 2026-12-03``."""
    if not p:
        return "no provenance recorded (machine, commit and date unknown)"
    sha = str(p.get("commit", "unknown"))[:12]
    flags = [" (dirty checkout)" if p.get("dirty") else "",
             " (FAST MODE: not a measurement)" if p.get("fast") else ""]
    return (f"{p.get('cpu_model', 'unknown CPU')}, {p.get('cores')} cores"
            + (f", GPU {p['gpu']}" if p.get("gpu") else "")
            + f"; commit `{sha}`{flags[0]}; {p.get('date', 'no date')}{flags[1]}")
