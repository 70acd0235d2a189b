"""The annotation model: GCN head against its formula, heads, backbones, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.models import (
    COREL5K_STATS,
    build_model,
    channel_stats,
    create_backbone,
    normalization,
)

C, D_EMB = 5, 7


def _inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(C, D_EMB)).astype(np.float32)
    adj = rng.uniform(size=(C, C)).astype(np.float32)
    return vectors, adj


def _build(head="gcn", adjacency=None, seed=0, hidden=16):
    vectors, adj = _inputs()
    torch.manual_seed(seed)
    return build_model(C, head=head, backbone="resnet10t", label_vectors=vectors,
                       adjacency=adj if adjacency is None else adjacency, hidden=hidden)


def test_gcn_head_matches_formula_and_shapes():
    model = _build().eval()
    vectors, adj = _inputs()
    w1 = model.head.gc1.weight.detach().numpy()
    w2 = model.head.gc2.weight.detach().numpy()
    h = adj @ vectors @ w1
    h = np.where(h > 0, h, 0.2 * h)                      # LeakyReLU(0.2)
    expected_w = adj @ h @ w2                             # C x D
    classifiers = model.label_classifiers().detach()
    assert classifiers.shape == (C, model.num_features) == (C, 512)
    np.testing.assert_allclose(classifiers.numpy(), expected_w, rtol=1e-4, atol=1e-5)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        logits = model(images)
        features = model.features(images)
    assert features.shape == (3, 512) and logits.shape == (3, C)
    np.testing.assert_allclose(logits.numpy(), features.numpy() @ expected_w.T,
                               rtol=1e-4, atol=1e-4)
    # fixed buffers, not trained parameters, but saved with the model
    names = {n for n, _ in model.named_parameters()}
    assert "head.adjacency" not in names and "head.label_vectors" not in names
    assert {"head.adjacency", "head.label_vectors"} <= set(model.state_dict())


def test_graph_changes_classifiers_and_identity_variant():
    a = _build(seed=0).label_classifiers()
    b = _build(seed=0, adjacency=np.ones((C, C), np.float32) / C).label_classifiers()
    assert not torch.allclose(a, b)
    ident = _build(head="gcn-identity", seed=0)
    eye = _build(head="gcn", seed=0, adjacency=np.eye(C, dtype=np.float32))
    assert torch.equal(ident.head.adjacency, torch.eye(C))
    assert torch.equal(ident.label_classifiers(), eye.label_classifiers())


def test_linear_head():
    torch.manual_seed(0)
    model = build_model(C, head="linear", backbone="resnet10t")
    assert model.label_classifiers() is None
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, C)
    assert model.head.weight.shape == (C, 512)


def test_gradients_flow_into_gcn_weights():
    model = _build()
    loss = model(torch.randn(2, 3, 32, 32)).sigmoid().sum()
    loss.backward()
    for p in (model.head.gc1.weight, model.head.gc2.weight, model.backbone.conv1[0].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_bad_arguments():
    vectors, adj = _inputs()
    with pytest.raises(ValueError, match="unknown head"):
        build_model(C, head="mlp")
    with pytest.raises(ValueError, match="needs label_vectors"):
        build_model(C, head="gcn", adjacency=adj)
    with pytest.raises(ValueError, match="needs an adjacency"):
        build_model(C, head="gcn", label_vectors=vectors)
    with pytest.raises(ValueError, match="adjacency has shape"):
        build_model(C, head="gcn", label_vectors=vectors, adjacency=adj[:3])
    with pytest.raises(ValueError, match="unknown timm backbone"):
        create_backbone("no_such_net")


def test_pretrained_from_local_file(tmp_path):
    import timm

    torch.manual_seed(1)
    source = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "resnet10t.pth"
    torch.save(source.state_dict(), path)
    model = build_model(C, head="linear", backbone="resnet10t", weights=path)
    assert torch.equal(model.backbone.conv1[0].weight, source.conv1[0].weight)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_backbone("resnet10t", weights=tmp_path / "missing.pth")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth"):
        create_backbone("resnet10t", weights=tmp_path / "bad.pth")


def test_pretrained_offline_without_file_names_the_options(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match="local weights file.*from scratch"):
        create_backbone("resnet10t", pretrained=True)


def test_tresnet_m_builds():
    backbone = create_backbone("tresnet_m", pretrained=False)
    assert backbone.num_features == 2048


def test_normalization():
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    np.testing.assert_allclose(normalization("resnet10t"), imagenet)
    assert normalization("tresnet_m") == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(normalization(_build()), imagenet)
    assert normalization("resnet10t", "dataset", COREL5K_STATS) == COREL5K_STATS
    with pytest.raises(ValueError, match="channel_stats"):
        normalization("resnet10t", "dataset")


def test_channel_stats():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(4 + i, 5, 3), dtype=np.uint8) for i in range(3)]
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]) / 255.0
    mean, std = channel_stats(images)
    np.testing.assert_allclose(mean, pixels.mean(axis=0))
    np.testing.assert_allclose(std, pixels.std(axis=0))
    same = [im[:4] for im in images]
    tensor = torch.from_numpy(np.stack(same)).permute(0, 3, 1, 2)
    t_mean, t_std = channel_stats(tensor)
    s_mean, s_std = channel_stats(same)
    np.testing.assert_allclose(t_mean, s_mean)
    np.testing.assert_allclose(t_std, s_std)
    np.testing.assert_allclose(channel_stats(tensor.float() / 255)[0], s_mean, rtol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        channel_stats([np.zeros((2, 2, 3))])
