"""The size of the installed environment: what ``make test`` / ``make reproduce`` put in
``.venv`` (disk blocks actually used, as ``du -s`` counts them, hard links once), and the
largest packages in it.

    .venv/bin/python benchmarks/install_size.py [--venv .venv] [--top 5]

Writes ``$AIA_BENCH_DIR/install_size.json`` (seconds)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance import ROOT, fast, provenance  # noqa: E402 - beside this script
from reproduce_bench import bench_dir  # noqa: E402 - beside this script

from lib.core.fileio import atomic_write_json  # noqa: E402


def disk_usage(folder: Path) -> int:
    """Bytes of disk blocks used under ``folder`` (``st_blocks``, each inode once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", default=str(ROOT / ".venv"))
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args(argv)
    venv = Path(args.venv)
    site = next(venv.glob("lib/python*/site-packages"), None)
    if site is None:
        raise SystemExit(f"{venv}: no lib/python*/site-packages (not a virtual environment)")
    packages = sorted(p for p in site.iterdir() if p.is_dir() and not p.name.endswith(
        (".dist-info", "__pycache__")))
    if fast():
        packages = packages[:3]
    sizes = {p.name: disk_usage(p) for p in packages}
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:args.top]
    result = {
        "venv_gib": round(disk_usage(venv) / 1024**3, 2),
        "largest_packages_gib": {k: round(v / 1024**3, 2) for k, v in top},
        "provenance": provenance(),
    }
    out = atomic_write_json(bench_dir() / "install_size.json", result)
    print(f"{venv.name}: {result['venv_gib']} GiB; largest: "
          + ", ".join(f"{k} {v} GiB" for k, v in result["largest_packages_gib"].items()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
