"""Image and text token formulas (documented or fitted to recorded usage; see shared/reference/cassettes/NOTES.md).

Used to plan costs before a run and by the emulator to report usage. Real runs record what the service reports.

Gemini (<= 2.5), fitted to two recorded gemini-2.0-flash usages (540x360 -> 1806, 3008x2000 -> 3354):
    both sides <= 384 px -> 258; else unit = clamp(floor(min(w, h) / 1.5), 256, 768),
    tiles = ceil(w / unit) * ceil(h / unit) + 1, tokens = 258 * tiles.
    ``mediaResolution: MEDIA_RESOLUTION_LOW`` -> 64 per image (unconfirmed).
Gemini 3 (unconfirmed): media resolution LOW/MEDIUM/HIGH/ULTRA_HIGH = 280/560/1120/2240 per image, default HIGH.
Anthropic: a long edge over 1568 px is scaled down proportionally, then ceil(w * h / 750), capped at 1600
    (the service downscales larger images to about that size). A request adds ANTHROPIC_OVERHEAD tokens of framing;
    with it the recorded haiku-4-5 cassette (540x360 JPEG + 23-character prompt -> 276) is reproduced exactly.
OpenAI (https://platform.openai.com/docs/guides/images-vision#calculating-costs, as of 2026; the docs do not say
    clearly which model uses which rule: openai/openai-python issue #2851, ../shared/reference/providers.md):
    tiles (GPT-4o class): fit in 2048x2048, then shortest side down to 768, tokens = base + per_tile * 512-px tiles;
        ``detail: low`` = base. base/per tile: gpt-4o, gpt-4.1, gpt-4.5 85/170; gpt-4o-mini 2833/5667; o1, o3 75/150;
        gpt-5 (and its 5.x successors) 70/140.
    patches (GPT-4.1-mini class): ceil(w/32) * ceil(h/32) patches; above 1536 the image is scaled down to fit 1536
        patches; tokens = patches * multiplier: gpt-4.1-mini and gpt-5-mini 1.62, gpt-4.1-nano and gpt-5-nano 2.46,
        o4-mini 1.72. Models the docs do not list (gpt-6-luna, gpt-6.1-terra...) are estimated by patches x 1.0: a
        planning guess, marked so; runs record the usage the service reports.
Text: ceil(characters / 4), for prompts and replies alike.
"""

from __future__ import annotations

import math
import re

GEMINI_SMALL_SIDE = 384
GEMINI_TOKENS_PER_TILE = 258
GEMINI3_LEVELS = {
    "MEDIA_RESOLUTION_LOW": 280,
    "MEDIA_RESOLUTION_MEDIUM": 560,
    "MEDIA_RESOLUTION_HIGH": 1120,
    "MEDIA_RESOLUTION_ULTRA_HIGH": 2240,
}
GEMINI_LOW_TOKENS = 64
ANTHROPIC_MAX_EDGE = 1568
ANTHROPIC_MAX_IMAGE_TOKENS = 1600
ANTHROPIC_OVERHEAD = 10
#: Chat Completions framing per request (the role and message tokens; a few per message, unconfirmed).
OPENAI_OVERHEAD = 7


def text_tokens(text: str) -> int:
    """About four characters per token."""
    return math.ceil(len(text) / 4) if text else 0


def gemini_image_tokens(width: int, height: int, *, model: str = "", media_resolution: str | None = None) -> int:
    """Prompt tokens Gemini counts for one image of ``width`` x ``height`` pixels."""
    level = (media_resolution or "").upper()
    if level and not level.startswith("MEDIA_RESOLUTION_"):
        level = "MEDIA_RESOLUTION_" + level
    if _is_gemini3(model):
        return GEMINI3_LEVELS.get(level, GEMINI3_LEVELS["MEDIA_RESOLUTION_HIGH"])
    if level == "MEDIA_RESOLUTION_LOW":
        return GEMINI_LOW_TOKENS
    return GEMINI_TOKENS_PER_TILE * gemini_tiles(width, height)


def gemini_tiles(width: int, height: int) -> int:
    """Tiles of the 2-point fit (1 for images with both sides <= 384 px)."""
    if width <= GEMINI_SMALL_SIDE and height <= GEMINI_SMALL_SIDE:
        return 1
    unit = min(max(math.floor(min(width, height) / 1.5), 256), 768)
    return math.ceil(width / unit) * math.ceil(height / unit) + 1


def anthropic_image_tokens(width: int, height: int) -> int:
    """Input tokens Anthropic counts for one image of ``width`` x ``height`` pixels."""
    long_edge = max(width, height)
    if long_edge > ANTHROPIC_MAX_EDGE:
        scale = ANTHROPIC_MAX_EDGE / long_edge
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return min(math.ceil(width * height / 750), ANTHROPIC_MAX_IMAGE_TOKENS)


def _is_gemini3(model: str) -> bool:
    """Gemini 3 and later (3.x, 4-argon...): a fixed budget per media resolution level, not the 2.x tile fit."""
    match = re.match(r"gemini-(\d+)", model.removeprefix("models/"))
    return match is not None and int(match.group(1)) >= 3


#: OpenAI tile rule: (model prefix, base tokens, tokens per 512-px tile), longest prefix first.
OPENAI_TILES = (
    ("gpt-4o-mini", 2833, 5667),
    ("gpt-4o", 85, 170),
    ("chatgpt-4o", 85, 170),
    ("gpt-4.5", 85, 170),
    ("gpt-4-turbo", 85, 170),
    ("o1", 75, 150),
    ("o3", 75, 150),
    ("computer-use", 65, 129),
)
#: OpenAI patch rule: (model prefix, multiplier); gpt-4.1 and gpt-5 themselves use tiles (checked after these).
OPENAI_PATCHES = (
    ("gpt-4.1-mini", 1.62),
    ("gpt-4.1-nano", 2.46),
    ("gpt-5-mini", 1.62),
    ("gpt-5-nano", 2.46),
    ("o4-mini", 1.72),
)
OPENAI_TILES_LATE = (("gpt-4.1", 85, 170), ("gpt-5", 70, 140))
OPENAI_PATCH = 32
OPENAI_MAX_PATCHES = 1536


def openai_image_rule(model: str) -> tuple[str, float, float]:
    """("tiles", base, per tile) or ("patches", multiplier, 0) for ``model``; ("guess", 1.0, 0) when undocumented."""
    name = model.lower()
    for prefix, mult in OPENAI_PATCHES:
        if name.startswith(prefix):
            return "patches", mult, 0
    for prefix, base, tile in OPENAI_TILES + OPENAI_TILES_LATE:
        if name.startswith(prefix) and not name.startswith(("gpt-5-image", "gpt-5.")):
            return "tiles", base, tile
    if re.match(r"gpt-5\.\d+(-(chat|pro|codex))?($|-\d{4})", name):
        return "tiles", 70, 140  # the gpt-5.x flagships follow gpt-5's tile rule
    return "guess", 1.0, 0


def openai_image_tokens(width: int, height: int, *, model: str = "", detail: str | None = None) -> int:
    """Input tokens OpenAI counts for one image (the documented rules above; a guess for unlisted models)."""
    rule, a, b = openai_image_rule(model)
    if rule == "tiles":
        if (detail or "auto").lower() == "low":
            return int(a)
        w, h = float(width), float(height)
        if max(w, h) > 2048:
            scale = 2048 / max(w, h)
            w, h = w * scale, h * scale
        if min(w, h) > 768:
            scale = 768 / min(w, h)
            w, h = w * scale, h * scale
        return int(a + b * math.ceil(w / 512) * math.ceil(h / 512))
    return math.ceil(openai_patches(width, height) * a)


def openai_patches(width: int, height: int) -> int:
    """32-px patches of an image, after scaling it down to fit 1536 patches (the documented steps)."""
    w, h = max(1, width), max(1, height)
    patches = math.ceil(w / OPENAI_PATCH) * math.ceil(h / OPENAI_PATCH)
    if patches <= OPENAI_MAX_PATCHES:
        return patches
    shrink = math.sqrt(OPENAI_PATCH * OPENAI_PATCH * OPENAI_MAX_PATCHES / (w * h))
    shrink *= min(
        math.floor(w * shrink / OPENAI_PATCH) / (w * shrink / OPENAI_PATCH),
        math.floor(h * shrink / OPENAI_PATCH) / (h * shrink / OPENAI_PATCH),
    )
    return min(OPENAI_MAX_PATCHES, math.ceil(w * shrink / OPENAI_PATCH) * math.ceil(h * shrink / OPENAI_PATCH))
