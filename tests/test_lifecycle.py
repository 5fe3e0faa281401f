"""Lifecycle warnings: retired and retiring models, genai-prices' deprecated flag, unknown names with suggestions."""

from datetime import UTC, date, datetime

from visionbench.services.lifecycle import lifecycle_rows, model_warnings
from visionbench.services.pricing import default_table

TODAY = date(2026, 12, 1)


def warnings_for(*pairs, today=TODAY):
    return model_warnings(list(pairs), default_table(datetime(2026, 12, 1, tzinfo=UTC)), today)


def test_retired_and_retiring_models_name_the_date_and_successor():
    [line] = warnings_for(("gemini", "gemini-2.5-flash"))
    assert line == "model gemini-2.5-flash (gemini): retired on 2026-12-01; try gemini-3.5-flash"
    [early] = warnings_for(("gemini", "gemini-2.5-flash"), today=date(2026, 11, 1))
    assert "retires on 2026-12-01" in early
    [pro] = warnings_for(("gemini", "gemini-3-pro-preview"))
    assert "retired on 2026-03-09; successor: gemini-3.1-pro-preview" in pro


def test_deprecated_flag_of_the_package_warns():
    [line] = warnings_for(("gemini", "gemini-2.5-flash-image"))
    assert line == "model gemini-2.5-flash-image (gemini): deprecated by the provider (genai-prices)"


def test_unknown_name_suggests_the_closest_and_current_models_are_quiet():
    [line] = warnings_for(("gemini", "gemini-3.5-flsh"))
    assert "unknown model name" in line and "gemini-3.5-flash" in line
    [claude] = warnings_for(("anthropic", "claude-haiku-5.6"))
    assert "claude-haiku-5-5" in claude
    # one line per model, not per cell; current models and non-service providers say nothing
    assert warnings_for(("gemini", "gemini-3.5-flash"), ("anthropic", "claude-haiku-5-5"), ("scripted", "m1")) == []
    assert len(warnings_for(("gemini", "gemini-2.5-flash"), ("gemini", "gemini-2.5-flash"))) == 1


def test_every_row_has_a_source_and_a_date():
    assert all(row.source.startswith("https://") and row.retires for row in lifecycle_rows())
