"""What every wire protocol reduces to: a request of images, text and output preferences."""

from __future__ import annotations

import re
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
    #: The tool the request forces the model to call (its arguments fill ``schema``); None: answer as text.
    tool: str | None = None


def forced_tool(tools: dict[str, dict[str, Any] | None], name: str | None) -> tuple[str, dict[str, Any]]:
    """(name, parameters schema) of the tool a request forces: ``name``, or the first tool when it names none
    (OpenAI's ``required``, Anthropic's ``any``, Gemini's ``ANY``). Raises ValueError naming the problem."""
    if not tools:
        raise ValueError("a tool choice that forces a tool call needs tools")
    name = next(iter(tools)) if name is None else name
    if name not in tools:
        raise ValueError(f"the tool choice names {name!r}, which is not among the tools ({', '.join(tools)})")
    schema = tools[name]
    return name, schema if isinstance(schema, dict) and schema else {"type": "object", "properties": {}}


#: How visionbench names the items of a request of several items of several images ("Item 2 is Images 3-4").
_ITEM = re.compile(r"\bItem (\d+) is Images? (\d+)(?:-(\d+))?")


def item_groups(prompt: str, n_images: int) -> list[list[int]]:
    """Which images (indexes) each answer of a request is about, in order: the items the prompt names ("Item 1 is
    Images 1-2; Item 2 is Image 3"), else an image each."""
    named = [(int(start), int(end or start)) for _, start, end in _ITEM.findall(prompt)]
    groups = [list(range(start - 1, end)) for start, end in named]
    if groups and [i for group in groups for i in group] == list(range(n_images)):
        return groups
    return [[i] for i in range(n_images)]
