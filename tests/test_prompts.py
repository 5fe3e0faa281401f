"""The one prompt rule (run/prompts.py): the wording for one image and for many, as it was before the split."""

import pytest

from visionbench.run.prompts import answers_schema, multi_image_prompt, prompt_for
from visionbench.types import Task

# What run/cell.py's multi_image_prompt returned before the prompt rule got a module of its own.
BEFORE = (
    "You are given 3 images, labelled Image 1 to Image 3 in the order they appear.\n"
    "For each image, answer this question: How many people?\n"
    "Reply with only a JSON array of 3 {} values, one per image in order (Image 1 first), and nothing else."
)


def test_one_image_is_asked_the_tasks_own_prompt():
    task = Task("count-people", "How many people?")
    assert prompt_for(task, 1) == "How many people?"


@pytest.mark.parametrize(
    "answer_type, json_type", [("integer", "integer"), ("number", "number"), ("boolean", "boolean"), ("text", "string")]
)
def test_many_images_are_labelled_and_answered_by_one_array(answer_type, json_type):
    task = Task("count-people", "How many people?", answer_type)
    assert prompt_for(task, 3) == multi_image_prompt(task, 3) == BEFORE.format(json_type)
    assert answers_schema(task, 3) == {"type": "array", "items": {"type": json_type}, "minItems": 3, "maxItems": 3}
