"""The attention heads over the feature map (lib.method.heads "csra", "mldecoder",
"mldecoder-words";
docs/method.md, "Attention heads"): the formulas against values computed by hand and with
numpy, the spatial input, the settings, and a few training steps through the public API."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch

from lib.core import config
from lib.method import heads, losses, models
from lib.method.head_modules import CSRAHead, MLDecoderHead
from lib.training import launch, settings
from lib.training.runs import RunFolder

ATTENTION_HEADS = ("csra", "mldecoder", "mldecoder-words")


# --------------------------------------------------------------------------- CSRA by hand

# a 2-channel 2 x 2 feature map; positions j = 1..4 in row-major order:
# x_1 = (1, 0), x_2 = (0, 1), x_3 = (2, 1), x_4 = (1, 3)
X = torch.tensor([[[[1.0, 0.0], [2.0, 1.0]],
                   [[0.0, 1.0], [1.0, 3.0]]]])
# two classifiers: m_1 = (3, 4) (|m_1| = 5), m_2 = (0, -2) (|m_2| = 2)
M = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
# s_1j = m_1 . x_j / 5 = (3, 4, 10, 15) / 5;  s_2j = m_2 . x_j / 2 = (0, -2, -2, -6) / 2
S1 = (0.6, 0.8, 2.0, 3.0)
S2 = (0.0, -1.0, -1.0, -3.0)
BASE = (6.4 / 4, -5.0 / 4)                  # mean_j s_ij = (1.6, -1.25)
MAX = (3.0, 0.0)                            # max_j s_ij


def _softmax_pool(s, t):
    """sum_j softmax_j(t s_j) s_j, written out."""
    w = [math.exp(t * v) for v in s]
    return sum(wi * v for wi, v in zip(w, s, strict=True)) / sum(w)


def _csra(temperature, lam):
    head = CSRAHead(2, 2, temperature=temperature, lam=lam)
    with torch.no_grad():
        head.classifier.weight.copy_(M[:, :, None, None])
    return head


def test_csra_scores_are_the_normalised_class_scores_at_each_position():
    s = _csra(1.0, 0.1).scores(X)
    torch.testing.assert_close(s, torch.tensor([[S1, S2]]))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("lam", [0.1, 0.5])
def test_csra_is_the_mean_plus_lambda_times_the_softmax_attention(temperature, lam):
    # T = 1: att_1 = (0.6 e^0.6 + 0.8 e^0.8 + 2 e^2 + 3 e^3) / (e^0.6 + e^0.8 + e^2 + e^3)
    #              = 77.908427 / 31.522253 = 2.471537
    #        att_2 = (0 - e^-1 - e^-1 - 3 e^-3) / (1 + 2 e^-1 + e^-3) = -0.885120 / 1.785546
    assert _softmax_pool(S1, 1.0) == pytest.approx(2.471537, abs=1e-6)
    assert _softmax_pool(S2, 1.0) == pytest.approx(-0.495714, abs=1e-6)
    expected = [BASE[0] + lam * _softmax_pool(S1, temperature),
                BASE[1] + lam * _softmax_pool(S2, temperature)]
    out = _csra(temperature, lam)(X)
    torch.testing.assert_close(out, torch.tensor([expected]), rtol=0, atol=1e-6)


def test_csra_logits_by_hand():
    # T = 1, lambda = 0.1: (1.6 + 0.1 * 2.471537, -1.25 + 0.1 * -0.495714)
    out = _csra(1.0, 0.1)(X)
    torch.testing.assert_close(out, torch.tensor([[1.8471537, -1.2995714]]), rtol=0, atol=1e-6)


def test_csra_infinite_temperature_is_max_pooling():
    out = _csra(math.inf, 0.1)(X)
    torch.testing.assert_close(out, torch.tensor([[BASE[0] + 0.1 * MAX[0],
                                                   BASE[1] + 0.1 * MAX[1]]]))
    # a large finite T is close to it
    near = _csra(60.0, 0.1)(X)
    torch.testing.assert_close(near, out, rtol=0, atol=1e-4)


def test_csra_lambda_zero_is_the_normalised_classifier_on_pooled_features():
    head = _csra(1.0, 0.0)
    torch.testing.assert_close(head(X), torch.tensor([BASE]))
    pooled = X.mean((2, 3))
    torch.testing.assert_close(head(X), pooled @ head.classifiers().t())
    torch.testing.assert_close(head.classifiers(), torch.tensor([[0.6, 0.8], [0.0, -1.0]]))


def test_csra_bad_temperature():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        CSRAHead(2, 2, temperature=0.0)


# --------------------------------------------------------------------------- ML-Decoder by hand


def _layer_norm(x, weight, bias, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * weight + bias


def _attention(q, k, v, in_w, in_b, out_w, out_b, heads):
    """Multi-head attention written out: per head softmax(Q K^T / sqrt(d_h)) V, the heads
    concatenated, then the output map."""
    d = q.shape[-1]
    wq, wk, wv = in_w[:d], in_w[d:2 * d], in_w[2 * d:]
    bq, bk, bv = in_b[:d], in_b[d:2 * d], in_b[2 * d:]
    qp, kp, vp = q @ wq.T + bq, k @ wk.T + bk, v @ wv.T + bv
    dh = d // heads
    parts = []
    for h in range(heads):
        sl = slice(h * dh, (h + 1) * dh)
        logits = qp[..., sl] @ np.swapaxes(kp[..., sl], -1, -2) / np.sqrt(dh)
        a = np.exp(logits - logits.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        parts.append(a @ vp[..., sl])
    return np.concatenate(parts, -1) @ out_w.T + out_b


def _fix_weights(module, seed=0):
    """Small fixed weights in every parameter (LayerNorms included: not the identity)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.as_tensor(rng.uniform(-0.8, 0.8, size=tuple(p.shape)),
                                    dtype=torch.float32))


def _decoder_by_hand(head, x, heads):
    """The ML-Decoder forward pass with numpy: tokens, queries, each layer, the decoding."""
    p = {k: v.detach().double().numpy() for k, v in head.state_dict().items()}
    tokens = x.double().numpy().reshape(x.shape[0], x.shape[1], -1).transpose(0, 2, 1)
    memory = np.maximum(tokens @ p["project.weight"].T + p["project.bias"], 0)
    if head.from_vectors:
        q = np.maximum(p["label_vectors"] @ p["query_project.weight"].T
                       + p["query_project.bias"], 0)
    else:
        q = p["queries"]
    h = np.broadcast_to(q, (x.shape[0], *q.shape))
    for i in range(len(head.layers)):
        w = {k.split(".", 2)[2]: v for k, v in p.items() if k.startswith(f"layers.{i}.")}
        q1 = _layer_norm(h, w["norm1.weight"], w["norm1.bias"])
        a = _attention(q1, memory, memory, w["attn.in_proj_weight"], w["attn.in_proj_bias"],
                       w["attn.out_proj.weight"], w["attn.out_proj.bias"], heads)
        h2 = _layer_norm(q1 + a, w["norm2.weight"], w["norm2.bias"])
        ff = np.maximum(h2 @ w["linear1.weight"].T + w["linear1.bias"], 0) \
            @ w["linear2.weight"].T + w["linear2.bias"]
        h = _layer_norm(h2 + ff, w["norm3.weight"], w["norm3.bias"])
    if head.from_vectors:
        return h @ p["out_weight"][:, 0] + p["out_bias"][0]
    c = head.num_labels
    k, _, r = p["group_weight"].shape
    out = np.zeros((x.shape[0], c))
    for label in range(c):                   # label k r + t comes from query k, column t
        group, col = divmod(label, r)
        out[:, label] = h[:, group] @ p["group_weight"][group, :, col]
    return out + p["bias"]


def _decoder(c=3, dim=3, d_model=4, heads=1, layers=1, groups=0, vectors=None, seed=0):
    torch.manual_seed(seed)
    head = MLDecoderHead(dim, c, d_model=d_model, heads=heads, layers=layers, ffn=5,
                         dropout=0.0, groups=groups, label_vectors=vectors)
    _fix_weights(head, seed)
    return head.eval()


FMAP = torch.as_tensor(np.random.default_rng(7).normal(size=(2, 3, 2, 2)), dtype=torch.float32)


def test_mldecoder_cross_attention_by_hand_one_head():
    head = _decoder()
    # the attention of the first query over the 4 positions of image 0, written out
    p = {k: v.detach().double().numpy() for k, v in head.state_dict().items()}
    d = 4
    memory = np.maximum(FMAP[0].double().numpy().reshape(3, 4).T @ p["project.weight"].T
                        + p["project.bias"], 0)                           # 4 positions x d
    q = _layer_norm(p["queries"][0], p["layers.0.norm1.weight"], p["layers.0.norm1.bias"])
    w_in, b_in = p["layers.0.attn.in_proj_weight"], p["layers.0.attn.in_proj_bias"]
    qp = q @ w_in[:d].T + b_in[:d]
    kp = memory @ w_in[d:2 * d].T + b_in[d:2 * d]
    vp = memory @ w_in[2 * d:].T + b_in[2 * d:]
    weights = np.exp(kp @ qp / np.sqrt(d))
    weights /= weights.sum()
    expected = (weights @ vp) @ p["layers.0.attn.out_proj.weight"].T \
        + p["layers.0.attn.out_proj.bias"]
    layer = head.layers[0]
    with torch.no_grad():
        mem = torch.relu(head.project(FMAP.flatten(2).transpose(1, 2)))
        qt = layer.norm1(head.queries).unsqueeze(0).expand(2, -1, -1)
        got = layer.attn(qt, mem, mem, need_weights=False)[0]
    np.testing.assert_allclose(got[0, 0].double().numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("heads_, layers, groups, c", [(1, 1, 0, 3), (2, 1, 0, 3),
                                                       (1, 2, 0, 3), (1, 1, 2, 5)])
def test_mldecoder_learnt_queries_by_hand(heads_, layers, groups, c):
    head = _decoder(c=c, heads=heads_, layers=layers, groups=groups)
    assert head.queries.shape == ((groups or c), 4)
    if groups:
        assert head.group_weight.shape == (2, 4, 3)      # ceil(5 / 2) = 3 labels a query
    with torch.no_grad():
        got = head(FMAP)
    np.testing.assert_allclose(got.double().numpy(), _decoder_by_hand(head, FMAP, heads_),
                               rtol=1e-5, atol=1e-5)


def test_mldecoder_queries_from_label_vectors_by_hand():
    vectors = torch.as_tensor(np.random.default_rng(3).normal(size=(3, 6)), dtype=torch.float32)
    head = _decoder(vectors=vectors)
    assert not hasattr(head, "queries") and head.from_vectors
    with torch.no_grad():
        got = head(FMAP)
    np.testing.assert_allclose(got.double().numpy(), _decoder_by_hand(head, FMAP, 1),
                               rtol=1e-5, atol=1e-5)


def test_mldecoder_words_scores_labels_by_their_vectors():
    """Queries from the vectors with a shared decoding: a label's score depends on its
    vector only, so permuted vectors permute the logits, and a label set never trained on
    is scored by the same weights."""
    vectors = torch.as_tensor(np.random.default_rng(3).normal(size=(3, 6)), dtype=torch.float32)
    head = _decoder(vectors=vectors)
    with torch.no_grad():
        logits = head(FMAP)
        head.label_vectors = vectors[[2, 0, 1]]
        torch.testing.assert_close(head(FMAP), logits[:, [2, 0, 1]])
        head.label_vectors = torch.cat([vectors, torch.ones(4, 6)])   # 4 unseen labels
        assert head(FMAP).shape == (2, 7)
        torch.testing.assert_close(head(FMAP)[:, :3], logits)
    with pytest.raises(ValueError, match="groups must be 0"):
        MLDecoderHead(3, 3, groups=2, label_vectors=vectors)


# --------------------------------------------------------------------------- the model


def _vectors(c=4, d=7):
    return np.random.default_rng(0).normal(size=(c, d)).astype(np.float32)


def test_registry_lists_the_attention_heads():
    names = heads.names()
    assert set(ATTENTION_HEADS) <= set(names)
    assert [h for h in names if heads.get(h).spatial] == list(ATTENTION_HEADS)
    assert not heads.get("csra").uses_vectors and not heads.get("mldecoder").uses_vectors
    assert heads.get("mldecoder-words").uses_vectors
    assert not any(heads.get(h).uses_graph for h in ATTENTION_HEADS)
    assert all("linear" in heads.get(h).baselines for h in ATTENTION_HEADS)
    assert heads.get("csra").settings == ("csra_temperature", "csra_lambda")
    assert "decoder_groups" in heads.get("mldecoder").settings
    assert "decoder_groups" not in heads.get("mldecoder-words").settings
    for h in ATTENTION_HEADS:
        assert h in launch.train_parser().format_help()


@pytest.mark.parametrize("head", ATTENTION_HEADS)
def test_attention_heads_take_the_unpooled_map(head, monkeypatch):
    torch.manual_seed(0)
    model = models.build_model(4, head=head, label_vectors=_vectors()).eval()
    assert model.spatial
    seen = []
    monkeypatch.setattr(model.head, "forward", lambda x: seen.append(x) or x.sum((1, 2, 3)))
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        model(x)
        assert seen[0].shape == (2, 512, 2, 2)           # resnet10t at 48 px: 2 x 2 positions
        torch.testing.assert_close(seen[0], model.backbone.forward_features(x))
        # features() stays the pooled N x D vector (t-SNE)
        torch.testing.assert_close(model.features(x), seen[0].mean((2, 3)))


def test_spatial_features_of_other_timm_layouts():
    """NCHW (CNNs), NHWC (Swin) and tokens (ViT) all come out B x D x H x W."""
    x = torch.randn(2, 3, 64, 64)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0,
                            img_size=64).eval()
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=0,
                             img_size=64, window_size=2).eval()
    with torch.no_grad():
        tokens = vit.forward_features(x)                 # 1 class token + 16 patches
        torch.testing.assert_close(models.spatial_features(vit, x),
                                   tokens[:, 1:].transpose(1, 2).unsqueeze(2))
        nhwc = swin.forward_features(x)                  # 2 x 2 positions
        assert nhwc.shape[1:] == (2, 2, swin.num_features)
        torch.testing.assert_close(models.spatial_features(swin, x), nhwc.permute(0, 3, 1, 2))
        assert models.spatial_features(swin, x).shape[1] == swin.num_features


@pytest.mark.parametrize("head", ["gcn", "linear", "gcn-residual"])
def test_existing_heads_get_exactly_the_pooled_features(head):
    """Bit-identity: a pooled head's logits are its module applied to the backbone's
    pooled output, the same numbers as before the spatial heads existed."""
    vectors = _vectors()
    adj = np.random.default_rng(1).uniform(size=(4, 4)).astype(np.float32)
    torch.manual_seed(0)
    model = models.build_model(4, head=head, label_vectors=vectors, adjacency=adj, hidden=16)
    assert not model.spatial
    x = torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for mode in (model.eval, model.train):
            mode()
            pooled = model.backbone.forward_head(model.backbone.forward_features(x))
            assert torch.equal(model(x), model.head(pooled))
            assert torch.equal(model.features(x), pooled)
            torch.testing.assert_close(pooled, model.backbone.forward_features(x).mean((2, 3)))


# --------------------------------------------------------------------------- settings


def test_settings_reach_the_head_and_default_from_one_place():
    torch.manual_seed(0)
    csra = models.build_model(4, head="csra").head
    assert (csra.temperature, csra.lam) == (1.0, 0.1)
    csra = models.build_model(4, head="csra", head_settings={"csra_temperature": None,
                                                            "csra_lambda": 0.3}).head
    assert math.isinf(csra.temperature) and csra.lam == 0.3
    dec = models.build_model(6, head="mldecoder", head_settings={
        "decoder_dim": 32, "decoder_heads": 2, "decoder_layers": 2, "decoder_groups": 4}).head
    assert dec.queries.shape == (4, 32) and len(dec.layers) == 2
    assert dec.layers[0].attn.num_heads == 2 and dec.group_weight.shape == (4, 32, 2)
    # TrainConfig's defaults are lib.method.heads.SETTINGS'
    defaults = settings.TrainConfig()
    for name, spec in heads.SETTINGS.items():
        assert getattr(defaults, name) == spec.default
    cfg = settings.build_config("default", {"head": "mldecoder", "decoder_dim": 64})
    assert cfg.to_dict()["decoder_dim"] == 64


def test_unknown_or_bad_settings_fail_clearly():
    with pytest.raises(heads.HeadSettingError, match="unknown head setting 'csra_lamda'"):
        models.build_model(4, head="csra", head_settings={"csra_lamda": 0.2})
    with pytest.raises(heads.HeadSettingError, match="head 'csra' takes no setting "
                                                     "'decoder_dim'"):
        models.build_model(4, head="csra", head_settings={"decoder_dim": 8})
    with pytest.raises(heads.HeadSettingError, match="head 'linear' takes no setting"):
        models.build_model(4, head="linear", head_settings={"csra_lambda": 0.2})
    with pytest.raises(heads.HeadSettingError, match="decoder_groups"):
        models.build_model(4, head="mldecoder-words", label_vectors=_vectors(),
                           head_settings={"decoder_groups": 2})
    with pytest.raises(heads.HeadSettingError, match="csra_lambda must be in"):
        models.build_model(4, head="csra", head_settings={"csra_lambda": -1})
    with pytest.raises(heads.HeadSettingError, match="must divide by decoder_heads"):
        models.build_model(4, head="mldecoder", head_settings={"decoder_dim": 30})
    with pytest.raises(config.ConfigError, match="unknown TrainConfig settings "
                                                 r"\['csra_lamda'\]"):
        settings.build_config("default", {"csra_lamda": 0.2})
    for bad, match in [({"csra_temperature": 0}, "csra_temperature must be in"),
                       ({"csra_lambda": -0.1}, "csra_lambda must be in"),
                       ({"decoder_dim": 0}, "decoder_dim must be in"),
                       ({"decoder_groups": -1}, "decoder_groups must be in"),
                       ({"decoder_dropout": 1.0}, "decoder_dropout must be in"),
                       ({"decoder_heads": 3}, "must divide by decoder_heads")]:
        with pytest.raises(config.ConfigError, match=match):
            settings.build_config("default", bad)
    with pytest.raises(ValueError, match="unknown head setting"):
        heads.Head("bad", lambda *a, **k: None, settings=("nope",))


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("head", ATTENTION_HEADS)
def test_loss_decreases_on_a_learnable_toy(head):
    """Label 0 is on when the image is bright, label 1 when it is dark: a few Adam steps on
    one batch lower the ASL loss."""
    torch.manual_seed(0)
    model = models.build_model(2, head=head, label_vectors=_vectors(2),
                               head_settings={"decoder_dropout": 0.0}
                               if head.startswith("mldecoder") else {})
    gen = torch.Generator().manual_seed(0)
    bright = torch.rand(8, generator=gen) > 0.5
    images = torch.rand(8, 3, 32, 32, generator=gen) * 0.2 + bright[:, None, None, None] * 0.8
    targets = torch.stack([bright, ~bright], 1).float()
    criterion = losses.build_loss("asl")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(8):
        loss = criterion(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0], history


@pytest.mark.slow
@pytest.mark.parametrize("head", ATTENTION_HEADS)
def test_attention_head_trains_through_the_public_api(head, tiny_scenes, tmp_path):
    cfg = settings.TrainConfig(data=str(tiny_scenes), out=str(tmp_path / head), epochs=1,
                               image_size=32, batch_size=16, seed=0, head=head,
                               decoder_dim=32, decoder_ffn=64, csra_lambda=0.2)
    run = RunFolder(launch.train(cfg))
    assert run.finished
    assert run.config["head"] == head and run.config["csra_lambda"] == 0.2
    assert 0.0 <= run.metrics()["mean_average_precision"] <= 1.0
    # the saved model loads back with its head settings
    from lib.training.inference import load_model

    model, _ = load_model(run.path)
    assert model.net.spatial and model.net.head_name == head
    # notebook 06's classifiers beside the label vectors: CSRA's m_i / |m_i|, none for ML-Decoder
    from lib.analysis import evaluation

    if head == "csra":
        before, after, _ = evaluation.label_vectors_before_after(model, run.config)
        np.testing.assert_allclose(after, model.net.head.classifiers().detach().double())
        assert before.shape[0] == after.shape[0] == run.config["num_labels"]
    else:
        with pytest.raises(ValueError, match="no per-label classifiers"):
            evaluation.label_vectors_before_after(model, run.config)
