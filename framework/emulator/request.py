"""What every wire protocol reduces to: a request of images, text and output preferences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Protocol = Literal["gemini", "anthropic", "openai"]


@dataclass
class ImagePart:
    """One image of a request, still encoded."""

    data: bytes
    mime_type: str = "image/jpeg"
    #: The image's resolution setting: Gemini's mediaResolution level, OpenAI's ``detail`` (low/high/auto).
    media_resolution: str | None = None
    #: Length of its base64 text (the services measure image size on it).
    b64_bytes: int = 0
    #: Where it is in the request, for error messages (Anthropic names the field).
    where: str = "image"


@dataclass
class CountRequest:
    """What every wire protocol reduces to: a model, images, text and output preferences."""

    protocol: Protocol
    model: str
    images: list[ImagePart]
    prompt: str = ""
    system: str = ""
    want_json: bool = False
    schema: dict[str, Any] | None = None
    max_output_tokens: int | None = None
    #: None: the profile decides; 0: thinking off; n: at most n thinking tokens.
    thinking_budget: int | None = None
    #: The request's thinking level, lower case (Gemini thinkingLevel, OpenAI reasoning_effort, Anthropic effort).
    thinking_level: str | None = None
    media_resolution: str | None = None
    digest: str = ""
    #: Size of the request body, and the top-level parameters it set (e.g. temperature).
    body_bytes: int = 0
    params: frozenset[str] = frozenset()
