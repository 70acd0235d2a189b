"""Shared fixtures: the real Corel-5k files, a tiny scenes dataset, a notebook runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lib.core import paths

#: the real Corel-5k annotation files: $AIA_COREL5K_ANNOTATIONS, default ../shared/corel5k
COREL = Path(os.environ.get("AIA_COREL5K_ANNOTATIONS", paths.SHARED_COREL5K))


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path_factory, monkeypatch):
    """Every test writes data and results under a temporary folder, never the repo's."""
    base = tmp_path_factory.mktemp("aia")
    monkeypatch.setenv("AIA_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("AIA_RESULTS_BASE", str(base / "results"))
    monkeypatch.setenv("AIA_RESULTS_DIR", str(base / "results"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield


@pytest.fixture(scope="session")
def corel_dir() -> Path:
    """The real Corel-5k annotation files (read-only). Their absence is a failure, not a
    skip: the tests that read them are the only check of the real formats."""
    if not (COREL / "train.json").exists():
        pytest.fail(f"real Corel-5k files not found: {COREL / 'train.json'} is missing (put "
                    "the shared folder beside the checkout, ../shared/corel5k, or set "
                    "AIA_COREL5K_ANNOTATIONS to a folder with train.json, test.json and "
                    "glove300_corel5k.txt)", pytrace=False)
    return COREL


@pytest.fixture(scope="session")
def tiny_scenes(tmp_path_factory) -> Path:
    """A small embedded scenes dataset drawn once per test session (read it, don't edit it;
    copy it with shutil.copytree when a test must change it)."""
    from lib.data.drawn import synth

    out = tmp_path_factory.mktemp("scenes") / "scenes"
    synth.generate(out, seed=0, size=48, n_train=96, n_val=32, n_test=32)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_scenes, tmp_path_factory) -> Path:
    """A two-epoch training run on the tiny scenes dataset (read-only run folder), with the
    embedded default configuration at a small image size."""
    from lib.training import launch, settings

    out = tmp_path_factory.mktemp("runs") / "tiny"
    config = settings.TrainConfig(
        data=str(tiny_scenes), out=str(out), epochs=2, image_size=32, batch_size=16, seed=0
    )
    launch.train(config)
    return out


def run_notebook(name: str, parameters: dict, tmp_path: Path, timeout: int = 600) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with papermill and the given parameters;
    returns the executed copy (under tmp_path). Raises papermill's error on failure."""
    import papermill as pm

    src = paths.NOTEBOOKS_DIR / f"{name}.ipynb"
    out = tmp_path / f"{name}.executed.ipynb"
    env_keys = ("AIA_DATA_DIR", "AIA_RESULTS_DIR")
    assert all(k in os.environ for k in env_keys)
    pm.execute_notebook(
        str(src), str(out), parameters=parameters, kernel_name="python3",
        cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False, execution_timeout=timeout,
    )
    return out


def notebook_outputs(path: Path) -> list[str]:
    """All text a notebook printed or displayed (stream and text/plain outputs)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
            elif "data" in output and "text/plain" in output["data"]:
                texts.append(output["data"]["text/plain"])
    return texts


def pytest_configure(config):
    """Under pytest-xdist each worker gets one intra-op thread (2 workers on 2 cores)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)
