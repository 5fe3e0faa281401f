import pytest

from visionbench.run.answers import ParseError, match_choice, parse_answers, parse_many, parse_single
from visionbench.types import Task


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


# Issue 24: numbers as models write them, by an explicit decimal rule; never a guess.


def _task(answer_type, **kw):
    return Task(id="t", prompt="?", answer_type=answer_type, **kw)


@pytest.mark.parametrize(
    "text, answer_type, expected",
    [
        ("1,234", "integer", 1234),
        ("About 1,500 people.", "integer", 1500),
        ("1,234,567", "integer", 1234567),
        ("$1,234.50", "number", 1234.5),
        ("2.5e-3", "number", 0.0025),
        ("1E3", "integer", 1000),
        ("-4.5 °C", "number", -4.5),
        ("**12**", "integer", 12),
        ("*7*", "integer", 7),
        ("`3`", "integer", 3),
        ("1.5", "number", 1.5),
    ],
)
def test_numbers_with_the_point_as_decimal_mark(text, answer_type, expected):
    assert parse_single(text, answer_type) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("7,70 €", 7.7), ("1.234", 1234.0), ("1.234,5", 1234.5), ("€ 12", 12.0), ("2,5e-3", 0.0025)],
)
def test_numbers_with_the_comma_as_decimal_mark(text, expected):
    assert parse_single(text, _task("number", decimal=",")) == expected


@pytest.mark.parametrize("text", ["7,70 €", "1.234.567", "1,23", "12,34.5", ".5", "lots"])
def test_ambiguous_numbers_are_errors_not_guesses(text):
    with pytest.raises(ParseError):
        parse_single(text, "number")


def test_an_unparseable_number_is_an_item_error_showing_the_reply():
    [answer] = parse_answers("It costs 7,70 €.", ["a.jpg"], _task("number"))
    assert answer.value is None and "7,70" in answer.error and "It costs 7,70 €." in answer.error


def test_a_reply_without_the_reply_quoted_in_the_error_gets_it_appended():
    [answer] = parse_answers("[1, 2]", ["a.jpg"], _task("integer"))
    assert "reply: '[1, 2]'" in answer.error


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Yes, there is a dog in the picture.", True),
        ("**Yes**", True),
        ("No.", False),
        ("no, nothing like that", False),
        ("Answer: yes", True),
        ("- **No**, it is empty.", False),
        ("True", True),
    ],
)
def test_booleans_as_models_write_them(text, expected):
    assert parse_single(text, "boolean") is expected


@pytest.mark.parametrize("text", ["Maybe.", "I think so", "It is not clear whether yes or no"])
def test_a_boolean_not_leading_the_reply_is_an_error(text):
    with pytest.raises(ParseError):
        parse_single(text, "boolean")


SCENES = ("street", "indoor", "crowd", "animal", "object")


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Indoor", "indoor"),
        ("street.", "street"),
        ('"crowd"', "crowd"),
        ("**Animal**", "animal"),
        ("The image shows a street scene.", "street"),
        ("Answer: OBJECT", "object"),
    ],
)
def test_a_choice_reply_maps_to_its_choice(reply, expected):
    assert parse_single(reply, _task("choice", choices=SCENES)) == expected


@pytest.mark.parametrize("reply", ["A street with a crowd.", "a beach", "outdoors", ""])
def test_a_reply_naming_two_choices_or_none_is_an_item_error_showing_it(reply):
    [answer] = parse_answers(reply, ["a.jpg"], _task("choice", choices=SCENES))
    assert answer.value is None and answer.error
    if reply:
        assert repr(reply) in answer.error


def test_a_choice_inside_a_longer_choice_is_not_a_second_one():
    assert match_choice("a red car", ("car", "red car", "bus")) == "red car"


def test_choices_in_a_multi_image_reply():
    out = parse_many('["Street", "crowd.", "beach"]', 3, _task("choice", choices=SCENES))
    assert out[:2] == ["street", "crowd"] and isinstance(out[2], ParseError)


SCHEMA = {
    "type": "object",
    "properties": {"count": {"type": "integer"}, "kind": {"type": "string"}},
    "required": ["count", "kind"],
}


@pytest.mark.parametrize(
    "reply",
    [
        '{"count": 2, "kind": "cat"}',
        'Sure! ```json\n{"kind": "cat",\n  "count": 2}\n```',
        'Here is the answer: {"count": 2, "kind": "cat"} Hope it helps.',
        '[{"count": 2, "kind": "cat"}]',
    ],
)
def test_a_json_reply_is_parsed_from_fences_or_prose(reply):
    assert parse_single(reply, _task("json", schema=SCHEMA)) == {"count": 2, "kind": "cat"}


@pytest.mark.parametrize("reply", ['{"count": "two", "kind": "cat"}', '{"count": 2}', "two cats", "{not json"])
def test_a_json_reply_off_the_schema_is_an_item_error_showing_the_reply(reply):
    [answer] = parse_answers(reply, ["a.jpg"], _task("json", schema=SCHEMA))
    assert answer.value is None and answer.error and reply[:8] in answer.error


def test_json_objects_in_a_multi_image_reply_are_not_unwrapped():
    reply = '[{"image": 1, "count": 2}, {"count": 3, "kind": "dog"}]'
    out = parse_many(reply, 2, _task("json", schema={"type": "object"}))
    assert out == [{"image": 1, "count": 2}, {"count": 3, "kind": "dog"}]


@pytest.mark.parametrize("text, expected", [("1\u202f234 people", 1234), ("1\u00a0500", 1500), ("1'234", 1234)])
def test_unambiguous_thousands_spaces_and_apostrophes(text, expected):
    assert parse_single(text, "integer") == expected


@pytest.mark.parametrize("text", ["1 234", "About 12 500 people"])
def test_digits_split_by_a_plain_space_are_ambiguous(text):
    with pytest.raises(ParseError, match="ambiguous"):
        parse_single(text, "integer")
