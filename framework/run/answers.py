"""Turning reply text into answers, robustly: code fences, prose around the JSON, number words, wrong lengths."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from visionbench.types import Answer, AnswerType, Task, choice_key, strip_markdown

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
#: A number as written in a reply: an optional sign and currency sign, digits with "," or "." between them, an
#: optional exponent. Digits right after a "." or "," (".5") are not a number's start: no guessing at "5".
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<sign>[-−+]?)\s?(?:[$€£¥₹]\s?)?"
    r"(?P<digits>\d(?:[\d.,]*\d)?)(?:[eE](?P<exp>[-+]?\d+))?(?![\w])"
)
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
_YES = {"yes", "true", "y"}
_NO = {"no", "false", "n"}


class ParseError(ValueError):
    """The reply holds no answer of the expected type."""


def _shown(text: str) -> str:
    """The reply as an error shows it: on one line, at most 80 characters."""
    flat = " ".join(str(text).split())
    return repr(flat if len(flat) <= 80 else flat[:77] + "...")


def _a(answer_type: str) -> str:
    return f"an {answer_type}" if answer_type[0] in "aeiou" else f"a {answer_type}"


def read_number(digits: str, decimal: str) -> int | float:
    """A number's digits as written (``1,234.5``), read by the decimal rule: with ``decimal="."`` a "," groups
    thousands and "." is the decimal point; with ``decimal=","`` the other way round. Thousands groups must be
    three digits after a first group of one to three, and come before the decimal mark; anything else ("7,70"
    under ".", "1.2.3") is ambiguous and raises ``ParseError``."""
    group = "," if decimal == "." else "."
    whole, point, fraction = digits.partition(decimal)
    if decimal in fraction or group in fraction:
        raise ParseError(f"{digits!r} is not a number with {decimal!r} as the decimal mark")
    if group in whole:
        parts = whole.split(group)
        if not (1 <= len(parts[0]) <= 3 and all(len(p) == 3 for p in parts[1:])):
            raise ParseError(f"{digits!r} is not a number with {decimal!r} as the decimal mark")
        whole = "".join(parts)
    return float(f"{whole}.{fraction}") if point else int(whole)


#: Thousands separators no one writes between two numbers: no-break, narrow no-break and thin spaces, an apostrophe.
_UNAMBIGUOUS_GROUPS = re.compile(r"(?<=\d)[\u00a0\u202f\u2009'](?=\d{3}(?!\d))")


def _number(text: str, answer_type: str, decimal: str) -> int | float:
    text = _UNAMBIGUOUS_GROUPS.sub("," if decimal == "." else ".", text)
    match = _NUMBER.search(text)
    if match is not None and re.match(r" \d{3}(?![\d.,])", text[match.end() :]) and len(match["digits"]) <= 3:
        # "1 234": thousands grouped by a space, or two numbers? Either reading would be a guess.
        raise ParseError(f"a space between digits is ambiguous (one number or two?), in {_shown(text)}")
    if match is None:
        words = re.findall(r"[a-z]+", text.lower())
        found = [w for w in words if w in _WORDS]
        if not found:
            raise ParseError(f"expected {_a(answer_type)}, got {_shown(text)}")
        return _WORDS[found[0]]
    try:
        number: int | float = read_number(match["digits"], decimal)
    except ParseError as exc:
        raise ParseError(f"{exc}, in {_shown(text)}") from None
    if match["exp"] is not None:
        number = float(number) * 10.0 ** int(match["exp"])
    return -number if match["sign"] in ("-", "−") else number


def _boolean(text: str) -> bool:
    words = re.findall(r"[a-z]+", strip_markdown(text).lower())
    if words[:1] == ["answer"]:
        words = words[1:]
    if words and words[0] in _YES:
        return True
    if words and words[0] in _NO:
        return False
    raise ParseError(f"expected yes/no, got {_shown(text)}")


def _coerce(value: Any, task: Task) -> Any:
    answer_type = task.answer_type
    if answer_type == "json":
        return _json_value(value, task)
    if isinstance(value, dict):
        # {"count": 3} or {"answer": 3}: a lone value in a one-key object is the answer.
        if len(value) == 1:
            return _coerce(next(iter(value.values())), task)
        raise ParseError(f"expected one {answer_type} value, got an object with keys {', '.join(map(str, value))}")
    if answer_type == "text":
        return str(value).strip()
    if answer_type == "choice":
        return match_choice(str(value), task.choices or ())
    if answer_type == "boolean":
        if isinstance(value, bool):
            return value
        return _boolean(str(value))
    if isinstance(value, bool):
        raise ParseError(f"expected {_a(answer_type)}, got {value!r}")
    if isinstance(value, (int, float)):
        number = value
        if not math.isfinite(number):
            raise ParseError(f"expected {_a(answer_type)}, got {value!r}")
    else:
        number = _number(strip_markdown(str(value)), answer_type, task.decimal)
    if not math.isfinite(number):
        raise ParseError(f"expected {_a(answer_type)}, got {_shown(str(value))}")
    if answer_type == "integer":
        if float(number) != int(number):
            raise ParseError(f"expected an integer, got {number!r}")
        return int(number)
    return float(number)


def match_choice(reply: str, choices: tuple[str, ...] | list[str]) -> str:
    """The one choice ``reply`` names: the whole reply ("Indoor", "street.", '"crowd"'), else the one choice
    found as whole words in it ("The image shows a street scene."). None or two named is a ``ParseError``."""
    key = choice_key(reply)
    keys = {choice_key(c): c for c in choices}
    if key in keys:
        return keys[key]
    padded = f" {key} "
    named = [c for k, c in keys.items() if k and f" {k} " in padded]
    # "street" inside "street scene" is named once; a choice inside a longer named choice is not a second one
    named = [c for c in named if not any(c != o and f" {choice_key(c)} " in f" {choice_key(o)} " for o in named)]
    if len(named) == 1:
        return named[0]
    listed = ", ".join(choices)
    if not named:
        raise ParseError(f"names none of the choices ({listed}): {_shown(reply)}")
    raise ParseError(f"names {len(named)} choices ({', '.join(named)}), expected one: {_shown(reply)}")


def _json_value(value: Any, task: Task) -> Any:
    if isinstance(value, str):
        value = _first_json(_strip_fences(value))
    schema = task.schema
    if schema is not None:
        import jsonschema

        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "(top level)"
            raise ParseError(f"does not match the task's schema at {where}: {error.message[:120]}")
    return value


def _as_task(expected: Task | AnswerType) -> Task:
    return expected if isinstance(expected, Task) else Task(id="", prompt="", answer_type=expected)


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


def parse_single(text: str, expected: Task | AnswerType) -> Any:
    """One answer from a one-image reply: ``3``, ``"There are 3 people."``, ``{"count": 3}``, fenced JSON...

    ``expected`` is the task (its answer type, choices, schema and decimal rule), or just an answer type."""
    task = _as_task(expected)
    body = _strip_fences(text).strip()
    if not body:
        raise ParseError("empty reply")
    if task.answer_type == "json":
        value = _first_json(body)
        if isinstance(value, list) and len(value) == 1 and (task.schema or {}).get("type") == "object":
            value = value[0]
        return _json_value(value, task)
    if task.answer_type != "text" and body[0] in "[{":
        try:
            value = _first_json(body)
        except ParseError:
            value = body
        if isinstance(value, list):
            if len(value) != 1:
                raise ParseError(f"expected one answer, got a list of {len(value)}")
            value = value[0]
        return _coerce(value, task)
    return _coerce(body, task)


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


def parse_many(text: str, n: int, expected: Task | AnswerType) -> list[Any | ParseError]:
    """``n`` answers from one multi-image reply, in image order; each is a value or the ``ParseError`` for it.

    A reply that holds no usable JSON at all raises ``ParseError`` (every item fails alike).
    A list of the wrong length fails every item: a model that skips one image shifts every later
    answer, so no position can be trusted.
    """
    task = _as_task(expected)
    values = _as_list(_first_json(_strip_fences(text)), n)
    if len(values) != n:
        note = f"reply has {len(values)} answers for {n} images"
        return [ParseError(note) for _ in range(n)]
    out: list[Any | ParseError] = []
    for value in values:
        if task.answer_type != "json" and isinstance(value, dict) and "image" in value and len(value) == 2:
            value = next(v for k, v in value.items() if k != "image")
        try:
            out.append(_coerce(value, task) if value is not None else ParseError("no answer for this image"))
        except ParseError as exc:
            out.append(exc)
    return out


def parse_answers(text: str, ids: list[str], task: Task) -> list[Answer]:
    """One answer per item id from a reply: a bare answer for one image, a JSON array for several."""
    if len(ids) == 1:
        try:
            return [Answer(ids[0], value=parse_single(text, task))]
        except ParseError as exc:
            message, shown = str(exc), _shown(text)
            if shown[1:-1] not in message:  # the reply is not shown in it yet
                message += f"; reply: {shown}"
            return [Answer(ids[0], error=f"unparseable reply: {message}")]
    try:
        values = parse_many(text, len(ids), task)
    except ParseError as exc:
        return [Answer(i, error=f"unparseable reply: {exc}; reply: {_shown(text)}") for i in ids]
    return [
        Answer(i, error=f"unparseable reply: {v}") if isinstance(v, ParseError) else Answer(i, value=v)
        for i, v in zip(ids, values)
    ]
