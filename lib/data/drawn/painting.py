"""Drawing primitives shared by the embedded scenes (:mod:`lib.data.drawn.scenes`, :mod:`lib.data.drawn.synth`) and
the Corel-shaped stand-in images (:mod:`lib.data.drawn.standin_draw`): a :class:`Canvas` drawn at twice
the output size with seeded jitter, the palettes that make look-alikes (sea, lake and harbour
water; sun and moon; beach, sand and snow), and one ``draw_<thing>`` function per object
(trees, herds, houses, vehicles, boats, fish, ...). Every random draw comes from the canvas's
generator, so a drawing is byte-identical for its seed.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
from PIL import Image, ImageDraw

#: at most this many labels per image, like Corel-5k
MAX_LABELS = 5

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


def pick_labels(c: Canvas, optional: dict[str, float], n_base: int,
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


def tinted(base: Color, tint: tuple[int, int, int]) -> Color:
    return tuple(int(np.clip(b + t, 0, 255)) for b, t in zip(base, tint, strict=True))


def draw_sky(c: Canvas, horizon: int, kind: str = "day") -> None:
    """Sky gradient down to the horizon; below it the horizon colour (under the ground)."""
    top, bottom = {"night": (NIGHT_TOP, NIGHT_HORIZON), "dusk": (DUSK_TOP, DUSK_HORIZON),
                   "day": (DAY_TOP, DAY_HORIZON)}[kind]
    jitter = {"night": (6, 10), "dusk": (15, 15), "day": (18, 12)}[kind]
    low = c.col(bottom, jitter[1])
    c.gradient(c.col(top, jitter[0]), low, 0, horizon)
    if horizon < c.s:
        c.draw.rectangle([0, horizon, c.s, c.s], fill=low)


def draw_water(c: Canvas, y0: int, y1: int | None = None, waves: bool = True) -> Color:
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


def draw_pale_ground(c: Canvas, kind: str) -> Color:
    tint = SNOW_TINT if kind == "snow" else SAND_TINT
    return c.col(tinted(PALE_GROUND, tint), 14)


# --------------------------------------------------------------------------- objects
def draw_disc(c: Canvas, horizon: int) -> None:
    """Sun or moon: the same pale disc; only the sky says which."""
    r = c.px(0.04, 0.09)
    x, y = c.px(0.1, 0.9), c.px(0.05, max(0.08, horizon / c.s - 0.12))
    c.draw.ellipse([x - r, y - r, x + r, y + r], fill=c.col(DISC, 8))


def draw_clouds(c: Canvas, horizon: int) -> None:
    for _ in range(int(c.rng.integers(1, 4))):
        cx, cy = c.px(-0.1, 1.1), c.px(0.04, max(0.06, horizon / c.s - 0.08))
        w = c.px(0.12, 0.28)
        shade = c.col((238, 240, 245), 10)
        for _ in range(4):
            dx, dy = c.u(-0.5, 0.5) * w, c.u(-0.2, 0.2) * w
            rw, rh = c.u(0.3, 0.55) * w, c.u(0.15, 0.3) * w
            c.draw.ellipse([cx + dx - rw, cy + dy - rh, cx + dx + rw, cy + dy + rh], fill=shade)


def draw_birds(c: Canvas, y_max: int) -> None:
    for _ in range(int(c.rng.integers(1, 5))):
        x, y = c.px(0.05, 0.95), c.px(0.05, max(0.07, y_max / c.s))
        w = c.px(0.02, 0.045)
        ink = c.col((35, 35, 40), 10)
        lw = max(1, c.s // 64)
        c.draw.line([(x - w, y - w // 2), (x, y), (x + w, y - w // 2)], fill=ink, width=lw)


def draw_plane(c: Canvas, horizon: int) -> None:
    x, y = c.px(0.15, 0.85), c.px(0.06, max(0.08, horizon / c.s - 0.1))
    w = c.px(0.05, 0.09)
    grey = c.col((200, 200, 210), 10)
    c.draw.line([(x - w, y), (x + w, y)], fill=grey, width=max(2, w // 4))
    c.draw.line([(x, y - w // 2), (x - w // 4, y + w // 2)], fill=grey, width=max(1, w // 5))


def draw_tree(c: Canvas, x: int, base: int, h: int, kind: str = "round",
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


def draw_trees(c: Canvas, base_lo: float, base_hi: float, n: tuple[int, int],
           h: tuple[float, float], kind: str = "round") -> None:
    for _ in range(int(c.rng.integers(*n))):
        draw_tree(c, c.px(-0.05, 1.05), c.px(base_lo, base_hi), c.px(*h), kind)


def draw_quadruped(c: Canvas, x: int, y: int, w: int, kind: str) -> None:
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


def draw_herd(c: Canvas, kind: str, y_lo: float, y_hi: float, size: tuple[float, float]) -> None:
    for _ in range(int(c.rng.integers(1, 4))):
        draw_quadruped(c, c.px(-0.1, 0.9), c.px(y_lo, y_hi), c.px(*size), kind)


def draw_house(c: Canvas, x: int, base: int, w: int, wall: Color, roof: Color) -> None:
    h = int(w * 0.7)
    c.draw.rectangle([x, base - h, x + w, base], fill=wall)
    c.draw.polygon([(x - w // 10, base - h), (x + w // 2, base - h - w // 2),
                    (x + w + w // 10, base - h)], fill=roof)
    d = max(2, w // 6)
    c.draw.rectangle([x + w // 2 - d // 2, base - 2 * d, x + w // 2 + d // 2, base],
                     fill=(60, 40, 30))


def draw_buildings(c: Canvas, base: int, top_lo: float, top_hi: float, lit: bool = False,
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


def draw_tower(c: Canvas, base: int) -> None:
    x, w = c.px(0.1, 0.85), c.px(0.05, 0.09)
    top = c.px(0.05, 0.2)
    c.draw.rectangle([x, top, x + w, base], fill=c.col((150, 150, 160), 20))
    c.draw.line([(x + w // 2, top), (x + w // 2, top - c.px(0.03, 0.08))], fill=(80, 80, 90),
                width=max(1, c.s // 96))


def draw_vehicle(c: Canvas, x: int, y: int, w: int, kind: str) -> None:
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


def draw_people(c: Canvas, y_lo: float, y_hi: float, h: tuple[float, float]) -> None:
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


def draw_boat(c: Canvas, x: int, y: int, w: int) -> None:
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


def draw_boats(c: Canvas, y_lo: int, y_hi: int, w: tuple[float, float], n: tuple[int, int]) -> None:
    for _ in range(int(c.rng.integers(*n))):
        draw_boat(c, c.px(-0.15, 0.95), int(c.rng.integers(y_lo, max(y_lo + 1, y_hi))), c.px(*w))


def draw_bridge(c: Canvas, y: int) -> None:
    col = c.col((120, 100, 90), 20)
    t = max(2, c.s // 40)
    c.draw.rectangle([0, y - t, c.s, y], fill=col)
    span = c.px(0.2, 0.35)
    x = c.px(-0.1, 0.1)
    while x < c.s:
        c.draw.arc([x, y - t, x + span, y + span // 2], 180, 360, fill=col, width=t)
        c.draw.rectangle([x - t // 2, y, x + t // 2, y + span // 3], fill=col)
        x += span


def draw_rocks(c: Canvas, y_lo: float, y_hi: float, r: tuple[float, float]) -> None:
    for _ in range(int(c.rng.integers(1, 4))):
        x, y, rr = c.px(-0.05, 1.0), c.px(y_lo, y_hi), c.px(*r)
        pts = [(x + int(rr * math.cos(a) * c.u(0.7, 1.1)),
                y + int(rr * 0.7 * math.sin(a) * c.u(0.7, 1.1)))
               for a in np.linspace(math.pi, 2 * math.pi, 7)]
        c.draw.polygon(pts + [(x + rr, y), (x - rr, y)], fill=c.col((115, 110, 105), 20))


def draw_mountains(c: Canvas, horizon: int, snowcap: bool) -> None:
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
                            (int(lx), int(cy))], fill=draw_pale_ground(c, "snow"))


def draw_fence(c: Canvas, base: int) -> None:
    col = c.col((150, 120, 85), 20)
    h, t = c.px(0.06, 0.1), max(1, c.s // 80)
    c.draw.line([(0, base - h), (c.s, base - h)], fill=col, width=t)
    c.draw.line([(0, base - h // 3), (c.s, base - h // 3)], fill=col, width=t)
    for x in range(c.px(0.0, 0.05), c.s, c.px(0.06, 0.1)):
        c.draw.line([(x, base - h - t), (x, base)], fill=col, width=t + 1)


def draw_flowers(c: Canvas, y_lo: float, y_hi: float, n: tuple[int, int]) -> None:
    petals = c.col([(230, 40, 60), (250, 210, 40), (240, 240, 250), (200, 80, 200),
                    (250, 130, 40)][int(c.rng.integers(5))], 20)
    for _ in range(int(c.rng.integers(*n))):
        x, y, r = c.px(0.0, 1.0), c.px(y_lo, y_hi), c.px(0.012, 0.03)
        c.draw.ellipse([x - r, y - r, x + r, y + r], fill=petals)
        c.draw.ellipse([x - r // 3, y - r // 3, x + r // 3, y + r // 3], fill=(250, 220, 60))


def draw_butterfly(c: Canvas, y_hi: float) -> None:
    x, y, r = c.px(0.1, 0.9), c.px(0.2, y_hi), c.px(0.015, 0.03)
    col = c.col([(250, 140, 30), (60, 120, 230), (240, 240, 80)][int(c.rng.integers(3))], 15)
    c.draw.polygon([(x, y), (x - r * 2, y - r * 2), (x - r * 2, y + r)], fill=col)
    c.draw.polygon([(x, y), (x + r * 2, y - r * 2), (x + r * 2, y + r)], fill=col)


def draw_bench(c: Canvas, base: int) -> None:
    x, w = c.px(0.05, 0.7), c.px(0.15, 0.25)
    col = c.col((120, 80, 45), 15)
    t = max(2, w // 10)
    c.draw.rectangle([x, base - w // 3, x + w, base - w // 3 + t], fill=col)
    c.draw.rectangle([x, base - w // 2, x + w, base - w // 2 + t], fill=col)
    for lx in (x + t, x + w - 2 * t):
        c.draw.rectangle([lx, base - w // 3, lx + t, base], fill=(50, 50, 50))


def draw_fish(c: Canvas, x: int, y: int, w: int, color: Color) -> None:
    flip = -1 if c.chance(0.5) else 1
    h = max(2, w // 2)
    c.draw.ellipse([x - w // 2, y - h // 2, x + w // 2, y + h // 2], fill=color)
    tx = x - flip * w // 2
    c.draw.polygon([(tx, y), (tx - flip * w // 3, y - h // 2), (tx - flip * w // 3, y + h // 2)],
                   fill=color)


def draw_coral(c: Canvas, floor: int) -> None:
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
