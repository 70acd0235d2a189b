"""The annotation model: a timm image encoder and a label head (docs/method.md, "Model").

- Encoder: any timm backbone with its classifier removed and global average pooling, so
  ``features(images)`` is ``(B, D)`` with ``D = backbone.num_features``. A ``spatial`` head
  (:mod:`lib.method.heads`) is given the unpooled feature map instead, :func:`spatial_features`
  (``(B, D, H, W)``); every other head gets the pooled features, computed as before.
- Heads:

  * ``"gcn"`` (ML-GCN, Chen et al. 2019): two graph convolutions ``H' = A H W`` (no bias)
    over the label vectors, ``d -> hidden -> D`` with LeakyReLU(0.2) between; the output
    ``W`` (C x D) holds one classifier per label and ``logits = features @ W^T``. ``A`` and
    the label vectors are fixed buffers (saved in the state dict).
  * ``"gcn-identity"``: the same GCN with ``A = I`` (no label graph; ablation).
  * ``"linear"``: ``nn.Linear(D, C)`` on the features (CNN only; ablation).
  * ``"gcn-residual"``: the linear head plus a graph correction,
    ``logits = features @ (W_linear + W_gcn)^T + b`` with ``W_gcn`` the two-layer GCN above
    whose last layer starts at zero: at initialisation the model *is* the linear head, and
    the GCN only moves the classifiers as far as training finds it useful.
  * ``"gcn-learned"``: ``"gcn-residual"`` whose adjacency is learnt, ``A = A_0 + Delta``
    with ``A_0`` the co-occurrence graph and ``Delta`` a free C x C parameter starting at
    zero (edges can be re-weighted, removed or added).

  Why these two, and why a zero last layer rather than a zero gate: docs/method.md,
  "Graph heads beyond the reference".

  * ``"csra"``, ``"mldecoder"``, ``"mldecoder-words"`` (spatial): class-specific residual
    attention and ML-Decoder over the feature map (docs/method.md, "Attention heads").

  The heads are registered in :mod:`lib.method.heads` (what each uses, how it is built and
  compared); their modules are in :mod:`lib.method.head_modules`.

Default backbone of the embedded configuration: ``resnet10t`` (timm; 4.9 M parameters,
D = 512). Chosen because it trains from scratch (no pretrained weights offline) and is the
fastest of the residual candidates measured on 2 CPU cores, forward + backward of a batch
of 32 at 64 x 64: resnet10t 90 ms, resnet18 132 ms, resnet14t 140 ms, efficientnet_b0
188 ms (mobilenetv3_small_100 40 ms, but hard to train from scratch at that size). The
full Corel-5k recipe uses ``tresnet_m`` (D = 2048, ImageNet-pretrained, mean 0 / std 1).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import timm
import torch
from timm.data import resolve_data_config
from torch import nn
from tqdm.auto import tqdm

from lib.method import heads
from lib.method.head_modules import (  # noqa: F401 - the GCN heads' modules, importable from here
    GCNHead,
    GraphConvolution,
    LearnedGraphGCN,
    ResidualGCNHead,
)

DEFAULT_BACKBONE = "resnet10t"
#: the reference's Corel-5k normalisation (docs/method.md, "Training and protocols")
COREL5K_STATS = ((0.3928, 0.4079, 0.3531), (0.2559, 0.2436, 0.2544))
#: the reference's normalisation of its augmented runs (4,500 real + 13,500 fake images)
COREL5K_AUG_STATS = ((0.4249, 0.4365, 0.3926), (0.1955, 0.1830, 0.1987))


def __getattr__(name: str):
    # ``HEADS`` (the registered heads, in the order reports list them) and ``RESIDUAL_HEADS``
    # (those adding a zero-initialised GCN correction to the linear head) are read from the
    # registry (lib.method.heads) at each access, so a head registered later is in them
    if name == "HEADS":
        return heads.names()
    if name == "RESIDUAL_HEADS":
        return heads.residual_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def reference_stats(augmented: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The reference's fixed normalisation constants: :data:`COREL5K_AUG_STATS` for augmented
    runs, :data:`COREL5K_STATS` otherwise (docs/method.md, "Training and protocols")."""
    return COREL5K_AUG_STATS if augmented else COREL5K_STATS


def spatial_features(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The timm backbone's unpooled feature map (B, D, H, W), ``D = backbone.num_features``:
    ``forward_features`` (before the global pooling) in NCHW, whatever the backbone's own
    layout (NHWC maps, e.g. Swin, are permuted; the tokens B x L x D of a vision transformer
    become B x D x 1 x L without its class/register tokens)."""
    x = backbone.forward_features(images)
    if x.ndim == 4 and getattr(backbone, "output_fmt", "NCHW") == "NHWC":
        x = x.permute(0, 3, 1, 2)
    elif x.ndim == 3:
        x = x[:, int(getattr(backbone, "num_prefix_tokens", 0)):].transpose(1, 2).unsqueeze(2)
    if x.ndim != 4 or x.shape[1] != backbone.num_features:
        raise ValueError(f"{type(backbone).__name__}.forward_features gave shape "
                         f"{tuple(x.shape)}, not B x {backbone.num_features} x H x W")
    return x


class AnnotationModel(nn.Module):
    """Backbone + head. ``forward(images)`` returns logits (B, C). The head gets the pooled
    features (:meth:`features`), or the unpooled map (:func:`spatial_features`) when
    ``spatial``."""

    def __init__(self, backbone: nn.Module, head: nn.Module, *, head_name: str,
                 backbone_name: str, num_labels: int | None = None, spatial: bool = False):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.head_name = head_name
        self.backbone_name = backbone_name
        self.num_features = backbone.num_features
        self.num_labels = num_labels
        self.spatial = bool(spatial)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled image features (B, D), whatever the head."""
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.spatial:
            return self.head(spatial_features(self.backbone, images))
        return self.head(self.features(images))

    def label_classifiers(self) -> torch.Tensor | None:
        """The per-label classifiers (C, D) the GCN makes (for the residual heads: the
        effective ``W_linear + W_gcn``); None for a head without ``classifiers()`` (the
        linear head)."""
        classifiers = getattr(self.head, "classifiers", None)
        return classifiers() if callable(classifiers) else None

    def graph_share(self) -> torch.Tensor:
        """Per label (C,), the fraction of its classifier's norm that comes from the graph
        part: ``|W_gcn| / (|W_linear| + |W_gcn|)`` for the residual heads, 1 for ``"gcn"``
        and ``"gcn-identity"`` (the GCN is the whole classifier), 0 for ``"linear"`` (and
        any head without a ``graph_share()``)."""
        share = getattr(self.head, "graph_share", None)
        if callable(share):
            return share()
        n = self.num_labels if self.num_labels is not None else self.head.weight.shape[0]
        return torch.zeros(n, device=next(self.parameters()).device)


def create_backbone(name: str = DEFAULT_BACKBONE, pretrained: bool = False,
                    weights: str | os.PathLike | None = None) -> nn.Module:
    """A timm backbone without classifier, with global average pooling.

    ``weights`` (a local ``.pth``/``.safetensors`` file of the timm model) implies
    pretrained; otherwise ``pretrained=True`` downloads from the Hugging Face hub."""
    if not timm.is_model(name):
        raise ValueError(f"unknown timm backbone {name!r} (see timm.list_models())")
    kwargs = dict(num_classes=0, global_pool="avg")
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file not found: {path}")
        try:
            model = timm.create_model(name, pretrained=True,
                                      pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
            stored = set(timm.models.load_state_dict(str(path)))
        except (RuntimeError, KeyError, ValueError) as err:
            raise ValueError(f"{path}: not loadable as weights of timm model {name!r}: "
                             f"{err}") from err
        # timm loads non-strictly once the classifier is removed: check nothing was skipped
        missing = [k for k in model.state_dict()
                   if k not in stored and not k.endswith("num_batches_tracked")]
        if missing:
            raise ValueError(f"{path}: not weights of timm model {name!r}: {len(missing)} of "
                             f"its tensors are missing from the file (e.g. {missing[:3]})")
        return model
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as err:  # hub unreachable and nothing cached (OSError, httpx, ...)
        raise RuntimeError(
            f"cannot get pretrained weights for backbone {name!r} ({type(err).__name__}: "
            f"{err}). Options: go online (weights come from the Hugging Face hub and are "
            f"cached), pass a local weights file (weights=PATH / --weights PATH), or train "
            f"from scratch (pretrained=False / no --pretrained)."
        ) from err


def _as_tensor(x, name: str, shape: tuple[int | None, ...]) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if t.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, t.shape,
                                                                             strict=True)):
        raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {shape} (None = any)")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def build_model(num_labels: int, *, head: str = "gcn", backbone: str = DEFAULT_BACKBONE,
                pretrained: bool = False, weights: str | os.PathLike | None = None,
                label_vectors=None, adjacency=None, hidden: int = 1024,
                head_settings: dict | None = None) -> AnnotationModel:
    """Build the annotation model (``head`` a registered head, :mod:`lib.method.heads`).

    ``head_settings``: values of the head's own settings (``lib.method.heads.SETTINGS``, e.g.
    ``{"csra_lambda": 0.2}``); the others take their defaults. A setting the head does not
    take, or out of range, is a :class:`lib.method.heads.HeadSettingError`.

    ``label_vectors`` (C x d) are needed by the heads that use them (the GCN heads),
    ``adjacency`` (C x C, used as given, e.g. from :func:`lib.method.graph.adjacency`) by those that
    use the graph (``"gcn"`` and the residual heads; ``"gcn-learned"`` starts from it;
    ``"gcn-identity"`` uses I); a head is given only what it uses. The residual heads draw
    their linear layer first, so with the same seed their linear part equals the
    ``"linear"`` head's initialisation."""
    spec = heads.get(head)
    options = heads.check_settings(head, dict(head_settings or {}))
    encoder = create_backbone(backbone, pretrained=pretrained, weights=weights)
    dim = encoder.num_features
    vectors = graph = None
    if spec.uses_vectors:
        if label_vectors is None:
            raise ValueError(f"head {head!r} needs label_vectors (C x d)")
        vectors = _as_tensor(label_vectors, "label_vectors", (num_labels, None))
    if spec.uses_graph:
        if adjacency is None:
            raise ValueError(f"head {head!r} needs an adjacency matrix (C x C); "
                             "use head='gcn-identity' for A = I")
        graph = _as_tensor(adjacency, "adjacency", (num_labels, num_labels))
    module = spec.build(dim, num_labels, label_vectors=vectors, adjacency=graph, hidden=hidden,
                        **options)
    return AnnotationModel(encoder, module, head_name=head, backbone_name=backbone,
                           num_labels=num_labels, spatial=spec.spatial)


def channel_stats(images: Iterable | torch.Tensor, progress: bool = False
                  ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (over every pixel, values scaled to [0, 1]) of a dataset.

    ``images``: an iterable of H x W x 3 uint8 arrays (or PIL images), or a tensor
    N x 3 x H x W (uint8, or float already in [0, 1])."""
    if isinstance(images, torch.Tensor):
        x = images.double() / (255.0 if images.dtype == torch.uint8 else 1.0)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a N x 3 x H x W tensor, got shape {tuple(x.shape)}")
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3), unbiased=False)
        return tuple(mean.tolist()), tuple(std.tolist())
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for i, image in enumerate(tqdm(images, desc="channel stats", disable=not progress)):
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"image {i}: expected H x W x 3 uint8, got {arr.shape} {arr.dtype}")
        pixels = arr.reshape(-1, 3).astype(np.float64) / 255.0
        total += pixels.sum(axis=0)
        total_sq += (pixels**2).sum(axis=0)
        count += pixels.shape[0]
    if count == 0:
        raise ValueError("channel_stats: no images")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return tuple(mean.tolist()), tuple(std.tolist())


def normalization(backbone: str | nn.Module = DEFAULT_BACKBONE, mode: str = "backbone",
                  dataset_stats=None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input normalisation ``(mean, std)``.

    ``mode="backbone"``: from the backbone's pretrained config (ImageNet statistics for most
    timm models; TResNet expects mean 0, std 1). ``mode="dataset"``: ``dataset_stats`` as
    ``(mean, std)``, e.g. from :func:`channel_stats` or :data:`COREL5K_STATS` (the
    reference's choice)."""
    if mode == "dataset":
        if dataset_stats is None:
            raise ValueError("mode='dataset' needs dataset_stats=(mean, std); "
                             "compute them with lib.method.models.channel_stats")
        mean, std = dataset_stats
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if mode != "backbone":
        raise ValueError(f"unknown normalization mode {mode!r}; use 'backbone' or 'dataset'")

    if isinstance(backbone, AnnotationModel):
        backbone = backbone.backbone
    if isinstance(backbone, nn.Module):
        config = resolve_data_config(model=backbone)
    else:
        cfg = timm.models.get_pretrained_cfg(backbone)
        if cfg is None:
            raise ValueError(f"unknown timm backbone {backbone!r}: no pretrained config")
        config = resolve_data_config(pretrained_cfg=cfg.to_dict())
    return tuple(float(v) for v in config["mean"]), tuple(float(v) for v in config["std"])
