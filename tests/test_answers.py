import pytest

from visionbench.run.answers import ParseError, parse_many, parse_single


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3", 3),
        ("There are 12 people in the image.", 12),
        ('```json\n{"count": 4}\n```', 4),
        ('{"answer": 7}', 7),
        ("[2]", 2),
        ("I can see three people.", 3),
        ("No people are visible.", 0),
    ],
)
def test_single_integer_answers(text, expected):
    assert parse_single(text, "integer") == expected


@pytest.mark.parametrize("text", ["", "I cannot tell.", "2.5", '{"a": 1, "b": 2}', "[1, 2]"])
def test_single_integer_failures(text):
    with pytest.raises(ParseError):
        parse_single(text, "integer")


def test_single_boolean_and_text():
    assert parse_single("Yes.", "boolean") is True
    assert parse_single("false", "boolean") is False
    assert parse_single("  a cat ", "text") == "a cat"


def test_many_with_fences_and_prose():
    text = "Here you go:\n```json\n[3, 0, 12]\n```\nHope that helps!"
    assert parse_many(text, 3, "integer") == [3, 0, 12]


def test_many_keyed_by_image_label():
    assert parse_many('{"Image 2": 5, "Image 1": 1}', 2, "integer") == [1, 5]
    assert parse_many('{"counts": [4, 2]}', 2, "integer") == [4, 2]
    assert parse_many('[{"image": 1, "count": 2}, {"image": 2, "count": 0}]', 2, "integer") == [2, 0]


def test_many_wrong_length_fails_every_item():
    out = parse_many("[1, 2]", 3, "integer")
    assert len(out) == 3 and all(isinstance(o, ParseError) for o in out)
    assert "2 answers for 3 images" in str(out[0])


def test_many_bad_value_fails_only_that_item():
    out = parse_many('[1, "lots", 3]', 3, "integer")
    assert out[0] == 1 and out[2] == 3 and isinstance(out[1], ParseError)


def test_many_no_json_raises():
    with pytest.raises(ParseError):
        parse_many("Image 1 has two people", 1, "integer")
