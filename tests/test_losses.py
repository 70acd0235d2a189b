"""Losses against the formulas of docs/method.md ("Losses"), written independently in plain math."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lib.method.losses import AsymmetricLoss, BCELoss, FocalLoss, build_loss

LOGITS = [[2.0, -1.0, 0.3, -3.0], [-0.5, 4.0, -2.0, 0.0], [30.0, -30.0, 25.0, -40.0]]
TARGETS = [[1, 0, 1, 0], [0, 1, 0, 1], [0, 1, 1, 0]]   # last row: extreme logits, both ways


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def reference(logits, targets, gamma_pos, gamma_neg, margin, eps=1e-8) -> float:
    """-mean over all (image, label) terms of y log(p)(1-p)^g+ + (1-y) log(1-p_m) p_m^g-."""
    terms = []
    for row_x, row_y in zip(logits, targets, strict=True):
        for x, y in zip(row_x, row_y, strict=True):
            p = sigmoid(x)
            p_m = max(p - margin, 0.0)
            pos = y * math.log(max(p, eps)) * (1 - p) ** gamma_pos
            neg = (1 - y) * math.log(max(1 - p_m, eps)) * p_m**gamma_neg
            terms.append(pos + neg)
    return -sum(terms) / len(terms)


def bce_reference(logits, targets) -> float:
    terms = [y * math.log(sigmoid(x)) + (1 - y) * math.log(1 - sigmoid(x))
             for rx, ry in zip(logits[:2], targets[:2], strict=True)
             for x, y in zip(rx, ry, strict=True)]
    return -sum(terms) / len(terms)


def _value_and_grad(loss: nn.Module, logits, targets):
    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    value = loss(x, torch.tensor(targets, dtype=torch.float64))
    value.backward()
    return value.item(), x.grad


def test_asl_matches_formula_including_margin_and_clamp():
    value, grad = _value_and_grad(build_loss("asl"), LOGITS, TARGETS)
    expected = reference(LOGITS, TARGETS, gamma_pos=0, gamma_neg=4, margin=0.05)
    assert value == pytest.approx(expected, rel=1e-9)
    # the clamp: a positive at logit -30 costs exactly -log(1e-8) / (B C)
    single, _ = _value_and_grad(build_loss("asl"), [[-30.0]], [[1]])
    assert single == pytest.approx(-math.log(1e-8), rel=1e-9)
    assert torch.isfinite(grad).all()


def test_asl_margin_discards_easy_negatives():
    # p = sigmoid(-3) = 0.047 < m = 0.05: p_m = 0, the negative costs nothing
    value, grad = _value_and_grad(AsymmetricLoss(), [[-3.0]], [[0]])
    assert value == 0.0 and grad.abs().sum() == 0
    value, _ = _value_and_grad(AsymmetricLoss(margin=0.0), [[-3.0]], [[0]])
    assert value > 0


def test_focal_matches_formula():
    value, grad = _value_and_grad(build_loss("focal"), LOGITS, TARGETS)
    expected = reference(LOGITS, TARGETS, gamma_pos=3, gamma_neg=3, margin=0.0)
    assert value == pytest.approx(expected, rel=1e-9)
    assert torch.isfinite(grad).all()
    assert isinstance(build_loss("focal"), FocalLoss)


def test_bce_matches_formula_and_soft_margin_loss():
    value, grad = _value_and_grad(build_loss("bce"), LOGITS[:2], TARGETS[:2])
    assert value == pytest.approx(bce_reference(LOGITS, TARGETS), rel=1e-9)
    x, y = torch.tensor(LOGITS), torch.tensor(TARGETS, dtype=torch.float32)
    assert BCELoss()(x, y).item() == pytest.approx(nn.MultiLabelSoftMarginLoss()(x, y).item(),
                                                   rel=1e-6)
    extreme, g = _value_and_grad(BCELoss(), [[100.0, -100.0]], [[0, 1]])
    assert extreme == pytest.approx(100.0) and torch.isfinite(g).all()


def test_reduction_is_mean_over_all_terms():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(4, 6)))
    y = torch.tensor(rng.integers(0, 2, size=(4, 6)))
    for name in ("bce", "focal", "asl"):
        loss = build_loss(name)
        whole = loss(x, y)
        parts = torch.stack([loss(x[i:i + 1, j:j + 1], y[i:i + 1, j:j + 1])
                             for i in range(4) for j in range(6)])
        assert whole.item() == pytest.approx(parts.mean().item(), rel=1e-9)


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        build_loss("hinge")


def test_focusing_weights_keep_their_gradient():
    """docs/method.md: the focusing weights are not detached (as the reference). d/dx by
    hand: a detached weight would drop the second term of each."""
    # ASL, one negative at x = 0.5: L = -log(1 - p_m) p_m^4, p_m = p - 0.05
    x = torch.tensor([[0.5]], dtype=torch.float64, requires_grad=True)
    AsymmetricLoss()(x, torch.zeros(1, 1, dtype=torch.float64)).backward()
    p = sigmoid(0.5)
    pm = p - 0.05
    expected = p * (1 - p) * (pm**4 / (1 - pm) - 4 * pm**3 * math.log(1 - pm))
    assert float(x.grad) == pytest.approx(expected, rel=1e-9)
    # focal, one positive at x = -1: L = -log(p) (1 - p)^3
    x = torch.tensor([[-1.0]], dtype=torch.float64, requires_grad=True)
    FocalLoss()(x, torch.ones(1, 1, dtype=torch.float64)).backward()
    p = sigmoid(-1.0)
    expected = -((1 - p) ** 4) + 3 * p * (1 - p) ** 3 * math.log(p)
    assert float(x.grad) == pytest.approx(expected, rel=1e-9)
