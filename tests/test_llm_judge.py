"""The LLM judge scorer (issue 25, part 2): a model of the run asked, after a cell's answers are final, how right each
answer is; through the run's own providers and caller, its requests kept as the judge's records and its cost and
count reported apart from the cell's own. Run against the emulator over HTTP, whose judge scores by similarity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import QUIET

from visionbench.emulator.replies import judge_verdict
from visionbench.errors import ConfigError
from visionbench.results.scores import TaskScorers, judge_figures, judge_verdicts
from visionbench.scorer import Score, Scored
from visionbench.scorers.llm_judge import JudgeParams, LLMJudge
from visionbench.types import Answer, Record, Task, Usage

SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"
TEXT = Task("what", "What is in the photo? Answer in a few words.", "text")
CELL_MODEL, JUDGE_MODEL = "gemini-3.5-flash", "gemini-3.5-flash-lite"


def judge(**params: Any) -> LLMJudge:
    return LLMJudge(JudgeParams(provider="gemini", model=JUDGE_MODEL, **params), TEXT)


# -- the scorer: what it asks, how it reads the reply -------------------------------------------------------------
def test_the_judge_is_asked_the_question_the_references_and_the_answer() -> None:
    asked = judge(rubric="Grade it.").ask(Scored("a", "espresso", ("coffee", "espresso")), "What drink?")
    assert asked.prompt == (
        "Grade it.\n\nThe question asked:\n<question>What drink?</question>\n\n"
        "The reference answers (any one of them is right):\n<reference>coffee</reference>\n"
        "<reference>espresso</reference>\n\nThe answer to grade:\n<answer>espresso</answer>\n\n"
        "Reply with the score alone: one whole number from 0 (wrong) to 10 (right)."
    )
    one = judge(scale=1).ask(Scored("b", {"n": 2}, ({"n": 3},)), "Count?").prompt
    assert 'The reference answer:\n<reference>{"n": 3}</reference>' in one and '<answer>{"n": 2}</answer>' in one
    assert one.endswith("from 0 (wrong) to 1 (right).")


@pytest.mark.parametrize(
    ("reply", "scale", "score"),
    [
        ("7", 10, Score(0.7, "judge 7/10")),
        ("**Score: 8/10**", 10, Score(0.8, "judge 8/10")),
        ("3.5", 5, Score(0.7, "judge 3.5/5")),
    ]
    + [("Yes.", 1, Score(1.0, "judge 1/1")), ("no", 1, Score(0.0, "judge 0/1")), ("0", 1, Score(0.0, "judge 0/1"))],
)
def test_a_verdict_is_read_over_its_scale(reply: str, scale: int, score: Score) -> None:
    assert judge(scale=scale).read(reply) == score


@pytest.mark.parametrize(("reply", "message"), [("fine", "no score"), ("11", "not from 0 to 10"), ("-1", "not from")])
def test_a_reply_without_a_score_on_the_scale_is_an_error(reply: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        judge().read(reply)


def test_the_emulated_judge_scores_by_closeness_to_the_nearest_reference() -> None:
    asked = judge().ask(Scored("a", "Rockets", ("rocket", "a space rocket")), "What?").prompt
    assert judge_verdict(asked) == 9  # "rockets" vs "rocket": 2 * 6 / 13 = 0.923, of 10
    assert judge_verdict(judge(scale=4).ask(Scored("a", "CAT", ("cat",)), "?").prompt) == 4
    assert judge_verdict("How many people?") is None  # not a judge's request


def test_cell_figures_take_verdicts_leave_judge_failures_out_and_count_unanswered_as_zero() -> None:
    scorers = TaskScorers(TEXT, (("exact", _exact()), ("judge", judge())))
    rows = [(i, label, None) for i, label in [("a", "cat"), ("b", "cup"), ("c", "rocket"), ("d", "sky"), ("e", None)]]
    final = {i: Answer(i, value=v) for i, v in [("a", "cat"), ("b", "mug"), ("c", "rockets")]}
    final["d"] = Answer("d", error="timeout")
    records = [
        _judged("a", 1.0, "judge 10/10", cost=0.001),
        _judged("b", 0.2, "judge 2/10", cost=0.002),
        _judged("c", None, None, error="http_500: down", attempts=3),
    ]
    verdicts = judge_verdicts(records)
    assert verdicts["judge"] == {"a": Score(1.0, "judge 10/10"), "b": Score(0.2, "judge 2/10"), "c": "http_500: down"}
    scores = scorers.score_cell(rows, final, verdicts)
    assert scores["exact"]["mean"] == 0.25  # a right, b and c wrong, d unanswered: 1 of 4 labelled
    # the judge: a 1.0 + b 0.2, d unanswered scores 0, c (the judge failed) left out: 1.2 / 3
    assert scores["judge"]["mean"] == pytest.approx(0.4) and scores["judge"]["n"] == 4
    assert "judge" not in scorers.score_cell(rows, final)  # the judge did not run: no figures
    assert scorers.item_scores(rows, final, verdicts)["judge"] == {
        "a": Score(1.0, "judge 10/10"),
        "b": Score(0.2, "judge 2/10"),
        "d": Score(0.0, "no answer"),
    }
    figures = judge_figures(records)["judge"]
    assert figures == {
        "requests": 3,
        "replayed": 0,
        "attempts": 5,
        "errors": 1,
        "input_tokens": 200,
        "output_tokens": 2,
        "cost_usd": pytest.approx(0.003),
    }


def _exact() -> Any:
    from visionbench.scorers.exact import Exact

    return Exact(task=TEXT)


def _judged(
    item: str,
    value: float | None,
    why: str | None,
    *,
    cost: float | None = None,
    error: str | None = None,
    attempts: int = 1,
) -> Record:
    record = Record("cell", [item], "gemini", JUDGE_MODEL, None, 0.0, 1.0, attempts, None)
    record.judge = {"scorer": "judge", "inputs": f"digest-{item}", "why": why}
    if error is not None:
        record.error = {"kind": "http_500", "message": "down", "status": 500}
        record.answers = [Answer(item, error=error)]
    else:
        record.usage, record.cost_usd = Usage(input_tokens=100, output_tokens=1), cost
        record.answers = [Answer(item, value=value)]
    return record


# -- a run against the emulator -----------------------------------------------------------------------------------
#: Each image's reference answers (None: unlabelled) and what the emulated cell answers (the emulator's labels).
ITEMS: dict[str, tuple[Any, str]] = {
    "chelsea.jpg": ("a cat", "a cat"),
    "coffee.jpg": (["coffee", "espresso"], "espresso"),
    "rocket.jpg": ("rocket", "rockets"),
    "astronaut.jpg": (None, "a woman"),
}


def config(
    tmp_path: Path, *, judge_faults: dict[str, Any] | None = None, judge_entry: dict[str, Any] | None = None
) -> Path:
    data = tmp_path / "data"
    data.mkdir(parents=True)
    for name in ITEMS:
        shutil.copy(SAMPLES / name, data / name)
    (data / "labels.json").write_text(json.dumps({k: ref for k, (ref, _) in ITEMS.items() if ref is not None}))
    (data / "emulated.json").write_text(json.dumps({k: said for k, (_, said) in ITEMS.items()}))
    models: dict[str, Any] = {"*": {}}
    if judge_faults:
        models[JUDGE_MODEL] = {"faults": judge_faults}
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": QUIET, "models": models}))
    entry = judge_entry or {"name": "llm_judge", "provider": "gemini", "model": JUDGE_MODEL, "max_concurrency": 2}
    spec = {
        "name": "judged",
        "dataset": {"path": "data", "labels": "labels.json"},
        "task": {"id": TEXT.id, "answer": "text", "prompt": TEXT.prompt, "scorers": ["exact", entry]},
        "preprocessing": {"max_side": 256},
        "emulator": {"profiles": str(profiles), "labels": "emulated.json"},
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20},
        "cache_dir": str(tmp_path / "c"),
        "matrix": [{"provider": "gemini", "models": [CELL_MODEL], "strategies": ["sequential"]}],
    }
    path = tmp_path / "judged.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


async def _run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], Any]:
    from conftest import run_emulated

    return await run_emulated(path, tmp_path, monkeypatch)


async def test_the_judge_is_asked_once_per_answered_labelled_item_and_costs_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, emu = await _run(config(tmp_path), tmp_path, monkeypatch)
    assert data["status"] == "complete"
    [cell] = data["cells"]
    own = [r for r in data["records"] if r["judge"] is None]
    judged = [r for r in data["records"] if r["judge"] is not None]
    # the cell asked each of its 4 images once; the judge each of the 3 labelled ones, on its own model
    assert sorted(r["item_ids"][0] for r in own) == sorted(ITEMS)
    assert sorted(r["item_ids"][0] for r in judged) == ["chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    assert {(r["model"], r["tier"], r["cell"]) for r in judged} == {(JUDGE_MODEL, None, cell["id"])}
    assert emu.stats[CELL_MODEL].requests == 4 and emu.stats[JUDGE_MODEL].requests == 3
    # what it was asked: the cell's question, the references and the cell's answer, with the image
    prompts = {prompt: verdict for prompt, verdict in emu.engine.judged}
    assert len(prompts) == 3 and all(f"<question>{TEXT.prompt}</question>" in p for p in prompts)
    rocket = next(p for p in prompts if "<answer>rockets</answer>" in p)
    assert "<reference>rocket</reference>" in rocket and prompts[rocket] == 9
    assert emu.stats[JUDGE_MODEL].images == 3
    # verdicts: a cat 10/10, espresso (one of the references) 10/10, rockets 9/10
    by_item = {r["item_ids"][0]: (r["answers"][0]["value"], r["judge"]["why"]) for r in judged}
    assert by_item == {
        "chelsea.jpg": (1.0, "judge 10/10"),
        "coffee.jpg": (1.0, "judge 10/10"),
        "rocket.jpg": (0.9, "judge 9/10"),
    }
    summary = cell["summary"]
    scores = summary["scores"]
    assert list(scores) == ["exact", "llm_judge"]
    assert scores["exact"]["mean"] == pytest.approx(2 / 3)  # "rockets" is not "rocket"
    assert scores["llm_judge"]["mean"] == pytest.approx(2.9 / 3) and scores["llm_judge"]["n"] == 3
    # the cell's own figures leave the judge out; the judge's are its records'
    assert summary["requests"] == 4 and summary["attempts"] == 4
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in own))
    assert summary["input_tokens"] == sum(r["usage"]["input_tokens"] for r in own)
    figures = scores["llm_judge"]["judge"]
    assert figures["requests"] == 3 and figures["attempts"] == 3 and figures["errors"] == 0
    assert figures["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in judged)) and figures["cost_usd"] > 0
    assert figures["input_tokens"] == sum(r["usage"]["input_tokens"] for r in judged)
    assert "judge" not in scores["exact"]
    from visionbench.report.significance import _latencies

    assert len(_latencies(data, cell["id"])) == 4  # the cell's latency: its own 4 requests


async def test_a_failing_judge_costs_its_scores_not_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, emu = await _run(config(tmp_path, judge_faults={"http_500": 1.0}), tmp_path, monkeypatch)
    assert data["status"] == "complete"
    [cell] = data["cells"]
    assert cell["status"] == "complete" and cell["summary"]["errors"] == 0
    judged = [r for r in data["records"] if r["judge"] is not None]
    assert len(judged) == 3 and all(r["attempts"] == 2 and r["error"]["status"] == 500 for r in judged)
    assert {r["answers"][0]["error"] for r in judged} == {
        "transient: gemini HTTP 500 INTERNAL: Internal error (emulated)"
    }
    assert emu.stats[JUDGE_MODEL].requests == 6 and emu.stats[JUDGE_MODEL].faults["http_500"] == 6
    scores = cell["summary"]["scores"]
    assert scores["exact"]["mean"] == pytest.approx(2 / 3)  # the other scorers are untouched
    assert scores["llm_judge"]["mean"] is None  # no item could be judged
    assert scores["llm_judge"]["judge"] == {
        "requests": 3,
        "replayed": 0,
        "attempts": 6,
        "errors": 3,
        "input_tokens": None,
        "output_tokens": None,
        "cost_usd": 0,
    }
    assert cell["summary"]["requests"] == 4 and cell["summary"]["attempts"] == 4


def test_the_judge_must_ask_an_endpoint_of_the_run(tmp_path: Path) -> None:
    from visionbench.run.config import load_experiment
    from visionbench.run.plugins import default_registry

    entry = {"name": "llm_judge", "provider": "nowhere", "model": JUDGE_MODEL}
    with pytest.raises(ConfigError, match=r"task.scorers\[1\].provider: unknown provider 'nowhere'"):
        load_experiment(config(tmp_path, judge_entry=entry), default_registry())
    entry = {"name": "llm_judge", "model": JUDGE_MODEL}
    with pytest.raises(ConfigError, match=r"task.scorers\[1\].provider: Field required"):
        load_experiment(config(tmp_path / "b", judge_entry=entry), default_registry())


async def test_the_plan_counts_the_judges_requests_and_cost_apart(tmp_path: Path) -> None:
    from visionbench.run.estimate import estimate
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry

    plan = load_plan(config(tmp_path), default_registry())
    assert JUDGE_MODEL in {model for _, model in (k.split("/", 1) for k in plan.experiment.prices.used())}
    [est] = await estimate(plan)
    assert est.judge_requests == 3 and est.requests == 4 + 3  # 4 images asked, 3 labelled ones judged
    assert est.judge_cost_usd is not None and 0 < est.judge_cost_usd < est.cost_usd  # type: ignore[operator]
    assert f"of which the judge llm_judge (gemini/{JUDGE_MODEL}): 3 requests, ${est.judge_cost_usd:.4f} per repeat" in (
        est.notes
    )
    entry = {"name": "llm_judge", "provider": "gemini", "model": JUDGE_MODEL, "images": False}
    [text_only] = await estimate(load_plan(config(tmp_path / "b", judge_entry=entry), default_registry()))
    assert text_only.judge_requests == 3 and text_only.judge_cost_usd < est.judge_cost_usd  # type: ignore[operator]


async def test_a_run_stopped_while_judging_resumes_asking_only_the_judge_what_it_had_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visionbench.emulator import Emulator
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plugins import default_registry
    from visionbench.run.resume import prepare_resume
    from visionbench.run.runner import run

    data, _ = await _run(config(tmp_path), tmp_path, monkeypatch)
    # as if the run had stopped after the judge's first two verdicts: the third and the judge's figures missing
    [rocket] = [r for r in data["records"] if r["judge"] and r["item_ids"] == ["rocket.jpg"]]
    data["records"] = [r for r in data["records"] if r is not rocket]
    del data["cells"][0]["summary"]["scores"]["llm_judge"]
    data["cells"][0]["status"], data["status"] = "interrupted", "interrupted"
    folder = tmp_path / "r" / data["run_id"]
    bundle_mod.write(folder / "bundle.json", data)

    started: list[Emulator] = []
    enter = Emulator.__aenter__

    async def keep(self: Emulator) -> Emulator:  # the resumed run's emulator
        started.append(self)
        return await enter(self)

    monkeypatch.setattr(Emulator, "__aenter__", keep)
    plan, previous = prepare_resume(folder, default_registry())
    await run(plan, results_dir=tmp_path / "r", cache_dir=tmp_path / "c", previous=previous)
    after = bundle_mod.load(folder)
    bundle_mod.validate(after)
    assert after["status"] == "complete"
    [cell] = after["cells"]
    assert cell["status"] == "complete"
    judged = [r for r in after["records"] if r["judge"] is not None]
    assert sorted(r["item_ids"][0] for r in judged) == ["chelsea.jpg", "coffee.jpg", "rocket.jpg"]
    assert len([r for r in after["records"] if r["judge"] is None]) == 4  # the cell asked nothing again
    scores = cell["summary"]["scores"]["llm_judge"]
    assert scores["mean"] == pytest.approx(2.9 / 3) and scores["judge"]["requests"] == 3
    assert cell["summary"]["requests"] == 4 and cell["summary"]["scores"]["exact"]["mean"] == pytest.approx(2 / 3)
    [emu] = started  # this session asked the judge about the rocket alone, and the cell's model nothing
    assert emu.stats[JUDGE_MODEL].requests == 1 and CELL_MODEL not in emu.stats
    [(prompt, verdict)] = emu.engine.judged
    assert "<answer>rockets</answer>" in prompt and verdict == 9


async def test_the_judges_spend_counts_against_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from visionbench.errors import BudgetExceeded
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    data, _ = await _run(config(tmp_path / "a"), tmp_path / "a", monkeypatch)
    own = sum(r["cost_usd"] for r in data["records"] if r["judge"] is None)
    first = min(r["cost_usd"] for r in data["records"] if r["judge"] is not None)
    budget = own + first / 2  # the cell fits; the judge's first reply goes over
    plan = load_plan(config(tmp_path / "b"), default_registry())
    with pytest.raises(BudgetExceeded):
        await run(plan, results_dir=tmp_path / "r", run_id="b", cache_dir=tmp_path / "c", max_cost_usd=budget)
    stopped = bundle_mod.load(tmp_path / "r" / "b")
    assert stopped["status"] == "stopped" and stopped["cells"][0]["status"] == "stopped"
    assert len([r for r in stopped["records"] if r["judge"] is None]) == 4
    assert 1 <= len([r for r in stopped["records"] if r["judge"] is not None]) <= 2  # max_concurrency: 2 in flight
    assert "llm_judge" not in stopped["cells"][0]["summary"]["scores"]  # the judge did not finish: no figures


class _Picky(LLMJudge):
    """A judge plugin whose question about one item fails (a bug): that item's judge score is lost, no more."""

    name = "picky_judge"

    def ask(self, item: Scored, question: str) -> Any:
        if item.item_id == "coffee.jpg":
            raise RuntimeError("no coffee")
        return super().ask(item, question)


async def test_a_judge_plugins_error_costs_that_items_score(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    registry = default_registry()
    monkeypatch.setitem(registry.scorers, "picky_judge", _Picky)  # the shared registry, restored after
    entry = {"name": "picky_judge", "provider": "gemini", "model": JUDGE_MODEL}
    out = await run(load_plan(config(tmp_path, judge_entry=entry), registry), results_dir=tmp_path / "r")
    data = bundle_mod.load(out)
    assert data["status"] == "complete"
    judged = {r["item_ids"][0]: r for r in data["records"] if r["judge"] is not None}
    assert judged["coffee.jpg"]["attempts"] == 0  # never sent
    assert judged["coffee.jpg"]["answers"][0]["error"] == "the judge's question: RuntimeError: no coffee"
    scores = data["cells"][0]["summary"]["scores"]["picky_judge"]
    assert scores["mean"] == pytest.approx((1.0 + 0.9) / 2)  # the cat and the rocket; the coffee left out
    assert scores["judge"]["requests"] == 2 and scores["judge"]["errors"] == 1


async def test_rescore_keeps_the_verdicts_whose_inputs_are_unchanged_and_asks_only_about_changed_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rescored run's judge scores are the run's verdicts where the judge would be asked the same now; where an
    answer changed, the judge is asked again about it alone (with ``ask_judges=False``, its verdict is left out and
    counted in judge.errors, and nothing is sent). Judge records never become the cell's answers."""
    from test_rescore import no_requests

    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plugins import default_registry
    from visionbench.run.rescore import rescore

    path = config(tmp_path)
    said = {k: said for k, (_, said) in ITEMS.items()}
    (tmp_path / "data" / "emulated.json").write_text(json.dumps({**said, "chelsea.jpg": "A cat."}))
    data, _ = await _run(path, tmp_path, monkeypatch)
    [cell] = data["cells"]
    source_judge = cell["summary"]["scores"]["llm_judge"]
    assert cell["answers"]["chelsea.jpg"]["value"] == "A cat." and cell["summary"]["scores"]["exact"]["mean"] == 1 / 3
    run_dir = tmp_path / "r" / data["run_id"]
    no_requests(monkeypatch)
    same = bundle_mod.load(rescore(run_dir, default_registry(), results_dir=tmp_path / "again"))
    [again] = same["cells"]
    assert again["answers"] == cell["answers"]  # the judge's records are not answers of the cell
    assert again["summary"]["scores"]["llm_judge"] == source_judge  # every verdict kept, none asked
    # as a choice task, "A cat." reads "a cat" (changed: its verdict is stale); espresso and rockets read the same
    spec = yaml.safe_load(path.read_text())
    spec["task"].update(answer="choice", choices=["a cat", "coffee", "espresso", "rocket", "rockets"])
    changed = tmp_path / "choice.yaml"
    changed.write_text(yaml.safe_dump(spec, sort_keys=False))
    kept = rescore(run_dir, default_registry(), config=changed, results_dir=tmp_path / "again", ask_judges=False)
    out = bundle_mod.load(kept)
    [rescored] = out["cells"]
    assert rescored["answers"]["chelsea.jpg"]["value"] == "a cat"
    scores = rescored["summary"]["scores"]
    assert scores["exact"]["mean"] == pytest.approx(2 / 3)  # a cat and espresso right, rockets not rocket
    verdicts = {r["item_ids"][0]: r["answers"][0]["value"] for r in data["records"] if r["judge"] is not None}
    assert scores["llm_judge"]["mean"] == pytest.approx((verdicts["coffee.jpg"] + verdicts["rocket.jpg"]) / 2)
    assert scores["llm_judge"]["judge"]["errors"] == 1 and scores["llm_judge"]["judge"]["requests"] == 3
    assert len(out["records"]) == len(data["records"])  # the judge's records kept, none added
    # by default the judge is asked again, about that one changed answer only (the emulator's count proves it)
    monkeypatch.undo()
    from conftest import capture_emulators

    started = capture_emulators(monkeypatch)
    import asyncio

    # rescore is a command of its own (it runs its own event loop): from this test's loop, in a thread
    again_path = await asyncio.to_thread(
        rescore, run_dir, default_registry(), config=changed, results_dir=tmp_path / "asked"
    )
    asked = bundle_mod.load(again_path)
    [emu] = started
    assert emu.stats[JUDGE_MODEL].requests == 1 and CELL_MODEL not in emu.stats  # the judge, once; no cell request
    new = [r for r in asked["records"] if r["judge"] is not None][3:]
    assert [r["item_ids"] for r in new] == [["chelsea.jpg"]] and new[0]["answers"][0]["value"] == 1.0
    judge = asked["cells"][0]["summary"]["scores"]["llm_judge"]
    assert judge["mean"] == pytest.approx((1.0 + verdicts["coffee.jpg"] + verdicts["rocket.jpg"]) / 3)
    assert judge["judge"]["requests"] == 4 and judge["judge"]["errors"] == 0


async def test_the_report_shows_the_judges_verdicts_from_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report/compare rebuild the scorers from the bundle: the judge's scores are its records' verdicts, never asked
    again (no emulator is running when the report is made)."""
    from visionbench.report.scores import bundle_scores
    from visionbench.report.terminal import accuracy_rows

    data, _ = await _run(config(tmp_path), tmp_path, monkeypatch)
    found = bundle_scores(data)
    assert found.scorers is not None and found.note is None
    [cell] = data["cells"]
    assert found.cells[cell["id"]].values["llm_judge"] == {"chelsea.jpg": 1.0, "coffee.jpg": 1.0, "rocket.jpg": 0.9}
    assert found.cells[cell["id"]].why["llm_judge"]["rocket.jpg"] == "judge 9/10"
    rows = accuracy_rows(data)
    assert "llm_judge" in rows.head
    cost = sum(r["cost_usd"] for r in data["records"] if r["judge"] is not None)
    assert rows.caption == f"llm_judge: the judge's 3 requests cost ${cost:.4f} (not in the cells' cost)"
    assert rows.rows[0][rows.head.index("llm_judge")].startswith("97%")  # 2.9 of 3


async def test_a_replayed_run_asks_neither_the_cell_nor_the_judge_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run --replay: the cell's 4 requests and the judge's 3 are answered from the first run; same verdicts."""
    from conftest import capture_emulators

    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    path = config(tmp_path)
    first, _ = await _run(path, tmp_path, monkeypatch)
    started = capture_emulators(monkeypatch)
    source = tmp_path / "r" / first["run_id"]
    out = await run(load_plan(path, default_registry()), results_dir=tmp_path / "again", replay=source)
    again = bundle_mod.load(out)
    [emu] = started
    assert emu.stats == {}  # nothing asked, of either model
    judged = [r for r in again["records"] if r["judge"] is not None]
    assert len(judged) == 3 and all(r["replayed"] == first["run_id"] and r["attempts"] == 0 for r in judged)
    scores = again["cells"][0]["summary"]["scores"]
    assert scores["llm_judge"]["mean"] == pytest.approx(2.9 / 3)
    figures = scores["llm_judge"]["judge"]
    assert figures["requests"] == 0 and figures["replayed"] == 3
    assert figures["cost_usd"] == pytest.approx(
        first["cells"][0]["summary"]["scores"]["llm_judge"]["judge"]["cost_usd"]
    )
