"""The head registry (lib.method.heads): the built-in heads' properties, an unknown head is an
error everywhere, and a head registered through the public API is a setting that trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lib.analysis import comparisons
from lib.core import config
from lib.method import heads, models
from lib.training import launch, settings
from lib.training.runs import RunFolder

C = 6


def test_builtin_heads():
    assert heads.names() == ("gcn", "linear", "gcn-identity", "gcn-residual", "gcn-learned",
                             "csra", "mldecoder", "mldecoder-words")
    assert models.HEADS == heads.names()
    assert models.RESIDUAL_HEADS == ("gcn-residual", "gcn-learned")
    assert [h for h in heads.names() if not heads.get(h).uses_graph] == [
        "linear", "gcn-identity", "csra", "mldecoder", "mldecoder-words"]
    assert [h for h in heads.names() if not heads.get(h).uses_vectors] == ["linear", "csra",
                                                                           "mldecoder"]
    assert [h for h in heads.names() if heads.get(h).spatial] == ["csra", "mldecoder",
                                                                  "mldecoder-words"]
    assert all(not heads.get(h).settings for h in heads.names()[:5])
    assert comparisons.head_order() == ("linear", "gcn", "gcn-residual", "gcn-learned")
    assert comparisons.head_baselines("gcn") == ("linear",)
    assert comparisons.head_baselines("gcn-residual") == heads.DEFAULT_BASELINES
    assert comparisons.head_name("gcn-identity") == "GCN, A = I"


def test_an_unknown_head_is_an_error_everywhere():
    with pytest.raises(heads.UnknownHeadError, match="registered heads: gcn, linear"):
        heads.get("nope")
    with pytest.raises(ValueError, match="unknown head 'nope'"):
        models.build_model(C, head="nope")
    with pytest.raises(config.ConfigError, match="head='nope'"):
        settings.TrainConfig(head="nope")
    with pytest.raises(ValueError, match="unknown head 'nope'"):
        comparisons.dims({"head": "nope"})
    with pytest.raises(ValueError, match="unknown head 'nope'"):
        comparisons.head_baselines("nope")
    with pytest.raises(ValueError, match="already registered"):
        heads.register_head(heads.get("gcn"))


class ToyHead(nn.Module):
    """A two-layer MLP on the features: no label vectors, no graph."""

    def __init__(self, dim: int, num_labels: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, num_labels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


@pytest.fixture
def toy_head():
    def build(dim, num_labels, *, label_vectors, adjacency, hidden):
        assert label_vectors is None and adjacency is None  # it uses neither
        return ToyHead(dim, num_labels, hidden)

    head = heads.register_head(heads.Head("toy-mlp", build, uses_vectors=False,
                                          uses_graph=False, label="toy MLP"))
    yield head
    heads.unregister_head("toy-mlp")


def test_a_registered_head_is_a_setting_and_builds(toy_head):
    assert "toy-mlp" in models.HEADS
    assert "toy-mlp" in launch.train_parser().format_help()
    model = models.build_model(C, head="toy-mlp", hidden=8)
    assert isinstance(model.head, ToyHead)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, C)
    assert model.label_classifiers() is None
    assert torch.equal(model.graph_share(), torch.zeros(C))
    d = comparisons.dims({"head": "toy-mlp", "embeddings": "glove-6b-50d", "adjacency": "seed"})
    assert d["embeddings"] is None and d["adjacency"] is None
    assert comparisons.head_baselines("toy-mlp") == ("linear", "gcn")
    assert comparisons.head_name("toy-mlp") == "toy MLP"


@pytest.mark.slow
def test_a_registered_head_trains(toy_head, tiny_scenes, tmp_path):
    # an embeddings source that does not exist: the trainer must not load label vectors
    # for a head that does not use them
    cfg = settings.TrainConfig(data=str(tiny_scenes), out=str(tmp_path / "toy"), epochs=1,
                               image_size=32, batch_size=16, seed=0, head="toy-mlp",
                               hidden=16, embeddings="no-such-source")
    run = RunFolder(launch.train(cfg))
    assert run.finished
    assert run.config["head"] == "toy-mlp"
    assert 0.0 <= run.metrics()["mean_average_precision"] <= 1.0
