"""`plan` estimates before spending; `--max-cost` refuses an expensive plan and stops a run that overspends."""

import pytest
from conftest import write_config

from visionbench import cli
from visionbench.errors import BudgetExceeded
from visionbench.results import bundle as bundle_mod
from visionbench.run.estimate import OUTPUT_TOKENS_PER_ANSWER, estimate, text_tokens, total_cost
from visionbench.run.plan import load_plan
from visionbench.run.runner import run

PRICES = [{"match": "m1", "input": 1.0, "output": 5.0}]  # USD per 1M tokens


async def test_plan_counts_requests_and_prices_them(tmp_path, image_dir, registry):
    strategies = [
        "sequential",
        {"name": "single-prompt", "chunk_size": 4},
        {"name": "adaptive", "escalate_at": 3},
        {"name": "provider-batch"},
    ]
    path = write_config(tmp_path, image_dir, strategies, pricing=PRICES, repeats=2)
    plan = load_plan(path, registry)
    by_cell = {e.cell_id.split("/")[-1]: e for e in await estimate(plan)}
    assert by_cell["sequential"].requests == 12  # 6 images x 2 repeats
    assert by_cell["single-prompt"].requests == 4  # chunks of 4 + 2, x 2
    assert by_cell["adaptive"].requests == 18  # 6 tier-1 + 3 labelled >= 3, x 2
    seq = by_cell["sequential"]
    assert seq.image_tokens == 1200 and seq.output_tokens == 12 * OUTPUT_TOKENS_PER_ANSWER
    per_request_in = 100 + text_tokens("How many people?")
    assert seq.cost_usd == pytest.approx(12 * (per_request_in * 1.0 + OUTPUT_TOKENS_PER_ANSWER * 5.0) / 1e6)
    assert by_cell["provider-batch"].cost_usd == pytest.approx(seq.cost_usd / 2)
    assert total_cost(list(by_cell.values())) == pytest.approx(sum(e.cost_usd for e in by_cell.values()))


async def test_unpriced_model_makes_cost_unknown(tmp_path, image_dir, registry):
    plan = load_plan(write_config(tmp_path, image_dir, ["sequential"]), registry)
    [est] = await estimate(plan)
    assert est.cost_usd is None and "no price" in est.notes[0]


async def test_run_stops_when_actual_spend_passes_max_cost(tmp_path, image_dir, registry, answers_for_labels):
    # Scripted replies cost $0.001 each: a $0.0025 budget allows 2 requests, the 3rd goes over.
    path = write_config(tmp_path, image_dir, ["sequential"], options={"answers": answers_for_labels})
    plan = load_plan(path, registry)
    with pytest.raises(BudgetExceeded, match="over budget"):
        await run(plan, results_dir=tmp_path / "r", run_id="b", cache_dir=None, max_cost_usd=0.0025)
    data = bundle_mod.load(tmp_path / "r" / "b")
    bundle_mod.validate(data)
    assert data["status"] == "stopped" and "max-cost" in data["error"]
    assert len(data["records"]) == 3 and data["cells"][0]["status"] == "stopped"


def test_cli_refuses_a_plan_over_budget(tmp_path, image_dir, registry, monkeypatch, capsys):
    monkeypatch.setattr(cli, "default_registry", lambda: registry)
    path = write_config(tmp_path, image_dir, ["sequential"], pricing=PRICES)
    assert cli.main(["run", str(path), "--results", str(tmp_path / "r"), "--max-cost", "0.0000001", "--quiet"]) == 3
    captured = capsys.readouterr()
    assert "nothing was run" in captured.err and "Plan" in captured.out
    assert not (tmp_path / "r").exists()
    assert cli.main(["plan", str(path)]) == 0
    assert "total" in capsys.readouterr().out


async def test_plan_estimates_thinking_per_model_and_prices_it_as_output(registry):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    plan = load_plan(root / "configs" / "seed-crowd-count-emulated.yaml", registry)
    by_id = {e.cell_id: e for e in await estimate(plan)}
    gemini = by_id["gemini/gemini-3.5-flash/sequential"]
    claude = by_id["anthropic/claude-haiku-5-5/sequential"]
    # the emulator profiles: gemini-3.5-flash thinks 300 tokens per request, claude-haiku-5-5 not unless asked
    assert gemini.requests == 4 and gemini.thinking_tokens == 4 * 300 and claude.thinking_tokens == 0
    # thinking bills at gemini-3.5-flash's $9 per 1M output tokens
    input_tokens = gemini.image_tokens + gemini.text_tokens
    without = (input_tokens * 1.50 + gemini.output_tokens * 9.0) / 1e6
    assert gemini.cost_usd - without == pytest.approx(1200 * 9.0 / 1e6)


def test_cli_refuses_max_cost_on_a_plan_it_cannot_price_naming_the_cell(
    tmp_path, image_dir, registry, monkeypatch, capsys
):
    """An unpriced model's spend could not count against the budget: refused, unless the user says so."""
    monkeypatch.setattr(cli, "default_registry", lambda: registry)
    path = write_config(tmp_path, image_dir, ["sequential"])  # model m1: no price
    args = ["run", str(path), "--results", str(tmp_path / "r"), "--max-cost", "1", "--quiet", "--no-report"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "cannot be enforced" in err and "/m1/sequential" in err and "--allow-unpriced" in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())  # nothing was run
    assert cli.main([*args, "--allow-unpriced"]) == 0
    assert "is not counted against --max-cost" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"match": "m1", "input": float("inf"), "output": 1}, r"pricing\[0\]: input: .*finite"),
        ({"match": "m1", "input": 1, "output": float("nan")}, r"pricing\[0\]: output: .*finite"),
        ({"match": "", "input": 1, "output": 1}, r"pricing\[0\]: match"),
        ({"match": "  ", "input": 1, "output": 1}, r"pricing\[0\]: match"),
    ],
)
def test_a_price_that_cannot_be_summed_or_matches_every_model_is_refused(tmp_path, image_dir, registry, row, message):
    from visionbench.errors import ConfigError
    from visionbench.run.config import load_experiment

    with pytest.raises(ConfigError, match=message):
        load_experiment(write_config(tmp_path, image_dir, ["sequential"], pricing=[row]), registry)
