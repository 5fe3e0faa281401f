"""The emulated model's answers: a label distorted by the profile's error model, formatted as the request asks.

The emulator answers any task from the labels; the label's JSON type picks the *kind* of answer and its error model
(``label_kind``, ``answer_kind``, ``distort``):

- a number -> ``count``: the count error model (``distorted_count``), as for people counts;
- ``true``/``false`` -> ``boolean``: flipped with probability ``boolean_error``;
- a string -> ``choice`` when the request offers a closed set that holds it (its structured-output schema has an
  ``enum``, on the answer or a property of it, or the prompt names the label and at least one other of the dataset's
  string labels), confused with
  another member of that set with probability ``choice_error``; otherwise ``text``: each character substituted or
  deleted with probability ``text_error``;
- an object or a list -> ``json``: each field (each element of a list) dropped or perturbed with probability
  ``json_error`` (a bool flipped, a number moved by about 20%, a string given character noise, nested values in turn;
  a list of four numbers is a box: never cut nor dropped from its object, it is moved as a whole, by up to a third
  of its width and height).

Those probabilities grow with lower resolution and more images per request, as count errors do:
p * (1 + low_res_error * smallness) * (1 + multi_image_error * log2(images)), smallness = max(0, 1 - side/low_res_side),
at most 0.5 for a flip, 0.9 otherwise. All draws are seeded (``stable_rng``).

Replies are plain: one image -> ``7``, ``yes`` / ``no``, the label's text, compact JSON for an object; several
images -> a JSON array with one answer per image, in order. When the request asks for JSON (a response schema, a
JSON mime type, or "JSON" in the prompt) the reply is valid JSON shaped by the schema when there is one: the label
decides the answer, the schema its shape. A request with no image gets ``NO_IMAGE_REPLY`` (or the schema's blank).

A judge's request (the ``llm_judge`` scorer's wording: ``<reference>``s, an ``<answer>`` and "from 0 (wrong) to N
(right)") is answered by ``judge_verdict``, not from the labels: the answer's closeness to its nearest reference.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from typing import Any, Literal

from visionbench.emulator.profile_schema import Answers
from visionbench.types import normalise_text


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


def schema_type(schema: dict[str, Any]) -> str:
    """The JSON type a schema describes, lower case ("" when it names none; the first non-null of a union)."""
    return _schema_type(schema)


def fill_schema(schema: dict[str, Any], counts: list[int], position: int | None = None) -> Any:
    """A value of ``schema``'s shape carrying ``counts`` (integers -> the count, arrays -> all counts).

    In an array of objects, each object gets one image's count; an integer property named like ``index`` / ``idx``
    gets the 0-based image position, one named ``image``, ``image_id``, ``image_number`` or ``id`` the 1-based one.
    """
    kind = _schema_type(schema)
    if kind == "array":
        items = _items(schema) or {"type": "integer"}
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


def format_counts(counts: list[int], *, want_json: bool, schema: dict[str, Any] | None, prompt: str) -> str:
    """The reply text for ``counts`` (one per image), as the emulator answered when it only counted."""
    if schema:
        return json.dumps(fill_schema(schema, counts))
    if len(counts) != 1:
        return json.dumps(counts)
    if want_json and any(w in prompt.lower() for w in ("array", "list")):
        return json.dumps(counts)
    return str(counts[0])


# -- any label ------------------------------------------------------------------------------------------------------
Kind = Literal["count", "boolean", "choice", "text", "json"]

#: The reply to a request with no image and no schema (a blank of the schema's shape when it has one).
NO_IMAGE_REPLY = "There is no image in this request; send one and ask again."
#: What an image the emulator does not recognise is answered, for labels that are neither numbers nor booleans.
UNKNOWN = "unknown"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def label_kind(label: Any) -> Kind:
    """The answer kind a label's JSON type implies (a string is ``text`` until a request offers it as a choice)."""
    if isinstance(label, bool):
        return "boolean"
    if isinstance(label, int | float):
        return "count"
    if isinstance(label, str):
        return "text"
    return "json"


def item_schema(schema: dict[str, Any] | None, n_images: int, label: Any = None) -> dict[str, Any] | None:
    """The part of a request's schema that shapes one image's answer: an array's items when the array holds one
    answer per image (several images, or one whose label is not itself a list), else the schema itself."""
    if not schema:
        return None
    if _schema_type(schema) == "array" and (n_images > 1 or not isinstance(label, list)):
        items = schema.get("items")
        return items if isinstance(items, dict) else None
    return schema


def _enum(schema: dict[str, Any] | None) -> list[str] | None:
    if not schema:
        return None
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return [str(e) for e in enum]
    props = schema.get("properties")
    subs = [*(schema.get("anyOf") or []), *(props.values() if isinstance(props, dict) else [])]
    for sub in subs:
        if isinstance(sub, dict) and (found := _enum(sub)):
            return found
    return None


def _names(prompt: str, option: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(option.lower()) + r"(?!\w)", prompt) is not None


def answer_kind(
    label: Any, schema: dict[str, Any] | None, prompt: str, dataset_choices: list[str]
) -> tuple[Kind, list[str]]:
    """The kind of answer ``label`` gets in this request, and for a choice the options it is chosen from.

    A string label is a choice when the schema for this image's answer has an ``enum`` (on the answer, or on the first
    of its object's properties that has one: the property the answer fills), or when the prompt names
    it and at least one other of the dataset's string labels (``"Which animal: cat, dog or bird?"``); else text.
    """
    kind = label_kind(label)
    if kind != "text":
        return kind, []
    enum = _enum(schema)
    if enum:
        return "choice", enum
    lowered = prompt.lower()
    named = [c for c in dataset_choices if _names(lowered, c)]
    if label in named and len(named) >= 2:
        return "choice", named
    return "text", []


def error_scale(answers: Answers, n_images: int, long_side: int) -> float:
    """How much more often than at full resolution, alone in its request, an answer goes wrong."""
    smallness = max(0.0, 1.0 - long_side / answers.low_res_side)
    return (1.0 + answers.low_res_error * smallness) * (1.0 + answers.multi_image_error * math.log2(max(1, n_images)))


def noisy_text(text: str, p: float, rng: random.Random) -> str:
    """``text`` with each character, with probability ``p``, deleted or replaced by a letter (never empty)."""
    out = []
    for ch in text:
        if rng.random() >= p:
            out.append(ch)
        elif rng.random() < 0.5:
            letter = rng.choice(_LETTERS)
            out.append(letter.upper() if ch.isupper() else letter)
    return "".join(out) or text[:1]


def _box(value: Any) -> bool:
    """Whether a value is a box: four numbers (Gemini's box_2d, xyxy, xywh), moved whole, never cut."""
    return (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def _moved_box(box: list[Any], rng: random.Random) -> list[Any]:
    """A box shifted by up to a third of its extent along each axis (its 1st and 3rd numbers one axis, 2nd and 4th
    the other, as both [ymin, xmin, ymax, xmax] and [xmin, ymin, xmax, ymax] have them), whole numbers kept whole."""
    out = list(box)
    for axis in (0, 1):
        shift = abs(box[axis + 2] - box[axis]) * rng.uniform(-1 / 3, 1 / 3)
        for i in (axis, axis + 2):
            out[i] = max(0, round(box[i] + shift)) if isinstance(box[i], int) else max(0.0, box[i] + shift)
    return out


def _perturbed(value: Any, rng: random.Random) -> Any:
    """One field's value, wrong: a bool flipped, a number moved by about 20%, a string noised, a box moved,
    containers in turn."""
    if _box(value):
        return _moved_box(value, rng)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        step = max(1, round(abs(value) * 0.2))
        moved = value + rng.choice((-step, step))
        return max(0, moved) if value >= 0 else moved
    if isinstance(value, float):
        return round(value * rng.uniform(0.8, 1.2), 3)
    if isinstance(value, str):
        return noisy_text(value, 0.3, rng)
    if isinstance(value, dict | list):
        return perturbed_json(value, 0.5, rng)
    return value


def perturbed_json(value: Any, p: float, rng: random.Random) -> Any:
    """An object or list with each field (element) dropped with probability p/2 and perturbed with p/2 (a box
    field is moved, never dropped); a box moved with probability p."""
    if _box(value):
        return _moved_box(value, rng) if rng.random() < p else value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            r = rng.random()
            if r < p / 2 and not _box(sub):  # an object keeps its box (a detection without one is no detection)
                continue
            out[key] = _perturbed(sub, rng) if r < p else perturbed_json(sub, p, rng)
        return out
    if isinstance(value, list):
        kept = []
        for sub in value:
            r = rng.random()
            if r < p / 2:
                continue
            kept.append(_perturbed(sub, rng) if r < p else perturbed_json(sub, p, rng))
        return kept
    return value


def distort(
    label: Any,
    kind: Kind,
    *,
    answers: Answers,
    n_images: int,
    long_side: int,
    rng: random.Random,
    options: list[str] | None = None,
) -> Any:
    """The emulated model's answer to an image labelled ``label``: the label through ``kind``'s error model."""
    if kind == "count":
        return distorted_count(label, answers=answers, n_images=n_images, long_side=long_side, rng=rng)
    scale = error_scale(answers, n_images, long_side)
    if kind == "boolean":
        return (not label) if rng.random() < min(0.5, answers.boolean_error * scale) else bool(label)
    if kind == "choice":
        others = [o for o in options or [] if o != label]
        if others and rng.random() < min(0.9, answers.choice_error * scale):
            return rng.choice(others)
        return label
    if kind == "text":
        return noisy_text(str(label), min(0.9, answers.text_error * scale), rng)
    return perturbed_json(label, min(0.9, answers.json_error * scale), rng)


def compact(value: Any) -> str:
    """Compact JSON, as structured output comes back."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _items(schema: dict[str, Any]) -> dict[str, Any]:
    """An array schema's ``items`` ({} when it gives none)."""
    items = schema.get("items")
    return items if isinstance(items, dict) else {}


def _blank(schema: dict[str, Any]) -> Any:
    return {"boolean": False, "integer": 0, "number": 0, "string": "", "array": [], "object": {}}.get(
        _schema_type(schema)
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "y")
    return bool(value)


def shape(schema: dict[str, Any], value: Any, position: int | None = None) -> Any:
    """``value`` (one image's answer) in ``schema``'s shape. A dict answer fills an object's properties it has
    (a required one it lacks gets a blank); a scalar answer fills the first property that is not an image index."""
    kind = _schema_type(schema)
    if kind == "boolean":
        return _truthy(value)
    if kind in ("integer", "number"):
        if isinstance(value, bool):
            return int(value)
        if not isinstance(value, int | float):
            return 0
        return int(round(value)) if kind == "integer" else value
    if kind == "string":
        if isinstance(value, str):
            return value
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        return compact(value) if isinstance(value, dict | list) else str(value)
    if kind == "array":
        items = _items(schema)
        if value is None:
            return []
        return [shape(items, v) for v in value] if isinstance(value, list) else [shape(items, value)]
    if kind == "object":
        props = schema.get("properties") or {}
        if not props:
            return value if isinstance(value, dict) else {"answer": value}
        if isinstance(value, dict):
            required = set(schema.get("required") or [])
            return {
                name: shape(sub, value[name]) if name in value else _blank(sub)
                for name, sub in ((k, v if isinstance(v, dict) else {}) for k, v in props.items())
                if name in value or name in required
            }
        out: dict[str, Any] = {}
        placed = False
        for name, sub in props.items():
            sub = sub if isinstance(sub, dict) else {}
            lowered = name.lower()
            if _schema_type(sub) == "integer" and position is not None and ("index" in lowered or "idx" in lowered):
                out[name] = position
            elif _schema_type(sub) == "integer" and position is not None and lowered in _ONE_BASED:
                out[name] = position + 1
            elif not placed:
                out[name], placed = shape(sub, value), True
            else:
                out[name] = _blank(sub)
        return out
    return value


def _plain(value: Any, want_json: bool) -> str:
    """One answer as a plain reply: ``yes``/``no`` (``true``/``false`` when JSON is asked for), the text, JSON."""
    if isinstance(value, bool):
        return ("true" if value else "false") if want_json else ("yes" if value else "no")
    if isinstance(value, str):
        return compact(value) if want_json else value
    if isinstance(value, dict | list):
        return compact(value)
    return UNKNOWN if value is None else str(value)


def format_reply(
    answers: list[Any],
    kinds: list[Kind],
    *,
    want_json: bool,
    schema: dict[str, Any] | None,
    prompt: str,
) -> str:
    """The reply text for ``answers`` (one per image, each of its ``kinds``); no answers: a request with no image."""
    if not answers:
        return compact(_blank(schema)) if schema else NO_IMAGE_REPLY
    if all(k == "count" for k in kinds):
        return format_counts(answers, want_json=want_json, schema=schema, prompt=prompt)
    n = len(answers)
    if schema:
        if _schema_type(schema) == "array" and (n > 1 or not isinstance(answers[0], list)):
            return compact([shape(_items(schema), v, i) for i, v in enumerate(answers)])
        return compact(shape(schema, answers[0]) if n == 1 else [shape(schema, v, i) for i, v in enumerate(answers)])
    if n > 1 or (want_json and any(w in prompt.lower() for w in ("array", "list"))):
        return compact(answers)
    return _plain(answers[0], want_json)


_JUDGE_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_JUDGE_REFERENCE = re.compile(r"<reference>(.*?)</reference>", re.DOTALL)
_JUDGE_SCALE = re.compile(r"from 0 \(wrong\) to (\d+) \(right\)")


def judge_verdict(prompt: str) -> int | None:
    """An emulated judge's score of a judge's request (``<answer>``, ``<reference>``s and the scale as the
    ``llm_judge`` scorer words them), else None: ``round(scale * similarity)`` with the closest reference, the
    similarity difflib's ratio of the two texts normalised (case, Unicode form, spaces). A stand-in that tests the
    judge's plumbing with figures one can work out by hand, not a model's judgement."""
    import difflib

    answer = _JUDGE_ANSWER.search(prompt)
    references = _JUDGE_REFERENCE.findall(prompt)
    scale = _JUDGE_SCALE.search(prompt)
    if answer is None or not references or scale is None:
        return None
    said = normalise_text(answer.group(1))
    closest = max(difflib.SequenceMatcher(None, said, normalise_text(r)).ratio() for r in references)
    return round(int(scale.group(1)) * closest)
