"""Draw ``framework/sample_crowds/``: synthetic scenes of known people counts, 0 to 400, from CC0 / public-domain faces.

Each scene is a sky with a skyline over a ground, and ``n`` small people on it: a head (an oval crop of one of the
three portrait faces, scaled and tinted) on a coloured body, in rows from the back (small) to the front (big). Every
head is whole and none hides another, so the count is exact. Backgrounds, skylines, aspect ratios and palettes vary
by seed so that no two scenes look alike to the emulator's perceptual hash. Used by ``make_sample_images.py``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

#: (people, seed, width, height): 11 scenes below the adaptive demo's threshold of 20 people, 9 at or above it.
CROWDS: list[tuple[int, int, int, int]] = [
    (0, 101, 800, 533),
    (1, 102, 640, 800),
    (2, 103, 800, 600),
    (3, 104, 800, 450),
    (4, 105, 600, 800),
    (5, 106, 800, 533),
    (7, 107, 800, 600),
    (9, 108, 800, 450),
    (12, 109, 800, 600),
    (15, 110, 720, 720),
    (19, 111, 800, 533),
    (24, 112, 800, 600),
    (32, 113, 800, 450),
    (48, 114, 600, 800),
    (64, 115, 800, 533),
    (96, 116, 800, 600),
    (130, 117, 800, 533),
    (164, 118, 800, 600),
    (220, 119, 800, 450),
    (300, 120, 800, 600),
    (400, 121, 800, 600),
]

SKIN_TINTS = [(1.0, 1.0, 1.0), (1.08, 0.96, 0.88), (0.82, 0.7, 0.6), (0.62, 0.5, 0.42), (1.05, 1.0, 0.95)]


def file_name(people: int) -> str:
    """The scene's file name: its count, zero-padded so that names sort by count."""
    return f"crowd_{people:03d}.jpg"


@dataclass(frozen=True)
class Person:
    row: int
    x: float  # head centre
    y: float  # top of the head
    head_h: float


def _mix(a: tuple[int, ...], b: tuple[int, ...], t: float) -> tuple[int, ...]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _color(rng: random.Random, lo: int = 20, hi: int = 235) -> tuple[int, int, int]:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def _background(size: tuple[int, int], horizon: int, rng: random.Random) -> Image.Image:
    """Sky gradient, a skyline of blocks, a ground gradient with a few stripes."""
    width, height = size
    canvas = Image.new("RGB", size)
    draw = ImageDraw.Draw(canvas)
    sky_top, sky_low = _color(rng, 60, 230), _color(rng, 120, 250)
    ground_far, ground_near = _color(rng, 60, 200), _color(rng, 30, 170)
    for y in range(height):
        if y < horizon:
            c = _mix(sky_top, sky_low, y / max(1, horizon))
        else:
            c = _mix(ground_far, ground_near, (y - horizon) / max(1, height - horizon))
        draw.line([(0, y), (width, y)], fill=c)
    x = -rng.randint(0, 40)
    while x < width:  # skyline: blocks standing on the horizon
        w = rng.randint(width // 24, width // 6)
        h = rng.randint(horizon // 5, max(horizon // 5 + 1, int(horizon * 0.95)))
        draw.rectangle([x, horizon - h, x + w, horizon], fill=_color(rng, 30, 200))
        for wy in range(horizon - h + 8, horizon - 6, 14):  # windows
            if rng.random() < 0.6:
                draw.line([(x + 4, wy), (x + w - 4, wy)], fill=_color(rng, 150, 255), width=3)
        x += w + rng.randint(-6, 30)
    for _ in range(rng.randint(2, 6)):  # paving stripes, converging
        x0 = rng.uniform(0, width)
        draw.line([(x0, horizon), (x0 + rng.uniform(-1.5, 1.5) * width, height)], fill=_color(rng, 40, 220), width=3)
    return canvas


def _layout(n: int, width: int, horizon: int, height: int, rng: random.Random) -> list[Person]:
    """``n`` people on the ground in rows, back rows smaller; heads never overlap."""
    if n == 0:
        return []
    ground = height - horizon
    # Rows x columns of slots over the ground, about as wide as tall; perspective: row heights grow to the front.
    cols = max(1, min(n, round(math.sqrt(n * width / ground * 0.9))))
    rows = math.ceil(n / cols)
    weights = [0.7 + 0.6 * (r / max(1, rows - 1)) for r in range(rows)]
    unit = (ground - 4) / sum(weights)
    slots = list(range(rows * cols))
    rng.shuffle(slots)
    chosen = sorted(slots[:n])  # which slots hold someone (the last row may be partly empty)
    people = []
    top = horizon + 2.0
    row_tops = []
    for w in weights:
        row_tops.append(top)
        top += w * unit
    for slot in chosen:
        r, c = divmod(slot, cols)
        slot_w, slot_h = width / cols, weights[r] * unit
        head_h = min(0.55 * slot_h, 1.05 * slot_w, height * 0.3)
        head_h *= rng.uniform(0.8, 0.95)
        x = (c + 0.5) * slot_w + rng.uniform(-0.12, 0.12) * (slot_w - 0.8 * head_h)
        y = row_tops[r] + rng.uniform(0.0, 0.1) * slot_h
        people.append(Person(r, x, y, head_h))
    return people


def _head(face: Image.Image, head_h: float, rng: random.Random) -> tuple[Image.Image, Image.Image]:
    """A face scaled to ``head_h`` tall (0.8 as wide), tinted, with an oval mask."""
    h = max(6, round(head_h))
    w = max(5, round(head_h * 0.8))
    head = face.resize((w, h), Image.LANCZOS)
    if rng.random() < 0.5:
        head = head.transpose(Image.FLIP_LEFT_RIGHT)
    r, g, b = rng.choice(SKIN_TINTS)
    head = Image.merge("RGB", [ch.point(lambda v, k=k: min(255, int(v * k))) for ch, k in zip(head.split(), (r, g, b))])
    head = ImageEnhance.Brightness(head).enhance(rng.uniform(0.85, 1.15))
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).ellipse([0, 0, w - 1, h - 1], fill=255)
    return head, mask


def draw_crowd(people: int, seed: int, size: tuple[int, int], faces: list[Image.Image]) -> Image.Image:
    """A scene of exactly ``people`` people (see the module docstring)."""
    rng = random.Random(seed)
    width, height = size
    horizon = int(height * rng.uniform(0.22, 0.42))
    canvas = _background(size, horizon, rng)
    draw = ImageDraw.Draw(canvas)
    crowd = _layout(people, width, horizon, height, rng)
    for row in sorted({p.row for p in crowd}):  # back rows first; in a row, the bodies, then the heads over them
        members = [p for p in crowd if p.row == row]
        for p in members:
            bw, bh = p.head_h * 0.8 * 1.9, p.head_h * 1.6
            body_top = p.y + p.head_h * 0.82
            box = [p.x - bw / 2, body_top, p.x + bw / 2, body_top + bh]
            draw.rounded_rectangle(box, radius=max(1, int(bw / 3)), fill=_color(rng))
        for p in members:
            head, mask = _head(rng.choice(faces), p.head_h, rng)
            canvas.paste(head, (round(p.x - head.width / 2), round(p.y)), mask)
    return canvas.filter(ImageFilter.SMOOTH) if people >= 100 else canvas
