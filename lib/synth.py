"""The embedded default dataset: procedurally drawn scenes in the Corel-5k JSON format.

Every image is one of a dozen scene types (beach, harbour, lake, river, forest, city,
mountain, underwater, garden, night, desert, farm). A scene type fixes the layout (sky,
horizon, ground) and a set of objects drawn with given probabilities, so labels co-occur
the way Corel's do (sea with beach, car with road, fish with coral). Look-alikes are
drawn the same way and told apart only by context: sea, lake and harbour water share one
palette; sun and moon are the same pale disc (day sky or night sky); beach, sand and snow
are the same pale ground; deer and horse, house and barn, car and bus, fish and shark
share a shape. Birds, butterflies and flowers are a few pixels wide; cars hide behind
buildings, fish behind coral, and objects are cut by the frame. At most five labels per
image, like Corel.

Variant ``"implied"`` (``generate(..., variant="implied")``): a few labels are drawn barely or
not at all (``IMPLIED``: fish, car, stars, mushroom, umbrella, sheep) while a visible label
of the same scene implies them (fish only with coral, car with a road, stars with the
moon, ...): a test of whether a label graph helps with labels the pixels do not show. Scene
types and everything else are drawn as in the default, which stays byte-identical.

Output (``generate``): ``images/<split>_NNNNN.png``, ``train.json``, ``val.json``,
``test.json``, ``vocabulary.txt`` and a ``synth.json`` manifest. Images are written
first and the JSON files last, all atomically, so an interrupted run never leaves a
folder that looks like a complete dataset. Each image has its own random generator
seeded from (seed, split, index): the output is byte-identical for a seed, and a split
does not depend on the sizes of the others.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lib.utils import atomic_write_bytes, atomic_write_json, atomic_write_text

GENERATOR = "lib.synth"
VERSION = 1
VARIANTS = ("default", "implied")
MAX_LABELS = 5
SPLITS = ("train", "val", "test")
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_IMAGE_RE = re.compile(r"^(train|val|test)_\d{5,}\.png$")

Color = tuple[int, int, int]


# --------------------------------------------------------------------------- canvas
class Canvas:
    """A drawing surface at twice the output size, with the image's random generator."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.s = 2 * size  # drawing resolution (anti-aliased by downsampling)
        self.rng = rng
        self.img = Image.new("RGB", (self.s, self.s))
        self.draw = ImageDraw.Draw(self.img)
        # variant settings of the scene being drawn (empty: the default dataset)
        self.hidden: frozenset[str] = frozenset()   #: labels drawn barely or not at all
        self.probs: dict[str, float] = {}           #: optional-object probabilities
        self.requires: dict[str, str] = {}          #: extra "label needs label" rules

    @contextlib.contextmanager
    def faint(self, label: str):
        """Draw what the block draws for ``label`` at a low opacity when the label is hidden:
        invisible half the time, else blended in at 5-25 %. A no-op (no random draw) for a
        visible label."""
        if label not in self.hidden:
            yield
            return
        alpha = 0.0 if self.chance(0.5) else self.u(0.05, 0.25)
        before = self.img.copy()
        yield
        self.img = Image.blend(before, self.img, alpha)
        self.draw = ImageDraw.Draw(self.img)

    # random helpers -----------------------------------------------------------
    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def px(self, lo: float, hi: float) -> int:
        """A random coordinate between fractions ``lo`` and ``hi`` of the canvas."""
        return int(round(self.rng.uniform(lo, hi) * self.s))

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def col(self, base: Color, jitter: int = 14) -> Color:
        j = self.rng.integers(-jitter, jitter + 1, size=3)
        return tuple(int(np.clip(b + d, 0, 255)) for b, d in zip(base, j, strict=True))

    # backgrounds ----------------------------------------------------------------
    def gradient(self, top: Color, bottom: Color, y0: int = 0, y1: int | None = None) -> None:
        """Fill rows ``y0:y1`` with a vertical colour gradient."""
        y1 = self.s if y1 is None else y1
        if y1 <= y0:
            return
        t = np.linspace(0.0, 1.0, y1 - y0)[:, None]
        rows = (1 - t) * np.asarray(top, float) + t * np.asarray(bottom, float)
        band = np.repeat(rows[:, None, :], self.s, axis=1).astype(np.uint8)
        self.img.paste(Image.fromarray(band, "RGB"), (0, y0))

    def band(self, y_left: int, y_right: int, fill: Color, bottom: int | None = None,
             wobble: float = 0.0, n: int = 8) -> list[tuple[int, int]]:
        """Fill the area below a (wobbly) line from (0, y_left) to (s, y_right)."""
        bottom = self.s if bottom is None else bottom
        pts = []
        for i in range(n + 1):
            x = self.s * i / n
            y = y_left + (y_right - y_left) * i / n + (self.u(-1, 1) * wobble * self.s)
            pts.append((int(x), int(y)))
        self.draw.polygon(pts + [(self.s, bottom), (0, bottom)], fill=fill)
        return pts


def _pick(c: Canvas, optional: dict[str, float], n_base: int,
          requires: dict[str, str] | None = None) -> set[str]:
    """Draw the optional objects of a scene, keep their dependencies, cap the total.
    ``c.probs`` and ``c.requires`` (a variant's settings) override the scene's."""
    requires = {**(requires or {}), **c.requires}
    optional = {name: c.probs.get(name, p) for name, p in optional.items()}
    picked = [name for name, p in optional.items() if c.chance(p)]
    picked = [n for n in picked if requires.get(n, n) in picked or n not in requires]
    room = MAX_LABELS - n_base
    while len(picked) > room:
        # drop a random object that nothing else needs (a variant's hidden label stays)
        needed = {requires[n] for n in picked if n in requires}
        droppable = [n for n in picked if n not in needed and n not in c.hidden]
        picked.remove(droppable[int(c.rng.integers(len(droppable)))])
    return set(picked)


# --------------------------------------------------------------------------- palettes
DAY_TOP, DAY_HORIZON = (70, 125, 200), (175, 205, 235)
DUSK_TOP, DUSK_HORIZON = (90, 90, 160), (240, 170, 120)
NIGHT_TOP, NIGHT_HORIZON = (8, 10, 35), (35, 40, 80)
WATER = (45, 105, 170)          # sea, lake, river and harbour water alike
PALE_GROUND = (222, 214, 190)   # beach, sand and snow differ only slightly in tint
SAND_TINT, SNOW_TINT = (8, 2, -12), (6, 10, 16)
DISC = (250, 238, 200)          # sun and moon alike
GRASS = (70, 140, 55)
FOLIAGE = (40, 110, 45)


def _tint(base: Color, tint: tuple[int, int, int]) -> Color:
    return tuple(int(np.clip(b + t, 0, 255)) for b, t in zip(base, tint, strict=True))


def _sky(c: Canvas, horizon: int, kind: str = "day") -> None:
    """Sky gradient down to the horizon; below it the horizon colour (under the ground)."""
    top, bottom = {"night": (NIGHT_TOP, NIGHT_HORIZON), "dusk": (DUSK_TOP, DUSK_HORIZON),
                   "day": (DAY_TOP, DAY_HORIZON)}[kind]
    jitter = {"night": (6, 10), "dusk": (15, 15), "day": (18, 12)}[kind]
    low = c.col(bottom, jitter[1])
    c.gradient(c.col(top, jitter[0]), low, 0, horizon)
    if horizon < c.s:
        c.draw.rectangle([0, horizon, c.s, c.s], fill=low)


def _water(c: Canvas, y0: int, y1: int | None = None, waves: bool = True) -> Color:
    base = c.col(WATER, 18)
    deep = tuple(max(0, v - 35) for v in base)
    c.gradient(base, deep, y0, c.s if y1 is None else y1)
    if waves:
        light = tuple(min(255, v + 45) for v in base)
        for _ in range(int(c.rng.integers(3, 9))):
            y = c.px(y0 / c.s, (y1 or c.s) / c.s)
            x = c.px(-0.1, 1.0)
            c.draw.line([(x, y), (x + c.px(0.05, 0.2), y)], fill=light, width=max(1, c.s // 96))
    return base


def _pale_ground(c: Canvas, kind: str) -> Color:
    tint = SNOW_TINT if kind == "snow" else SAND_TINT
    return c.col(_tint(PALE_GROUND, tint), 14)


# --------------------------------------------------------------------------- objects
def _disc(c: Canvas, horizon: int) -> None:
    """Sun or moon: the same pale disc; only the sky says which."""
    r = c.px(0.04, 0.09)
    x, y = c.px(0.1, 0.9), c.px(0.05, max(0.08, horizon / c.s - 0.12))
    c.draw.ellipse([x - r, y - r, x + r, y + r], fill=c.col(DISC, 8))


def _clouds(c: Canvas, horizon: int) -> None:
    for _ in range(int(c.rng.integers(1, 4))):
        cx, cy = c.px(-0.1, 1.1), c.px(0.04, max(0.06, horizon / c.s - 0.08))
        w = c.px(0.12, 0.28)
        shade = c.col((238, 240, 245), 10)
        for _ in range(4):
            dx, dy = c.u(-0.5, 0.5) * w, c.u(-0.2, 0.2) * w
            rw, rh = c.u(0.3, 0.55) * w, c.u(0.15, 0.3) * w
            c.draw.ellipse([cx + dx - rw, cy + dy - rh, cx + dx + rw, cy + dy + rh], fill=shade)


def _birds(c: Canvas, y_max: int) -> None:
    for _ in range(int(c.rng.integers(1, 5))):
        x, y = c.px(0.05, 0.95), c.px(0.05, max(0.07, y_max / c.s))
        w = c.px(0.02, 0.045)
        ink = c.col((35, 35, 40), 10)
        lw = max(1, c.s // 64)
        c.draw.line([(x - w, y - w // 2), (x, y), (x + w, y - w // 2)], fill=ink, width=lw)


def _plane(c: Canvas, horizon: int) -> None:
    x, y = c.px(0.15, 0.85), c.px(0.06, max(0.08, horizon / c.s - 0.1))
    w = c.px(0.05, 0.09)
    grey = c.col((200, 200, 210), 10)
    c.draw.line([(x - w, y), (x + w, y)], fill=grey, width=max(2, w // 4))
    c.draw.line([(x, y - w // 2), (x - w // 4, y + w // 2)], fill=grey, width=max(1, w // 5))


def _tree(c: Canvas, x: int, base: int, h: int, kind: str = "round",
          leaf: Color | None = None) -> None:
    trunk = c.col((95, 65, 40), 12)
    leaf = leaf or c.col(FOLIAGE, 20)
    tw = max(2, h // 10)
    if kind == "pine":
        c.draw.rectangle([x - tw // 2, base - h // 4, x + tw // 2, base], fill=trunk)
        for k in range(3):
            top = base - h + k * h // 4
            half = h // 5 + k * h // 10
            c.draw.polygon([(x, top), (x - half, top + h // 2), (x + half, top + h // 2)],
                           fill=leaf)
    elif kind == "palm":
        lean = c.px(-0.06, 0.06)
        c.draw.line([(x, base), (x + lean, base - h)], fill=trunk, width=tw)
        tx, ty = x + lean, base - h
        for a in np.linspace(0.15, math.pi - 0.15, 5):
            ex, ey = tx + math.cos(a) * h * 0.45, ty - math.sin(a) * h * 0.12 + h * 0.12
            c.draw.line([(tx, ty), (int(ex), int(ey))], fill=leaf, width=max(2, tw))
    else:
        c.draw.rectangle([x - tw // 2, base - h // 2, x + tw // 2, base], fill=trunk)
        r = h // 3
        c.draw.ellipse([x - r, base - h, x + r, base - h + 2 * r], fill=leaf)


def _trees(c: Canvas, base_lo: float, base_hi: float, n: tuple[int, int],
           h: tuple[float, float], kind: str = "round") -> None:
    for _ in range(int(c.rng.integers(*n))):
        _tree(c, c.px(-0.05, 1.05), c.px(base_lo, base_hi), c.px(*h), kind)


def _quadruped(c: Canvas, x: int, y: int, w: int, kind: str) -> None:
    """Cow, horse, deer, camel and sheep share one body plan; colours and details differ."""
    flip = c.chance(0.5)
    body_h = int(w * (0.55 if kind == "sheep" else 0.42))
    legs = int(w * 0.4)
    colors = {"cow": (240, 240, 235), "horse": (120, 75, 45), "deer": (125, 80, 48),
              "camel": (190, 150, 95), "sheep": (235, 232, 220)}
    body = c.col(colors[kind], 12)
    leg_col = (40, 35, 30) if kind in {"sheep", "cow"} else body
    lw = max(1, w // 12)
    for fx in (0.15, 0.3, 0.7, 0.85):
        lx = x + int(fx * w)
        c.draw.line([(lx, y + body_h // 2), (lx, y + body_h // 2 + legs)], fill=leg_col, width=lw)
    c.draw.ellipse([x, y - body_h // 2, x + w, y + body_h // 2], fill=body)
    if kind == "cow":
        for _ in range(3):
            px, py = x + int(c.u(0.1, 0.8) * w), y + int(c.u(-0.3, 0.1) * body_h)
            r = max(1, w // 8)
            c.draw.ellipse([px, py, px + r * 2, py + r], fill=(30, 30, 30))
    if kind == "camel":
        c.draw.ellipse([x + w // 4, y - body_h, x + 3 * w // 4, y], fill=body)
    hx = x + w if not flip else x
    sign = 1 if not flip else -1
    head = [hx - sign * w // 10, y - body_h, hx + sign * w // 4, y - body_h // 2]
    c.draw.line([(hx, y - body_h // 4), (hx + sign * w // 8, y - body_h)], fill=body,
                width=max(2, w // 7))
    c.draw.ellipse([min(head[0], head[2]), head[1], max(head[0], head[2]), head[3]],
                   fill=(30, 30, 30) if kind == "sheep" else body)
    if kind == "deer":
        ax, ay = hx + sign * w // 12, y - body_h
        for d in (-1, 1):
            c.draw.line([(ax, ay), (ax + d * w // 8, ay - w // 5)], fill=(90, 60, 35), width=lw)


def _herd(c: Canvas, kind: str, y_lo: float, y_hi: float, size: tuple[float, float]) -> None:
    for _ in range(int(c.rng.integers(1, 4))):
        _quadruped(c, c.px(-0.1, 0.9), c.px(y_lo, y_hi), c.px(*size), kind)


def _house(c: Canvas, x: int, base: int, w: int, wall: Color, roof: Color) -> None:
    h = int(w * 0.7)
    c.draw.rectangle([x, base - h, x + w, base], fill=wall)
    c.draw.polygon([(x - w // 10, base - h), (x + w // 2, base - h - w // 2),
                    (x + w + w // 10, base - h)], fill=roof)
    d = max(2, w // 6)
    c.draw.rectangle([x + w // 2 - d // 2, base - 2 * d, x + w // 2 + d // 2, base],
                     fill=(60, 40, 30))


def _buildings(c: Canvas, base: int, top_lo: float, top_hi: float, lit: bool = False,
               n: tuple[int, int] = (3, 7)) -> None:
    x = c.px(-0.1, 0.0)
    while x < c.s:
        w = c.px(0.1, 0.24)
        top = c.px(top_lo, top_hi)
        grey = c.col((120, 118, 125), 35) if not lit else c.col((30, 30, 40), 8)
        c.draw.rectangle([x, top, x + w, base], fill=grey)
        win = max(2, c.s // 48)
        on = c.col((250, 220, 120), 8)
        off = tuple(max(0, v - 40) for v in grey) if not lit else (20, 20, 28)
        for wy in range(top + win, base - win, 2 * win):
            for wx in range(x + win, x + w - win, 2 * win):
                fill = on if (lit and c.chance(0.55)) else off
                c.draw.rectangle([wx, wy, wx + win - 1, wy + win - 1], fill=fill)
        x += w + c.px(0.0, 0.05)


def _tower(c: Canvas, base: int) -> None:
    x, w = c.px(0.1, 0.85), c.px(0.05, 0.09)
    top = c.px(0.05, 0.2)
    c.draw.rectangle([x, top, x + w, base], fill=c.col((150, 150, 160), 20))
    c.draw.line([(x + w // 2, top), (x + w // 2, top - c.px(0.03, 0.08))], fill=(80, 80, 90),
                width=max(1, c.s // 96))


def _vehicle(c: Canvas, x: int, y: int, w: int, kind: str) -> None:
    h = int(w * (0.45 if kind == "car" else 0.55))
    body = c.col([(200, 30, 30), (30, 60, 190), (230, 200, 40), (235, 235, 235),
                  (40, 40, 40)][int(c.rng.integers(5))], 15)
    if kind == "bus":
        body = c.col((235, 180, 30), 15)
    c.draw.rounded_rectangle([x, y - h, x + w, y], radius=max(1, h // 4), fill=body)
    if kind == "car":
        c.draw.rectangle([x + w // 4, y - h - h // 2, x + 3 * w // 4, y - h], fill=body)
    glass = (150, 190, 220)
    nwin = 1 if kind == "car" else 5
    for i in range(nwin):
        wx = x + w // 4 + i * w // 8 if kind == "bus" else x + w // 3
        wy = y - h - h // 3 if kind == "car" else y - h + h // 6
        c.draw.rectangle([wx, wy, wx + max(2, w // 12), wy + max(2, h // 4)], fill=glass)
    r = max(2, h // 3)
    for wx in (x + w // 5, x + 4 * w // 5):
        c.draw.ellipse([wx - r, y - r, wx + r, y + r], fill=(20, 20, 20))


def _people(c: Canvas, y_lo: float, y_hi: float, h: tuple[float, float]) -> None:
    for _ in range(int(c.rng.integers(1, 4))):
        x, base, hh = c.px(0.0, 1.0), c.px(y_lo, y_hi), c.px(*h)
        shirt = c.col([(200, 40, 40), (40, 80, 200), (240, 240, 240), (40, 150, 60),
                       (240, 200, 40)][int(c.rng.integers(5))], 20)
        skin = c.col((205, 160, 120), 25)
        w = max(2, hh // 4)
        c.draw.rectangle([x - w // 2, base - hh // 2, x + w // 2, base], fill=(40, 40, 60))
        c.draw.rectangle([x - w // 2, base - int(hh * 0.8), x + w // 2, base - hh // 2],
                         fill=shirt)
        r = max(1, hh // 8)
        c.draw.ellipse([x - r, base - hh - r // 2, x + r, base - int(hh * 0.8) + r // 2],
                       fill=skin)


def _boat(c: Canvas, x: int, y: int, w: int) -> None:
    h = max(2, w // 4)
    hull = c.col([(240, 240, 240), (150, 40, 30), (40, 50, 90)][int(c.rng.integers(3))], 15)
    c.draw.polygon([(x, y - h), (x + w, y - h), (x + w - w // 6, y), (x + w // 6, y)], fill=hull)
    if c.chance(0.6):
        c.draw.line([(x + w // 2, y - h), (x + w // 2, y - h - w)], fill=(70, 60, 50),
                    width=max(1, w // 25))
        c.draw.polygon([(x + w // 2, y - h - w), (x + w // 2, y - h - w // 8),
                        (x + w // 2 + w * 2 // 5, y - h - w // 8)], fill=c.col((245, 245, 240), 8))
    else:
        c.draw.rectangle([x + w // 3, y - 2 * h, x + 2 * w // 3, y - h],
                         fill=c.col((220, 220, 220)))


def _boats(c: Canvas, y_lo: int, y_hi: int, w: tuple[float, float], n: tuple[int, int]) -> None:
    for _ in range(int(c.rng.integers(*n))):
        _boat(c, c.px(-0.15, 0.95), int(c.rng.integers(y_lo, max(y_lo + 1, y_hi))), c.px(*w))


def _bridge(c: Canvas, y: int) -> None:
    col = c.col((120, 100, 90), 20)
    t = max(2, c.s // 40)
    c.draw.rectangle([0, y - t, c.s, y], fill=col)
    span = c.px(0.2, 0.35)
    x = c.px(-0.1, 0.1)
    while x < c.s:
        c.draw.arc([x, y - t, x + span, y + span // 2], 180, 360, fill=col, width=t)
        c.draw.rectangle([x - t // 2, y, x + t // 2, y + span // 3], fill=col)
        x += span


def _rocks(c: Canvas, y_lo: float, y_hi: float, r: tuple[float, float]) -> None:
    for _ in range(int(c.rng.integers(1, 4))):
        x, y, rr = c.px(-0.05, 1.0), c.px(y_lo, y_hi), c.px(*r)
        pts = [(x + int(rr * math.cos(a) * c.u(0.7, 1.1)),
                y + int(rr * 0.7 * math.sin(a) * c.u(0.7, 1.1)))
               for a in np.linspace(math.pi, 2 * math.pi, 7)]
        c.draw.polygon(pts + [(x + rr, y), (x - rr, y)], fill=c.col((115, 110, 105), 20))


def _mountains(c: Canvas, horizon: int, snowcap: bool) -> None:
    for _ in range(int(c.rng.integers(1, 4))):
        x, w, h = c.px(-0.2, 0.9), c.px(0.35, 0.7), c.px(0.18, 0.4)
        peak = (x + w // 2 + c.px(-0.05, 0.05), horizon - h)
        rock = c.col((105, 100, 110), 18)
        c.draw.polygon([(x, horizon), peak, (x + w, horizon)], fill=rock)
        if snowcap:
            f = c.u(0.25, 0.4)
            lx = peak[0] + (x - peak[0]) * f
            rx = peak[0] + (x + w - peak[0]) * f
            cy = peak[1] + h * f
            c.draw.polygon([peak, (int(rx), int(cy)), (int((lx + rx) / 2), int(cy - h * 0.05)),
                            (int(lx), int(cy))], fill=_pale_ground(c, "snow"))


def _fence(c: Canvas, base: int) -> None:
    col = c.col((150, 120, 85), 20)
    h, t = c.px(0.06, 0.1), max(1, c.s // 80)
    c.draw.line([(0, base - h), (c.s, base - h)], fill=col, width=t)
    c.draw.line([(0, base - h // 3), (c.s, base - h // 3)], fill=col, width=t)
    for x in range(c.px(0.0, 0.05), c.s, c.px(0.06, 0.1)):
        c.draw.line([(x, base - h - t), (x, base)], fill=col, width=t + 1)


def _flowers(c: Canvas, y_lo: float, y_hi: float, n: tuple[int, int]) -> None:
    petals = c.col([(230, 40, 60), (250, 210, 40), (240, 240, 250), (200, 80, 200),
                    (250, 130, 40)][int(c.rng.integers(5))], 20)
    for _ in range(int(c.rng.integers(*n))):
        x, y, r = c.px(0.0, 1.0), c.px(y_lo, y_hi), c.px(0.012, 0.03)
        c.draw.ellipse([x - r, y - r, x + r, y + r], fill=petals)
        c.draw.ellipse([x - r // 3, y - r // 3, x + r // 3, y + r // 3], fill=(250, 220, 60))


def _butterfly(c: Canvas, y_hi: float) -> None:
    x, y, r = c.px(0.1, 0.9), c.px(0.2, y_hi), c.px(0.015, 0.03)
    col = c.col([(250, 140, 30), (60, 120, 230), (240, 240, 80)][int(c.rng.integers(3))], 15)
    c.draw.polygon([(x, y), (x - r * 2, y - r * 2), (x - r * 2, y + r)], fill=col)
    c.draw.polygon([(x, y), (x + r * 2, y - r * 2), (x + r * 2, y + r)], fill=col)


def _bench(c: Canvas, base: int) -> None:
    x, w = c.px(0.05, 0.7), c.px(0.15, 0.25)
    col = c.col((120, 80, 45), 15)
    t = max(2, w // 10)
    c.draw.rectangle([x, base - w // 3, x + w, base - w // 3 + t], fill=col)
    c.draw.rectangle([x, base - w // 2, x + w, base - w // 2 + t], fill=col)
    for lx in (x + t, x + w - 2 * t):
        c.draw.rectangle([lx, base - w // 3, lx + t, base], fill=(50, 50, 50))


def _fish(c: Canvas, x: int, y: int, w: int, color: Color) -> None:
    flip = -1 if c.chance(0.5) else 1
    h = max(2, w // 2)
    c.draw.ellipse([x - w // 2, y - h // 2, x + w // 2, y + h // 2], fill=color)
    tx = x - flip * w // 2
    c.draw.polygon([(tx, y), (tx - flip * w // 3, y - h // 2), (tx - flip * w // 3, y + h // 2)],
                   fill=color)


def _coral(c: Canvas, floor: int) -> None:
    for _ in range(int(c.rng.integers(2, 5))):
        x = c.px(-0.05, 1.0)
        col = c.col([(240, 110, 120), (250, 150, 60), (200, 80, 180)][int(c.rng.integers(3))], 20)
        h = c.px(0.12, 0.3)
        lw = max(2, c.s // 40)
        for _ in range(4):
            ex = x + c.px(-0.08, 0.08)
            ey = floor - h + c.px(-0.04, 0.06)
            c.draw.line([(x, floor), (ex, ey)], fill=col, width=lw)
            c.draw.ellipse([ex - lw, ey - lw, ex + lw, ey + lw], fill=col)


# --------------------------------------------------------------------------- scenes
def _scene_beach(c: Canvas) -> list[str]:
    base = ["sky", "sea", "beach"]
    o = _pick(c, {"sun": 0.3, "clouds": 0.4, "people": 0.3, "palm": 0.2, "boat": 0.2,
                  "bird": 0.15, "umbrella": 0.06, "rock": 0.08}, len(base))
    horizon, shore = c.px(0.3, 0.5), c.px(0.6, 0.8)
    _sky(c, horizon, "dusk" if c.chance(0.15) else "day")
    if "sun" in o:
        _disc(c, horizon)
    if "clouds" in o:
        _clouds(c, horizon)
    _water(c, horizon)
    if "boat" in o:
        _boats(c, horizon + 2, shore - 4, (0.07, 0.16), (1, 3))
    c.band(shore, shore + c.px(-0.08, 0.08), _pale_ground(c, "sand"), wobble=0.015)
    if "rock" in o:
        _rocks(c, shore / c.s, shore / c.s + 0.1, (0.04, 0.09))
    if "umbrella" in o:
        with c.faint("umbrella"):
            x, y, r = c.px(0.1, 0.9), c.px(0.8, 0.95), c.px(0.07, 0.12)
            c.draw.line([(x, y), (x, y - 2 * r)], fill=(90, 70, 50), width=max(1, r // 8))
            c.draw.pieslice([x - r, y - 3 * r, x + r, y - r], 180, 360,
                            fill=c.col((230, 50, 60), 25))
    if "people" in o:
        _people(c, 0.75, 0.97, (0.1, 0.22))
    if "palm" in o:
        _tree(c, c.px(-0.05, 0.2) if c.chance(0.5) else c.px(0.8, 1.05), c.px(0.85, 1.0),
              c.px(0.45, 0.7), "palm")
    if "bird" in o:
        _birds(c, horizon - c.px(0.03, 0.06))
    return base + sorted(o)


def _scene_harbour(c: Canvas) -> list[str]:
    base = ["sky", "water", "boat"]
    o = _pick(c, {"building": 0.45, "clouds": 0.3, "bird": 0.3, "bridge": 0.15, "sun": 0.12,
                  "lighthouse": 0.06, "people": 0.08}, len(base))
    horizon = c.px(0.3, 0.5)
    _sky(c, horizon, "dusk" if c.chance(0.2) else "day")
    if "sun" in o:
        _disc(c, horizon)
    if "clouds" in o:
        _clouds(c, horizon)
    if "building" in o:
        _buildings(c, horizon + 2, horizon / c.s - 0.2, horizon / c.s - 0.05)
    if "lighthouse" in o:
        x, w, h = c.px(0.05, 0.85), c.px(0.05, 0.08), c.px(0.25, 0.35)
        for k in range(4):
            fill = (200, 40, 40) if k % 2 == 0 else (240, 240, 240)
            c.draw.rectangle([x, horizon - h + k * h // 4, x + w, horizon - h + (k + 1) * h // 4],
                             fill=fill)
        c.draw.rectangle([x - w // 4, horizon - h - w // 2, x + w + w // 4, horizon - h],
                         fill=c.col((250, 230, 130), 5))
    _water(c, horizon)
    if "bridge" in o:
        _bridge(c, horizon + c.px(0.05, 0.12))
    _boats(c, horizon + c.px(0.1, 0.15), c.s - 2, (0.15, 0.4), (1, 4))
    if "people" in o:
        pier = c.px(0.85, 0.93)
        c.draw.rectangle([0, pier, c.s, c.s], fill=c.col((120, 95, 70), 15))
        _people(c, 0.95, 1.0, (0.1, 0.2))
    if "bird" in o:
        _birds(c, horizon + c.px(0.0, 0.2))
    return base + sorted(o)


def _scene_lake(c: Canvas) -> list[str]:
    base = ["sky", "lake"]
    o = _pick(c, {"tree": 0.65, "mountain": 0.4, "grass": 0.35, "boat": 0.15, "clouds": 0.3,
                  "bird": 0.12, "house": 0.12, "sun": 0.1}, len(base))
    horizon = c.px(0.3, 0.45)
    _sky(c, horizon, "dusk" if c.chance(0.15) else "day")
    if "sun" in o:
        _disc(c, horizon)
    if "clouds" in o:
        _clouds(c, horizon)
    if "mountain" in o:
        _mountains(c, horizon, snowcap=False)
    shore = horizon + c.px(0.04, 0.08)
    c.band(horizon, horizon + c.px(-0.03, 0.03), c.col((55, 95, 50), 15), bottom=shore,
           wobble=0.01)
    if "tree" in o:
        _trees(c, horizon / c.s + 0.02, shore / c.s, (4, 10), (0.08, 0.16),
               "pine" if c.chance(0.5) else "round")
    if "house" in o:
        _house(c, c.px(0.05, 0.8), shore - 1, c.px(0.07, 0.12), c.col((220, 210, 190), 20),
               c.col((90, 50, 40), 20))
    near = c.px(0.78, 0.95) if "grass" in o else c.s
    _water(c, shore, near)
    if "boat" in o:
        _boats(c, shore + c.px(0.05, 0.1), near - 2, (0.1, 0.2), (1, 2))
    if "grass" in o:
        c.band(near, near + c.px(-0.05, 0.05), c.col(GRASS, 20), wobble=0.015)
    if "bird" in o:
        _birds(c, horizon)
    return base + sorted(o)


def _scene_river(c: Canvas) -> list[str]:
    base = ["river", "grass"]
    o = _pick(c, {"sky": 0.7, "tree": 0.5, "bridge": 0.25, "house": 0.15, "cow": 0.1,
                  "fence": 0.1, "bird": 0.08}, len(base))
    horizon = c.px(0.25, 0.4) if "sky" in o else 0
    _sky(c, max(horizon, 1))
    c.gradient(c.col((110, 160, 70), 20), c.col(GRASS, 20), horizon)
    # a winding band of water from the horizon to the bottom edge
    x0, x1 = c.px(0.3, 0.7), c.px(0.2, 0.8)
    w0, w1 = c.px(0.03, 0.06), c.px(0.2, 0.35)
    left, right = [], []
    steps = 10
    phase, amp = c.u(0, math.pi * 2), c.u(0.03, 0.1) * c.s
    for i in range(steps + 1):
        t = i / steps
        y = horizon + (c.s - horizon) * t
        xm = x0 + (x1 - x0) * t + amp * math.sin(phase + 3 * t)
        hw = (w0 + (w1 - w0) * t) / 2
        left.append((int(xm - hw), int(y)))
        right.append((int(xm + hw), int(y)))
    c.draw.polygon(left + right[::-1], fill=c.col(WATER, 18))
    if "bridge" in o:
        y = c.px(0.55, 0.8)
        _bridge(c, y)
    if "tree" in o:
        _trees(c, horizon / c.s + 0.05, 0.95, (2, 6), (0.15, 0.3))
    if "house" in o:
        _house(c, c.px(0.0, 0.8), c.px(horizon / c.s + 0.1, 0.7), c.px(0.1, 0.16),
               c.col((220, 210, 190), 20), c.col((90, 50, 40), 20))
    if "fence" in o:
        _fence(c, c.px(0.85, 1.0))
    if "cow" in o:
        _herd(c, "cow", horizon / c.s + 0.1, 0.85, (0.1, 0.18))
    if "bird" in o:
        _birds(c, max(horizon, c.px(0.2, 0.3)))
    return sorted(base + sorted(o))


def _scene_forest(c: Canvas) -> list[str]:
    base = ["forest", "tree"]
    o = _pick(c, {"sky": 0.35, "grass": 0.4, "path": 0.2, "deer": 0.1, "mushroom": 0.05,
                  "bird": 0.08}, len(base))
    horizon = c.px(0.15, 0.3) if "sky" in o else 0
    _sky(c, max(horizon, 1))
    floor = c.col(GRASS, 20) if "grass" in o else c.col((95, 80, 55), 15)
    c.gradient(c.col((35, 70, 35), 10), floor, horizon)
    kind = "pine" if c.chance(0.5) else "round"
    _trees(c, 0.45, 0.75, (6, 12), (0.35, 0.6), kind)
    if "path" in o:
        x = c.px(0.35, 0.65)
        c.draw.polygon([(x - c.px(0.02, 0.04), c.px(0.6, 0.7)), (x + c.px(0.02, 0.04),
                        c.px(0.6, 0.7)), (x + c.px(0.15, 0.3), c.s), (x - c.px(0.15, 0.3), c.s)],
                       fill=c.col((170, 145, 100), 15))
    if "deer" in o:
        _herd(c, "deer", 0.65, 0.85, (0.12, 0.2))
    _trees(c, 0.85, 1.1, (2, 5), (0.5, 0.9), kind)
    if "mushroom" in o:
        with c.faint("mushroom"):
            for _ in range(int(c.rng.integers(1, 4))):
                x, y, r = c.px(0.05, 0.95), c.px(0.88, 0.98), c.px(0.02, 0.04)
                c.draw.rectangle([x - r // 3, y - r, x + r // 3, y], fill=(235, 230, 215))
                c.draw.pieslice([x - r, y - 2 * r, x + r, y], 180, 360,
                                fill=c.col((200, 40, 35), 15))
    if "bird" in o:
        _birds(c, c.px(0.1, 0.3))
    return sorted(base + sorted(o))


def _scene_city(c: Canvas) -> list[str]:
    base = ["building"]
    o = _pick(c, {"sky": 0.65, "road": 0.6, "car": 0.55, "bus": 0.08, "people": 0.22,
                  "tower": 0.15, "clouds": 0.25, "tree": 0.15, "plane": 0.05, "bird": 0.08},
              len(base), requires={"car": "road", "bus": "road", "clouds": "sky",
                                   "plane": "sky", "tower": "sky", "bird": "sky"})
    horizon = c.px(0.7, 0.85) if "road" in o else c.s
    if "sky" in o:
        _sky(c, horizon)
    else:  # a close view: walls of buildings fill the frame
        wall = c.col((95, 90, 100), 20)
        c.gradient(wall, tuple(max(0, v - 30) for v in wall), 0, horizon)
    if "clouds" in o:
        _clouds(c, c.px(0.3, 0.4))
    if "plane" in o:
        _plane(c, c.px(0.3, 0.4))
    if "tower" in o:
        _tower(c, horizon)
    if "sky" in o:
        _buildings(c, horizon, 0.2, 0.55)
    else:
        _buildings(c, horizon, -0.1, 0.1)
    if "bird" in o:
        _birds(c, c.px(0.2, 0.35))
    if "road" in o:
        c.draw.rectangle([0, horizon, c.s, c.s], fill=c.col((85, 85, 90), 10))
        y = (horizon + c.s) // 2
        for x in range(c.px(-0.1, 0.0), c.s, c.px(0.15, 0.2)):
            c.draw.rectangle([x, y - 1, x + c.s // 14, y + 1], fill=(230, 230, 200))
    if "tree" in o:
        _trees(c, horizon / c.s - 0.01, horizon / c.s + 0.01, (1, 4), (0.15, 0.3))
    if "people" in o:
        _people(c, horizon / c.s, min(1.0, horizon / c.s + 0.1), (0.1, 0.2))
    if "bus" in o:
        _vehicle(c, c.px(-0.1, 0.6), c.px(0.93, 0.99), c.px(0.35, 0.5), "bus")
    if "car" in o:
        with c.faint("car"):
            for _ in range(int(c.rng.integers(1, 3))):
                _vehicle(c, c.px(-0.15, 0.9), c.px(0.9, 0.99), c.px(0.18, 0.3), "car")
    if c.chance(0.35):  # a near building at the edge, hiding part of the street
        w = c.px(0.15, 0.3)
        x = -c.px(0.0, 0.05) if c.chance(0.5) else c.s - w
        grey = c.col((110, 105, 115), 30)
        c.draw.rectangle([x, c.px(0.0, 0.2), x + w, c.s], fill=grey)
    return sorted(base + sorted(o))


def _scene_mountain(c: Canvas) -> list[str]:
    base = ["mountain", "sky", "snow"]
    o = _pick(c, {"clouds": 0.4, "tree": 0.35, "rock": 0.2, "sun": 0.15, "people": 0.07},
              len(base))
    horizon = c.px(0.55, 0.75)
    _sky(c, horizon, "dusk" if c.chance(0.1) else "day")
    if "sun" in o:
        _disc(c, horizon - c.px(0.15, 0.25))
    if "clouds" in o:
        _clouds(c, horizon - c.px(0.15, 0.3))
    _mountains(c, horizon, snowcap=True)
    c.band(horizon, horizon + c.px(-0.05, 0.05), _pale_ground(c, "snow"), wobble=0.02)
    if "rock" in o:
        _rocks(c, horizon / c.s + 0.05, 0.95, (0.05, 0.1))
    if "tree" in o:
        _trees(c, horizon / c.s + 0.02, 0.98, (2, 7), (0.12, 0.3), "pine")
    if "people" in o:
        _people(c, horizon / c.s + 0.1, 0.98, (0.08, 0.16))
    return sorted(base + sorted(o))


def _scene_underwater(c: Canvas) -> list[str]:
    base = ["water"]
    o = _pick(c, {"fish": 0.85, "coral": 0.7, "reef": 0.2, "rock": 0.15, "shark": 0.07,
                  "turtle": 0.06, "jellyfish": 0.05, "diver": 0.05}, len(base))
    top = c.col((60, 150, 200), 20)
    c.gradient(top, tuple(max(0, v - 70) for v in top))
    floor = c.px(0.8, 0.95)
    c.band(floor, floor + c.px(-0.05, 0.05), c.col((190, 175, 130), 20), wobble=0.02)
    if "reef" in o:
        c.band(floor - c.px(0.1, 0.2), floor - c.px(0.05, 0.2), c.col((120, 90, 110), 20),
               bottom=floor + 4, wobble=0.04, n=12)
    fishes = c.col([(250, 140, 30), (250, 220, 50), (60, 200, 220), (230, 80, 120)]
                   [int(c.rng.integers(4))], 20)
    n_fish = int(c.rng.integers(1, 6))
    if "fish" in o:  # some fish behind the coral
        with c.faint("fish"):
            for _ in range(n_fish // 2):
                _fish(c, c.px(0.0, 1.0), c.px(0.6, 0.9), c.px(0.06, 0.12), fishes)
    if "rock" in o:
        _rocks(c, floor / c.s, floor / c.s + 0.05, (0.06, 0.12))
    if "coral" in o:
        _coral(c, floor)
    if "fish" in o:
        with c.faint("fish"):
            for _ in range(n_fish - n_fish // 2):
                _fish(c, c.px(-0.03, 1.03), c.px(0.1, 0.8), c.px(0.06, 0.14), fishes)
    if "shark" in o:
        _fish(c, c.px(0.1, 0.9), c.px(0.15, 0.5), c.px(0.35, 0.55), c.col((120, 130, 140), 10))
    if "turtle" in o:
        x, y, r = c.px(0.15, 0.85), c.px(0.2, 0.6), c.px(0.07, 0.12)
        green = c.col((70, 120, 60), 15)
        for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
            c.draw.ellipse([x + dx * r - r // 3, y + dy * r // 2 - r // 4,
                            x + dx * r + r // 3, y + dy * r // 2 + r // 4], fill=green)
        c.draw.ellipse([x - r, y - r * 2 // 3, x + r, y + r * 2 // 3], fill=c.col((110, 90, 50)))
    if "jellyfish" in o:
        x, y, r = c.px(0.15, 0.85), c.px(0.15, 0.5), c.px(0.04, 0.08)
        pink = c.col((235, 190, 230), 15)
        c.draw.pieslice([x - r, y - r, x + r, y + r], 180, 360, fill=pink)
        for dx in (-r // 2, 0, r // 2):
            c.draw.line([(x + dx, y), (x + dx, y + 2 * r)], fill=pink, width=max(1, r // 6))
    if "diver" in o:
        x, y, h = c.px(0.2, 0.8), c.px(0.25, 0.55), c.px(0.25, 0.35)
        c.draw.line([(x, y), (x + h, y + h // 5)], fill=(20, 20, 25), width=max(3, h // 5))
        c.draw.ellipse([x - h // 8, y - h // 8, x + h // 8, y + h // 8], fill=(20, 20, 25))
        c.draw.rectangle([x + h // 4, y - h // 6, x + h // 2, y], fill=(230, 200, 40))
    return sorted(base + sorted(o))


def _scene_garden(c: Canvas) -> list[str]:
    base = ["flower", "grass"]
    o = _pick(c, {"sky": 0.6, "tree": 0.4, "fence": 0.3, "house": 0.18, "butterfly": 0.07,
                  "bench": 0.06, "people": 0.08, "bird": 0.06}, len(base))
    horizon = c.px(0.3, 0.5) if "sky" in o else 0
    _sky(c, max(horizon, 1))
    c.gradient(c.col((90, 150, 60), 20), c.col(GRASS, 20), horizon)
    if "house" in o:
        _house(c, c.px(0.0, 0.7), horizon + c.px(0.05, 0.1), c.px(0.2, 0.35),
               c.col((230, 220, 200), 20), c.col((150, 60, 45), 20))
    if "tree" in o:
        _trees(c, horizon / c.s + 0.1, horizon / c.s + 0.3, (1, 4), (0.25, 0.45))
    if "fence" in o:
        _fence(c, horizon + c.px(0.12, 0.25))
    if "bench" in o:
        _bench(c, c.px(0.75, 0.9))
    if "people" in o:
        _people(c, 0.7, 0.95, (0.2, 0.35))
    _flowers(c, horizon / c.s + 0.25, 1.0, (6, 20))
    if "butterfly" in o:
        _butterfly(c, 0.8)
    if "bird" in o:
        _birds(c, max(horizon, c.px(0.15, 0.3)))
    return sorted(base + sorted(o))


def _scene_night(c: Canvas) -> list[str]:
    base = ["sky"]
    o = _pick(c, {"moon": 0.75, "stars": 0.55, "building": 0.45, "lights": 0.7, "tree": 0.15,
                  "water": 0.1}, len(base), requires={"lights": "building"})
    horizon = c.px(0.6, 0.85)
    _sky(c, c.s, "night")
    if "stars" in o:
        with c.faint("stars"):
            for _ in range(int(c.rng.integers(15, 40))):
                x, y = c.px(0, 1), c.px(0, horizon / c.s)
                r = max(1, c.s // 100)
                c.draw.ellipse([x - r, y - r, x + r, y + r], fill=c.col((240, 240, 220), 15))
    if "moon" in o:
        _disc(c, horizon)
    ground = c.col((15, 18, 25), 6)
    c.draw.rectangle([0, horizon, c.s, c.s], fill=ground)
    if "building" in o:
        _buildings(c, horizon, 0.3, 0.6, lit="lights" in o)
    if "tree" in o:
        for _ in range(int(c.rng.integers(1, 4))):
            _tree(c, c.px(-0.05, 1.05), horizon + 2, c.px(0.2, 0.4), leaf=(10, 20, 15))
    if "water" in o:
        y = c.px(horizon / c.s + 0.03, 0.95)
        base_c = c.col((25, 40, 70), 10)
        c.gradient(base_c, tuple(max(0, v - 15) for v in base_c), y)
    return sorted(base + sorted(o))


def _scene_desert(c: Canvas) -> list[str]:
    base = ["sky", "sand"]
    o = _pick(c, {"sun": 0.5, "dunes": 0.5, "cactus": 0.3, "rock": 0.25, "camel": 0.12,
                  "clouds": 0.1}, len(base))
    horizon = c.px(0.4, 0.6)
    _sky(c, horizon, "dusk" if c.chance(0.2) else "day")
    if "sun" in o:
        _disc(c, horizon)
    if "clouds" in o:
        _clouds(c, horizon)
    sand = _pale_ground(c, "sand")
    if "dunes" in o:
        c.band(horizon, horizon + c.px(-0.1, 0.1), sand, wobble=0.06, n=5)
        shade = tuple(max(0, v - 25) for v in sand)
        c.band(horizon + c.px(0.1, 0.2), horizon + c.px(0.1, 0.3), shade, wobble=0.05, n=4)
        c.band(horizon + c.px(0.15, 0.25), horizon + c.px(0.15, 0.35), sand, wobble=0.05, n=4)
    else:
        c.draw.rectangle([0, horizon, c.s, c.s], fill=sand)
    if "rock" in o:
        _rocks(c, horizon / c.s + 0.05, 0.95, (0.05, 0.12))
    if "cactus" in o:
        for _ in range(int(c.rng.integers(1, 3))):
            x, y, h = c.px(0.05, 0.95), c.px(0.75, 1.0), c.px(0.2, 0.4)
            g, w = c.col((60, 130, 60), 15), max(3, h // 6)
            c.draw.rounded_rectangle([x - w // 2, y - h, x + w // 2, y], radius=w // 2, fill=g)
            c.draw.rounded_rectangle([x - 2 * w, y - h * 2 // 3, x - w, y - h // 3],
                                     radius=w // 2, fill=g)
            c.draw.rectangle([x - 2 * w, y - h // 3 - w // 2, x, y - h // 3 + w // 3], fill=g)
    if "camel" in o:
        _herd(c, "camel", horizon / c.s + 0.1, 0.85, (0.15, 0.25))
    return sorted(base + sorted(o))


def _scene_farm(c: Canvas) -> list[str]:
    base = ["field", "sky"]
    o = _pick(c, {"grass": 0.3, "tree": 0.3, "fence": 0.3, "cow": 0.25, "barn": 0.22,
                  "house": 0.15, "horse": 0.14, "clouds": 0.3, "sun": 0.12, "sheep": 0.07},
              len(base))
    horizon = c.px(0.35, 0.5)
    _sky(c, horizon)
    if "sun" in o:
        _disc(c, horizon)
    if "clouds" in o:
        _clouds(c, horizon)
    crop = c.col([(200, 180, 80), (150, 170, 70), (180, 150, 70)][int(c.rng.integers(3))], 15)
    c.draw.rectangle([0, horizon, c.s, c.s], fill=crop)
    stripe = tuple(max(0, v - 30) for v in crop)
    for k in range(12):
        y = horizon + int((c.s - horizon) * (k / 12) ** 1.5)
        c.draw.line([(0, y), (c.s, y)], fill=stripe, width=max(1, c.s // 100))
    if "tree" in o:
        _trees(c, horizon / c.s - 0.01, horizon / c.s + 0.02, (1, 5), (0.1, 0.2))
    for kind, wall, roof in (("barn", (170, 40, 35), (90, 30, 25)),
                             ("house", (225, 215, 195), (110, 60, 45))):
        if kind in o:
            w = c.px(0.15, 0.25) if kind == "barn" else c.px(0.12, 0.2)
            _house(c, c.px(0.0, 0.8), horizon + c.px(0.02, 0.05), w, c.col(wall, 15),
                   c.col(roof, 15))
    grass_top = c.px(0.75, 0.85) if "grass" in o else c.s
    if "grass" in o:
        c.band(grass_top, grass_top + c.px(-0.04, 0.04), c.col(GRASS, 20), wobble=0.01)
    for kind in ("cow", "horse", "sheep"):
        if kind in o:
            with c.faint(kind):
                _herd(c, kind, horizon / c.s + 0.1, 0.8, (0.12, 0.22))
    if "fence" in o:
        _fence(c, c.px(0.88, 1.0))
    return sorted(base + sorted(o))


#: scene type -> (relative frequency, drawing function); the weights are long-tailed
SCENES: dict[str, tuple[float, Callable[[Canvas], list[str]]]] = {
    "beach": (0.13, _scene_beach),
    "city": (0.13, _scene_city),
    "farm": (0.11, _scene_farm),
    "lake": (0.09, _scene_lake),
    "forest": (0.09, _scene_forest),
    "mountain": (0.09, _scene_mountain),
    "garden": (0.08, _scene_garden),
    "harbour": (0.07, _scene_harbour),
    "underwater": (0.07, _scene_underwater),
    "desert": (0.06, _scene_desert),
    "night": (0.05, _scene_night),
    "river": (0.03, _scene_river),
}

#: variant "implied": (scene type, hidden label) -> (visible label of that scene that implies
#: it, probability of the hidden label when the visible one is there). The hidden label only
#: occurs with its implier and is drawn barely or not at all (``Canvas.faint``).
IMPLIED: dict[tuple[str, str], tuple[str, float]] = {
    ("underwater", "fish"): ("coral", 0.95),
    ("city", "car"): ("road", 0.9),
    ("night", "stars"): ("moon", 0.95),
    ("forest", "mushroom"): ("path", 0.9),
    ("beach", "umbrella"): ("people", 0.85),
    ("farm", "sheep"): ("fence", 0.9),
}


def implied_labels() -> dict[str, str]:
    """Variant ``"implied"``: hidden label -> the visible label that implies it."""
    return {hidden: implier for (_, hidden), (implier, _) in IMPLIED.items()}


#: the vocabulary, in a fixed order (grouped by theme)
LABELS: list[str] = [
    "sky", "clouds", "sun", "moon", "stars", "bird", "plane",
    "water", "sea", "lake", "river", "boat", "bridge", "lighthouse",
    "beach", "sand", "dunes", "snow", "mountain", "rock",
    "tree", "palm", "forest", "grass", "flower", "field", "path", "mushroom",
    "building", "tower", "house", "barn", "fence", "bench", "road", "car", "bus", "lights",
    "people", "umbrella", "cow", "horse", "sheep", "deer", "camel", "butterfly", "cactus",
    "fish", "shark", "turtle", "jellyfish", "coral", "reef", "diver",
]


# --------------------------------------------------------------------------- images
def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image, independent of every other image and split size."""
    return np.random.default_rng([int(seed), _SPLIT_IDS[split], int(index), VERSION])


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown synth variant {variant!r}; expected one of {VARIANTS}")


def draw_image(seed: int, split: str, index: int, size: int, variant: str = "default"
               ) -> tuple[Image.Image, str, list[str]]:
    """Draw one image: returns (RGB image of ``size`` x ``size``, scene type, labels).
    The scene type depends only on (seed, split, index), not on the variant."""
    _check_variant(variant)
    rng = image_rng(seed, split, index)
    names = list(SCENES)
    weights = np.array([SCENES[n][0] for n in names])
    scene = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    c = Canvas(size, rng)
    if variant == "implied":
        rules = {hidden: rule for (kind, hidden), rule in IMPLIED.items() if kind == scene}
        c.hidden = frozenset(rules)
        c.probs = {hidden: p for hidden, (_, p) in rules.items()}
        c.requires = {hidden: implier for hidden, (implier, _) in rules.items()}
    labels = SCENES[scene][1](c)
    img = c.img.resize((size, size), Image.Resampling.BOX)
    # photometric variation: exposure, contrast, colour cast and sensor noise
    arr = np.asarray(img, dtype=np.float32)
    mean = arr.mean()
    arr = (arr - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.15)
    arr = arr + rng.normal(0, 6, size=3) + rng.normal(0, rng.uniform(2, 7), size=arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "RGB")
    if not 0 < len(labels) == len(set(labels)) <= MAX_LABELS:  # pragma: no cover - a bug
        raise RuntimeError(f"scene {scene!r} produced bad labels {labels}")
    return img, scene, sorted(labels, key=LABELS.index)


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


# --------------------------------------------------------------------------- dataset
def generate(out_dir: str | Path, seed: int = 0, size: int = 64, n_train: int = 1500,
             n_val: int = 300, n_test: int = 500, progress: bool = False,
             variant: str = "default") -> Path:
    """Draw the scenes dataset into ``out_dir`` (Corel-5k JSON format); returns the folder.

    ``variant``: ``"default"`` (the embedded dataset) or ``"implied"`` (labels hidden in the
    picture but implied by the scene; see :data:`IMPLIED`).

    Images first, then ``vocabulary.txt``, the split JSONs and ``synth.json`` last, each
    written atomically. A folder that already holds a dataset not drawn by this module is
    refused; an earlier synthetic dataset there is replaced."""
    from tqdm.auto import tqdm

    _check_variant(variant)
    out = Path(out_dir)
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in counts.items():
        if n < 0:
            raise ValueError(f"n_{split} must be >= 0, got {n}")
    if (out / "train.json").exists() and not (out / "synth.json").exists():
        raise FileExistsError(f"{out} holds a dataset not drawn by lib.synth (train.json "
                              "without synth.json); choose another folder")
    # the folder stops looking complete before anything changes
    for name in ("synth.json", "train.json", "test.json", "val.json", "vocabulary.txt"):
        (out / name).unlink(missing_ok=True)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)

    samples: dict[str, list[dict]] = {s: [] for s in SPLITS}
    scenes: dict[str, str] = {}
    total = sum(counts.values())
    with tqdm(total=total, desc="synth", unit="img", disable=not progress) as bar:
        for split in SPLITS:
            for i in range(counts[split]):
                img, scene, labels = draw_image(seed, split, i, size, variant)
                name = f"{split}_{i:05d}.png"
                atomic_write_bytes(images / name, _png_bytes(img))
                samples[split].append({"image_name": name, "image_labels": labels})
                scenes[name] = scene
                bar.update()
    keep = set(scenes)
    for path in images.iterdir():  # images left over from a larger earlier draw
        if _IMAGE_RE.match(path.name) and path.name not in keep:
            path.unlink()

    atomic_write_text(out / "vocabulary.txt", "\n".join(LABELS) + "\n")
    for split in ("val", "test", "train"):
        atomic_write_json(out / f"{split}.json", {"labels": LABELS, "samples": samples[split]})
    weights = {name: w for name, (w, _) in SCENES.items()}
    manifest = {
        "generator": GENERATOR, "version": VERSION, "seed": seed, "size": size,
        "n_train": n_train, "n_val": n_val, "n_test": n_test,
        "scene_types": weights, "labels": LABELS, "scenes": scenes,
    }
    if variant != "default":  # the default manifest keeps its original bytes
        manifest["variant"] = variant
        manifest["implied"] = [{"scene": kind, "hidden": hidden, "implied_by": implier,
                                "probability": p}
                               for (kind, hidden), (implier, p) in IMPLIED.items()]
    atomic_write_json(out / "synth.json", manifest)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m lib synth OUT_DIR [--seed N] [--size PX] [--n-train N] ...``"""
    parser = argparse.ArgumentParser(
        prog="python -m lib synth",
        description="Draw the embedded scenes dataset (Corel-5k JSON format) into OUT_DIR.")
    parser.add_argument("out_dir", type=Path, help="output folder, e.g. data/scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-val", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--variant", choices=VARIANTS, default="default",
                        help="implied: some labels hidden in the picture, implied by the scene")
    args = parser.parse_args(argv)
    try:
        out = generate(args.out_dir, seed=args.seed, size=args.size, n_train=args.n_train,
                       n_val=args.n_val, n_test=args.n_test, progress=True,
                       variant=args.variant)
    except (ValueError, FileExistsError) as err:
        parser.exit(2, f"python -m lib synth: error: {err}\n")
    meta = json.loads((out / "synth.json").read_text(encoding="utf-8"))
    print(f"wrote {meta['n_train']} train, {meta['n_val']} val, {meta['n_test']} test images "
          f"({meta['size']} px, {len(meta['labels'])} labels) to {out}")
    return 0
