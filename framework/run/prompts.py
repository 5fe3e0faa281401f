"""The one prompt rule: how a task is worded for a request of one image, and of several, and the JSON Schema a
request's reply must follow where the provider takes one (structured output)."""

from __future__ import annotations

import json
from typing import Any

from visionbench.types import Task, fill_template

_JSON_TYPES = {"integer": "integer", "number": "number", "boolean": "boolean", "text": "string", "choice": "string"}


def prompt_for(task: Task, n: int, fields: dict[str, Any] | None = None) -> str:
    """The prompt of a request of ``n`` images: the task's own for one, the labelled wording for several; its
    ``{field}`` placeholders filled from ``fields`` (an item's row; several images share one prompt, checked by
    the plan), ``{{``/``}}`` written as one brace."""
    prompt = fill_template(task.prompt, fields)
    return prompt if n == 1 else multi_image_prompt(task, n, prompt)


def _per_image(task: Task, n: int) -> str:
    """What the array of a multi-image reply holds, by the task's answer type."""
    if task.answer_type == "choice":
        listed = ", ".join(json.dumps(c, ensure_ascii=False) for c in task.choices or ())
        return f"{n} strings, each exactly one of these labels: {listed},"
    if task.answer_type == "json":
        follows = (
            f" each following this JSON Schema: {json.dumps(task.schema, ensure_ascii=False)}"
            if task.schema is not None
            else ""
        )
        return f"{n} JSON objects, one object per image{follows},"
    return f"{n} {_JSON_TYPES[task.answer_type]} values,"


def multi_image_prompt(task: Task, n: int, prompt: str | None = None) -> str:
    """The single-prompt wording: images are labelled Image 1..N and one JSON array answers them in order
    (``prompt``: the task's, filled; default: the task's as written)."""
    return (
        f"You are given {n} images, labelled Image 1 to Image {n} in the order they appear.\n"
        f"For each image, answer this question: {task.prompt if prompt is None else prompt}\n"
        f"Reply with only a JSON array of {_per_image(task, n)} "
        f"one per image in order (Image 1 first), and nothing else."
    )


def _item_schema(task: Task) -> dict[str, Any]:
    if task.answer_type == "choice":
        return {"type": "string", "enum": list(task.choices or ())}
    if task.answer_type == "json":
        return task.schema if task.schema is not None else {"type": "object"}
    return {"type": _JSON_TYPES[task.answer_type]}


def answers_schema(task: Task, n: int) -> dict:
    """JSON Schema for a reply of ``n`` answers, for providers with structured output."""
    return {"type": "array", "items": _item_schema(task), "minItems": n, "maxItems": n}


def response_schema(task: Task, n: int) -> dict[str, Any] | None:
    """The schema a request of ``n`` images sends to a provider with structured output: the array of answers for
    several images; for one image, a json task's own schema (the other types' one-image replies are free text)."""
    if n > 1:
        return answers_schema(task, n)
    return task.schema if task.answer_type == "json" else None


__all__ = ["answers_schema", "multi_image_prompt", "prompt_for", "response_schema"]
