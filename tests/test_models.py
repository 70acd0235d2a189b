"""The annotation model: GCN head against its formula, heads, backbones, normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lib.method.models import (
    COREL5K_STATS,
    HEADS,
    RESIDUAL_HEADS,
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
    assert torch.equal(model.graph_share(), torch.zeros(C))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, C)
    assert model.head.weight.shape == (C, 512)


def test_gradients_flow_into_gcn_weights():
    model = _build()
    loss = model(torch.randn(2, 3, 32, 32)).sigmoid().sum()
    loss.backward()
    for p in (model.head.gc1.weight, model.head.gc2.weight, model.backbone.conv1[0].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_encoder_pools_by_the_spatial_mean():
    """The image feature is the global average of the backbone's last feature map."""
    backbone = create_backbone("resnet10t").eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), backbone.forward_features(x).mean((2, 3)))


def test_bad_arguments():
    vectors, adj = _inputs()
    with pytest.raises(ValueError, match="unknown head"):
        build_model(C, head="mlp")
    with pytest.raises(ValueError, match="needs label_vectors"):
        build_model(C, head="gcn", adjacency=adj)
    with pytest.raises(ValueError, match="needs an adjacency"):
        build_model(C, head="gcn", label_vectors=vectors)
    for head in RESIDUAL_HEADS:
        with pytest.raises(ValueError, match=f"head '{head}' needs an adjacency"):
            build_model(C, head=head, label_vectors=vectors)
        with pytest.raises(ValueError, match="needs label_vectors"):
            build_model(C, head=head, adjacency=adj)
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


# --------------------------------------------------------------------------- reference head


#: logits of ``_build("gcn", seed=0).eval()`` on ``torch.manual_seed(123); randn(2, 3, 32, 32)``
#: and the first four columns of its classifiers, computed with the code before the residual
#: heads were added (commit 9d9e572): the reference head's numbers must never change
GOLDEN_GCN_LOGITS = [
    [0.1473412960767746, 0.04713817685842514, 0.0015896670520305634, 0.032472819089889526,
     0.09256446361541748],
    [0.15912508964538574, 0.055524617433547974, 0.01143725961446762, 0.04148315265774727,
     0.09934522211551666],
]
GOLDEN_GCN_CLASSIFIERS = [
    [0.034631047397851944, 0.027483250945806503, 0.05759013816714287, -0.05060242861509323],
    [0.01773155853152275, 0.016948923468589783, 0.04552497714757919, -0.03278635814785957],
    [0.014448820613324642, 0.019385358318686485, 0.05712658539414406, -0.035806696861982346],
    [0.014895746484398842, 0.016048699617385864, 0.04853881895542145, -0.03429616987705231],
    [0.020711705088615417, 0.014917542226612568, 0.0314481183886528, -0.02863347716629505],
]


class _ReferenceGCNHead(nn.Module):
    """A frozen copy of the reference head as it was (commit 9d9e572), to compare against."""

    def __init__(self, label_vectors, adjacency, out_features, hidden=1024):
        super().__init__()
        self.register_buffer("label_vectors", label_vectors.float())
        self.register_buffer("adjacency", adjacency.float())
        self.gc1 = nn.Parameter(torch.empty(label_vectors.shape[1], hidden))
        nn.init.uniform_(self.gc1, -1 / math.sqrt(hidden), 1 / math.sqrt(hidden))
        self.gc2 = nn.Parameter(torch.empty(hidden, out_features))
        nn.init.uniform_(self.gc2, -1 / math.sqrt(out_features), 1 / math.sqrt(out_features))

    def classifiers(self):
        h = nn.functional.leaky_relu(self.adjacency @ (self.label_vectors @ self.gc1), 0.2)
        return self.adjacency @ (h @ self.gc2)


def _images(seed=123, n=2):
    torch.manual_seed(seed)
    return torch.randn(n, 3, 32, 32)


def test_reference_gcn_head_unchanged():
    model = _build("gcn", seed=0).eval()
    with torch.no_grad():
        logits = model(_images())
        classifiers = model.label_classifiers()
    np.testing.assert_allclose(logits.numpy(), GOLDEN_GCN_LOGITS, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(classifiers[:, :4].numpy(), GOLDEN_GCN_CLASSIFIERS, rtol=1e-5,
                               atol=1e-7)
    assert sorted(model.head.state_dict()) == ["adjacency", "gc1.weight", "gc2.weight",
                                               "label_vectors"]
    assert torch.equal(model.graph_share(), torch.ones(C))
    # the same random draws, in the same order, as the frozen copy of the reference head
    vectors, adj = _inputs()
    torch.manual_seed(0)
    backbone = create_backbone("resnet10t")
    reference = _ReferenceGCNHead(torch.as_tensor(vectors), torch.as_tensor(adj), 512, hidden=16)
    assert torch.equal(model.head.gc1.weight, reference.gc1)
    assert torch.equal(model.head.gc2.weight, reference.gc2)
    for name, tensor in backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[name], tensor), name
    torch.testing.assert_close(classifiers, reference.classifiers().detach(), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- residual heads


def test_heads_constant():
    assert HEADS[:3] == ("gcn", "linear", "gcn-identity")
    assert set(RESIDUAL_HEADS) == {"gcn-residual", "gcn-learned"}
    assert set(RESIDUAL_HEADS) < set(HEADS)
    with pytest.raises(ValueError, match="gcn-residual"):  # the message lists the choices
        build_model(C, head="residual")


@pytest.mark.parametrize("head", RESIDUAL_HEADS)
def test_residual_head_starts_as_the_linear_head(head):
    linear = _build("linear", seed=0).eval()
    model = _build(head, seed=0).eval()
    # drawn in the same order: the same linear init and the same backbone for the same seed
    assert torch.equal(model.head.linear.weight, linear.head.weight)
    assert torch.equal(model.head.linear.bias, linear.head.bias)
    assert torch.equal(model.head.gcn.gc2.weight, torch.zeros(16, 512))
    assert model.head.gcn.gc1.weight.abs().sum() > 0   # the first layer is not zero
    images = _images()
    with torch.no_grad():
        assert torch.equal(model(images), linear(images))
        assert torch.equal(model.label_classifiers(), linear.head.weight)
    assert torch.equal(model.graph_share(), torch.zeros(C))
    # any linear weights: copy another seed's linear head in, the logits follow it exactly
    other = _build("linear", seed=7).eval()
    model = _build(head, seed=3).eval()
    model.backbone.load_state_dict(other.backbone.state_dict())
    model.head.linear.load_state_dict(other.head.state_dict())
    with torch.no_grad():
        assert torch.equal(model(images), other(images))


def _lrelu(x):
    return np.where(x > 0, x, 0.2 * x)


@pytest.mark.parametrize("head", RESIDUAL_HEADS)
def test_residual_head_matches_formula(head):
    model = _build(head, seed=1).eval()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():   # move away from the initial point so every term matters
        model.head.gcn.gc2.weight.copy_(torch.randn(16, 512, generator=gen) * 0.05)
        if head == "gcn-learned":
            model.head.gcn.adjacency_delta.copy_(torch.randn(C, C, generator=gen) * 0.3)
    vectors, adj = _inputs()
    a = adj + (model.head.gcn.adjacency_delta.detach().numpy() if head == "gcn-learned" else 0)
    w1 = model.head.gcn.gc1.weight.detach().numpy()
    w2 = model.head.gcn.gc2.weight.detach().numpy()
    w_lin = model.head.linear.weight.detach().numpy()
    bias = model.head.linear.bias.detach().numpy()
    w_gcn = a @ _lrelu(a @ vectors @ w1) @ w2
    images = _images()
    with torch.no_grad():
        features = model.features(images).numpy()
        logits = model(images).numpy()
        classifiers = model.label_classifiers().numpy()
        share = model.graph_share().numpy()
    np.testing.assert_allclose(classifiers, w_lin + w_gcn, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(logits, features @ (w_lin + w_gcn).T + bias, rtol=1e-4, atol=1e-5)
    lin_norm, gcn_norm = np.linalg.norm(w_lin, axis=1), np.linalg.norm(w_gcn, axis=1)
    np.testing.assert_allclose(share, gcn_norm / (lin_norm + gcn_norm), rtol=1e-5)
    assert ((share > 0.05) & (share < 0.95)).all()
    # the adjacency the learnt head starts from is saved with it; only the delta is trained
    names = {n for n, _ in model.named_parameters()}
    assert "head.gcn.adjacency" not in names
    assert ("head.gcn.adjacency_delta" in names) == (head == "gcn-learned")
    np.testing.assert_array_equal(model.state_dict()["head.gcn.adjacency"].numpy(), adj)


def test_graph_share_bounds():
    model = _build("gcn-residual", seed=0)
    with torch.no_grad():
        model.head.linear.weight.zero_()
        model.head.gcn.gc2.weight.fill_(0.01)
    assert torch.allclose(model.graph_share(), torch.ones(C))   # the graph part alone
    with torch.no_grad():
        model.head.gcn.gc2.weight.zero_()
    assert torch.equal(model.graph_share(), torch.zeros(C))     # nothing at all: 0, not NaN


@pytest.mark.parametrize("head", RESIDUAL_HEADS)
def test_gradients_reach_the_gcn_within_two_steps(head):
    model = _build(head, seed=0)
    gcn = model.head.gcn
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    images = _images(n=4)
    targets = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 0, 0, 1], [1, 1, 0, 0, 0], [0, 0, 0, 1, 1]],
                           dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss()

    def step():
        optimizer.zero_grad()
        loss_fn(model(images), targets).backward()
        grads = {n: p.grad.abs().sum().item() for n, p in model.named_parameters()
                 if n.startswith("head.")}
        optimizer.step()
        return grads

    first = step()
    # step 1: the zero last layer gets gradient at once, the layers behind it none yet
    assert first["head.gcn.gc2.weight"] > 0 and first["head.linear.weight"] > 0
    assert first["head.gcn.gc1.weight"] == 0
    if head == "gcn-learned":
        assert first["head.gcn.adjacency_delta"] == 0
    second = step()
    assert all(v > 0 for v in second.values()), second
    gc1_before = gcn.gc1.weight.detach().clone()
    for _ in range(3):
        step()
    assert not torch.equal(gcn.gc1.weight, gc1_before)
    if head == "gcn-learned":
        assert gcn.adjacency_delta.abs().sum() > 0
        assert torch.equal(gcn.adjacency, torch.as_tensor(_inputs()[1]))  # A_0 stays fixed
    assert (model.graph_share() > 0).all()


def test_learned_head_state_dict_round_trip():
    model = _build("gcn-learned", seed=0).eval()
    with torch.no_grad():
        model.head.gcn.gc2.weight.normal_(0, 0.05)
        model.head.gcn.adjacency_delta.normal_(0, 0.1)
    fresh = _build("gcn-learned", seed=4).eval()
    fresh.load_state_dict(model.state_dict())
    images = _images()
    with torch.no_grad():
        assert torch.equal(fresh(images), model(images))
        assert not torch.equal(fresh(images), _build("gcn-learned", seed=4).eval()(images))
