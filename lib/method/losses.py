"""Multi-label losses on logits (docs/method.md, "Losses"): BCE, focal, asymmetric (ASL).

All take ``logits`` and ``targets`` of shape (B, C) and return the **mean over all B x C
(image, label) terms** (equivalently: mean over labels, then over images). Ridnik et al.'s
ASL code returns the sum instead; the mean only rescales the loss by 1 / (B C).

With ``p = sigmoid(x)``, target ``y``, margin ``m`` and ``p_m = max(p - m, 0)``::

    L+ = y log(max(p, eps)) (1 - p)^gamma_pos
    L- = (1 - y) log(max(1 - p_m, eps)) p_m^gamma_neg
    loss = -mean(L+ + L-),  eps = 1e-8

The focal weights keep their gradient (no detach).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BCELoss(nn.Module):
    """Multi-label soft-margin loss: mean binary cross-entropy over labels and images
    (the same value as ``nn.MultiLabelSoftMarginLoss``), computed stably from logits."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype),
                                                  reduction="mean")


class AsymmetricLoss(nn.Module):
    """Asymmetric loss (Ridnik et al. 2021); defaults gamma_pos=0, gamma_neg=4, m=0.05."""

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 4.0, margin: float = 0.05,
                 eps: float = 1e-8):
        super().__init__()
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.margin = margin
        self.eps = eps

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        y = targets.to(logits.dtype)
        p = torch.sigmoid(logits)
        p_m = (p - self.margin).clamp(min=0) if self.margin > 0 else p
        pos = y * torch.log(p.clamp(min=self.eps))
        neg = (1 - y) * torch.log((1 - p_m).clamp(min=self.eps))
        if self.gamma_pos:
            pos = pos * (1 - p).pow(self.gamma_pos)
        if self.gamma_neg:
            neg = neg * p_m.pow(self.gamma_neg)
        return -(pos + neg).mean()

    def extra_repr(self) -> str:
        return f"gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, margin={self.margin}"


class FocalLoss(AsymmetricLoss):
    """Symmetric focal loss: gamma_pos = gamma_neg = 3, no margin."""

    def __init__(self, gamma: float = 3.0, eps: float = 1e-8):
        super().__init__(gamma_pos=gamma, gamma_neg=gamma, margin=0.0, eps=eps)


LOSSES = {"bce": BCELoss, "focal": FocalLoss, "asl": AsymmetricLoss}


def build_loss(name: str) -> nn.Module:
    """The loss ``"bce"``, ``"focal"`` or ``"asl"`` with the reference settings."""
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
