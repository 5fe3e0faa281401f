import pytest
import yaml
from conftest import write_config

from visionbench.errors import ConfigError
from visionbench.run.config import load_experiment
from visionbench.run.plan import load_plan, prepare


def error_of(path, registry, *, prepare_too=False):
    with pytest.raises(ConfigError) as info:
        exp = load_experiment(path, registry)
        if prepare_too:
            prepare(exp, registry)
    return str(info.value)


def test_matrix_expands_models_and_strategies(tmp_path, image_dir, registry):
    path = write_config(
        tmp_path, image_dir, ["sequential", {"name": "concurrent", "label": "c4", "max_concurrency": 4}]
    )
    exp = load_experiment(path, registry)
    assert [c.id for c in exp.cells] == ["scripted/m1/sequential", "scripted/m1/c4"]
    assert exp.cells[1].written_params() == {"max_concurrency": 4}  # validated once, at load: typed
    assert exp.cells[1].params.max_concurrency == 4


def test_unknown_strategy_names_allowed_values(tmp_path, image_dir, registry):
    msg = error_of(write_config(tmp_path, image_dir, ["turbo"]), registry)
    assert str(tmp_path / "exp.yaml") in msg and "matrix[0].strategies[0]" in msg
    assert "'turbo'" in msg and "sequential" in msg and "single-prompt" in msg


def test_unknown_provider_names_loaded_ones(tmp_path, image_dir, registry):
    msg = error_of(write_config(tmp_path, image_dir, ["sequential"], provider="nope"), registry)
    assert "nope" in msg and "local-faces" in msg and "scripted" in msg


def test_wrong_type_names_the_key(tmp_path, image_dir, registry):
    path = write_config(tmp_path, image_dir, ["sequential"], repeats="many")
    msg = error_of(path, registry)
    assert "repeats" in msg and "integer" in msg


def test_bad_strategy_param_names_the_param(tmp_path, image_dir, registry):
    msg = error_of(write_config(tmp_path, image_dir, [{"name": "concurrent", "max_concurrency": 0}]), registry)
    assert "matrix[0].strategies[0].max_concurrency" in msg and "greater than or equal to 1" in msg
    msg = error_of(write_config(tmp_path, image_dir, [{"name": "concurrent", "burst": 3}]), registry)
    assert "burst" in msg and "unknown key" in msg


def test_enum_error_lists_allowed_values(tmp_path, image_dir, registry):
    path = write_config(tmp_path, image_dir, ["sequential"], preprocessing={"format": "gif"})
    msg = error_of(path, registry)
    assert "preprocessing.format" in msg and "'jpeg'" in msg and "'png'" in msg


def test_missing_dataset(tmp_path, image_dir, registry):
    path = write_config(tmp_path, image_dir / "nowhere", ["sequential"])
    assert "dataset.path" in error_of(path, registry) and "does not exist" in error_of(path, registry)
    path.write_text(path.read_text().replace("dataset:", "datasett:"))
    msg = error_of(path, registry)
    assert "dataset: Field required" in msg and "datasett: unknown key" in msg


def test_malformed_yaml_gives_line(tmp_path, registry):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmatrix: [unclosed\n")
    msg = error_of(path, registry)
    assert "bad.yaml" in msg and "malformed YAML" in msg and "line" in msg


def test_labels_naming_missing_items(tmp_path, image_dir, registry):
    (image_dir / "labels.json").write_text('{"img0.png": {"person_count": 0}, "ghost.jpg": {"person_count": 2}}')
    msg = error_of(write_config(tmp_path, image_dir, ["sequential"]), registry, prepare_too=True)
    assert "labels.json" in msg and "ghost.jpg" in msg


def test_provider_that_cannot_answer_the_task(tmp_path, image_dir, registry):
    path = write_config(tmp_path, image_dir, ["sequential"], provider="local-faces")
    text = path.read_text().replace("id: count-people", "id: describe").replace("- m1", "- centerface")
    path.write_text(text)
    msg = error_of(path, registry, prepare_too=True)
    assert "local-faces" in msg and "describe" in msg and "count-people" in msg


def test_single_prompt_needs_multi_image_provider(tmp_path, image_dir, registry):
    path = write_config(tmp_path, image_dir, ["single-prompt"], options={"max_images": 1})
    msg = error_of(path, registry, prepare_too=True)
    assert "single-prompt" in msg and "one image per request" in msg


def _params_config(tmp_path, image_dir, provider, model, params):
    path = write_config(tmp_path, image_dir, ["sequential"], provider=provider)
    config = yaml.safe_load(path.read_text())
    config["matrix"][0].update(models=[model], model_params=params)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("provider", "model", "params", "expected"),
    [
        ("gemini", "gemini-3.5-flash", {"thinking_budgt": 0}, "unknown parameter 'thinking_budgt' (did you mean"),
        ("gemini", "gemini-3.5-flash", {"temperature": 3}, "temperature: Input should be less than or equal to 2"),
        ("gemini", "gemini-3.5-flash", {"top_k": "many"}, "top_k: Input should be a valid integer"),
        ("gemini", "gemini-3.5-flash", {"thinking_level": "huge"}, "'minimal', 'low', 'medium' or 'high'"),
        ("gemini", "gemini-2.5-pro", {"thinking_level": "low"}, "Gemini 3 models and later only"),
        ("gemini", "gemini-3.5-flash", {"thinking_level": "low", "thinking_budget": 0}, "cannot both be set"),
        ("anthropic", "claude-haiku-5-5", {"temperature": 0.2}, "has no temperature"),
        ("anthropic", "claude-haiku-5-5", {"thinking_budget": 500}, "below the minimum 1024"),
        ("anthropic", "claude-haiku-5-5", {"effort": "extreme"}, "effort: Input should be"),
        ("local-faces", "centerface", {"threshold": 0.5}, "takes no model_params"),
    ],
)
def test_model_params_are_checked_by_the_provider_before_anything_is_sent(
    tmp_path, image_dir, registry, provider, model, params, expected
):
    msg = error_of(_params_config(tmp_path, image_dir, provider, model, params), registry, prepare_too=True)
    assert expected in msg and f"cell {provider}/{model}/sequential: model_params" in msg
    assert "pydantic" not in msg and "For further information" not in msg


def test_good_model_params_pass(tmp_path, image_dir, registry):
    path = _params_config(tmp_path, image_dir, "gemini", "gemini-3.5-flash", {"thinking_level": "LOW", "seed": 3})
    plan = load_plan(path, registry)
    assert plan.warnings == []


@pytest.mark.parametrize(
    "task, needle",
    [
        ({"answer": "choice"}, "needs choices"),
        ({"answer": "choice", "choices": ["Street", "street."]}, "the same once normalised"),
        ({"answer": "integer", "choices": ["a"]}, "choices is for answer: choice"),
        ({"answer": "text", "schema": {"type": "object"}}, "schema is for answer: json"),
        ({"answer": "json", "schema": {"type": "thing"}}, "not a valid JSON Schema"),
        ({"answer": "number", "decimal": ";"}, "decimal"),
    ],
)
def test_a_task_of_choices_or_json_is_checked_when_the_config_is_read(task, needle):
    from pydantic import ValidationError

    from visionbench.run.config import TaskSpec

    with pytest.raises(ValidationError, match=needle):
        TaskSpec.model_validate({"prompt": "?", **task})


def test_a_json_tasks_schema_is_written_under_its_own_name():
    from visionbench.run.config import TaskSpec

    spec = TaskSpec.model_validate({"prompt": "?", "answer": "json", "schema": {"type": "object"}, "decimal": ","})
    assert spec.model_dump(mode="json")["schema"] == {"type": "object"}
    task = spec.to_task()
    assert task.schema == {"type": "object"} and task.decimal == "," and task.answer_type == "json"
