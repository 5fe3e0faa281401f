"""The one prompt rule: how a task is worded for a request of one image, and of several, and the JSON Schema a
request's reply must follow where the provider takes one (structured output)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from visionbench.types import Task, fill_template

_JSON_TYPES = {"integer": "integer", "number": "number", "boolean": "boolean", "text": "string", "choice": "string"}


def prompt_for(
    task: Task, n: int, fields: dict[str, Any] | None = None, images_per_item: Sequence[int] | None = None
) -> str:
    """The prompt of a request of ``n`` items: the task's own for one (of any number of images), the labelled
    wording for several; its ``{field}`` placeholders filled from ``fields`` (an item's row; several items share
    one prompt, checked by the plan), ``{{``/``}}`` written as one brace. ``images_per_item``: how many images
    each item has (None: one each)."""
    prompt = fill_template(task.prompt, fields)
    return prompt if n == 1 else multi_image_prompt(task, n, prompt, images_per_item)


def _per_answer(task: Task, n: int, unit: str) -> str:
    """What the array of a multi-item reply holds, by the task's answer type."""
    if task.answer_type == "choice":
        listed = ", ".join(json.dumps(c, ensure_ascii=False) for c in task.choices or ())
        return f"{n} strings, each exactly one of these labels: {listed},"
    if task.answer_type == "json":
        follows = (
            f" each following this JSON Schema: {json.dumps(task.schema, ensure_ascii=False)}"
            if task.schema is not None
            else ""
        )
        return f"{n} JSON objects, one object per {unit}{follows},"
    return f"{n} {_JSON_TYPES[task.answer_type]} values,"


def _images_of(start: int, count: int) -> str:
    return f"Image {start}" if count == 1 else f"Images {start}-{start + count - 1}"


def multi_image_prompt(
    task: Task, n: int, prompt: str | None = None, images_per_item: Sequence[int] | None = None
) -> str:
    """The single-prompt wording: images are labelled Image 1..N and one JSON array answers them in order
    (``prompt``: the task's, filled; default: the task's as written). Items of several images are named, each
    with its images ("Item 1 is Images 1-2; Item 2 is Image 3"), and answered one per item."""
    question = task.prompt if prompt is None else prompt
    if images_per_item is None or all(count == 1 for count in images_per_item):
        return (
            f"You are given {n} images, labelled Image 1 to Image {n} in the order they appear.\n"
            f"For each image, answer this question: {question}\n"
            f"Reply with only a JSON array of {_per_answer(task, n, 'image')} "
            f"one per image in order (Image 1 first), and nothing else."
        )
    starts = [1 + sum(images_per_item[:k]) for k in range(n)]
    groups = "; ".join(f"Item {k + 1} is {_images_of(starts[k], c)}" for k, c in enumerate(images_per_item))
    return (
        f"You are given {n} items of {sum(images_per_item)} images in all, labelled Image 1 to Image "
        f"{sum(images_per_item)} in the order they appear: {groups}.\n"
        f"For each item, answer this question about its images: {question}\n"
        f"Reply with only a JSON array of {_per_answer(task, n, 'item')} "
        f"one per item in order (Item 1 first), and nothing else."
    )


def _item_schema(task: Task) -> dict[str, Any]:
    if task.answer_type == "choice":
        return {"type": "string", "enum": list(task.choices or ())}
    if task.answer_type == "json":
        return task.schema if task.schema is not None else {"type": "object"}
    return {"type": _JSON_TYPES[task.answer_type]}


def answers_schema(task: Task, n: int) -> dict:
    """JSON Schema for a reply of ``n`` answers (one per item), for providers with structured output."""
    return {"type": "array", "items": _item_schema(task), "minItems": n, "maxItems": n}


def response_schema(task: Task, n: int) -> dict[str, Any] | None:
    """The schema a request of ``n`` items sends to a provider with structured output: the array of answers for
    several items; for one item, a json task's own schema (the other types' one-item replies are free text)."""
    if n > 1:
        return answers_schema(task, n)
    return task.schema if task.answer_type == "json" else None


__all__ = ["answers_schema", "multi_image_prompt", "prompt_for", "response_schema"]
