"""Turning reply text into answers, robustly: code fences, prose around the JSON, number words, wrong lengths."""

from __future__ import annotations

import json
import re
from typing import Any

from visionbench.types import Answer, AnswerType, Task

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORDS = {
    "zero": 0,
    "no": 0,
    "none": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}


class ParseError(ValueError):
    """The reply holds no answer of the expected type."""


def _coerce(value: Any, answer_type: AnswerType) -> Any:
    if isinstance(value, dict):
        # {"count": 3} or {"answer": 3}: a lone value in a one-key object is the answer.
        if len(value) == 1:
            return _coerce(next(iter(value.values())), answer_type)
        raise ParseError(f"expected one {answer_type} value, got an object with keys {', '.join(map(str, value))}")
    if answer_type == "text":
        return str(value).strip()
    if answer_type == "boolean":
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower().rstrip(".")
        if word in {"yes", "true", "y"}:
            return True
        if word in {"no", "false", "n"}:
            return False
        raise ParseError(f"expected yes/no, got {str(value)[:60]!r}")
    if isinstance(value, bool):
        raise ParseError(f"expected a {answer_type}, got {value!r}")
    if isinstance(value, (int, float)):
        number = value
    else:
        text = str(value).strip()
        match = _NUMBER.search(text)
        if match:
            number = float(match.group())
        else:
            words = re.findall(r"[a-z]+", text.lower())
            found = [w for w in words if w in _WORDS]
            if not found:
                raise ParseError(f"expected a {answer_type}, got {text[:60]!r}")
            number = _WORDS[found[0]]
    if answer_type == "integer":
        if float(number) != int(number):
            raise ParseError(f"expected an integer, got {number!r}")
        return int(number)
    return float(number)


def _strip_fences(text: str) -> str:
    match = _FENCE.search(text) if "```" in text else None
    return match.group(1) if match else text


def _first_json(text: str) -> Any:
    """The first JSON value in ``text`` that is an array or object, skipping prose around it."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "[{":
            try:
                return decoder.raw_decode(text, i)[0]
            except json.JSONDecodeError:
                continue
    raise ParseError("no JSON array or object in the reply")


def parse_single(text: str, answer_type: AnswerType) -> Any:
    """One answer from a one-image reply: ``3``, ``"There are 3 people."``, ``{"count": 3}``, fenced JSON..."""
    body = _strip_fences(text).strip()
    if not body:
        raise ParseError("empty reply")
    if answer_type != "text" and body[0] in "[{":
        try:
            value = _first_json(body)
        except ParseError:
            value = body
        if isinstance(value, list):
            if len(value) != 1:
                raise ParseError(f"expected one answer, got a list of {len(value)}")
            value = value[0]
        return _coerce(value, answer_type)
    return _coerce(body, answer_type)


def _as_list(value: Any, n: int) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in ("answers", "counts", "results", "images"):
            if isinstance(value.get(key), list):
                return value[key]
        # {"Image 1": 3, "Image 2": 0} or {"1": 3, ...}: order by the number in the key.
        keyed: dict[int, Any] = {}
        for key, item in value.items():
            match = re.search(r"\d+", str(key))
            if match:
                keyed[int(match.group())] = item
        if keyed:
            return [keyed.get(i) for i in range(1, max(max(keyed), n) + 1)]
    raise ParseError("the reply's JSON is neither a list of answers nor an object keyed by image number")


def parse_many(text: str, n: int, answer_type: AnswerType) -> list[Any | ParseError]:
    """``n`` answers from one multi-image reply, in image order; each is a value or the ``ParseError`` for it.

    A reply that holds no usable JSON at all raises ``ParseError`` (every item fails alike).
    A list of the wrong length fails every item: a model that skips one image shifts every later
    answer, so no position can be trusted.
    """
    values = _as_list(_first_json(_strip_fences(text)), n)
    if len(values) != n:
        note = f"reply has {len(values)} answers for {n} images"
        return [ParseError(note) for _ in range(n)]
    out: list[Any | ParseError] = []
    for value in values:
        if isinstance(value, dict) and "image" in value and len(value) == 2:
            value = next(v for k, v in value.items() if k != "image")
        try:
            out.append(_coerce(value, answer_type) if value is not None else ParseError("no answer for this image"))
        except ParseError as exc:
            out.append(exc)
    return out


def parse_answers(text: str, ids: list[str], task: Task) -> list[Answer]:
    """One answer per item id from a reply: a bare answer for one image, a JSON array for several."""
    if len(ids) == 1:
        try:
            return [Answer(ids[0], value=parse_single(text, task.answer_type))]
        except ParseError as exc:
            return [Answer(ids[0], error=f"unparseable reply: {exc}")]
    try:
        values = parse_many(text, len(ids), task.answer_type)
    except ParseError as exc:
        return [Answer(i, error=f"unparseable reply: {exc}") for i in ids]
    return [
        Answer(i, error=f"unparseable reply: {v}") if isinstance(v, ParseError) else Answer(i, value=v)
        for i, v in zip(ids, values)
    ]
