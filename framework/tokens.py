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
Text: ceil(characters / 4), for prompts and replies alike.
"""

from __future__ import annotations

import math

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
    name = model.removeprefix("models/")
    return name.startswith("gemini-3")
