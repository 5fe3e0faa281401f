"""Draw ``framework/sample_receipts/``: synthetic shop receipts with known fields, for an OCR + JSON extraction demo.

Each receipt is a strip of paper with a (fictional) shop's name, a date, a few line items with prices and a total,
photographed on a table: turned a few degrees, at a varied place and size, on a varied table colour, so that no two
look alike to the emulator's perceptual hash. Prices are whole cents, so the total is exactly the sum of the items.
The only font is Pillow's bundled default (``ImageFont.load_default(size=...)``: Aileron Regular, CC0), so the set
is licence-clean and draws the same on any machine with the same Pillow. ``labels.json`` holds each receipt's
fields as an object: ``{"shop": ..., "date": "2026-11-03", "total": 23.45, "items": 3}``.

    python tools/sample_receipts.py [--out DIR]       (also run by make_sample_images.py)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "framework" / "sample_receipts"
QUALITY = 85
#: (seed, number of line items): one receipt each.
RECEIPTS: list[tuple[int, int]] = [
    (201, 3),
    (202, 2),
    (203, 5),
    (204, 4),
    (205, 1),
    (206, 6),
    (207, 3),
    (208, 4),
    (209, 2),
    (210, 5),
]
SHOPS = [
    ("Corner Bakery", "12 Mill Lane", ["Sourdough loaf", "Croissant", "Rye bread", "Cinnamon roll", "Baguette"]),
    ("Green Grocer", "4 Market Square", ["Apples 1kg", "Bananas", "Carrots", "Tomatoes", "Spinach", "Lemons"]),
    ("Blue Door Cafe", "88 Harbour Road", ["Espresso", "Cappuccino", "Flat white", "Muffin", "Orange juice"]),
    ("Page & Quill Books", "3 Abbey Street", ["Paperback novel", "Notebook A5", "Bookmark", "Atlas", "Pen set"]),
    ("Hilltop Hardware", "27 Forge Road", ["Screws 100pc", "Hammer", "Paint brush", "Tape measure", "Light bulb"]),
    ("Sunny Side Deli", "9 Station Road", ["Cheddar 200g", "Olives", "Salami", "Hummus", "Pita bread", "Salad"]),
    ("Riverside Pharmacy", "51 Bridge Street", ["Plasters", "Sun cream", "Toothpaste", "Vitamin C", "Tissues"]),
    ("Moonlight Pizza", "140 High Street", ["Margherita", "Garlic bread", "Lemonade", "Tiramisu", "Pepperoni"]),
]
TABLES = [(96, 64, 44), (58, 74, 92), (120, 120, 116), (44, 82, 60), (140, 98, 70), (70, 56, 88), (30, 34, 40)]


@dataclass(frozen=True)
class Receipt:
    """What one receipt says: its labels are ``shop``, ``date``, ``total`` and ``items`` (the number of lines)."""

    file: str
    shop: str
    address: str
    date: dt.date
    lines: tuple[tuple[str, int], ...]  # (item, price in cents)

    @property
    def total_cents(self) -> int:
        return sum(cents for _, cents in self.lines)

    def label(self) -> dict[str, object]:
        return {
            "shop": self.shop,
            "date": self.date.isoformat(),
            "total": self.total_cents / 100,
            "items": len(self.lines),
        }


def make_receipt(index: int, seed: int, items: int) -> Receipt:
    rng = random.Random(seed)
    shop, address, goods = SHOPS[index % len(SHOPS)]
    date = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(330))
    chosen = rng.sample(goods, min(items, len(goods)))
    lines = tuple((name, rng.randrange(59, 2400)) for name in chosen)
    return Receipt(f"receipt_{index + 1:02d}.jpg", shop, address, date, lines)


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def draw_receipt(receipt: Receipt, seed: int) -> Image.Image:
    """The receipt on paper, turned and placed on a table (deterministic for a seed)."""
    rng = random.Random(seed * 7 + 1)
    big, body, small = (ImageFont.load_default(size=s) for s in (30, 20, 15))
    width = rng.choice([320, 340, 360, 380])
    rows: list[tuple[str, str, ImageFont.FreeTypeFont | ImageFont.ImageFont, str]] = [
        (receipt.shop, "", big, "center"),
        (receipt.address, "", small, "center"),
        ("", "", small, "gap"),
        (
            receipt.date.strftime("%d %b %Y") if seed % 2 else receipt.date.isoformat(),
            f"{rng.randrange(8, 20)}:{rng.randrange(60):02d}",
            body,
            "split",
        ),
        ("-" * 40, "", small, "rule"),
    ]
    rows += [(name, _money(cents), body, "split") for name, cents in receipt.lines]
    rows += [
        ("-" * 40, "", small, "rule"),
        ("TOTAL", _money(receipt.total_cents), big, "split"),
        ("", "", small, "gap"),
        (rng.choice(["Thank you!", "Thanks for shopping with us", "See you soon"]), "", small, "center"),
    ]
    heights = {"gap": 14, "rule": 20}
    height = 40 + sum(heights.get(kind, int(font.size * 1.5)) for _, _, font, kind in rows)  # type: ignore[union-attr]
    paper = Image.new("RGB", (width, height), tuple(rng.randrange(238, 256) for _ in range(3)))  # type: ignore[arg-type]
    draw = ImageDraw.Draw(paper)
    ink = (rng.randrange(10, 50),) * 3
    y = 24
    for left, right, font, kind in rows:
        if kind == "center":
            draw.text((width / 2, y), left, font=font, fill=ink, anchor="mt")
        elif kind == "rule":
            draw.line((18, y + 8, width - 18, y + 8), fill=ink, width=1)
        elif kind == "split":
            draw.text((18, y), left, font=font, fill=ink)
            draw.text((width - 18, y), right, font=font, fill=ink, anchor="ra")
        y += heights.get(kind, int(font.size * 1.5))  # type: ignore[union-attr]
    angle = rng.uniform(-5, 5)
    mask = Image.new("L", paper.size, 255).rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    paper = paper.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    table = rng.choice(TABLES)
    canvas = Image.new("RGB", (paper.width + rng.randrange(60, 260), paper.height + rng.randrange(40, 120)), table)
    shade = ImageDraw.Draw(canvas)
    x = 0
    while x < canvas.width:  # planks of the table, of random widths and shades: different per seed
        plank = rng.randrange(20, 90)
        shade.rectangle((x, 0, x + plank, canvas.height), fill=tuple(int(c * rng.uniform(0.6, 1.4)) for c in table))
        x += plank
    x = rng.randrange(10, canvas.width - paper.width - 10)
    canvas.paste(paper, (x, rng.randrange(10, canvas.height - paper.height - 10)), mask)
    return canvas


def write_receipts(out: Path) -> dict[str, dict[str, object]]:
    """Draw every receipt into ``out`` with its ``labels.json``; returns the labels."""
    out.mkdir(parents=True, exist_ok=True)
    labels: dict[str, dict[str, object]] = {}
    for index, (seed, items) in enumerate(RECEIPTS):
        receipt = make_receipt(index, seed, items)
        draw_receipt(receipt, seed).save(out / receipt.file, "JPEG", quality=QUALITY, optimize=True)
        labels[receipt.file] = receipt.label()
    (out / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    total = sum((out / name).stat().st_size for name in labels)
    print(f"wrote {len(labels)} receipts ({total / 1e6:.2f} MB) to {out}")
    return labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    write_receipts(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
