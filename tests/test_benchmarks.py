"""The benchmark scripts run: each of ``make bench``'s list for a step or two (fast mode,
``AIA_BENCH_FAST=1``) writes its output file with the machine, commit and date; the
summary of ``results/benchmarks.md`` picks its headline numbers by whole words."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import matthews_corrcoef

from lib.core import paths

GRID = [round(0.05 * i, 2) for i in range(1, 15)]

BENCH = paths.ROOT / "benchmarks"


def _module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def make_bench_list() -> list[str]:
    """``BENCHES`` of the Makefile (what ``make bench`` runs)."""
    text = (paths.ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^BENCHES\s*\?=\s*(.+)$", text, flags=re.M)
    assert match, "no BENCHES list in the Makefile"
    return match.group(1).split()


def test_the_list_is_what_make_bench_runs():
    names = make_bench_list()
    assert len(names) >= 7 and "train_throughput" in names
    for name in names:
        assert (BENCH / f"{name}.py").is_file(), f"make bench lists {name} but no script"


PROVENANCE = {"cpu_model", "cores", "platform", "commit", "dirty", "date", "fast"}


@pytest.mark.slow
@pytest.mark.parametrize("name", make_bench_list())
def test_each_benchmark_runs_a_step_and_records_its_provenance(name, tmp_path, corel_dir):
    env = {**os.environ, "AIA_BENCH_FAST": "1", "AIA_BENCH_DIR": str(tmp_path / "bench"),
           "PYTHONPATH": str(paths.ROOT), "AIA_COREL5K_ANNOTATIONS": str(corel_dir)}
    args = [sys.executable, str(BENCH / f"{name}.py")]
    if name == "corel_memory":
        args += ["--annotations", str(corel_dir), "--work", str(tmp_path / "work")]
    proc = subprocess.run(args, cwd=paths.ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    out = tmp_path / "bench" / f"{name}.json"
    if name == "gpu_reference" and not _cuda():
        assert "skipped: no CUDA device" in output     # said, not silent
        return
    assert out.is_file(), f"{name} wrote no {out.name}:\n{output[-2000:]}"
    result = json.loads(out.read_text())
    p = result["provenance"]
    assert PROVENANCE <= set(p), sorted(PROVENANCE - set(p))
    assert p["fast"] is True and p["cores"] >= 1 and p["cpu_model"] not in ("", "unknown")
    assert re.fullmatch(r"[0-9a-f]{40}", p["commit"]) and isinstance(p["dirty"], bool)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", p["date"])


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_train_throughput_schedule_covers_every_step_it_takes(tiny_scenes, tmp_path):
    """The benchmark takes more optimiser steps than the configuration's epochs hold; its
    OneCycle schedule is lengthened to cover them (the bug: "Tried to step 189 times. The
    specified number of total steps is 188")."""
    from lib.training import settings

    bench = _module("train_throughput")
    config = settings.TrainConfig(data=str(tiny_scenes), out=str(tmp_path / "r"), epochs=1,
                                  image_size=16, batch_size=16, device="cpu")
    per_epoch = math.ceil(96 / 16)
    steps = 3 * per_epoch + 1
    trainer = bench.trainer_for(config, steps)
    assert trainer.scheduler.total_steps >= steps
    assert trainer.config.epochs == 1  # trains as configured; only the schedule is longer
    trainer.optimizer.step()
    for _ in range(steps):
        trainer.scheduler.step()      # would raise past the end of the schedule


def test_summary_headline_matches_whole_words_and_names_the_sources(tmp_path):
    bench = _module("reproduce_bench")
    prov = _module("provenance")
    clean = {**prov.provenance(), "dirty": False, "fast": False}
    (tmp_path / "a.json").write_text(json.dumps({
        "ratio": 0.93, "time_ratio_side_by_side": 1.2, "configurations": 10,
        "table": {"x": {"iterations": 100, "speedup_vs_K1": 3.0}}, "provenance": clean}))
    (tmp_path / "b.json").write_text(json.dumps({"step_throughput_images_per_s": 55.0,
                                                 "commit": "abc-dirty"}))
    text = bench.summarize(tmp_path)
    headline = text.split("## Headline")[1].split("## Where")[0]
    assert "| a | ratio | 0.93 |" in headline
    assert "time_ratio_side_by_side" in headline and "table.x.speedup_vs_K1" in headline
    assert "step_throughput_images_per_s" in headline
    assert "configurations" not in headline and "iterations" not in headline
    sources = text.split("## Where each number comes from")[1]
    assert f"`{clean['commit'][:12]}`" in sources and clean["cpu_model"] in sources
    assert "- `b`: no provenance recorded" in sources
    assert "rerun their scripts): `b`." in sources       # b has no clean provenance


def test_threshold_fallback_is_chosen_on_validation_folds_never_on_test():
    tf = _module("threshold_fallback")
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=(40, 6)) < 0.3).astype(np.uint8)
    y[:, 5] = 0
    y[3, 5] = 1                                        # a label with one positive
    s = np.clip(y * 0.35 + rng.uniform(size=y.shape) * 0.65, 0, 1)
    assignment = tf.fold_assignment(40, 4, seed=1)
    assert sorted(np.bincount(assignment)) == [10, 10, 10, 10]
    pred, _ = tf.out_of_fold_predictions(y, s, fallback="shared", min_positives=2,
                                         assignment=assignment)
    for f in range(4):
        held = assignment == f
        # a fold's predictions use thresholds tuned on the other folds, by hand: the pooled
        # MCC optimum of the others for labels with < 2 positives there, else their argmax
        others_y, others_s = y[~held], s[~held]
        pooled = [matthews_corrcoef(others_y.ravel(), others_s.ravel() >= t) for t in GRID]
        shared = GRID[int(np.argmax(pooled))]
        for c in range(6):
            if others_y[:, c].sum() < 2:
                cut = shared
            else:
                curve = [matthews_corrcoef(others_y[:, c], others_s[:, c] >= t) for t in GRID]
                cut = GRID[int(np.argmax(curve))]
            np.testing.assert_array_equal(pred[held, c], s[held, c] >= cut - 1e-12)
        # and do not depend on the fold's own labels
        y2 = y.copy()
        y2[held] = 1 - y2[held]
        again, _ = tf.out_of_fold_predictions(y2, s, fallback="shared", min_positives=2,
                                              assignment=assignment)
        np.testing.assert_array_equal(again[held], pred[held])


def test_threshold_fallback_recommendation_ignores_the_test_columns():
    import pandas as pd

    tf = _module("threshold_fallback")
    table = pd.DataFrame({"dataset": ["a", "a", "b", "b"], "fallback": ["0.5", "shared"] * 2,
                          "min_positives": [1, 1, 1, 1], "per_class_f1": [0.5, 0.6, 0.4, 0.45],
                          "test_per_class_f1": [0.9, 0.1, 0.9, 0.1]})
    choice = tf.recommend(table)
    assert (choice["fallback"], choice["min_positives"]) == ("shared", 1)
    assert choice["same_as_baseline"] is False


def test_install_size_counts_disk_blocks_as_du_does(tmp_path):
    """The environment's size is what ``du -s`` says: disk blocks, a hard-linked file once."""
    bench = _module("install_size")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big.bin").write_bytes(os.urandom(300_000))
    (tmp_path / "a" / "small.txt").write_text("x")
    os.link(tmp_path / "a" / "big.bin", tmp_path / "twin.bin")
    (tmp_path / "sparse").write_bytes(b"")
    with open(tmp_path / "sparse", "r+b") as f:
        f.truncate(5_000_000)                          # 5 MB long, no block written
    du = subprocess.run(["du", "-s", "--block-size=1", str(tmp_path)], capture_output=True,
                        text=True, check=True).stdout.split()[0]
    got = bench.disk_usage(tmp_path)
    assert got == int(du) - os.lstat(tmp_path).st_blocks * 512   # du counts the folder itself
    assert 300_000 <= got < 2 * 300_000 + 100_000
