"""Regenerate ``framework/sample_images/``, ``sample_crowds/`` and ``sample_receipts/``: small, licence-clean sets.

Every image comes from files inside installed wheels (scikit-image ``skimage/data/``, matplotlib
``mpl-data/sample_data/``). Multi-person photos with clear licences are rare, so the "group" images are
composites: deterministic tiles of crops of the public-domain / CC0 portraits (astronaut Eileen Collins,
Grace Hopper, the "camera" man), flipped, zoomed and tinted so they look varied. The crowd set
(``sample_crowds.py``) draws scenes of 0 to 400 small people whose heads are the same three faces; the receipts
(``sample_receipts.py``) are drawn with Pillow's bundled font. Beside ``labels.json`` (people counts) the sample images
get ``labels-person.json`` (is there a person? for the yes/no demo), ``labels-scene.json`` (one of ``SCENES``' kinds,
for the classification demo) and ``labels-faces.json`` (the group images' face boxes, for the boxes demo).

    python tools/make_sample_images.py [--out DIR] [--crowds-out DIR] [--receipts-out DIR] [--check]

``--check`` also runs the ``local-faces`` detector on the sample images and prints what it counts.
Needs scikit-image (only for its sample data; not a visionbench dependency): ``pip install scikit-image``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import skimage
from matplotlib import cbook
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from sample_crowds import CROWDS, draw_crowd, file_name
from sample_receipts import DEFAULT_OUT as DEFAULT_RECEIPTS_OUT
from sample_receipts import write_receipts

QUALITY = 85
MAX_SIDE = 800
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "framework" / "sample_images"
DEFAULT_CROWDS_OUT = Path(__file__).resolve().parents[1] / "framework" / "sample_crowds"
#: What each sample image shows, for configs/classify-emulated.yaml (its prompt says what each kind means).
SCENES = {
    "astronaut.jpg": "portrait",
    "camera.jpg": "outdoor",
    "chelsea.jpg": "animal",
    "coffee.jpg": "food",
    "grace_hopper.jpg": "portrait",
    "group_2.jpg": "group",
    "group_3.jpg": "group",
    "group_4.jpg": "group",
    "group_6.jpg": "group",
    "rocket.jpg": "outdoor",
}
LICENCE = "public domain / CC0 (derived from NASA, US Navy and CC0 photographs)"
SKIMAGE_DATA = Path(skimage.__file__).parent / "data"

# file in skimage/data (or matplotlib sample_data), output name, people, source note, licence
SINGLES = [
    (
        "coffee.png",
        "coffee.jpg",
        0,
        "Coffee cup, courtesy of Pikolo Espresso Bar",
        "CC0 (photographer Rachel Michetti)",
    ),
    ("chelsea.png", "chelsea.jpg", 0, "Chelsea the cat", "CC0 (photographer Stefan van der Walt)"),
    ("rocket.jpg", "rocket.jpg", 0, "Launch of DSCOVR on Falcon 9, SpaceX", "public domain (released by SpaceX)"),
    ("astronaut.png", "astronaut.jpg", 1, "Astronaut Eileen Collins, NASA Great Images", "public domain (NASA)"),
    ("camera.png", "camera.jpg", 1, "Man with a camera (scikit-image 'camera')", "CC0 (photographer Lav Varshney)"),
    (
        "grace_hopper.jpg",
        "grace_hopper.jpg",
        1,
        "Rear Admiral Grace Hopper, US Navy photograph",
        "public domain (US Navy)",
    ),
]

# Portraits for the composites: face box (x0, y0, x1, y1) in the original image, as CenterFace finds it.
PORTRAITS = {
    "astronaut.png": (182, 58, 270, 178),
    "camera.png": (202, 119, 258, 197),
    "grace_hopper.jpg": (174, 128, 358, 334),
}
GROUPS = [("group_2.jpg", 2, 11), ("group_3.jpg", 3, 12), ("group_4.jpg", 4, 13), ("group_6.jpg", 6, 14)]


def _source(name: str) -> tuple[Path, str]:
    if name == "grace_hopper.jpg":
        return Path(
            cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        ), f"matplotlib mpl-data/sample_data/{name}"
    return SKIMAGE_DATA / name, f"scikit-image {skimage.__version__} skimage/data/{name}"


def _open(name: str) -> Image.Image:
    with Image.open(_source(name)[0]) as im:
        return im.convert("RGB")


def _save(im: Image.Image, path: Path) -> None:
    if max(im.size) > MAX_SIDE:
        im = im.copy()
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    im.save(path, "JPEG", quality=QUALITY, optimize=True)


def _crop(name: str, size: tuple[int, int], cell: tuple[int, int], rng: random.Random) -> tuple[float, float, float]:
    """Where ``cell``'s crop of one portrait (``size``) starts and how it is zoomed: (left, top, scale)."""
    x0, y0, x1, y1 = PORTRAITS[name]
    cx, cy, face_h = (x0 + x1) / 2, (y0 + y1) / 2, y1 - y0
    cw, ch = cell
    # face height as a fraction of the cell height, and where the face sits in the cell
    frac = rng.uniform(0.32, 0.5)
    scale = frac * ch / face_h
    fx, fy = rng.uniform(0.4, 0.6) * cw, rng.uniform(0.38, 0.5) * ch
    bw, bh = cw / scale, ch / scale
    left, top = cx - fx / scale, cy - fy / scale
    # shift the crop back inside the photo where it fits; pad with the edge colour where it cannot
    if bw <= size[0]:
        left = min(max(left, 0.0), size[0] - bw)
    if bh <= size[1]:
        top = min(max(top, 0.0), size[1] - bh)
    return left, top, scale


def _tile(name: str, cell: tuple[int, int], rng: random.Random) -> tuple[Image.Image, tuple[float, ...]]:
    """A crop of one portrait, centred on the face, zoomed, maybe flipped and tinted, filling ``cell``; and the
    face's box in it (x0, y0, x1, y1)."""
    im = _open(name)
    cw, ch = cell
    left, top, scale = _crop(name, im.size, cell, rng)
    box = (left, top, left + cw / scale, top + ch / scale)
    pad = int(max(cw, ch) / scale) + 1
    padded = ImageOps.expand(im, border=pad, fill=tuple(int(v) for v in np.asarray(im)[0:4].reshape(-1, 3).mean(0)))
    tile = padded.resize(cell, Image.LANCZOS, box=tuple(v + pad for v in box))
    x0, y0, x1, y1 = PORTRAITS[name]
    face = ((x0 - left) * scale, (y0 - top) * scale, (x1 - left) * scale, (y1 - top) * scale)
    if rng.random() < 0.5:
        tile = ImageOps.mirror(tile)
        face = (cw - face[2], face[1], cw - face[0], face[3])
    tile = ImageEnhance.Brightness(tile).enhance(rng.uniform(0.85, 1.15))
    tile = ImageEnhance.Color(tile).enhance(rng.uniform(0.6, 1.3))
    return tile, face


def make_group(n: int, seed: int) -> tuple[Image.Image, list[tuple[float, ...]]]:
    """A composite of ``n`` portrait tiles, and each face's box in it (x0, y0, x1, y1, in its pixels)."""
    rng = random.Random(seed)
    cols = {2: 2, 3: 3, 4: 2, 5: 3, 6: 3}[n]
    rows = -(-n // cols)
    cell = (MAX_SIDE // cols - 12, int((MAX_SIDE // cols - 12) * (1.25 if cols < 3 else 1.3)))
    if rows * (cell[1] + 12) > MAX_SIDE:
        cell = (cell[0], MAX_SIDE // rows - 12)
    width, height = cols * (cell[0] + 12) + 12, rows * (cell[1] + 12) + 12
    bg = tuple(rng.randint(150, 220) for _ in range(3))
    canvas = Image.new("RGB", (width, height), bg)
    names = sorted(PORTRAITS)
    order = [names[i % len(names)] for i in range(n)]
    rng.shuffle(order)
    faces = []
    for i, name in enumerate(order):
        r, c = divmod(i, cols)
        x, y = 12 + c * (cell[0] + 12), 12 + r * (cell[1] + 12)
        tile, (x0, y0, x1, y1) = _tile(name, cell, rng)
        canvas.paste(tile, (x, y))
        faces.append((x + x0, y + y0, x + x1, y + y1))
    return (canvas.filter(ImageFilter.SMOOTH_MORE) if n >= 6 else canvas), faces


def gemini_boxes(faces: list[tuple[float, ...]], size: tuple[int, int]) -> list[list[int]]:
    """Pixel boxes (x0, y0, x1, y1) of an image of ``size`` as Gemini writes them: [ymin, xmin, ymax, xmax], 0-1000."""
    w, h = size
    return [
        [round(y0 / h * 1000), round(x0 / w * 1000), round(y1 / h * 1000), round(x1 / w * 1000)]
        for x0, y0, x1, y1 in faces
    ]


def _face(name: str) -> Image.Image:
    """The face of one portrait, with a little hair and chin around the detector's box."""
    x0, y0, x1, y1 = PORTRAITS[name]
    dx, dy = (x1 - x0) * 0.08, (y1 - y0) * 0.08
    return _open(name).crop((round(x0 - dx), round(y0 - dy), round(x1 + dx), round(y1 + dy)))


def write_crowds(out: Path) -> dict[str, dict[str, object]]:
    """Draw the crowd scenes into ``out`` with their labels.json; returns the labels."""
    out.mkdir(parents=True, exist_ok=True)
    faces = [_face(name) for name in sorted(PORTRAITS)]
    labels: dict[str, dict[str, object]] = {}
    for people, seed, width, height in CROWDS:
        name = file_name(people)
        draw_crowd(people, seed, (width, height), faces).save(out / name, "JPEG", quality=QUALITY, optimize=True)
        labels[name] = {
            "person_count": people,
            "source": f"synthetic scene of {people} people whose heads are the astronaut, camera and grace_hopper "
            f"faces, scaled and tinted (tools/sample_crowds.py, seed {seed})",
            "license": LICENCE,
        }
    (out / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    total = sum((out / name).stat().st_size for name in labels)
    print(f"wrote {len(labels)} crowd scenes ({total / 1e6:.2f} MB) to {out}")
    return labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--crowds-out", type=Path, default=DEFAULT_CROWDS_OUT)
    parser.add_argument("--receipts-out", type=Path, default=DEFAULT_RECEIPTS_OUT)
    parser.add_argument("--check", action="store_true", help="count people with local-faces afterwards")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    labels: dict[str, dict[str, object]] = {}
    for src, out, count, note, licence in SINGLES:
        _save(_open(src), args.out / out)
        labels[out] = {"person_count": count, "source": f"{note}; {_source(src)[1]}", "license": licence}
    faces: dict[str, dict[str, object]] = {}
    for out, n, seed in GROUPS:
        group, boxes = make_group(n, seed)
        _save(group, args.out / out)
        # the face boxes, where CenterFace finds the faces in the portraits, on Gemini's 0-1000 grid (the saved
        # image may be smaller than the composite: the grid does not change)
        faces[out] = {"faces": [{"box_2d": box, "label": "face"} for box in gemini_boxes(boxes, group.size)]}
        labels[out] = {
            "person_count": n,
            "source": f"composite of {n} tiles cropped from the astronaut, camera and grace_hopper portraits "
            f"(tools/make_sample_images.py, seed {seed})",
            "license": LICENCE,
        }
    (args.out / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    person = {name: label["person_count"] > 0 for name, label in sorted(labels.items())}  # type: ignore[operator]
    (args.out / "labels-person.json").write_text(json.dumps(person, indent=2) + "\n")
    (args.out / "labels-faces.json").write_text(json.dumps(faces, indent=2) + "\n")
    (args.out / "labels-scene.json").write_text(json.dumps(dict(sorted(SCENES.items())), indent=2) + "\n")
    total = sum((args.out / name).stat().st_size for name in labels)
    print(f"wrote {len(labels)} images ({total / 1e6:.2f} MB) to {args.out}")
    write_crowds(args.crowds_out)
    write_receipts(args.receipts_out)
    if args.check:
        import asyncio

        from visionbench.providers.local_faces import LocalFaces
        from visionbench.types import PreparedImage, Request, Task

        provider = LocalFaces()
        for name, label in labels.items():
            data = (args.out / name).read_bytes()
            with Image.open(args.out / name) as im:
                image = PreparedImage(name, data, "image/jpeg", im.width, im.height)
            task = Task("count-people", "How many people are in this image?")
            reply = asyncio.run(provider.generate(Request("centerface", task, task.prompt, (image,))))
            print(f"{name:20s} label {label['person_count']}  counted {reply.text}")


if __name__ == "__main__":
    main()
