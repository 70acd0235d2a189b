"""Formulas and defaults of docs/method.md that no other test pinned down, each against an
oracle written in the test (numbers from the text, numpy, scikit-learn), never against the
code itself or a file the code wrote as the expected value.

Covered here: the ML-WGAN's optimisers and BatchNorm mode, its layer structure and the two
initialisations (sample statistics), the batch mean of its losses for m > 1 copies, the label
graph of an augmented run (real images only), the split the MCC thresholds are tuned on, the
label-vector lookup order, the embedded dataset's sizes, and the classifier's optimiser and
OneCycle schedule for the embedded default and the ``corel5k`` preset.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lib.method import wgan


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is faster than two on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

# --------------------------------------------------------------------------- ML-WGAN optimiser
# docs/method.md, "Training of one image": "Each network has its own Adam (lr 2e-4, betas
# (0.5, 0.999)); both networks stay in training mode (BN normalises with the statistics of
# the current forward pass)." 1,001 iterations of 5 critic steps and 1 generator step.

SMALL = {"iterations": 3, "image_size": (16, 24), "width": 4, "crop_border": 0}


def _images(k: int, size=(16, 24), seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(k, 3, *size, generator=gen) * 2 - 1


@pytest.fixture()
def adam_log(monkeypatch):
    """Every torch.optim.Adam built while the test runs, with the number of its steps."""
    made: list[torch.optim.Adam] = []
    real = torch.optim.Adam

    class RecordingAdam(real):
        def __init__(self, params, *args, **kwargs):
            super().__init__(params, *args, **kwargs)
            self.n_steps = 0
            made.append(self)

        def step(self, *args, **kwargs):
            self.n_steps += 1
            return super().step(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    return made


@pytest.mark.parametrize(("overrides", "lr", "betas"), [
    ({}, 2e-4, (0.5, 0.999)),                           # the documented reference recipe
    ({"lr": 1e-3, "betas": (0.3, 0.9)}, 1e-3, (0.3, 0.9)),  # the settings reach the optimiser
])
def test_wgan_each_network_has_its_own_adam_with_the_documented_settings(adam_log, overrides,
                                                                          lr, betas):
    steps = 3
    config = wgan.WGANConfig(**SMALL, critic_steps=steps, **overrides)
    result = wgan.train_group(_images(2), [1, 2], config)
    assert len(adam_log) == 2
    by_params = {frozenset(id(p) for g in opt.param_groups for p in g["params"]): opt
                 for opt in adam_log}
    gen_opt = by_params[frozenset(id(p) for p in result.generator.parameters())]
    crit_opt = by_params[frozenset(id(p) for p in result.critic.parameters())]
    assert gen_opt is not crit_opt
    for opt in (gen_opt, crit_opt):
        assert len(opt.param_groups) == 1
        group = opt.param_groups[0]
        assert group["lr"] == pytest.approx(lr, rel=0, abs=0)   # no schedule: unchanged
        assert tuple(group["betas"]) == pytest.approx(betas, rel=0, abs=0)
        assert group["weight_decay"] == 0 and not group["amsgrad"] and group["eps"] == 1e-8
    # 5 (here 3) critic steps, then one generator step, per iteration
    assert crit_opt.n_steps == config.iterations * steps
    assert gen_opt.n_steps == config.iterations


def _record_batchnorm(monkeypatch, log: list):
    """Wrap the network builders so that every BatchNorm forward of the training is logged
    with its mode, its input, output and affine parameters."""
    real_gen, real_crit = wgan.build_generator, wgan.build_critic

    def hook(which):
        def record(module, inputs, output):
            log.append({"net": which, "module": id(module), "training": module.training,
                        "x": inputs[0].detach().double().clone(),
                        "y": output.detach().double().clone(),
                        "weight": module.weight.detach().double().clone(),
                        "bias": module.bias.detach().double().clone(), "eps": module.eps})
        return record

    def wrap(real, which):
        def build(*args, **kwargs):
            net = real(*args, **kwargs)
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.register_forward_hook(hook(which))
            return net
        return build

    monkeypatch.setattr(wgan, "build_generator", wrap(real_gen, "generator"))
    monkeypatch.setattr(wgan, "build_critic", wrap(real_crit, "critic"))


@pytest.mark.parametrize("batch_size", [1, 2])
def test_wgan_batchnorm_normalises_with_the_current_batch_throughout(monkeypatch, batch_size):
    """Every BN forward of the generator and the critic, in critic steps and generator steps
    alike, is in training mode and its output is the input normalised with the statistics of
    that very forward pass (mean and biased variance over batch and pixels), by hand."""
    log: list[dict] = []
    _record_batchnorm(monkeypatch, log)
    config = wgan.WGANConfig(**SMALL, critic_steps=2, batch_size=batch_size)
    wgan.train_group(_images(2), [3, 4], config, dtype=torch.float64)
    # per iteration: generator 2 forwards (one per critic step, one in its own step) of 2 BNs;
    # critic 3 forwards per critic step (fake, real, interpolate) + 1 in the generator step
    n_gen = config.iterations * (config.critic_steps + 1) * 2
    n_crit = config.iterations * (3 * config.critic_steps + 1) * 2
    assert sum(r["net"] == "generator" for r in log) == n_gen
    assert sum(r["net"] == "critic" for r in log) == n_crit
    for r in log:
        assert r["training"], r["net"]
        x = r["x"]
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)   # biased, as BN in training
        expected = ((x - mean) / torch.sqrt(var + r["eps"]) * r["weight"].view(1, -1, 1, 1)
                    + r["bias"].view(1, -1, 1, 1))
        torch.testing.assert_close(r["y"], expected, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------- ML-WGAN structure


def _layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net if not isinstance(m, nn.ReLU | nn.LeakyReLU | nn.Tanh)]


@pytest.mark.parametrize("init", ["dcgan", "reference"])
def test_wgan_bias_only_where_the_method_puts_one(monkeypatch, init):
    """docs/method.md, "Architecture": "Layers followed by BN have no bias; the two last layers
    have one" (``init: dcgan``); under ``init: reference`` every convolution has a bias. The
    networks are the ones ``train_group`` builds and trains; the BN scales they start from
    (first forward) are N(1, 0.02) (dcgan) or N(0, 0.02) (reference)."""
    log: list[dict] = []
    _record_batchnorm(monkeypatch, log)
    config = wgan.WGANConfig(**{**SMALL, "image_size": (32, 32), "width": 8}, init=init)
    result = wgan.train_group(_images(2, (32, 32)), [5, 6], config)
    for net in (result.generator, result.critic):
        layers = _layers(net)
        convs = [m for m in layers if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
        assert len(convs) == 4                     # 32x32: 3 stride-2 stages + the last layer
        for i, conv in enumerate(convs[:-1]):
            assert isinstance(layers[layers.index(conv) + 1], nn.BatchNorm2d)
            assert (conv.bias is not None) == (init == "reference"), (init, i)
        assert convs[-1].bias is not None          # the last layer keeps its bias
        assert layers[-1] is convs[-1]             # and no BN after it
    # the scales at the first forward of each BN, pooled over both models and both networks
    first: dict[int, torch.Tensor] = {}
    for r in log:
        first.setdefault(r["module"], r["weight"])
    scales = torch.cat(list(first.values())).numpy()
    n = scales.size
    assert n == 2 * 2 * (32 + 16 + 8)      # K = 2 models, generator and critic, 3 BNs each
    centre = 1.0 if init == "dcgan" else 0.0
    assert abs(scales.mean() - centre) < 5 * 0.02 / math.sqrt(n)


#: PyTorch's default bias bound 1/sqrt(fan_in), fan-in of ONE model as torch computes it from
#: the weight: Conv2d weight (out, in, kh, kw) -> in*kh*kw; ConvTranspose2d weight
#: (in, out, kh, kw) -> out*kh*kw. Written out for 128x192, w = 32 (L = 5, first kernel 4x6).
GEN_FAN_IN = [512 * 24, 256 * 16, 128 * 16, 64 * 16, 32 * 16, 3 * 16]
CRIT_FAN_IN = [3 * 16, 32 * 16, 64 * 16, 128 * 16, 256 * 16, 512 * 24]


def _mean_sd_ok(values: np.ndarray, mean: float, sd: float, what: str) -> None:
    """Sample mean and sd of ``values`` within 5 standard errors of N(mean, sd):
    se(mean) = sd / sqrt(n), se(sd) ~ sd / sqrt(2 n)."""
    n = values.size
    assert abs(values.mean() - mean) < 5 * sd / math.sqrt(n), (what, values.mean())
    assert abs(values.std() - sd) < 5 * sd / math.sqrt(2 * n), (what, values.std())


@pytest.mark.parametrize("init", ["dcgan", "reference"])
def test_wgan_initialisation_statistics(init):
    """docs/method.md, "Initialisation": ``dcgan``: convolution weights N(0, 0.02), BN scales
    N(1, 0.02), the last two layers' biases 0; ``reference``: convolution weights N(0, 0.02),
    BN scales N(0, 0.02), BN shifts 0, every convolution's bias uniform in +-1/sqrt(fan_in)
    with the fan-in of one model. Sampled at 128x192, w = 32, K = 2, with fixed seeds."""
    k = 2
    bias = init == "reference"
    nets = {"generator": wgan.build_generator((128, 192), 32, k, bias=bias),
            "critic": wgan.build_critic((128, 192), 32, k, bias=bias)}
    for seed, (name, net) in enumerate(nets.items()):
        wgan.init_grouped(net, [np.random.default_rng([seed, j]) for j in range(k)], init)
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
        bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(convs) == 6 and len(bns) == 5
        for i, conv in enumerate(convs):
            _mean_sd_ok(conv.weight.detach().double().numpy().ravel(), 0.0, 0.02,
                        f"{name} conv {i} weight")
        scales = torch.cat([m.weight.detach() for m in bns]).double().numpy()
        assert scales.size == k * (512 + 256 + 128 + 64 + 32)
        _mean_sd_ok(scales, 1.0 if init == "dcgan" else 0.0, 0.02, f"{name} BN scales")
        assert all(not m.bias.detach().any() for m in bns)                    # BN shifts 0
        if init == "dcgan":
            assert [c.bias is None for c in convs] == [True] * 5 + [False]
            assert not convs[-1].bias.detach().any()                          # last bias 0
            continue
        fan_in = GEN_FAN_IN if name == "generator" else CRIT_FAN_IN
        u = np.concatenate([c.bias.detach().double().numpy() * math.sqrt(f)
                            for c, f in zip(convs, fan_in, strict=True)])
        # u ~ U(-1, 1): |u| <= 1, E u^2 = 1/3, Var u^2 = 1/5 - 1/9 = 4/45
        assert np.abs(u).max() <= 1.0
        assert abs(np.mean(u)) < 5 * math.sqrt(1 / 3 / u.size)
        assert abs(np.mean(u ** 2) - 1 / 3) < 5 * math.sqrt(4 / 45 / u.size)
        # the largest layer alone, too (a bound of the grouped fan-in would halve E u^2)
        big = convs[0].bias.detach().double().numpy() * math.sqrt(fan_in[0])
        assert abs(np.mean(big ** 2) - 1 / 3) < 5 * math.sqrt(4 / 45 / big.size)


# --------------------------------------------------------------------------- ML-WGAN, m > 1
# docs/method.md, "Training of one image": L_D = D(fake) - D(real) + 10 (||grad D(x_hat)|| - 1)^2
# and L_G = -D(G(z)); "With a batch of m > 1 copies of the image ... the losses are means over
# the batch" (each copy with its own flip, noise, eps and gradient norm).

TH, TW, TNZ, QUAD = 8, 8, 2, 0.05


class _ToyGenerator(nn.Module):
    """K generators G_k(z) = tanh(V_k z), reshaped to 3 x TH x TW; logs V at every call."""

    def __init__(self, k: int, nz: int):
        super().__init__()
        self.k, self.nz = k, nz
        self.weight = nn.Parameter(torch.zeros(k, 3 * TH * TW, nz))
        self.history: list[np.ndarray] = []

    def forward(self, z):
        self.history.append(self.weight.detach().numpy().copy())
        m = z.shape[0]
        out = torch.tanh(torch.einsum("kpn,mkn->mkp", self.weight, z.view(m, self.k, self.nz)))
        return out.reshape(m, self.k * 3, TH, TW)


class _ToyCritic(nn.Module):
    """K critics D_k(x) = <w_k, x> + b_k + c ||x||^2 (gradient w_k + 2 c x); logs w, b."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.zeros(k, 3, TH, TW))
        self.bias = nn.Parameter(torch.zeros(k))
        self.history: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, x):
        self.history.append((self.weight.detach().numpy().copy(),
                             self.bias.detach().numpy().copy()))
        m = x.shape[0]
        x = x.view(m, self.k, 3, TH, TW)
        s = (x * self.weight).sum((2, 3, 4)) + self.bias + QUAD * (x ** 2).sum((2, 3, 4))
        return s.view(m, self.k, 1, 1)


def _critic(w, b, x) -> float:
    return float((w * x).sum() + b + QUAD * (x ** 2).sum())


def test_wgan_losses_are_batch_means_for_m_copies(monkeypatch):
    built = {}

    def generator(image_size, width, groups=1, noise_dim=wgan.NOISE_DIM, **_):
        built["gen"] = _ToyGenerator(groups, noise_dim)
        return built["gen"]

    def critic(image_size, width, groups=1, **_):
        built["crit"] = _ToyCritic(groups)
        return built["crit"]

    monkeypatch.setattr(wgan, "build_generator", generator)
    monkeypatch.setattr(wgan, "build_critic", critic)
    k, m, steps, gp = 2, 3, 2, 10.0
    config = wgan.WGANConfig(iterations=3, image_size=(TH, TW), width=4,
                             critic_steps=steps, batch_size=m, noise_dim=TNZ, lr=1e-2,
                             flip_prob=0.5)
    real = np.random.default_rng(0).uniform(-1, 1, (k, 3, TH, TW))
    seeds = [21, 22]
    result = wgan.train_group(torch.from_numpy(real), seeds, config, dtype=torch.float64)
    gen, crit = built["gen"], built["crit"]

    # every image's random numbers, replayed in the documented order: initial weights
    # (generator, then critic), then per iteration m flips and steps * m interpolation weights,
    # then (steps + 1) * m noise vectors
    rngs = [np.random.default_rng(s) for s in seeds]
    for r in rngs:
        r.normal(0, 0.02, (1, 3 * TH * TW, TNZ))
        r.normal(0, 0.02, (1, 3, TH, TW))
    crit_calls, gen_calls = 3 * steps + 1, steps + 1
    flipped_copies = 0
    for it in range(config.iterations):
        draws = [(r.random((1 + steps) * m), r.standard_normal((steps + 1, m, TNZ)))
                 for r in rngs]
        for j in range(k):
            u, noise = draws[j]
            flips = u[:m] < config.flip_prob
            flipped_copies += int(flips.sum())
            reals = [real[j][:, ::-1, :] if f else real[j] for f in flips]   # upside down
            step_losses = []
            for step in range(steps):
                v = gen.history[it * gen_calls + step][j]
                w, b = (h[j] for h in crit.history[it * crit_calls + 3 * step])
                per_copy = []
                for i in range(m):
                    fake = np.tanh(v @ noise[step, i]).reshape(3, TH, TW)
                    e = u[m + step * m + i]
                    x_hat = e * reals[i] + (1 - e) * fake
                    norm = np.linalg.norm(w + 2 * QUAD * x_hat)      # this copy's own norm
                    per_copy.append(_critic(w, b, fake) - _critic(w, b, reals[i])
                                    + gp * (norm - 1) ** 2)
                step_losses.append(np.mean(per_copy))                # mean over the m copies
            assert result.critic_loss[it, j] == pytest.approx(np.mean(step_losses), rel=1e-10)
            v = gen.history[it * gen_calls + steps][j]
            w, b = (h[j] for h in crit.history[it * crit_calls + 3 * steps])
            gen_loss = np.mean([-_critic(w, b, np.tanh(v @ noise[steps, i]).reshape(3, TH, TW))
                                for i in range(m)])
            assert result.generator_loss[it, j] == pytest.approx(gen_loss, rel=1e-10)
    assert 0 < flipped_copies < k * m * config.iterations   # copies flip independently


# --------------------------------------------------------------------------- label graph
# docs/method.md, "Label graph", "Which images": "The graph is always built from the real
# training images a run trains on ... Generated images are not counted." (and item 11 of
# "Differences from the reference implementation").

GRAPH_LABELS = ["sky", "sea", "tree", "sun"]
GRAPH_TRAIN = [("r0.png", ["sky", "sea"]), ("r1.png", ["sky", "sea"]), ("r2.png", ["sky"]),
               ("r3.png", ["tree"]), ("r4.png", ["tree", "sun"]), ("r5.png", ["sea"]),
               ("r6.png", ["sky", "tree"]), ("r7.png", ["sun"])]
#: three fakes of r0 listed with labels that are not r0's: sea and sun never co-occur in the
#: real images, so counting the fakes would add edges and change every column they touch
GRAPH_FAKES = [(f"r0{suffix}.png", ["sea", "sun"]) for suffix in wgan.AUG_SUFFIXES]


def _write_dataset(root: Path, splits: dict[str, list], labels: list[str]) -> Path:
    (root / "images").mkdir(parents=True)
    for k, (split, samples) in enumerate(splits.items()):
        obj = {"samples": [{"image_name": n, "image_labels": ls} for n, ls in samples]}
        if split != "train_aug":
            obj["labels"] = labels
        (root / f"{split}.json").write_text(json.dumps(obj))
        for i, (name, _) in enumerate(samples):
            colour = ((40 * i + 90 * k) % 256, (70 * i) % 256, (25 * k + 11 * i) % 256)
            Image.new("RGB", (20, 16), colour).save(root / "images" / name)
    return root


def _multi_hot(samples, labels) -> np.ndarray:
    return np.array([[float(lab in ls) for lab in labels] for _, ls in samples])


def _seed_recipe(y: np.ndarray, t: float = 0.1, p: float = 0.2) -> np.ndarray:
    """docs/method.md, the ``seed`` recipe, with loops."""
    c = y.shape[1]
    n = y.sum(0)
    b = np.zeros((c, c))
    for i in range(c):
        for j in range(c):
            both = sum(row[i] * row[j] for row in y)
            b[i, j] = float(i != j and n[i] > 0 and both / n[i] >= t)
    a = np.zeros((c, c))
    for i in range(c):
        for j in range(c):
            a[i, j] = b[i, j] * p / (b[:, j].sum() + 1e-7)
    return a + (1 - p) * np.eye(c)


def _mlgcn_recipe(y: np.ndarray, t: float = 0.4, p: float = 0.25) -> np.ndarray:
    """docs/method.md, the ``ml-gcn`` recipe: A = B p / (colsum B + 1e-6) + I, D from the row
    sums of A, A' = D A^T D."""
    c = y.shape[1]
    co = y.T @ y
    cond = co / co.diagonal()[:, None]
    b = ((cond >= t) & ~np.eye(c, dtype=bool)).astype(float)
    a = b * p / (b.sum(0, keepdims=True) + 1e-6) + np.eye(c)
    d = np.diag(a.sum(1) ** -0.5)
    return d @ a.T @ d


@pytest.mark.parametrize(("recipe", "protocol"), [("seed", "holdout"), ("ml-gcn", "reference")])
def test_augmented_run_builds_the_graph_from_the_real_images_only(tmp_path, recipe, protocol):
    from lib.training import settings
    from lib.training.trainer import Trainer

    val = [("v0.png", ["sky", "sun"]), ("v1.png", ["sea", "tree"])]
    test = [("s0.png", ["sky"]), ("s1.png", ["sun", "sea"])]
    root = _write_dataset(tmp_path / "ds", {"train": GRAPH_TRAIN, "val": val, "test": test,
                                           "train_aug": GRAPH_FAKES}, GRAPH_LABELS)
    config = settings.TrainConfig(data=str(root), out=str(tmp_path / "run"), augmented=True,
                                  adjacency=recipe, protocol=protocol, head="gcn",
                                  embeddings="onehot", image_size=16, batch_size=4, epochs=1,
                                  hidden=8, device="cpu")
    trainer = Trainer(config)
    assert len(trainer.train_data) == len(GRAPH_TRAIN) + len(GRAPH_FAKES)  # fakes do train
    oracle = _seed_recipe if recipe == "seed" else _mlgcn_recipe
    real = oracle(_multi_hot(GRAPH_TRAIN, GRAPH_LABELS))
    with_fakes = oracle(_multi_hot(GRAPH_TRAIN + GRAPH_FAKES, GRAPH_LABELS))
    assert np.abs(real - with_fakes).max() > 0.05          # counting the fakes would show
    used = trainer.module.net.head.adjacency.detach().double().numpy()   # what the GCN uses
    np.testing.assert_allclose(used, real, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(trainer.adjacency.double().numpy(), real, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- MCC thresholds
# docs/method.md, "Evaluation" and "Training and protocols": per label, the grid value
# 0.05, 0.10, ..., 0.70 with the largest MCC of ``s >= t`` (ties to the smallest), tuned on the
# validation images (holdout) or on the training images with training flips (reference); a
# label with fewer than ``min_positives`` (1) positives there gets the fallback 0.5.

MCC_GRID = [0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65,
            0.70]


def _json_targets(path: Path) -> tuple[list[str], np.ndarray]:
    obj = json.loads(path.read_text())
    return [s["image_name"] for s in obj["samples"]], _multi_hot(
        [(s["image_name"], s["image_labels"]) for s in obj["samples"]], obj["labels"])


def _mcc(y: np.ndarray, pred: np.ndarray) -> float:
    """(TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN)), 0 when the denominator
    is 0 (docs/method.md, "MCC thresholds")."""
    tp, tn = float(np.sum(y & pred)), float(np.sum(~y & ~pred))
    fp, fn = float(np.sum(~y & pred)), float(np.sum(y & ~pred))
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return (tp * tn - fp * fn) / math.sqrt(den) if den > 0 else 0.0


def _mcc_thresholds_by_hand(y: np.ndarray, s: np.ndarray, min_positives: int = 1,
                            fallback: float = 0.5) -> np.ndarray:
    out = np.empty(y.shape[1])
    for c in range(y.shape[1]):
        if y[:, c].sum() < min_positives:
            out[c] = fallback
            continue
        curve = np.array([_mcc(y[:, c] > 0, s[:, c] >= t) for t in MCC_GRID])
        out[c] = MCC_GRID[int(np.flatnonzero(curve >= curve.max() - 1e-12)[0])]
    return out


def _designed_scores(y: np.ndarray, seed: int) -> np.ndarray:
    """Scores whose best thresholds spread over the grid: labels c = 0 mod 3 separate around
    the middle, c = 1 mod 3 high (near and above the grid's last value 0.70), c = 2 mod 3
    put most positives exactly at 0.5 (a float32 and a grid value, so ``>=`` matters) with
    most negatives just below it."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=y.shape)
    pos = y > 0
    s = np.where(pos, 0.35 + 0.65 * u, 0.65 * u)
    high = np.where(pos, 0.6 + 0.4 * u, 0.85 * u)
    edge = np.where(pos, np.where(u < 0.8, 0.5, u), np.where(u < 0.6, 0.455 + 0.04 * u / 0.6, u))
    kind = np.arange(y.shape[1]) % 3
    return np.where(kind == 0, s, np.where(kind == 1, high, edge))


@pytest.mark.parametrize("protocol", ["holdout", "reference"])
def test_thresholds_are_tuned_on_the_documented_split(tiny_scenes, tmp_path, monkeypatch,
                                                      protocol):
    """The trainer's final step with scores designed per split (the model itself is not
    needed): the thresholds it writes are the hand-tuned ones of the validation split
    (holdout) or of the training images scored with flips (reference), and tuning on the test
    split (or on validation under the reference protocol) would give other thresholds."""
    from lib.training import settings
    from lib.training import trainer as trainer_lib

    config = settings.TrainConfig(data=str(tiny_scenes), out=str(tmp_path / "run"),
                                  protocol=protocol, head="linear", image_size=16,
                                  batch_size=16, epochs=1, device="cpu")
    trainer = trainer_lib.Trainer(config)
    truth = {split: _json_targets(tiny_scenes / f"{split}.json")[1]
             for split in ("train", "val", "test")}
    designed = {split: _designed_scores(y, seed) for seed, (split, y) in enumerate(truth.items())}
    calls = []

    def scores(split, module=None, *, flips=None):
        calls.append((split, flips))
        return designed[split].astype(np.float32), 0.0

    monkeypatch.setattr(trainer, "scores", scores)
    monkeypatch.setattr(trainer_lib, "load_checkpoint",
                        lambda path: {"model": trainer.module.state_dict()})
    trainer.folder.path.mkdir(parents=True, exist_ok=True)
    trainer.finish()
    saved = json.loads(trainer.folder.thresholds_path.read_text())
    assert saved["labels"] == json.loads((tiny_scenes / "train.json").read_text())["labels"]
    got = np.array(saved["thresholds"])
    tuning = "val" if protocol == "holdout" else "train"
    other = "test" if protocol == "holdout" else "val"
    f32 = {k: v.astype(np.float32).astype(np.float64) for k, v in designed.items()}
    expected = _mcc_thresholds_by_hand(truth[tuning], f32[tuning])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert (truth[tuning].sum(0) == 0).any()     # the fallback is exercised ...
    assert (expected != 0.5).sum() >= 10         # ... and so is the grid
    wrong = _mcc_thresholds_by_hand(truth[other], f32[other])
    assert (wrong != expected).sum() >= 10       # the split matters
    tuned_calls = [(s, f) for s, f in calls if s == tuning]
    assert len(tuned_calls) == 1
    if protocol == "reference":                  # the training loader's random flips
        assert isinstance(tuned_calls[0][1], torch.Generator)
    else:
        assert tuned_calls[0][1] is None         # eval transforms


# --------------------------------------------------------------------------- classifier optimiser
# docs/method.md, "Optimisation": "Adam (weight decay 0 unless set) with a OneCycle schedule
# stepped after every batch: PyTorch's OneCycleLR with its defaults (cosine annealing; start
# at lr / 25, peak lr after the warm-up fraction, end at lr / 25 / 1e4; Adam's beta1 cycled
# from 0.95 down to 0.85 at the peak and back)"; the embedded default: lr 2e-3, 4 epochs,
# batch 32; the corel5k recipe: "Adam with lr 1e-4; OneCycle with maximum lr 1e-4 and 20 %
# warm-up over 80 epochs, stopped after 60 ... the learning rate starts at 4e-6, peaks at
# 1e-4 at epoch 16 and is about 2.2e-5 when training stops at epoch 60".


def _cosine(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


def _trainer(tiny_scenes, tmp_path, preset, **overrides):
    from lib.training import settings
    from lib.training.trainer import Trainer

    # only what cannot run offline on a CPU is changed: the backbone (tresnet_m, pretrained),
    # the input size, the label vectors (GloVe 300-d needs the internet), the workers
    small = {"data": str(tiny_scenes), "out": str(tmp_path / preset), "image_size": 16,
             "device": "cpu", "embeddings": "onehot", "hidden": 16}
    if preset == "corel5k":
        small.update(backbone="resnet10t", pretrained=False, num_workers=0)
    return Trainer(settings.build_config(preset, {**small, **overrides}))


def _steps_per_epoch(tiny_scenes, batch: int) -> int:
    n_train = len(json.loads((tiny_scenes / "train.json").read_text())["samples"])
    return math.ceil(n_train / batch)   # tiny_scenes has val.json: nothing is carved


@pytest.mark.filterwarnings("ignore:.*never occur in the training targets")
@pytest.mark.parametrize(("preset", "lr", "epochs", "schedule_epochs"), [
    ("default", 2e-3, 4, 4), ("corel5k", 1e-4, 60, 80)])
def test_classifier_optimiser_is_adam_with_onecycle(tiny_scenes, tmp_path, preset, lr, epochs,
                                                    schedule_epochs):
    trainer = _trainer(tiny_scenes, tmp_path, preset)
    opt, sched = trainer.optimizer, trainer.scheduler
    assert type(opt) is torch.optim.Adam
    assert type(sched) is torch.optim.lr_scheduler.OneCycleLR
    # one group holding every parameter of the model: no other rate for the backbone
    assert len(opt.param_groups) == 1
    group = opt.param_groups[0]
    model_params = {id(p) for p in trainer.module.parameters() if p.requires_grad}
    assert {id(p) for p in group["params"]} == model_params
    assert group["weight_decay"] == 0 and not group["amsgrad"] and group["eps"] == 1e-8
    assert group["betas"][1] == 0.999
    steps = _steps_per_epoch(tiny_scenes, 32)
    assert trainer.steps_per_epoch == steps
    assert sched.total_steps == schedule_epochs * steps
    assert trainer.config.epochs == epochs
    # the schedule, stepped batch by batch as the training does (no training needed)
    lrs, beta1 = [], []
    for _ in range(sched.total_steps):
        lrs.append(group["lr"])
        beta1.append(group["betas"][0])
        opt.step()
        sched.step()
    lrs, beta1 = np.array(lrs), np.array(beta1)
    # PyTorch's OneCycleLR defaults written out: cosine from lr/25 up to lr until step
    # pct * total - 1, then down to lr/25/1e4 at the last step; beta1 0.95 -> 0.85 -> 0.95
    total, up_end = sched.total_steps, 0.2 * sched.total_steps - 1
    for i in range(total):
        if i <= up_end:
            pct = i / up_end
            want_lr, want_b1 = _cosine(lr / 25, lr, pct), _cosine(0.95, 0.85, pct)
        else:
            pct = (i - up_end) / (total - 1 - up_end)
            want_lr, want_b1 = _cosine(lr, lr / 25 / 1e4, pct), _cosine(0.85, 0.95, pct)
        assert lrs[i] == pytest.approx(want_lr, rel=1e-9), i
        assert beta1[i] == pytest.approx(want_b1, rel=1e-9), i
    assert lrs[0] == pytest.approx(lr / 25, rel=1e-12)
    assert lrs[-1] == pytest.approx(lr / 25 / 1e4, rel=1e-6)
    if preset == "corel5k":
        assert lrs[0] == pytest.approx(4e-6)
        peak = int(np.argmax(lrs))
        assert lrs[peak] == pytest.approx(1e-4, rel=1e-12)
        assert peak // steps + 1 == 16                     # the peak falls in epoch 16
        # "about 2.2e-5 when training stops at epoch 60" (141 steps an epoch there, 3 here)
        assert lrs[epochs * steps] == pytest.approx(2.2e-5, rel=0.03)


@pytest.mark.filterwarnings("ignore:.*never occur in the training targets")
def test_classifier_weight_decay_only_when_set(tiny_scenes, tmp_path):
    trainer = _trainer(tiny_scenes, tmp_path, "corel5k", weight_decay=1e-4)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 1e-4


# --------------------------------------------------------------------------- label vectors
# docs/method.md, "Resolution of a label": "1. the label as written, then lower-cased: if the
# vocabulary has the token, use it; 2. otherwise split the label on -, _ and white space ...
# the mean of the vectors of the parts that have one". GloVe rows are used unnormalised.

VECTOR_LINES = {
    "Sky": "0.1 -2.5 3.25", "sky": "9 9 9",                # as written wins over lower case
    "sea": "0.333333 1e-3 -7.125",                          # reached by lower-casing "SEA"
    "close-up": "1.5 0.25 -0.75", "close": "5 5 5", "up": "-5 -5 -5",   # token over parts
    "polar": "2 4 6", "bear": "0 -2 8",                    # no token: the mean of the parts
}


def test_label_vectors_take_the_token_as_written_exactly(tmp_path):
    from lib.method import embeddings

    path = tmp_path / "vectors.txt"
    path.write_text("".join(f"{w} {v}\n" for w, v in VECTOR_LINES.items()), encoding="utf-8")

    def row(word: str) -> np.ndarray:   # the file's numbers, as float32 (no normalisation)
        return np.array([np.float32(x) for x in VECTOR_LINES[word].split()], dtype=np.float32)

    labels = ["Sky", "SEA", "Close-Up", "polar_bear", "sky"]
    expected = np.stack([row("Sky"), row("sea"), row("close-up"),
                         (row("polar").astype(np.float64) + row("bear")) / 2, row("sky")])
    got = embeddings.label_vectors(labels, path)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got[[0, 1, 2, 4]], expected[[0, 1, 2, 4]])   # bit for bit
    np.testing.assert_allclose(got[3], expected[3], rtol=1e-7)
    # the same vectors reach a run (the cached copy beside the dataset)
    cached = embeddings.cached_label_vectors(tmp_path / "ds", labels, str(path))
    np.testing.assert_array_equal(np.asarray(cached)[[0, 1, 2, 4]], expected[[0, 1, 2, 4]])


# --------------------------------------------------------------------------- embedded dataset
# docs/method.md, "Embedded default dataset": "54 labels ... from 12 scene types (beach,
# harbour, lake, river, forest, city, mountain, underwater, garden, night, desert, farm);
# 1,500 train / 300 val / 500 test images at 64 x 64 by default, with its own val.json".

SCENE_TYPES = {"beach", "harbour", "lake", "river", "forest", "city", "mountain", "underwater",
               "garden", "night", "desert", "farm"}


@pytest.mark.parametrize("how", ["api", "cli", "params/default.yaml"])
def test_embedded_dataset_defaults(tmp_path, monkeypatch, how):
    """The default draw, with the painter stubbed out (the counts, the size and the files are
    the subject here, not the pictures): 1500/300/500 images of 64 x 64 px, 54 labels."""
    import yaml

    from lib.core import paths
    from lib.data.drawn import synth

    sizes = []

    def draw(seed, split, index, size, variant="default"):
        sizes.append(size)
        return Image.new("RGB", (1, 1)), "beach", [synth.LABELS[index % 54]]

    monkeypatch.setattr(synth, "draw_image", draw)
    monkeypatch.setattr(synth, "atomic_write_bytes", lambda path, data: None)
    out = tmp_path / "scenes"
    if how == "api":
        synth.generate(out)
    elif how == "cli":
        assert synth.main([str(out)]) == 0
    else:   # what `make reproduce` draws: lib.pipeline.jobs calls synth.generate(data, **synth)
        spec = yaml.safe_load((paths.ROOT / "params" / "default.yaml").read_text())["data"]
        synth.generate(out, **spec["synth"])
    counts = {s: len(json.loads((out / f"{s}.json").read_text())["samples"])
              for s in ("train", "val", "test")}
    assert counts == {"train": 1500, "val": 300, "test": 500}
    assert set(sizes) == {64} and len(sizes) == 2300
    vocabulary = (out / "vocabulary.txt").read_text().splitlines()
    assert len(vocabulary) == len(set(vocabulary)) == 54
    assert json.loads((out / "train.json").read_text())["labels"] == vocabulary
    assert set(synth.SCENES) == SCENE_TYPES
