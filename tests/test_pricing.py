import pytest
from conftest import write_config

from visionbench.config import load_experiment
from visionbench.errors import ConfigError
from visionbench.pricing import default_table
from visionbench.types import Usage


def test_every_row_has_a_source_and_date():
    table = default_table()
    assert len(table.rows) >= 6
    assert all(row.source.startswith("https://") and row.checked for row in table.rows)


def test_haiku_cost_from_recorded_usage():
    # the recorded haiku-4-5 reply: 276 input tokens; say 10 output tokens
    cost = default_table().cost("claude-haiku-4-5-20251001", Usage(input_tokens=276, output_tokens=10))
    assert cost == pytest.approx((276 * 1.0 + 10 * 5.0) / 1e6)


def test_thinking_bills_as_output_and_batch_halves():
    table = default_table()
    usage = Usage(input_tokens=1000, output_tokens=20, thinking_tokens=97)
    standard = table.cost("gemini-2.5-pro", usage)
    assert standard == pytest.approx((1000 * 1.25 + 117 * 10.0) / 1e6)
    assert table.cost("gemini-2.5-pro", usage, batch=True) == pytest.approx(standard / 2)


def test_long_prompt_tier_and_cached_input():
    table = default_table()
    long = table.cost("gemini-2.5-pro", Usage(input_tokens=300_000, output_tokens=0))
    assert long == pytest.approx(300_000 * 2.50 / 1e6)
    cached = table.cost("gemini-2.5-flash", Usage(input_tokens=1000, output_tokens=0, cached_tokens=400))
    assert cached == pytest.approx((600 * 0.30 + 400 * 0.03) / 1e6)


def test_longest_prefix_wins_and_unknowns_are_none():
    table = default_table()
    assert table.find("gemini-2.5-flash-lite").input == 0.10
    assert table.find("gemini-2.5-flash-preview-09-2025").input == 0.30
    assert table.find("claude-sonnet-4.5").input == 3.00
    assert table.cost("mystery-model", Usage(input_tokens=1, output_tokens=1)) is None
    assert table.cost("gemini-2.5-pro", Usage(input_tokens=None, output_tokens=3)) is None
    assert table.cost("gemini-2.5-pro", None) is None


def test_config_overrides_change_prices_and_hash(tmp_path, image_dir, registry):
    path = write_config(
        tmp_path, image_dir, ["sequential"], pricing=[{"match": "m1", "input": 2, "output": 4, "source": "my contract"}]
    )
    exp = load_experiment(path, registry)
    assert exp.prices.cost("m1", Usage(input_tokens=1_000_000, output_tokens=0)) == pytest.approx(2.0)
    assert exp.prices.sha256 != default_table().sha256
    bad = write_config(tmp_path, image_dir, ["sequential"], pricing=[{"match": "m1", "input": -1, "output": 4}])
    with pytest.raises(ConfigError, match=r"pricing\[0\]: input"):
        load_experiment(bad, registry)
