"""Sweep axes: lists in a matrix entry's preprocessing, model_params and strategy params expand into cells."""

import math

import diskcache
import pytest
import yaml
from conftest import write_config

from visionbench.errors import ConfigError
from visionbench.results import bundle as bundle_mod
from visionbench.run.config import load_experiment
from visionbench.run.plan import load_plan
from visionbench.run.runner import run
from visionbench.run.sweep import combinations, describe, varying


def sweep_config(tmp_path, image_dir, **entry):
    path = write_config(tmp_path, image_dir, ["concurrent"], options={"answers": {}})
    config = yaml.safe_load(path.read_text())
    config["matrix"][0].update(entry)
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_issues_example_gives_six_cells_named_by_what_varies(tmp_path, image_dir, registry):
    path = sweep_config(
        tmp_path,
        image_dir,
        preprocessing={"max_side": [384, 768, 1536]},
        model_params={"media_resolution": ["low", "high"], "temperature": 0},
    )
    cells = load_experiment(path, registry).cells
    assert [c.id for c in cells] == [
        f"scripted/m1/concurrent@{side}px,media_resolution={res}"
        for side in (384, 768, 1536)
        for res in ("low", "high")
    ]
    assert [c.preprocessing.max_side for c in cells] == [384, 384, 768, 768, 1536, 1536]
    assert cells[1].model_params == {"media_resolution": "high", "temperature": 0}
    assert cells[1].varied == {"max_side": 384, "media_resolution": "high"}
    assert all(c.preprocessing.format == "jpeg" and c.preprocessing.quality == 85 for c in cells)


def test_strategy_params_sweep_and_one_value_names_nothing(tmp_path, image_dir, registry):
    path = write_config(tmp_path, image_dir, [{"name": "concurrent", "max_concurrency": [1, 4]}, "sequential"])
    cells = load_experiment(path, registry).cells
    assert [c.id for c in cells] == [
        "scripted/m1/concurrent@max_concurrency=1",
        "scripted/m1/concurrent@max_concurrency=4",
        "scripted/m1/sequential",
    ]
    path = sweep_config(tmp_path, image_dir, preprocessing={"max_side": 512})
    (cell,) = load_experiment(path, registry).cells
    assert cell.id == "scripted/m1/concurrent" and cell.preprocessing.max_side == 512


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"preprocessing": {"max_side": []}}, "matrix[0].preprocessing.max_side: an empty list sweeps nothing"),
        ({"model_params": {"media_resolution": ["low", "low"]}}, "matrix[0].model_params.media_resolution: the sweep"),
        # one value spelt two ways is one cell twice, run and paid twice
        (
            {"model_params": {"temperature": [1, 1.0]}},
            "temperature: the sweep [1, 1.0] names one value twice (1 and 1.0",
        ),
        ({"model_params": {"thinking_level": ["low", "LOW"]}}, "('low' and 'LOW' are the same value)"),
        (
            {"model_params": {"media_resolution": ["low", "media_resolution_low"]}},
            "('low' and 'media_resolution_low' are the same value)",
        ),
        ({"preprocessing": {"max_side": [384, 384.0, 768]}}, "max_side: the sweep [384, 384.0, 768] names one value"),
        ({"preprocessing": {"max_side": [384, -1]}}, "matrix[0].preprocessing.max_side: Input should be greater"),
        ({"preprocessing": {"maxside": [384]}}, "matrix[0].preprocessing.maxside: unknown key"),
    ],
)
def test_bad_sweeps_name_the_key(tmp_path, image_dir, registry, entry, message):
    with pytest.raises(ConfigError) as info:
        load_experiment(sweep_config(tmp_path, image_dir, **entry), registry)
    assert message in str(info.value) and str(tmp_path / "exp.yaml") in str(info.value)
    assert "For further information" not in str(info.value)


def test_sweep_helpers():
    assert combinations({"a": [1, 2], "b": "x", "c": [True, False]}, "w") == [
        {"a": 1, "b": "x", "c": True},
        {"a": 1, "b": "x", "c": False},
        {"a": 2, "b": "x", "c": True},
        {"a": 2, "b": "x", "c": False},
    ]
    assert combinations({"stop": [["a", "b"]]}, "w") == [{"stop": ["a", "b"]}]  # a list value, written in a list
    assert varying([{"a": 1, "b": 2}, {"a": 1, "b": 3}, {"a": 1}]) == ["b"]
    assert describe({"max_side": None, "thinking_budget": 0}) == "full-size,thinking_budget=0"


async def test_a_sweep_runs_each_size_and_records_it(tmp_path, image_dir, registry):
    path = sweep_config(tmp_path, image_dir, preprocessing={"max_side": [32, 48]}, model_params={"k": [1, 2]})
    plan = load_plan(path, registry)
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=tmp_path / "cache"))
    bundle_mod.validate(data)
    assert [(c["preprocessing"]["max_side"], c["model_params"]["k"]) for c in data["cells"]] == [
        (32, 1),
        (32, 2),
        (48, 1),
        (48, 2),
    ]
    sent = plan.providers["scripted"].requests
    assert sorted({(r.images[0].width, r.params["k"]) for r in sent}) == [(32, 1), (32, 2), (48, 1), (48, 2)]
    by_cell = {}
    for record in data["records"]:
        by_cell.setdefault(record["cell"], set()).add(record["max_side"])
    assert by_cell == {c["id"]: {c["preprocessing"]["max_side"]} for c in data["cells"]}
    with diskcache.Cache(str(tmp_path / "cache")) as cache:
        assert len(cache) == 6 * 2  # each image once per size, shared by the cells of that size


async def test_plan_prices_each_size(tmp_path, image_dir, registry):
    from visionbench.run.estimate import estimate

    path = write_config(tmp_path, image_dir, ["sequential"], provider="anthropic")
    config = yaml.safe_load(path.read_text())
    config["providers"] = {}
    config["matrix"][0].update(models=["claude-haiku-4-5"], preprocessing={"max_side": [32, 64]})
    path.write_text(yaml.safe_dump(config))
    small, large = await estimate(load_plan(path, registry))
    assert small.cell_id.endswith("@32px") and large.cell_id.endswith("@64px")
    # Anthropic's documented rule, ceil(width x height / 750), on each image (64+i x 48 px) as it will be sent
    at_32 = [(32, round(48 * 32 / (64 + i))) for i in range(6)]
    at_64 = [(64, round(48 * 64 / (64 + i))) for i in range(6)]
    assert small.image_tokens == sum(math.ceil(w * h / 750) for w, h in at_32) == 8
    assert large.image_tokens == sum(math.ceil(w * h / 750) for w, h in at_64) == 27
    assert small.cost_usd < large.cost_usd
