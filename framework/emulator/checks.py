"""The services' documented limits enforced on a parsed request, with their error messages (400 / 413)."""

from __future__ import annotations

from collections.abc import Sequence

from visionbench.emulator.matching import ImageInfo
from visionbench.emulator.request import CountRequest
from visionbench.services.limits import Limits, limits_for

#: Leading bytes of the formats a service may be sent, to compare with the declared media type.
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def sniff(data: bytes) -> str | None:
    """The media type the bytes are, by their signature (None: not recognised)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if data.startswith(magic)), None)


class LimitError(Exception):
    """A request the real service would refuse: ``status`` (400 or 413) and its message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _bad(message: str, status: int = 400) -> LimitError:
    return LimitError(message, status)


def check_request(req: CountRequest) -> None:
    """Refuse what the real service refuses before looking at pixels: counts, sizes, types, parameters."""
    lim = limits_for(req.protocol, req.model)
    gem = req.protocol == "gemini"
    if req.protocol == "openai":
        _check_openai(req, lim)
        return
    if lim.max_request_bytes is not None and req.body_bytes > lim.max_request_bytes:
        if gem:
            raise _bad(f"Request payload size exceeds the limit: {lim.max_request_bytes} bytes.")
        raise _bad("Request exceeds the maximum allowed number of bytes.", 413)
    n = len(req.images)
    if lim.max_images_per_request is not None and n > lim.max_images_per_request:
        if gem:
            raise _bad(f"Too many images in the request: {n}; the model accepts at most {lim.max_images_per_request}.")
        raise _bad(f"messages: Too many images in the request: {n} > {lim.max_images_per_request}")
    for part in req.images:
        declared = part.mime_type.lower()
        if lim.media_types and declared not in lim.media_types:
            if gem:
                raise _bad(f"Unsupported MIME type: {part.mime_type}")
            allowed = ", ".join(f"'{m}'" for m in lim.media_types[:-1]) + f" or '{lim.media_types[-1]}'"
            raise _bad(f"{part.where}.media_type: Input should be {allowed}")
        if lim.max_image_bytes is not None and part.b64_bytes > lim.max_image_bytes:
            raise _bad(
                f"{part.where}: image exceeds 5 MB maximum: {part.b64_bytes} bytes > {lim.max_image_bytes} bytes"
            )
        if lim.media_type_must_match and sniff(part.data) not in (None, declared):
            raise _bad(f"{part.where}.data: Image does not match the provided media type {part.mime_type}")
    for name in lim.rejected_params:
        if name in req.params:
            raise _bad(f"{name}: Extra inputs are not permitted")
    _check_thinking(req, lim)


def _check_openai(req: CountRequest, lim: Limits) -> None:
    """OpenAI's documented image limits (messages paraphrased: the service's own were not recorded)."""
    if lim.max_request_bytes is not None and req.body_bytes > lim.max_request_bytes:
        raise _bad(
            f"Request payload too large: {req.body_bytes} bytes; the limit is {lim.max_request_bytes} bytes.", 413
        )
    n = len(req.images)
    if lim.max_images_per_request is not None and n > lim.max_images_per_request:
        raise _bad(f"Too many images in the request: {n}; at most {lim.max_images_per_request} are allowed.")
    for part in req.images:
        declared = part.mime_type.lower()
        if lim.media_types and declared not in lim.media_types:
            raise _bad(
                f"Invalid image_url in {part.where}: unsupported image format {part.mime_type}; "
                f"supported: {', '.join(lim.media_types)}."
            )
        if lim.max_image_bytes is not None and part.b64_bytes > lim.max_image_bytes:
            raise _bad(f"{part.where}: image too large: {part.b64_bytes} bytes > {lim.max_image_bytes} bytes.")


def _check_thinking(req: CountRequest, lim: Limits) -> None:
    budget = req.thinking_budget
    if budget is None:
        return
    if req.protocol == "gemini":
        if budget == 0 and not lim.thinking_can_disable:
            raise _bad("Budget 0 is invalid. This model only works in thinking mode.")
        low, high = lim.thinking_budget_min, lim.thinking_budget_max
        if budget > 0 and ((low is not None and budget < low) or (high is not None and budget > high)):
            raise _bad(f"The thinking budget {budget} is invalid. Please choose a value between {low} and {high}.")
        return
    if budget == 0:
        return  # thinking disabled (or not asked for)
    if lim.thinking_budget_min is not None and budget < lim.thinking_budget_min:
        raise _bad(
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to {lim.thinking_budget_min}"
        )
    if lim.thinking_below_max_tokens and req.max_output_tokens is not None and budget >= req.max_output_tokens:
        raise _bad(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
            "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
        )


def check_images(req: CountRequest, infos: Sequence[ImageInfo]) -> None:
    """Refuse images larger than the service takes (the 2000 px rule for requests of many images included)."""
    lim = limits_for(req.protocol, req.model)
    side = lim.side_limit(len(infos))
    if side is None:
        return
    many = side != lim.max_image_side
    for info, part in zip(infos, req.images):
        if max(info.width, info.height) > side:
            kind = "max allowed size for many-image requests" if many else "max allowed size"
            raise _bad(f"{part.where}.data: At least one of the image dimensions exceed {kind}: {side} pixels")
