"""The one prompt rule (run/prompts.py): the wording for one image and for many, as it was before the split."""

import pytest

from visionbench.run.prompts import answers_schema, multi_image_prompt, prompt_for, response_schema
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


# Issue 24: choice and json tasks. The prompt the user writes is sent for one image; the multi-image wording
# says what each image's answer is, and structured output gets the matching schema.

SCENES = Task("scene", "What kind of scene is this?", "choice", choices=("street", "indoor", "crowd"))
OBJECT = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
COUNTS = Task("things", "Describe the counts as JSON.", "json", schema=OBJECT)


def test_choice_and_json_tasks_send_the_users_prompt_for_one_image():
    assert prompt_for(SCENES, 1) == SCENES.prompt and prompt_for(COUNTS, 1) == COUNTS.prompt


def test_the_multi_image_wording_of_a_choice_task_lists_the_labels():
    text = multi_image_prompt(SCENES, 2)
    assert 'each exactly one of these labels: "street", "indoor", "crowd"' in text
    assert "What kind of scene is this?" in text and "JSON array of 2 strings" in text
    items = answers_schema(SCENES, 2)["items"]
    assert items == {"type": "string", "enum": ["street", "indoor", "crowd"]}


def test_the_multi_image_wording_of_a_json_task_asks_one_object_per_image():
    text = multi_image_prompt(COUNTS, 4)
    assert "JSON array of 4 JSON objects, one object per image" in text and '"required": ["count"]' in text
    assert answers_schema(COUNTS, 4)["items"] == OBJECT
    assert answers_schema(Task("t", "?", "json"), 2)["items"] == {"type": "object"}


def test_one_image_of_a_json_task_sends_its_schema_and_other_types_none():
    assert response_schema(COUNTS, 1) == OBJECT
    assert response_schema(SCENES, 1) is None and response_schema(Task("t", "?"), 1) is None
    assert response_schema(SCENES, 3) == answers_schema(SCENES, 3)
