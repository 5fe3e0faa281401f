"""The one prompt rule: how a task is worded for a request of one image, and of several."""

from __future__ import annotations

from visionbench.types import Task

_JSON_TYPES = {"integer": "integer", "number": "number", "boolean": "boolean", "text": "string"}


def prompt_for(task: Task, n: int) -> str:
    """The prompt of a request of ``n`` images: the task's own for one, the labelled wording for several."""
    return task.prompt if n == 1 else multi_image_prompt(task, n)


def multi_image_prompt(task: Task, n: int) -> str:
    """The single-prompt wording: images are labelled Image 1..N and one JSON array answers them in order."""
    return (
        f"You are given {n} images, labelled Image 1 to Image {n} in the order they appear.\n"
        f"For each image, answer this question: {task.prompt}\n"
        f"Reply with only a JSON array of {n} {_JSON_TYPES[task.answer_type]} values, "
        f"one per image in order (Image 1 first), and nothing else."
    )


def answers_schema(task: Task, n: int) -> dict:
    """JSON Schema for a reply of ``n`` answers, for providers with structured output."""
    return {"type": "array", "items": {"type": _JSON_TYPES[task.answer_type]}, "minItems": n, "maxItems": n}


__all__ = ["answers_schema", "multi_image_prompt", "prompt_for"]
