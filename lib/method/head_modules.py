"""The label heads as torch modules: ML-GCN's graph convolution and the heads built on it,
and the attention heads over the feature map (CSRA, ML-Decoder).

What each head is, and which of these modules it builds, is said once in :mod:`lib.method.heads`;
the formulas are in :mod:`lib.method.models`' docstring and docs/method.md, "Model" and
"Attention heads".
"""

from __future__ import annotations

import math

import torch
from torch import nn


class GraphConvolution(nn.Module):
    """``H' = A H W`` without bias (ML-GCN's layer, same uniform(+-1/sqrt(out)) init)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        bound = 1.0 / math.sqrt(out_features)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return adjacency @ (h @ self.weight)


class GCNHead(nn.Module):
    """Label classifiers from a two-layer GCN over fixed label vectors and graph."""

    def __init__(self, label_vectors: torch.Tensor, adjacency: torch.Tensor, out_features: int,
                 hidden: int = 1024):
        super().__init__()
        self.register_buffer("label_vectors", label_vectors.float())
        self.register_buffer("adjacency", adjacency.float())
        self.gc1 = GraphConvolution(label_vectors.shape[1], hidden)
        self.act = nn.LeakyReLU(0.2)
        self.gc2 = GraphConvolution(hidden, out_features)

    def graph(self) -> torch.Tensor:
        """The adjacency the convolutions use (the fixed buffer here)."""
        return self.adjacency

    def classifiers(self) -> torch.Tensor:
        """The per-label classifiers ``W`` (C x D)."""
        graph = self.graph()
        h = self.act(self.gc1(self.label_vectors, graph))
        return self.gc2(h, graph)

    def graph_share(self) -> torch.Tensor:
        """Per label, 1: the GCN is the whole classifier."""
        return torch.ones(self.label_vectors.shape[0], device=self.label_vectors.device)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.classifiers().t()


class LearnedGraphGCN(GCNHead):
    """A :class:`GCNHead` whose adjacency is ``A_0 + Delta``: ``A_0`` (the ``adjacency``
    buffer, e.g. the co-occurrence graph) fixed, ``Delta`` (C x C) a parameter starting at
    zero, unconstrained (an edge can be strengthened, removed, made negative or added)."""

    def __init__(self, label_vectors: torch.Tensor, adjacency: torch.Tensor, out_features: int,
                 hidden: int = 1024):
        super().__init__(label_vectors, adjacency, out_features, hidden=hidden)
        self.adjacency_delta = nn.Parameter(torch.zeros_like(self.adjacency))

    def graph(self) -> torch.Tensor:
        return self.adjacency + self.adjacency_delta


class ResidualGCNHead(nn.Module):
    """The CNN-only linear head corrected by a GCN:
    ``logits = features @ (W_linear + W_gcn)^T + b``.

    The GCN's last layer starts at zero, so at initialisation ``W_gcn = 0`` and the logits
    are exactly the linear head's. Gradient flow: ``dL/dW2 = (A H)^T dL/dW_gcn`` is non-zero
    from the first step (``H``, the first layer's output, is not zero); the first layer and
    a learnt adjacency get gradient from the second step on, once ``W2 != 0``. Every update of
    ``W2`` moves each label's classifier by a graph-smoothed mixture of its neighbours'
    gradients (``A H H^T A^T`` applied to ``dL/dW``): that is the graph's whole influence."""

    def __init__(self, linear: nn.Linear, gcn: GCNHead):
        super().__init__()
        if linear.weight.shape[1] != gcn.gc2.weight.shape[1]:
            raise ValueError(f"linear head takes {linear.weight.shape[1]} features, the GCN "
                             f"makes {gcn.gc2.weight.shape[1]}-d classifiers")
        self.linear = linear
        self.gcn = gcn
        nn.init.zeros_(self.gcn.gc2.weight)

    def graph_part(self) -> torch.Tensor:
        """``W_gcn`` (C x D), the GCN's correction of the linear classifiers."""
        return self.gcn.classifiers()

    def classifiers(self) -> torch.Tensor:
        """The effective per-label classifiers ``W_linear + W_gcn`` (C x D)."""
        return self.linear.weight + self.graph_part()

    def graph_share(self) -> torch.Tensor:
        """Per label, ``|W_gcn| / (|W_linear| + |W_gcn|)`` (row norms): 0 = the linear
        classifier alone, 1 = the graph part alone, 0.5 = both as large."""
        lin = self.linear.weight.norm(dim=1)
        gcn = self.graph_part().norm(dim=1)
        total = lin + gcn
        return torch.where(total > 0, gcn / total.clamp(min=torch.finfo(total.dtype).tiny),
                           torch.zeros_like(total))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(features, self.classifiers(), self.linear.bias)


# --------------------------------------------------------------------------- attention heads
# spatial heads: they take the backbone's feature map x (N x D x H x W), positions j = 1..HW


class CSRAHead(nn.Module):
    """Class-specific residual attention (Zhu & Wu, ICCV 2021), one head.

    With ``m_i`` the classifier of label ``i`` (a 1 x 1 convolution without bias, C x D)
    and ``x_j`` the feature at position ``j``::

        s_ij   = m_i . x_j / |m_i|                       (the class score at each position)
        base_i = mean_j s_ij                             (average pooling)
        att_i  = sum_j softmax_j(T s_ij) s_ij            (T = inf: max_j s_ij)
        logit_i = base_i + lambda att_i

    as the official code computes it (the classifier's norm divides the scores)."""

    def __init__(self, dim: int, num_labels: int, temperature: float = 1.0, lam: float = 0.1):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"CSRA temperature must be > 0 (math.inf: max), got {temperature}")
        self.classifier = nn.Conv2d(dim, num_labels, 1, bias=False)
        self.temperature = float(temperature)
        self.lam = float(lam)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """``s`` (N x C x HW): each position's class scores over the classifier norms."""
        norm = self.classifier.weight.flatten(1).norm(dim=1)          # C
        return (self.classifier(x) / norm[None, :, None, None]).flatten(2)

    def classifiers(self) -> torch.Tensor:
        """The normalised classifiers ``m_i / |m_i|`` (C x D): the base logit is the pooled
        feature times these (the mean commutes with the linear score)."""
        w = self.classifier.weight.flatten(1)
        return w / w.norm(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scores(x)
        base = s.mean(dim=2)
        if math.isinf(self.temperature):
            att = s.amax(dim=2)
        else:
            att = (torch.softmax(self.temperature * s, dim=2) * s).sum(dim=2)
        return base + self.lam * att


class MLDecoderLayer(nn.Module):
    """One ML-Decoder layer: no self-attention among the queries, then cross-attention to the
    spatial tokens and a feed-forward block, each residual and layer-normalised (post-norm,
    as the official ``TransformerDecoderLayerOptimal``; its ``norm1(q + dropout(q))`` in the
    place of self-attention is ``norm1`` of the queries here)::

        q' = LN1(q)
        h  = LN2(q' + MHA(q', M, M))
        out = LN3(h + W2 ReLU(W1 h + b1) + b2)"""

    def __init__(self, d_model: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, ffn)
        self.linear2 = nn.Linear(ffn, d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        q = self.norm1(queries)
        h = self.norm2(q + self.dropout(self.attn(q, memory, memory, need_weights=False)[0]))
        ff = self.linear2(self.dropout(torch.relu(self.linear1(h))))
        return self.norm3(h + self.dropout(ff))


class MLDecoderHead(nn.Module):
    """ML-Decoder (Ridnik et al., WACV 2023): label queries cross-attend to the spatial tokens.

    Tokens: ``M = ReLU(x_j W_p + b_p)`` (HW x ``d_model``, no positional encoding, as the
    official code). Queries, either

    - learnt (``label_vectors`` None): K = ``groups`` queries (0: one per label, K = C), each
      decoded into ``r = ceil(C / K)`` labels by its own ``d_model x r`` map (group
      fully-connected; label ``k r + t`` comes from query ``k``, labels past C dropped), plus
      a bias per label;
    - from the label vectors ``E`` (C x d, a buffer): ``Q = ReLU(E W_q + b_q)``, one per
      label, decoded by one ``d_model``-vector and one bias shared by every label (so that a
      label never trained on can be scored from its vector).
    """

    def __init__(self, dim: int, num_labels: int, *, d_model: int = 128, heads: int = 4,
                 layers: int = 1, ffn: int = 512, dropout: float = 0.1, groups: int = 0,
                 label_vectors: torch.Tensor | None = None):
        super().__init__()
        self.num_labels = num_labels
        self.project = nn.Linear(dim, d_model)
        self.layers = nn.ModuleList(MLDecoderLayer(d_model, heads, ffn, dropout)
                                    for _ in range(layers))
        if label_vectors is None:
            k = num_labels if groups == 0 else min(groups, num_labels)
            self.queries = nn.Parameter(torch.randn(k, d_model))     # nn.Embedding's init
            self.group_weight = nn.Parameter(torch.empty(k, d_model, math.ceil(num_labels / k)))
            nn.init.xavier_normal_(self.group_weight)
            self.bias = nn.Parameter(torch.zeros(num_labels))
        else:
            if groups:
                raise ValueError("queries from the label vectors are one per label: "
                                 f"groups must be 0, got {groups}")
            self.register_buffer("label_vectors", label_vectors.float())
            self.query_project = nn.Linear(label_vectors.shape[1], d_model)
            self.out_weight = nn.Parameter(torch.empty(d_model, 1))
            nn.init.xavier_normal_(self.out_weight)
            self.out_bias = nn.Parameter(torch.zeros(1))

    @property
    def from_vectors(self) -> bool:
        return hasattr(self, "label_vectors")

    def query_embeddings(self) -> torch.Tensor:
        """The queries (K x d_model)."""
        if self.from_vectors:
            return torch.relu(self.query_project(self.label_vectors))
        return self.queries

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The decoded queries (N x K x d_model) of a feature map N x D x H x W."""
        memory = torch.relu(self.project(x.flatten(2).transpose(1, 2)))  # N x HW x d_model
        h = self.query_embeddings().unsqueeze(0).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            h = layer(h, memory)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.decode(x)
        if self.from_vectors:
            return (h @ self.out_weight).squeeze(2) + self.out_bias
        out = torch.einsum("nkd,kdr->nkr", h, self.group_weight).flatten(1)
        return out[:, :self.num_labels] + self.bias
