"""The dozen scene types of the embedded dataset and its vocabulary.

Each ``_scene_<type>`` function draws one scene on a :class:`lib.data.drawn.painting.Canvas` (layout:
sky, horizon, ground; then optional objects with given probabilities, at most
:data:`lib.data.drawn.painting.MAX_LABELS` labels) and returns its labels. :data:`SCENES` weights the
types (long-tailed), :data:`IMPLIED` lists the hidden labels of variant ``"implied"``, and
:data:`LABELS` is the vocabulary. :mod:`lib.data.drawn.synth` draws images and datasets from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lib.data.drawn.painting import (
    GRASS,
    WATER,
    Canvas,
    draw_bench,
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
    pick_labels,
)


# --------------------------------------------------------------------------- scenes
def _scene_beach(c: Canvas) -> list[str]:
    base = ["sky", "sea", "beach"]
    o = pick_labels(c, {"sun": 0.3, "clouds": 0.4, "people": 0.3, "palm": 0.2, "boat": 0.2,
                  "bird": 0.15, "umbrella": 0.06, "rock": 0.08}, len(base))
    horizon, shore = c.px(0.3, 0.5), c.px(0.6, 0.8)
    draw_sky(c, horizon, "dusk" if c.chance(0.15) else "day")
    if "sun" in o:
        draw_disc(c, horizon)
    if "clouds" in o:
        draw_clouds(c, horizon)
    draw_water(c, horizon)
    if "boat" in o:
        draw_boats(c, horizon + 2, shore - 4, (0.07, 0.16), (1, 3))
    c.band(shore, shore + c.px(-0.08, 0.08), draw_pale_ground(c, "sand"), wobble=0.015)
    if "rock" in o:
        draw_rocks(c, shore / c.s, shore / c.s + 0.1, (0.04, 0.09))
    if "umbrella" in o:
        with c.faint("umbrella"):
            x, y, r = c.px(0.1, 0.9), c.px(0.8, 0.95), c.px(0.07, 0.12)
            c.draw.line([(x, y), (x, y - 2 * r)], fill=(90, 70, 50), width=max(1, r // 8))
            c.draw.pieslice([x - r, y - 3 * r, x + r, y - r], 180, 360,
                            fill=c.col((230, 50, 60), 25))
    if "people" in o:
        draw_people(c, 0.75, 0.97, (0.1, 0.22))
    if "palm" in o:
        draw_tree(c, c.px(-0.05, 0.2) if c.chance(0.5) else c.px(0.8, 1.05), c.px(0.85, 1.0),
              c.px(0.45, 0.7), "palm")
    if "bird" in o:
        draw_birds(c, horizon - c.px(0.03, 0.06))
    return base + sorted(o)


def _scene_harbour(c: Canvas) -> list[str]:
    base = ["sky", "water", "boat"]
    o = pick_labels(c, {"building": 0.45, "clouds": 0.3, "bird": 0.3, "bridge": 0.15, "sun": 0.12,
                  "lighthouse": 0.06, "people": 0.08}, len(base))
    horizon = c.px(0.3, 0.5)
    draw_sky(c, horizon, "dusk" if c.chance(0.2) else "day")
    if "sun" in o:
        draw_disc(c, horizon)
    if "clouds" in o:
        draw_clouds(c, horizon)
    if "building" in o:
        draw_buildings(c, horizon + 2, horizon / c.s - 0.2, horizon / c.s - 0.05)
    if "lighthouse" in o:
        x, w, h = c.px(0.05, 0.85), c.px(0.05, 0.08), c.px(0.25, 0.35)
        for k in range(4):
            fill = (200, 40, 40) if k % 2 == 0 else (240, 240, 240)
            c.draw.rectangle([x, horizon - h + k * h // 4, x + w, horizon - h + (k + 1) * h // 4],
                             fill=fill)
        c.draw.rectangle([x - w // 4, horizon - h - w // 2, x + w + w // 4, horizon - h],
                         fill=c.col((250, 230, 130), 5))
    draw_water(c, horizon)
    if "bridge" in o:
        draw_bridge(c, horizon + c.px(0.05, 0.12))
    draw_boats(c, horizon + c.px(0.1, 0.15), c.s - 2, (0.15, 0.4), (1, 4))
    if "people" in o:
        pier = c.px(0.85, 0.93)
        c.draw.rectangle([0, pier, c.s, c.s], fill=c.col((120, 95, 70), 15))
        draw_people(c, 0.95, 1.0, (0.1, 0.2))
    if "bird" in o:
        draw_birds(c, horizon + c.px(0.0, 0.2))
    return base + sorted(o)


def _scene_lake(c: Canvas) -> list[str]:
    base = ["sky", "lake"]
    o = pick_labels(c, {"tree": 0.65, "mountain": 0.4, "grass": 0.35, "boat": 0.15, "clouds": 0.3,
                  "bird": 0.12, "house": 0.12, "sun": 0.1}, len(base))
    horizon = c.px(0.3, 0.45)
    draw_sky(c, horizon, "dusk" if c.chance(0.15) else "day")
    if "sun" in o:
        draw_disc(c, horizon)
    if "clouds" in o:
        draw_clouds(c, horizon)
    if "mountain" in o:
        draw_mountains(c, horizon, snowcap=False)
    shore = horizon + c.px(0.04, 0.08)
    c.band(horizon, horizon + c.px(-0.03, 0.03), c.col((55, 95, 50), 15), bottom=shore,
           wobble=0.01)
    if "tree" in o:
        draw_trees(c, horizon / c.s + 0.02, shore / c.s, (4, 10), (0.08, 0.16),
               "pine" if c.chance(0.5) else "round")
    if "house" in o:
        draw_house(c, c.px(0.05, 0.8), shore - 1, c.px(0.07, 0.12), c.col((220, 210, 190), 20),
               c.col((90, 50, 40), 20))
    near = c.px(0.78, 0.95) if "grass" in o else c.s
    draw_water(c, shore, near)
    if "boat" in o:
        draw_boats(c, shore + c.px(0.05, 0.1), near - 2, (0.1, 0.2), (1, 2))
    if "grass" in o:
        c.band(near, near + c.px(-0.05, 0.05), c.col(GRASS, 20), wobble=0.015)
    if "bird" in o:
        draw_birds(c, horizon)
    return base + sorted(o)


def _scene_river(c: Canvas) -> list[str]:
    base = ["river", "grass"]
    o = pick_labels(c, {"sky": 0.7, "tree": 0.5, "bridge": 0.25, "house": 0.15, "cow": 0.1,
                  "fence": 0.1, "bird": 0.08}, len(base))
    horizon = c.px(0.25, 0.4) if "sky" in o else 0
    draw_sky(c, max(horizon, 1))
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
        draw_bridge(c, y)
    if "tree" in o:
        draw_trees(c, horizon / c.s + 0.05, 0.95, (2, 6), (0.15, 0.3))
    if "house" in o:
        draw_house(c, c.px(0.0, 0.8), c.px(horizon / c.s + 0.1, 0.7), c.px(0.1, 0.16),
               c.col((220, 210, 190), 20), c.col((90, 50, 40), 20))
    if "fence" in o:
        draw_fence(c, c.px(0.85, 1.0))
    if "cow" in o:
        draw_herd(c, "cow", horizon / c.s + 0.1, 0.85, (0.1, 0.18))
    if "bird" in o:
        draw_birds(c, max(horizon, c.px(0.2, 0.3)))
    return sorted(base + sorted(o))


def _scene_forest(c: Canvas) -> list[str]:
    base = ["forest", "tree"]
    o = pick_labels(c, {"sky": 0.35, "grass": 0.4, "path": 0.2, "deer": 0.1, "mushroom": 0.05,
                  "bird": 0.08}, len(base))
    horizon = c.px(0.15, 0.3) if "sky" in o else 0
    draw_sky(c, max(horizon, 1))
    floor = c.col(GRASS, 20) if "grass" in o else c.col((95, 80, 55), 15)
    c.gradient(c.col((35, 70, 35), 10), floor, horizon)
    kind = "pine" if c.chance(0.5) else "round"
    draw_trees(c, 0.45, 0.75, (6, 12), (0.35, 0.6), kind)
    if "path" in o:
        x = c.px(0.35, 0.65)
        c.draw.polygon([(x - c.px(0.02, 0.04), c.px(0.6, 0.7)), (x + c.px(0.02, 0.04),
                        c.px(0.6, 0.7)), (x + c.px(0.15, 0.3), c.s), (x - c.px(0.15, 0.3), c.s)],
                       fill=c.col((170, 145, 100), 15))
    if "deer" in o:
        draw_herd(c, "deer", 0.65, 0.85, (0.12, 0.2))
    draw_trees(c, 0.85, 1.1, (2, 5), (0.5, 0.9), kind)
    if "mushroom" in o:
        with c.faint("mushroom"):
            for _ in range(int(c.rng.integers(1, 4))):
                x, y, r = c.px(0.05, 0.95), c.px(0.88, 0.98), c.px(0.02, 0.04)
                c.draw.rectangle([x - r // 3, y - r, x + r // 3, y], fill=(235, 230, 215))
                c.draw.pieslice([x - r, y - 2 * r, x + r, y], 180, 360,
                                fill=c.col((200, 40, 35), 15))
    if "bird" in o:
        draw_birds(c, c.px(0.1, 0.3))
    return sorted(base + sorted(o))


def _scene_city(c: Canvas) -> list[str]:
    base = ["building"]
    o = pick_labels(c, {"sky": 0.65, "road": 0.6, "car": 0.55, "bus": 0.08, "people": 0.22,
                  "tower": 0.15, "clouds": 0.25, "tree": 0.15, "plane": 0.05, "bird": 0.08},
              len(base), requires={"car": "road", "bus": "road", "clouds": "sky",
                                   "plane": "sky", "tower": "sky", "bird": "sky"})
    horizon = c.px(0.7, 0.85) if "road" in o else c.s
    if "sky" in o:
        draw_sky(c, horizon)
    else:  # a close view: walls of buildings fill the frame
        wall = c.col((95, 90, 100), 20)
        c.gradient(wall, tuple(max(0, v - 30) for v in wall), 0, horizon)
    if "clouds" in o:
        draw_clouds(c, c.px(0.3, 0.4))
    if "plane" in o:
        draw_plane(c, c.px(0.3, 0.4))
    if "tower" in o:
        draw_tower(c, horizon)
    if "sky" in o:
        draw_buildings(c, horizon, 0.2, 0.55)
    else:
        draw_buildings(c, horizon, -0.1, 0.1)
    if "bird" in o:
        draw_birds(c, c.px(0.2, 0.35))
    if "road" in o:
        c.draw.rectangle([0, horizon, c.s, c.s], fill=c.col((85, 85, 90), 10))
        y = (horizon + c.s) // 2
        for x in range(c.px(-0.1, 0.0), c.s, c.px(0.15, 0.2)):
            c.draw.rectangle([x, y - 1, x + c.s // 14, y + 1], fill=(230, 230, 200))
    if "tree" in o:
        draw_trees(c, horizon / c.s - 0.01, horizon / c.s + 0.01, (1, 4), (0.15, 0.3))
    if "people" in o:
        draw_people(c, horizon / c.s, min(1.0, horizon / c.s + 0.1), (0.1, 0.2))
    if "bus" in o:
        draw_vehicle(c, c.px(-0.1, 0.6), c.px(0.93, 0.99), c.px(0.35, 0.5), "bus")
    if "car" in o:
        with c.faint("car"):
            for _ in range(int(c.rng.integers(1, 3))):
                draw_vehicle(c, c.px(-0.15, 0.9), c.px(0.9, 0.99), c.px(0.18, 0.3), "car")
    if c.chance(0.35):  # a near building at the edge, hiding part of the street
        w = c.px(0.15, 0.3)
        x = -c.px(0.0, 0.05) if c.chance(0.5) else c.s - w
        grey = c.col((110, 105, 115), 30)
        c.draw.rectangle([x, c.px(0.0, 0.2), x + w, c.s], fill=grey)
    return sorted(base + sorted(o))


def _scene_mountain(c: Canvas) -> list[str]:
    base = ["mountain", "sky", "snow"]
    o = pick_labels(c, {"clouds": 0.4, "tree": 0.35, "rock": 0.2, "sun": 0.15, "people": 0.07},
              len(base))
    horizon = c.px(0.55, 0.75)
    draw_sky(c, horizon, "dusk" if c.chance(0.1) else "day")
    if "sun" in o:
        draw_disc(c, horizon - c.px(0.15, 0.25))
    if "clouds" in o:
        draw_clouds(c, horizon - c.px(0.15, 0.3))
    draw_mountains(c, horizon, snowcap=True)
    c.band(horizon, horizon + c.px(-0.05, 0.05), draw_pale_ground(c, "snow"), wobble=0.02)
    if "rock" in o:
        draw_rocks(c, horizon / c.s + 0.05, 0.95, (0.05, 0.1))
    if "tree" in o:
        draw_trees(c, horizon / c.s + 0.02, 0.98, (2, 7), (0.12, 0.3), "pine")
    if "people" in o:
        draw_people(c, horizon / c.s + 0.1, 0.98, (0.08, 0.16))
    return sorted(base + sorted(o))


def _scene_underwater(c: Canvas) -> list[str]:
    base = ["water"]
    o = pick_labels(c, {"fish": 0.85, "coral": 0.7, "reef": 0.2, "rock": 0.15, "shark": 0.07,
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
                draw_fish(c, c.px(0.0, 1.0), c.px(0.6, 0.9), c.px(0.06, 0.12), fishes)
    if "rock" in o:
        draw_rocks(c, floor / c.s, floor / c.s + 0.05, (0.06, 0.12))
    if "coral" in o:
        draw_coral(c, floor)
    if "fish" in o:
        with c.faint("fish"):
            for _ in range(n_fish - n_fish // 2):
                draw_fish(c, c.px(-0.03, 1.03), c.px(0.1, 0.8), c.px(0.06, 0.14), fishes)
    if "shark" in o:
        draw_fish(c, c.px(0.1, 0.9), c.px(0.15, 0.5), c.px(0.35, 0.55), c.col((120, 130, 140), 10))
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
    o = pick_labels(c, {"sky": 0.6, "tree": 0.4, "fence": 0.3, "house": 0.18, "butterfly": 0.07,
                  "bench": 0.06, "people": 0.08, "bird": 0.06}, len(base))
    horizon = c.px(0.3, 0.5) if "sky" in o else 0
    draw_sky(c, max(horizon, 1))
    c.gradient(c.col((90, 150, 60), 20), c.col(GRASS, 20), horizon)
    if "house" in o:
        draw_house(c, c.px(0.0, 0.7), horizon + c.px(0.05, 0.1), c.px(0.2, 0.35),
               c.col((230, 220, 200), 20), c.col((150, 60, 45), 20))
    if "tree" in o:
        draw_trees(c, horizon / c.s + 0.1, horizon / c.s + 0.3, (1, 4), (0.25, 0.45))
    if "fence" in o:
        draw_fence(c, horizon + c.px(0.12, 0.25))
    if "bench" in o:
        draw_bench(c, c.px(0.75, 0.9))
    if "people" in o:
        draw_people(c, 0.7, 0.95, (0.2, 0.35))
    draw_flowers(c, horizon / c.s + 0.25, 1.0, (6, 20))
    if "butterfly" in o:
        draw_butterfly(c, 0.8)
    if "bird" in o:
        draw_birds(c, max(horizon, c.px(0.15, 0.3)))
    return sorted(base + sorted(o))


def _scene_night(c: Canvas) -> list[str]:
    base = ["sky"]
    o = pick_labels(c, {"moon": 0.75, "stars": 0.55, "building": 0.45, "lights": 0.7, "tree": 0.15,
                  "water": 0.1}, len(base), requires={"lights": "building"})
    horizon = c.px(0.6, 0.85)
    draw_sky(c, c.s, "night")
    if "stars" in o:
        with c.faint("stars"):
            for _ in range(int(c.rng.integers(15, 40))):
                x, y = c.px(0, 1), c.px(0, horizon / c.s)
                r = max(1, c.s // 100)
                c.draw.ellipse([x - r, y - r, x + r, y + r], fill=c.col((240, 240, 220), 15))
    if "moon" in o:
        draw_disc(c, horizon)
    ground = c.col((15, 18, 25), 6)
    c.draw.rectangle([0, horizon, c.s, c.s], fill=ground)
    if "building" in o:
        draw_buildings(c, horizon, 0.3, 0.6, lit="lights" in o)
    if "tree" in o:
        for _ in range(int(c.rng.integers(1, 4))):
            draw_tree(c, c.px(-0.05, 1.05), horizon + 2, c.px(0.2, 0.4), leaf=(10, 20, 15))
    if "water" in o:
        y = c.px(horizon / c.s + 0.03, 0.95)
        base_c = c.col((25, 40, 70), 10)
        c.gradient(base_c, tuple(max(0, v - 15) for v in base_c), y)
    return sorted(base + sorted(o))


def _scene_desert(c: Canvas) -> list[str]:
    base = ["sky", "sand"]
    o = pick_labels(c, {"sun": 0.5, "dunes": 0.5, "cactus": 0.3, "rock": 0.25, "camel": 0.12,
                  "clouds": 0.1}, len(base))
    horizon = c.px(0.4, 0.6)
    draw_sky(c, horizon, "dusk" if c.chance(0.2) else "day")
    if "sun" in o:
        draw_disc(c, horizon)
    if "clouds" in o:
        draw_clouds(c, horizon)
    sand = draw_pale_ground(c, "sand")
    if "dunes" in o:
        c.band(horizon, horizon + c.px(-0.1, 0.1), sand, wobble=0.06, n=5)
        shade = tuple(max(0, v - 25) for v in sand)
        c.band(horizon + c.px(0.1, 0.2), horizon + c.px(0.1, 0.3), shade, wobble=0.05, n=4)
        c.band(horizon + c.px(0.15, 0.25), horizon + c.px(0.15, 0.35), sand, wobble=0.05, n=4)
    else:
        c.draw.rectangle([0, horizon, c.s, c.s], fill=sand)
    if "rock" in o:
        draw_rocks(c, horizon / c.s + 0.05, 0.95, (0.05, 0.12))
    if "cactus" in o:
        for _ in range(int(c.rng.integers(1, 3))):
            x, y, h = c.px(0.05, 0.95), c.px(0.75, 1.0), c.px(0.2, 0.4)
            g, w = c.col((60, 130, 60), 15), max(3, h // 6)
            c.draw.rounded_rectangle([x - w // 2, y - h, x + w // 2, y], radius=w // 2, fill=g)
            c.draw.rounded_rectangle([x - 2 * w, y - h * 2 // 3, x - w, y - h // 3],
                                     radius=w // 2, fill=g)
            c.draw.rectangle([x - 2 * w, y - h // 3 - w // 2, x, y - h // 3 + w // 3], fill=g)
    if "camel" in o:
        draw_herd(c, "camel", horizon / c.s + 0.1, 0.85, (0.15, 0.25))
    return sorted(base + sorted(o))


def _scene_farm(c: Canvas) -> list[str]:
    base = ["field", "sky"]
    o = pick_labels(c, {"grass": 0.3, "tree": 0.3, "fence": 0.3, "cow": 0.25, "barn": 0.22,
                  "house": 0.15, "horse": 0.14, "clouds": 0.3, "sun": 0.12, "sheep": 0.07},
              len(base))
    horizon = c.px(0.35, 0.5)
    draw_sky(c, horizon)
    if "sun" in o:
        draw_disc(c, horizon)
    if "clouds" in o:
        draw_clouds(c, horizon)
    crop = c.col([(200, 180, 80), (150, 170, 70), (180, 150, 70)][int(c.rng.integers(3))], 15)
    c.draw.rectangle([0, horizon, c.s, c.s], fill=crop)
    stripe = tuple(max(0, v - 30) for v in crop)
    for k in range(12):
        y = horizon + int((c.s - horizon) * (k / 12) ** 1.5)
        c.draw.line([(0, y), (c.s, y)], fill=stripe, width=max(1, c.s // 100))
    if "tree" in o:
        draw_trees(c, horizon / c.s - 0.01, horizon / c.s + 0.02, (1, 5), (0.1, 0.2))
    for kind, wall, roof in (("barn", (170, 40, 35), (90, 30, 25)),
                             ("house", (225, 215, 195), (110, 60, 45))):
        if kind in o:
            w = c.px(0.15, 0.25) if kind == "barn" else c.px(0.12, 0.2)
            draw_house(c, c.px(0.0, 0.8), horizon + c.px(0.02, 0.05), w, c.col(wall, 15),
                   c.col(roof, 15))
    grass_top = c.px(0.75, 0.85) if "grass" in o else c.s
    if "grass" in o:
        c.band(grass_top, grass_top + c.px(-0.04, 0.04), c.col(GRASS, 20), wobble=0.01)
    for kind in ("cow", "horse", "sheep"):
        if kind in o:
            with c.faint(kind):
                draw_herd(c, kind, horizon / c.s + 0.1, 0.8, (0.12, 0.22))
    if "fence" in o:
        draw_fence(c, c.px(0.88, 1.0))
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
