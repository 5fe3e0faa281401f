"""Prices from genai-prices (hand-computed from its data, 0.2.x, as of 2026-12-01), overrides, batch, hashes."""

from datetime import UTC, datetime

import pytest
import yaml
from conftest import write_config

from visionbench.errors import ConfigError
from visionbench.run.config import load_experiment
from visionbench.services.pricing import default_table
from visionbench.types import Usage

TODAY = datetime(2026, 12, 1, 12, tzinfo=UTC)
M = 1_000_000


@pytest.fixture
def table():
    return default_table(TODAY)


def test_current_gemini_with_cache_thinking_and_local_batch_factor(table):
    # gemini-3.5-flash: $1.50 in, $0.15 cache read, $9 out; the package has no batch variant -> ours, 50%
    usage = Usage(input_tokens=10_000, output_tokens=20, thinking_tokens=480, cached_tokens=4_000)
    expected = (6_000 * 1.50 + 4_000 * 0.15 + 500 * 9.0) / M
    assert table.cost("gemini-3.5-flash", usage, provider="gemini") == pytest.approx(expected)
    assert table.cost("gemini-3.5-flash", usage, provider="gemini", batch=True) == pytest.approx(expected / 2)


def test_package_batch_variant_wins_over_the_factor(table):
    # gemini-3.5-flash-lite batch: $0.15 in, $0.02 cache read (not half of $0.03), $1.25 out
    usage = Usage(input_tokens=10_000, output_tokens=100, cached_tokens=5_000)
    assert table.cost("gemini-3.5-flash-lite", usage, provider="gemini") == pytest.approx(
        (5_000 * 0.30 + 5_000 * 0.03 + 100 * 2.50) / M
    )
    assert table.cost("gemini-3.5-flash-lite", usage, provider="gemini", batch=True) == pytest.approx(
        (5_000 * 0.15 + 5_000 * 0.02 + 100 * 1.25) / M
    )


def test_current_claude_and_its_long_prompt_tier(table):
    # claude-haiku-5-5: $0.10 / $0.50; every token of a prompt over 100k at $0.50 / $2.50
    short = Usage(input_tokens=1_600, output_tokens=10)
    assert table.cost("claude-haiku-5-5", short, provider="anthropic") == pytest.approx((1_600 * 0.10 + 10 * 0.5) / M)
    long = Usage(input_tokens=150_000, output_tokens=1_000)
    assert table.cost("claude-haiku-5-5", long, provider="anthropic") == pytest.approx(
        (150_000 * 0.50 + 1_000 * 2.50) / M
    )
    # the recorded haiku-4-5 reply (276 input tokens), dated model id: $1 / $5
    recorded = Usage(input_tokens=276, output_tokens=10)
    assert table.cost("claude-haiku-4-5-20251001", recorded, provider="anthropic") == pytest.approx(
        (276 * 1.0 + 10 * 5.0) / M
    )


def test_openai_model(table):
    # gpt-5.4-mini: $0.75 in, $0.075 cache read, $4.50 out (reasoning included in output)
    usage = Usage(input_tokens=2_000, output_tokens=300, thinking_tokens=200, cached_tokens=1_000)
    assert table.cost("gpt-5.4-mini", usage, provider="openai") == pytest.approx(
        (1_000 * 0.75 + 1_000 * 0.075 + 500 * 4.50) / M
    )


def test_unknown_price_or_usage_is_none_never_zero(table):
    assert table.cost("gemini-3.5-flsh", Usage(input_tokens=1, output_tokens=1), provider="gemini") is None
    assert table.cost("m1", Usage(input_tokens=1, output_tokens=1), provider="scripted") is None
    assert table.cost("gemini-3.5-flash", Usage(input_tokens=None, output_tokens=3), provider="gemini") is None
    assert table.cost("gemini-3.5-flash", None, provider="gemini") is None


def test_override_beats_the_package_and_changes_the_hash(tmp_path, image_dir, registry):
    row = {"match": "gemini-3.5-flash", "input": 2, "output": 4, "source": "our contract"}
    table = default_table(TODAY).with_overrides([row])
    usage = Usage(input_tokens=M, output_tokens=M // 2)
    assert table.cost("gemini-3.5-flash", usage, provider="gemini") == pytest.approx(2.0 + 2.0)
    assert table.cost("gemini-3.5-flash-lite", usage, provider="gemini") == pytest.approx(4.0)  # prefix match
    assert table.cost("gemini-3.5-flash", usage, provider="gemini", batch=True) == pytest.approx(2.0)
    pairs = [("gemini", "gemini-3.5-flash")]
    assert table.for_models(pairs).sha256 != default_table(TODAY).for_models(pairs).sha256
    assert table.version.endswith("+overrides")
    path = write_config(tmp_path, image_dir, ["sequential"], pricing=[{"match": "m1", "input": 2, "output": 4}])
    assert load_experiment(path, registry).prices.cost("m1", Usage(input_tokens=M, output_tokens=0)) == 2.0
    bad = write_config(tmp_path, image_dir, ["sequential"], pricing=[{"match": "m1", "input": -1, "output": 4}])
    with pytest.raises(ConfigError, match=r"pricing\[0\]: input"):
        load_experiment(bad, registry)


def test_hash_covers_the_prices_used_and_nothing_else():
    pairs = [("gemini", "gemini-3.8-flash")]
    a = default_table(TODAY).for_models(pairs)
    assert a.sha256 == default_table(datetime(2026, 12, 20, tzinfo=UTC)).for_models(pairs).sha256
    # gemini-3.8-flash's introductory price ends 2026-12-31: a run in January used other prices
    assert a.sha256 != default_table(datetime(2027, 1, 2, tzinfo=UTC)).for_models(pairs).sha256
    assert a.used()["gemini/gemini-3.8-flash"]["genai_prices_model"] == "gemini-3.8-flash"
    # tiers are spelled out, so a change of a tier changes the hash too
    haiku = default_table(TODAY).for_models([("anthropic", "claude-haiku-5-5")]).used()["anthropic/claude-haiku-5-5"]
    assert haiku["standard"]["input_mtok"] == {"base": "0.1", "tiers": [[100000, "0.5"]]}
    # a price change of a model the run does not use leaves its hash alone
    other = default_table(TODAY).with_overrides([{"match": "claude-opus-5", "input": 1, "output": 1}])
    assert other.for_models(pairs).sha256 == a.sha256


def test_local_table_rows_have_sources():
    from importlib import resources

    raw = yaml.safe_load(resources.files("visionbench.services").joinpath("prices.yaml").read_text())
    assert raw["checked"] and {r["provider"] for r in raw["batch_factors"]} == {"gemini", "anthropic", "openai"}
    assert all(r["source"].startswith("https://") for r in raw["batch_factors"] + raw["models"])
