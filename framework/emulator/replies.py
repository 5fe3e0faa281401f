"""The emulated model's answers: a label distorted by the profile's error model, formatted as the request asks.

The emulator imitates a person-counting VLM. One image -> a bare integer (``"7"``); several images -> a JSON array
with one integer per image, in order. When the request asks for JSON (a response schema, a JSON mime type, or
"JSON" in the prompt) the reply is valid JSON shaped by the schema when there is one.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import Any

from visionbench.emulator.profile_schema import Answers


def stable_rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from the parts (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def distorted_count(label: float, *, answers: Answers, n_images: int, long_side: int, rng: random.Random) -> int:
    """Apply the error model of :class:`~visionbench.emulator.profile_schema.Answers` to one label."""
    value = max(0.0, float(label))
    crowd = min(1.0, value / answers.crowd_scale)
    if n_images > 1:  # the more images share a request, the more a crowd among them is undercounted
        value *= (1.0 - answers.multi_image_undercount * crowd) ** math.log2(n_images)
    smallness = max(0.0, 1.0 - long_side / answers.low_res_side)
    value *= 1.0 - answers.low_res_undercount * crowd * smallness
    sd = answers.relative_sd * value + answers.absolute_sd
    if sd > 0:
        value = rng.gauss(value, sd)
    return max(0, int(round(value)))


_ONE_BASED = {"image", "image_id", "image_number", "id", "number"}


def _schema_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):  # JSON Schema allows ["integer", "null"]
        kind = next((k for k in kind if str(k).lower() != "null"), None)
    if kind is None and "anyOf" in schema and schema["anyOf"]:
        return _schema_type(schema["anyOf"][0])
    return str(kind or "").lower()


def fill_schema(schema: dict[str, Any], counts: list[int], position: int | None = None) -> Any:
    """A value of ``schema``'s shape carrying ``counts`` (integers -> the count, arrays -> all counts).

    In an array of objects, each object gets one image's count; an integer property named like ``index`` / ``idx``
    gets the 0-based image position, one named ``image``, ``image_id``, ``image_number`` or ``id`` the 1-based one.
    """
    kind = _schema_type(schema)
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {"type": "integer"}
        if _schema_type(items) in ("object", "array"):
            return [fill_schema(items, [c], i) for i, c in enumerate(counts)]
        return list(counts)
    if kind in ("integer", "number"):
        return counts[0] if len(counts) == 1 else sum(counts)
    if kind == "object":
        props = schema.get("properties") or {}
        if not props:
            return {"count": counts[0]} if len(counts) == 1 else {"counts": counts}
        out: dict[str, Any] = {}
        for name, sub in props.items():
            sub = sub if isinstance(sub, dict) else {}
            sub_kind = _schema_type(sub)
            lowered = name.lower()
            if sub_kind == "integer" and position is not None and ("index" in lowered or "idx" in lowered):
                out[name] = position
            elif sub_kind == "integer" and position is not None and lowered in _ONE_BASED:
                out[name] = position + 1
            elif sub_kind in ("integer", "number", "array", "object"):
                out[name] = fill_schema(sub, counts, position)
            elif sub_kind == "boolean":
                out[name] = False
            elif sub_kind == "string":
                out[name] = ""
            else:
                out[name] = None
        return out
    if kind == "boolean":
        return any(counts)
    if kind == "string":
        return str(counts[0]) if len(counts) == 1 else json.dumps(counts)
    return counts[0] if len(counts) == 1 else list(counts)


def format_reply(counts: list[int], *, want_json: bool, schema: dict[str, Any] | None, prompt: str) -> str:
    """The reply text for ``counts`` (one per image)."""
    if schema:
        return json.dumps(fill_schema(schema, counts))
    if len(counts) != 1:
        return json.dumps(counts)
    if want_json and any(w in prompt.lower() for w in ("array", "list")):
        return json.dumps(counts)
    return str(counts[0])
