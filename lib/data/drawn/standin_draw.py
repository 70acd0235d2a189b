"""Drawing of one stand-in image (used by ``lib.data.drawn.standin``).

An image gets its labels drawn two ways:

- a label the scenes engine (``lib.data.drawn.painting``, ``lib.data.drawn.scenes``) can draw (``sky``, ``sea``,
  ``tree``, ``buildings``, ...; :data:`SCENE_LABELS`) is drawn with that engine's canvas and
  object painters, composed into one scene: sky above a horizon, the ground labels as bands from far
  to near, then the objects on them (an image of ``fish`` or ``coral`` without sky is an
  underwater view);
- every other label gets its own **mark** (:class:`Mark`): a shape filled with a two-colour
  texture, the same for that label in every image and different from every other label's
  (:func:`mark_table`), placed at a random grid cell, size and rotation.

The canvas is ``lib.data.drawn.painting.Canvas`` (a square drawn at twice the resolution); it is resized to
the image's size (192x128 or 128x192), then given the scenes engine's photometric variation
(exposure, contrast, colour cast, sensor noise).
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from lib.data.drawn.painting import (
    GRASS,
    Canvas,
    draw_birds,
    draw_boats,
    draw_bridge,
    draw_buildings,
    draw_butterfly,
    draw_clouds,
    draw_coral,
    draw_disc,
    draw_fence,
    draw_fish,
    draw_flowers,
    draw_herd,
    draw_house,
    draw_mountains,
    draw_pale_ground,
    draw_people,
    draw_plane,
    draw_rocks,
    draw_sky,
    draw_tower,
    draw_tree,
    draw_trees,
    draw_vehicle,
    draw_water,
)

Color = tuple[int, int, int]

#: half the side of the square drawing canvas (``Canvas`` draws at twice this)
CANVAS_SIZE = 128

_OBJECTS = (
    "sky", "sun", "moon", "stars", "clouds", "plane", "bird", "water", "sea", "lake", "river",
    "beach", "sand", "dunes", "snow", "mountain", "rock", "tree", "palm", "forest", "grass",
    "field", "path", "building", "tower", "house", "barn", "fence", "road", "car", "bus",
    "people", "cow", "horse", "sheep", "deer", "camel", "butterfly", "cactus", "fish", "coral",
    "flower", "boat", "bridge", "lighthouse",
)
#: label -> the scenes-engine object it is drawn as (its object names and their plurals)
SCENE_LABELS: dict[str, str] = {name: name for name in _OBJECTS} | {
    "birds": "bird", "boats": "boat", "buildings": "building", "cars": "car",
    "flowers": "flower", "rocks": "rock", "horses": "horse",
}

_SKY_CUES = {"sky", "sun", "moon", "stars", "clouds", "plane", "mountain"}
#: ground bands, far to near
_GROUNDS = ("sea", "lake", "water", "snow", "dunes", "sand", "beach", "field", "grass",
            "forest", "road")
_WATERS = {"sea", "lake", "water"}
_TALL = {"building", "tower", "lighthouse", "house", "barn"}
_GROUNDED = _TALL | {"rock", "tree", "palm", "fence", "car", "bus", "people", "cow", "horse",
                     "sheep", "deer", "camel", "butterfly", "cactus", "flower", "boat",
                     "bridge", "river", "path"}


# --------------------------------------------------------------------------- marks
def _palette() -> list[Color]:
    """24 colours: 12 hues, bright and dark."""
    out = []
    for sat, val in ((0.85, 0.95), (0.8, 0.5)):
        for k in range(12):
            r, g, b = colorsys.hsv_to_rgb(k / 12, sat, val)
            out.append((round(r * 255), round(g * 255), round(b * 255)))
    return out


PALETTE: list[Color] = _palette()
SHAPES = ("disc", "triangle", "square", "diamond", "pentagon", "hexagon", "star", "cross",
          "ring", "bar")
TEXTURES = ("rim", "stripes", "dots", "checker", "halves")


@dataclass(frozen=True)
class Mark:
    """The visual mark of one label: a shape, a colour, an accent colour and a texture."""

    shape: str
    colour: Color
    accent: Color
    texture: str

    def to_dict(self) -> dict:
        return {"shape": self.shape, "colour": list(self.colour), "accent": list(self.accent),
                "texture": self.texture}


def _label_hash(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest(), "big")


def mark_table(labels: Sequence[str]) -> dict[str, Mark]:
    """A distinct mark for each label, derived from a SHA-256 hash of the label.

    The (colour, accent) pair is unique per label (collisions go to the next free pair, the
    labels taken in sorted order), so two labels never share a mark; shape and texture come
    from other bits of the hash. A label's mark depends only on itself and on which other
    labels are in ``labels`` (through collisions), not on their order."""
    pairs = [(a, b) for a in range(len(PALETTE)) for b in range(len(PALETTE)) if a != b]
    if len(set(labels)) > len(pairs):
        raise ValueError(f"at most {len(pairs)} labels can get distinct marks, "
                         f"got {len(set(labels))}")
    taken: set[int] = set()
    out: dict[str, Mark] = {}
    for label in sorted(set(labels)):
        h = _label_hash(label)
        slot = h % len(pairs)
        while slot in taken:
            slot = (slot + 1) % len(pairs)
        taken.add(slot)
        colour, accent = pairs[slot]
        out[label] = Mark(SHAPES[(h >> 64) % len(SHAPES)], PALETTE[colour], PALETTE[accent],
                          TEXTURES[(h >> 96) % len(TEXTURES)])
    return {label: out[label] for label in labels}


def _shape_mask(shape: str, r: int, angle: float, scale: float = 1.0) -> Image.Image:
    """A (2r+1)-pixel square greyscale mask of the shape centred in it."""
    side = 2 * r + 1
    mask = Image.new("L", (side, side), 0)
    d = ImageDraw.Draw(mask)
    rr = r * scale
    if shape in {"disc", "ring"}:
        box = [r - rr, r - rr * 0.85, r + rr, r + rr * 0.85]
        if shape == "disc":
            d.ellipse(box, fill=255)
        else:
            d.ellipse(box, outline=255, width=max(2, int(rr * 0.4)))
        return mask
    if shape == "star":
        pts = [(rr if k % 2 == 0 else rr * 0.45, math.pi * k / 5) for k in range(10)]
    elif shape == "cross":
        w = 0.35
        corners = [(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1), (-w, -1), (-w, -w),
                   (-1, -w), (-1, w), (-w, w), (-w, 1)]
        pts = [(rr * math.hypot(x, y), math.atan2(y, x)) for x, y in corners]
    elif shape == "bar":
        corners = [(1, 0.35), (-1, 0.35), (-1, -0.35), (1, -0.35)]
        pts = [(rr * math.hypot(x, y), math.atan2(y, x)) for x, y in corners]
    else:
        n = {"triangle": 3, "square": 4, "diamond": 4, "pentagon": 5, "hexagon": 6}[shape]
        offset = math.pi / 4 if shape == "square" else 0.0
        pts = [(rr, offset + 2 * math.pi * k / n) for k in range(n)]
    d.polygon([(r + rad * math.cos(a + angle), r + rad * math.sin(a + angle)) for rad, a in pts],
              fill=255)
    return mask


def _texture(mark: Mark, side: int, angle: float) -> Image.Image:
    """The two-colour pattern of a mark (colour and accent), ``side`` pixels square."""
    colour, accent = np.asarray(mark.colour, np.uint8), np.asarray(mark.accent, np.uint8)
    y, x = np.mgrid[0:side, 0:side]
    period = max(4, side // 6)
    # pattern coordinates turn with the shape
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    if mark.texture == "stripes":
        on = (np.floor(u / period) % 2) == 0
    elif mark.texture == "dots":
        fu, fv = (u / period) % 1 - 0.5, (v / period) % 1 - 0.5
        on = fu * fu + fv * fv < 0.09
    elif mark.texture == "checker":
        on = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    elif mark.texture == "halves":
        c = side / 2
        on = (x - c) * math.cos(angle) + (y - c) * math.sin(angle) > 0
    else:  # "rim": drawn by draw_mark (accent outline around the colour)
        on = np.zeros((side, side), bool)
    arr = np.where(on[..., None], accent, colour).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def draw_mark(c: Canvas, mark: Mark, cx: int, cy: int, r: int, angle: float) -> None:
    """Paste a mark of radius ``r`` centred at (cx, cy) onto the canvas."""
    box = (cx - r, cy - r)
    side = 2 * r + 1
    if mark.texture == "rim":
        c.img.paste(mark.accent, box + (box[0] + side, box[1] + side),
                    _shape_mask(mark.shape, r, angle))
        c.img.paste(mark.colour, box + (box[0] + side, box[1] + side),
                    _shape_mask(mark.shape, r, angle, scale=0.6))
    else:
        c.img.paste(_texture(mark, side, angle), box, _shape_mask(mark.shape, r, angle))


def draw_marks(c: Canvas, marks: Sequence[Mark]) -> None:
    """Each mark in its own cell of a 3 x 3 grid (finer for more than nine marks), with
    random offset, size and rotation."""
    n = max(3, math.ceil(math.sqrt(len(marks))))
    cells = c.rng.permutation(n * n)[:len(marks)]
    for mark, cell in zip(marks, cells, strict=True):
        r = max(2, int(c.u(0.21, 0.39) * c.s / n))
        row, col = divmod(int(cell), n)
        cx = int((col + 0.5 + c.u(-0.2, 0.2)) * c.s / n)
        cy = int((row + 0.5 + c.u(-0.2, 0.2)) * c.s / n)
        draw_mark(c, mark, cx, cy, r, c.u(0, 2 * math.pi))


# --------------------------------------------------------------------------- scenes
def _neutral(c: Canvas, y0: int) -> None:
    """A plain ground or backdrop (earth, stone or concrete tones) from row y0 down."""
    grey = c.u(70, 170)
    tint = c.rng.normal(0, 12, size=3)
    top = tuple(int(np.clip(grey + t, 0, 255)) for t in tint)
    c.gradient(top, tuple(max(0, v - 35) for v in top), y0)


def _band(c: Canvas, kind: str, y0: int) -> None:
    """Paint the ground band ``kind`` from row y0 to the bottom."""
    if kind in _WATERS:
        draw_water(c, y0)
    elif kind in {"sand", "beach", "snow"}:
        ground = draw_pale_ground(c, "snow" if kind == "snow" else "sand")
        c.band(y0, y0 + c.px(-0.04, 0.04), ground, wobble=0.015)
    elif kind == "dunes":
        sand = draw_pale_ground(c, "sand")
        c.band(y0, y0 + c.px(-0.06, 0.06), sand, wobble=0.05, n=5)
        shade = tuple(max(0, v - 25) for v in sand)
        y1 = y0 + (c.s - y0) // 3
        c.band(y1, y1 + c.px(-0.06, 0.06), shade, wobble=0.05, n=4)
        c.band(y1 + c.px(0.03, 0.1), y1 + c.px(0.0, 0.15), sand, wobble=0.05, n=4)
    elif kind == "field":
        crop = c.col([(200, 180, 80), (150, 170, 70), (180, 150, 70)][int(c.rng.integers(3))],
                     15)
        c.draw.rectangle([0, y0, c.s, c.s], fill=crop)
        stripe = tuple(max(0, v - 30) for v in crop)
        for k in range(10):
            y = y0 + int((c.s - y0) * (k / 10) ** 1.5)
            c.draw.line([(0, y), (c.s, y)], fill=stripe, width=max(1, c.s // 100))
    elif kind == "grass":
        c.band(y0, y0 + c.px(-0.03, 0.03), c.col(GRASS, 20), wobble=0.01)
    elif kind == "forest":
        c.gradient(c.col((35, 70, 35), 10), c.col((60, 90, 45), 15), y0)
        f = y0 / c.s
        draw_trees(c, f + 0.15, f + 0.35, (5, 10), (0.25, 0.45),
               "pine" if c.chance(0.5) else "round")
    elif kind == "road":
        c.draw.rectangle([0, y0, c.s, c.s], fill=c.col((85, 85, 90), 10))
        y = (y0 + c.s) // 2
        for x in range(c.px(-0.1, 0.0), c.s, c.px(0.15, 0.2)):
            c.draw.rectangle([x, y - 1, x + c.s // 14, y + 1], fill=(230, 230, 200))
    else:  # pragma: no cover - a bug
        raise ValueError(f"no ground band {kind!r}")


def _river(c: Canvas, top: int) -> None:
    """A winding band of water from ``top`` to the bottom edge."""
    x0, x1 = c.px(0.3, 0.7), c.px(0.2, 0.8)
    w0, w1 = c.px(0.03, 0.06), c.px(0.2, 0.35)
    phase, amp = c.u(0, math.pi * 2), c.u(0.03, 0.1) * c.s
    left, right = [], []
    for i in range(11):
        t = i / 10
        y = top + (c.s - top) * t
        xm = x0 + (x1 - x0) * t + amp * math.sin(phase + 3 * t)
        hw = (w0 + (w1 - w0) * t) / 2
        left.append((int(xm - hw), int(y)))
        right.append((int(xm + hw), int(y)))
    c.draw.polygon(left + right[::-1], fill=c.col((45, 105, 170), 18))


def _lighthouse(c: Canvas, base: int) -> None:
    x, w, h = c.px(0.05, 0.85), c.px(0.05, 0.08), c.px(0.25, 0.35)
    for k in range(4):
        fill = (200, 40, 40) if k % 2 == 0 else (240, 240, 240)
        c.draw.rectangle([x, base - h + k * h // 4, x + w, base - h + (k + 1) * h // 4], fill=fill)
    c.draw.rectangle([x - w // 4, base - h - w // 2, x + w + w // 4, base - h],
                     fill=c.col((250, 230, 130), 5))


def _cactus(c: Canvas) -> None:
    x, y, h = c.px(0.05, 0.95), c.px(0.8, 1.0), c.px(0.2, 0.4)
    g, w = c.col((60, 130, 60), 15), max(3, h // 6)
    c.draw.rounded_rectangle([x - w // 2, y - h, x + w // 2, y], radius=w // 2, fill=g)
    c.draw.rounded_rectangle([x - 2 * w, y - h * 2 // 3, x - w, y - h // 3], radius=w // 2, fill=g)
    c.draw.rectangle([x - 2 * w, y - h // 3 - w // 2, x, y - h // 3 + w // 3], fill=g)


def draw_scene(c: Canvas, objects: set[str]) -> None:
    """Compose the scenes-engine ``objects`` (values of :data:`SCENE_LABELS`) into one scene;
    with none, a plain backdrop."""
    o, s = objects, c.s
    unknown = o - set(_OBJECTS)
    if unknown:
        raise ValueError(f"not scenes-engine objects: {sorted(unknown)}")
    sky = bool(o & _SKY_CUES)
    underwater = bool(o & {"fish", "coral"}) and not sky
    grounds = [g for g in _GROUNDS if g in o]
    grounded = bool(grounds) or bool(o & _GROUNDED)
    if underwater:
        horizon = 0
        top = c.col((60, 150, 200), 20)
        c.gradient(top, tuple(max(0, v - 70) for v in top))
    elif sky:
        horizon = s if not grounded else (c.px(0.45, 0.65) if "mountain" in o
                                          else c.px(0.3, 0.55))
        night = bool(o & {"moon", "stars"}) and "sun" not in o
        draw_sky(c, horizon, "night" if night else ("dusk" if c.chance(0.15) else "day"))
    elif o & _TALL:  # a close view: walls fill the frame above the ground
        horizon = c.px(0.65, 0.85)
        wall = c.col((95, 90, 100), 20)
        c.gradient(wall, tuple(max(0, v - 30) for v in wall), 0, horizon)
    else:
        horizon = 0
    f = horizon / s  # horizon as a fraction
    if "stars" in o:
        for _ in range(int(c.rng.integers(15, 40))):
            x, y, r = c.px(0, 1), c.px(0, max(0.05, f - 0.05)), max(1, s // 100)
            c.draw.ellipse([x - r, y - r, x + r, y + r], fill=c.col((240, 240, 220), 15))
    for disc in ("sun", "moon"):
        if disc in o:
            draw_disc(c, horizon)
    if "clouds" in o:
        draw_clouds(c, horizon)
    if "plane" in o:
        draw_plane(c, horizon)
    if "mountain" in o:
        draw_mountains(c, horizon, snowcap="snow" in o)
    if "tower" in o:
        draw_tower(c, horizon)
    if "lighthouse" in o:
        _lighthouse(c, horizon)
    if "building" in o:
        if sky:
            draw_buildings(c, horizon + 2, max(0.02, f - 0.4), max(0.05, f - 0.12))
        else:
            draw_buildings(c, horizon, -0.1, 0.1)

    # ground: bands far to near, or a plain ground under grounded objects
    tops: dict[str, int] = {}
    if grounds and not underwater:
        n = len(grounds)
        for k, kind in enumerate(grounds):
            tops[kind] = horizon if k == 0 else int(horizon + (s - horizon) * (k + c.u(-0.3, 0.3))
                                                    / n)
            # a band at the top edge starts above it: its wobbly edge leaves no gap
            _band(c, kind, tops[kind] if tops[kind] > 0 else -s // 10)
    elif underwater:
        floor = c.px(0.8, 0.95)
        c.band(floor, floor + c.px(-0.05, 0.05), c.col((190, 175, 130), 20), wobble=0.02)
    elif horizon < s and (grounded or not sky):
        _neutral(c, horizon)
    ground = min(max(f, 0.3), 0.6)  # upper edge of where grounded objects stand
    water_top = min((tops[w] for w in _WATERS if w in tops), default=None)

    if "river" in o:
        _river(c, horizon)
    if "path" in o:
        x, y = c.px(0.35, 0.65), c.px(ground, ground + 0.2)
        c.draw.polygon([(x - c.px(0.02, 0.04), y), (x + c.px(0.02, 0.04), y),
                        (x + c.px(0.15, 0.3), s), (x - c.px(0.15, 0.3), s)],
                       fill=c.col((170, 145, 100), 15))
    if "bridge" in o:
        draw_bridge(c, (water_top or horizon) + c.px(0.05, 0.15))
    if "tree" in o:  # on the far shore when the ground starts with water
        lo = ground + (0.01 if water_top == horizon else 0.05)
        draw_trees(c, lo, lo + (0.08 if water_top == horizon else 0.25), (1, 5), (0.2, 0.4))
    for kind, wall, roof in (("barn", (170, 40, 35), (90, 30, 25)),
                             ("house", (225, 215, 195), (110, 60, 45))):
        if kind in o:
            draw_house(c, c.px(0.0, 0.75), horizon + c.px(0.04, 0.12), c.px(0.14, 0.24),
                   c.col(wall, 15), c.col(roof, 15))
    if "rock" in o:
        draw_rocks(c, ground + 0.1, 0.95, (0.05, 0.1))
    if "boat" in o:
        lo = (water_top if water_top is not None else int(ground * s)) + 4
        draw_boats(c, lo, max(lo + 2, s - 4), (0.1, 0.25), (1, 3))
    if "fence" in o:
        draw_fence(c, c.px(0.88, 1.0))
    if "cactus" in o:
        for _ in range(int(c.rng.integers(1, 3))):
            _cactus(c)
    for kind in ("cow", "horse", "sheep", "deer", "camel"):
        if kind in o:
            draw_herd(c, kind, ground + 0.1, 0.85, (0.12, 0.22))
    if "palm" in o:
        draw_tree(c, c.px(-0.05, 0.2) if c.chance(0.5) else c.px(0.8, 1.05), c.px(0.85, 1.0),
              c.px(0.45, 0.7), "palm")
    if "people" in o:
        draw_people(c, ground + 0.1, 0.98, (0.12, 0.25))
    if "bus" in o:
        draw_vehicle(c, c.px(-0.1, 0.6), c.px(0.93, 0.99), c.px(0.35, 0.5), "bus")
    if "car" in o:
        for _ in range(int(c.rng.integers(1, 3))):
            draw_vehicle(c, c.px(-0.15, 0.9), c.px(0.9, 0.99), c.px(0.18, 0.3), "car")
    if "flower" in o:
        draw_flowers(c, ground + 0.2, 1.0, (6, 18))
    if "butterfly" in o:
        draw_butterfly(c, 0.8)
    if "coral" in o:
        draw_coral(c, c.px(0.85, 1.0))
    if "fish" in o:
        colour = c.col([(250, 140, 30), (250, 220, 50), (60, 200, 220), (230, 80, 120)]
                       [int(c.rng.integers(4))], 20)
        lo = 0.1 if underwater else (water_top / s if water_top is not None else ground)
        for _ in range(int(c.rng.integers(1, 6))):
            draw_fish(c, c.px(-0.03, 1.03), c.px(min(lo + 0.05, 0.8), 0.85), c.px(0.06, 0.14),
                  colour)
    if "bird" in o:
        draw_birds(c, horizon if sky and horizon < s else c.px(0.3, 0.6))


def render(rng: np.random.Generator, objects: set[str], marks: Sequence[Mark],
           size: tuple[int, int]) -> Image.Image:
    """One stand-in image of ``size`` (width, height): the scene, the marks, photometric
    variation. Uses only ``rng`` for randomness."""
    c = Canvas(CANVAS_SIZE, rng)
    draw_scene(c, objects)
    draw_marks(c, marks)
    img = c.img.resize(size, Image.Resampling.BOX)
    arr = np.asarray(img, dtype=np.float32)
    mean = float(arr.mean())
    contrast, exposure = rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.1)
    cast = rng.normal(0, 5, size=3).astype(np.float32)
    sigma = np.float32(rng.uniform(2, 5))
    arr = (arr - mean) * np.float32(contrast) + np.float32(mean * exposure) + cast
    # sensor noise: uniform with standard deviation sigma (four times cheaper than normal)
    noise = rng.random(arr.shape, dtype=np.float32) - np.float32(0.5)
    arr += noise * (sigma * np.float32(12**0.5))
    np.rint(arr, out=arr)
    return Image.fromarray(np.clip(arr, 0, 255, out=arr).astype(np.uint8), "RGB")
