"""The report's image gallery: what each cell was shown and what it answered, image by image.

For each image, a thumbnail of the bytes that were sent, at each size the cells sent (the preprocessing cache is
keyed by content and settings, so those are the very bytes; on a miss they are made again by the same
preprocessing from the dataset file, checked against the dataset's hash), its label and every cell's answer: wrong
ones marked, errors with their message. The images the cells disagree on most come first. Thumbnails are small
JPEGs embedded as data URIs, so the page stays self-contained and light.
"""

from __future__ import annotations

import base64
import heapq
import io
import json
import logging
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image

from visionbench.data.image_bytes import Preprocessor
from visionbench.preprocessing import Preprocessing
from visionbench.report.cellnames import cell_codes
from visionbench.report.scores import Found, bundle_scores
from visionbench.results.model import Bundle, CellEntry, ItemJson
from visionbench.results.scoring import matches, task_answer_type
from visionbench.types import Answer, ImageItem

log = logging.getLogger(__name__)

#: Longest side of a thumbnail, in px, and its JPEG quality: a 41-image sweep at three sizes stays well under 1 MB.
THUMB_SIDE, THUMB_QUALITY = 96, 70

CSS = """
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
.card{border:1px solid #d5dbe3;border-radius:6px;padding:8px;min-width:0}
.card h3{font-size:13px;margin:0 0 6px;overflow-wrap:anywhere}
.thumbs{display:flex;flex-wrap:wrap;gap:6px}
.thumbs figure{margin:0;width:98px;font-size:11px;color:#5b6775;overflow-wrap:anywhere}
.thumbs img{display:block;max-width:96px;max-height:96px;border:1px solid #d5dbe3}
.card ul{list-style:none;margin:6px 0 0;padding:0;font-size:12px} .card li{padding:1px 0;overflow-wrap:anywhere}
.card li.wrong b{color:#9b1c1c} .card li.err{color:#8a4b08} .card .msg{display:block;margin-left:12px}
.card .score{color:#5b6775}
.missing{width:96px;height:64px;display:flex;align-items:center;justify-content:center;background:#f0f2f5}
"""


def _dataset_root(bundle: Bundle) -> Path | None:
    path = bundle.dataset.get("path")
    if not path:
        return None
    root = Path(path)
    if not root.is_absolute() and bundle.config_path:
        root = Path(bundle.config_path).parent / root
    return root if root.is_dir() else root.parent


def _thumbnail(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        img.thumbnail((THUMB_SIDE, THUMB_SIDE))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii")


def _sizes(bundle: Bundle) -> list[tuple[Preprocessing, list[str]]]:
    """Each preprocessing the cells ran with, and those cells (first repeats, matrix order)."""
    base = bundle.config.get("preprocessing") or {}
    out: dict[Preprocessing, list[str]] = {}
    for entry in bundle.entries_of(repeat=0):
        out.setdefault(Preprocessing(**(entry.preprocessing or base)), []).append(entry.id)
    return list(out.items())


def _shown(value: Any) -> str:
    """An answer or label as the gallery shows it: JSON objects and lists as compact JSON, the rest as text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def _disagreement(firsts: list[CellEntry], item: ItemJson, answer_type: str | None) -> tuple[int, int, str]:
    """Sort key: most distinct answers first, then most wrong or failed, then by id."""
    answers = [e.answers.get(item.id) for e in firsts]
    values = {repr(a.value) if a and a.error is None else "error" for a in answers}
    bad = sum(1 for a in answers if not a or a.error is not None or _wrong(item, a, answer_type))
    return (-len(values), -bad, item.id)


def _wrong(item: ItemJson, answer: Answer, answer_type: str | None) -> bool:
    return item.label is not None and answer.error is None and not matches(answer.value, item.label, answer_type)


#: Cards the gallery shows at most: the images the cells disagree on most (a page of 100,000 would not load).
MAX_CARDS = 120
#: Cells a card lists one by one at most; with more, a card lists each distinct answer with the cells that gave it
#: (120 cards of 500 lines each were 5.4 MB of a 500-cell report.html).
MAX_CARD_CELLS = 30
#: Cells named for one answer of a grouped card (the rest counted).
NAMED_PER_ANSWER = 6


def _grouped(
    firsts: Mapping[str, CellEntry], item: ItemJson, codes: Mapping[str, str], answer_type: str | None
) -> list[str]:
    """A card's answers as one line per distinct answer (errors, by their kind, and "not asked" apart), the most
    given first: the answer, how many cells gave it and the first few of them."""
    groups: dict[tuple[str, str], list[str]] = {}
    messages: dict[tuple[str, str], str] = {}
    for cell_id, entry in firsts.items():
        a = entry.answers.get(item.id)
        if a is None:
            key = ("", "<i>not asked</i>")
        elif a.error is not None:
            key = ("err", "error: " + escape(a.error.partition(":")[0] or "error"))
            messages.setdefault(key, a.error)
        else:
            wrong = _wrong(item, a, answer_type)
            key = ("wrong" if wrong else "", f"<b>{escape(_shown(a.value))}</b>" + (" &#10007;" if wrong else ""))
        groups.setdefault(key, []).append(codes[cell_id])
    lines = []
    for (cls, shown), cells in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        named = ", ".join(escape(c) for c in cells[:NAMED_PER_ANSWER])
        more = f" and {len(cells) - NAMED_PER_ANSWER} more" if len(cells) > NAMED_PER_ANSWER else ""
        msg = f'<span class="msg">{escape(messages[(cls, shown)])}</span>' if (cls, shown) in messages else ""
        attr = f' class="{cls}"' if cls else ""
        count = f"{len(cells)} cell" + ("s" if len(cells) > 1 else "")
        lines.append(f"<li{attr}>{shown}: {count} ({named}{more}){msg}</li>")
    return lines


def gallery_html(bundle: Mapping[str, Any], cache_dir: Path | None = None, max_cards: int = MAX_CARDS) -> str:
    """The gallery as one HTML fragment (its CSS is :data:`CSS`): the ``max_cards`` most disputed images, each
    answer with its primary score and why."""
    bundle = Bundle.of(bundle)
    found = bundle_scores(bundle)
    primary = found.primary
    root = _dataset_root(bundle)
    sizes = _sizes(bundle)
    firsts = {e.id: e for e in bundle.entries_of(repeat=0)}
    codes = cell_codes(list(firsts))
    items = bundle.item_entries
    answer_type = task_answer_type(bundle)
    cards = []
    with Preprocessor(cache_dir) as prep:
        entries = list(firsts.values())
        for item in heapq.nsmallest(max_cards, items, key=lambda i: _disagreement(entries, i, answer_type)):
            thumbs = _figures(prep, root, item, sizes, codes)
            lines = [] if len(firsts) <= MAX_CARD_CELLS else _grouped(firsts, item, codes, answer_type)
            for cell_id, entry in firsts.items() if not lines else ():
                a = entry.answers.get(item.id)
                name = escape(codes[cell_id])
                if a is None:
                    lines.append(f"<li>{name}: <i>not asked</i></li>")
                elif a.error is not None:
                    lines.append(f'<li class="err">{name}: error<span class="msg">{escape(a.error)}</span></li>')
                else:
                    cls = ' class="wrong"' if _wrong(item, a, answer_type) else ""
                    mark = " &#10007;" if cls else ""
                    score = _score(found, primary, cell_id, item.id)
                    lines.append(f"<li{cls}>{name}: <b>{escape(_shown(a.value))}</b>{mark}{score}</li>")
            label = "-" if item.label is None else escape(_shown(item.label))
            cards.append(
                f'<div class="card" data-item="{escape(item.id, quote=True)}">'
                f"<h3>{escape(item.id)} &middot; label {label}</h3>"
                f'<div class="thumbs">{"".join(thumbs)}</div><ul>{"".join(lines)}</ul></div>'
            )
    scored = (
        f" Each answer's {escape(primary)} score (the primary scorer's) follows it, with why where the scorer says."
        if primary
        else ""
    )
    shown = (
        "The images the cells disagree on most come first."
        if len(cards) == len(items)
        else f"Shown: the {len(cards)} of {len(items):,} images the cells disagree on most, most disputed first."
    )
    note = (
        '<p class="note">Each image as it was sent (thumbnails of the preprocessed bytes, at each size the cells '
        "sent), its label and every cell's answer (first repeat; &#10007; = differs from the label"
        + (
            f"; with more than {MAX_CARD_CELLS} cells, each answer once, with the cells that gave it"
            if len(firsts) > MAX_CARD_CELLS
            else ""
        )
        + ")."
        f"{scored} {shown}</p>"
    )
    return note + f'<div class="gallery">{"".join(cards)}</div>'


def _score(found: Found, key: str | None, cell_id: str, item_id: str) -> str:
    """`` &middot; 0.50 (why)``: an answer's score by scorer ``key`` and why (with repeats: the mean over them, and
    the first repeat's why), or nothing without scores."""
    cell = found.cells.get(cell_id)
    if key is None or cell is None or item_id not in cell.values.get(key, {}):
        return ""
    why = cell.why[key].get(item_id)
    mean = f" mean of {cell.repeats} repeats" if cell.repeats > 1 else ""
    return (
        f' <span class="score">&middot; {cell.values[key][item_id]:.2f}{mean}'
        + (f" ({escape(why)})" if why else "")
        + "</span>"
    )


def _figures(
    prep: Preprocessor,
    root: Path | None,
    item: ItemJson,
    sizes: list[tuple[Preprocessing, list[str]]],
    codes: dict[str, str],
) -> list[str]:
    """One thumbnail per distinct image sent (settings that gave the same bytes, e.g. an image smaller than both
    sizes of a sweep, share one), captioned with its pixel size and the cells that sent it."""
    # An item of several images: its first, found in the cache by its own hash.
    images = getattr(item, "images", None)
    sha = images[0] if images else item.sha256
    image = ImageItem(item.id, (root / item.id) if root else Path(item.id), sha, item.label)
    sent: dict[bytes | None, list[str]] = {}
    for settings, cells in sizes:
        try:
            data = (prep.lookup(image, settings) or prep.build(image, settings)).data
        except Exception as exc:  # noqa: BLE001 - a missing or changed file costs its thumbnail, not the report
            log.info("no thumbnail for %s: %s", item.id, exc)
            data = None
        sent.setdefault(data, []).extend(cells)
    out = []
    for data, cells in sent.items():
        who = escape(", ".join(codes[c] for c in cells) if len(sent) > 1 or len(sizes) > 1 else "every cell")
        if data is None:
            out.append(f'<figure><div class="missing">not available</div>{who}</figure>')
            continue
        with Image.open(io.BytesIO(data)) as img:
            size = f"{img.width}x{img.height}"
        src = _thumbnail(data)
        img_tag = f'<img alt="{escape(item.id)}" src="data:image/jpeg;base64,{src}">'
        out.append(f"<figure>{img_tag}<figcaption>{size} px sent &middot; {who}</figcaption></figure>")
    return out
