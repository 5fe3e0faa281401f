"""An experiment made ready to run: its items loaded, its plugins built and checked, and their lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from visionbench.clock import REAL_CLOCK, Clock
from visionbench.data.dataset import Columns, Items, default_downloads_dir, load_dataset
from visionbench.errors import ConfigError
from visionbench.provider import Provider
from visionbench.run.config import EndpointSpec, Experiment, build_strategy, default_endpoint, load_experiment
from visionbench.run.emulated import emulated, profiles, unserved
from visionbench.run.plugins import Registry
from visionbench.services.lifecycle import model_warnings
from visionbench.strategy import Strategy
from visionbench.types import ImageItem, Task, fill_template, task_placeholders


@dataclass
class Plan:
    """An experiment made ready to run: items loaded, plugins built and checked against each other."""

    experiment: Experiment
    items: Items  #: columns, not an object per image
    #: One provider per endpoint the cells call, by endpoint name.
    providers: dict[str, Provider]
    strategies: dict[str, Strategy]
    #: One line per model that is retired, retiring, deprecated or unknown (printed by the CLI).
    warnings: list[str] = field(default_factory=list)
    #: How many times the run was resumed before this session (0: a new run); the emulator draws afresh per session.
    session: int = 0


def load_plan(
    path: str | Path, registry: Registry, *, dataset: str | Path | None = None, cache_dir: str | Path | None = None
) -> Plan:
    """Read, validate and prepare the experiment config at ``path`` (on ``dataset`` instead of the config's
    dataset folder when given: ``--dataset``; image URLs downloaded into ``cache_dir``, ``--cache-dir``, when
    given). Raises ConfigError."""
    return prepare(load_experiment(path, registry, dataset=dataset), registry, cache_dir=cache_dir)


def build_provider(registry: Registry, endpoint: EndpointSpec) -> Provider:
    """The provider of ``endpoint``: its plugin, built once with the options validated at load."""
    return registry.providers[endpoint.plugin](endpoint.options)


def downloads_dir(experiment: Experiment, cache_dir: str | Path | None = None) -> Path:
    """Where a rows manifest's image URLs are downloaded: ``downloads/`` in ``cache_dir`` (``--cache-dir``), else
    in the config's ``cache_dir``, else in the default image cache (VISIONBENCH_CACHE_DIR, else the user's)."""
    cache_dir = cache_dir or experiment.spec.cache_dir
    return Path(cache_dir) / "downloads" if cache_dir else default_downloads_dir()


def _one_prompt_per_request(
    experiment: Experiment, strategies: dict[str, Strategy], providers: dict[str, Provider], items: Items
) -> None:
    """A templated prompt differs per item: refuse a cell that would ask several items in one request (the
    single-prompt strategy) when their filled prompts differ; one prompt words a request."""
    by_id: dict[str, ImageItem] | None = None
    for cell in experiment.cells:
        caps = providers[cell.provider].capabilities(cell.model)
        if caps.max_images_per_request <= 1:
            continue
        for req in strategies[cell.id].plan(items, caps):
            if len(req.item_ids) < 2:
                continue
            by_id = by_id if by_id is not None else {item.id: item for item in items}
            first = by_id[req.item_ids[0]]
            for other in req.item_ids[1:]:
                if _filled(experiment.task, by_id[other].fields) != _filled(experiment.task, first.fields):
                    raise ConfigError(
                        f"{experiment.source}: cell {cell.id}: strategy {cell.strategy!r} asks several items in "
                        f"one request, but the task's placeholders give items {first.id!r} and {other!r} "
                        "different prompts; use a strategy that sends one item per request"
                    )


def _filled(task: Task, fields: dict[str, Any] | None) -> tuple[str, str]:
    """A task's prompt and system prompt as an item's fields fill them."""
    return fill_template(task.prompt, fields), fill_template(task.system or "", fields)


def prepare(experiment: Experiment, registry: Registry, *, cache_dir: str | Path | None = None) -> Plan:
    """Load the dataset, build one provider per endpoint and the strategies, and check every cell can run.
    Raises ConfigError."""
    spec = experiment.spec
    src = experiment.source
    ds = spec.dataset
    if spec.emulator is not None:
        profiles(experiment)  # a missing or invalid profiles file is a config error before anything runs
    items = load_dataset(
        experiment.dataset_path,
        ds.labels,
        ds.label_field,
        ds.limit,
        ds.include,
        task=experiment.task,
        columns=Columns(ds.image, ds.answer, ds.id),
        downloads=downloads_dir(experiment, cache_dir),
        split=ds.split,
    )
    strategies = {cell.id: build_strategy(registry, cell) for cell in experiment.cells}

    needed: list[tuple[str, str, str]] = []  # (endpoint, model, where)
    for cell in experiment.cells:
        needed.append((cell.provider, cell.model, f"cell {cell.id}"))
        for provider, model in strategies[cell.id].extra_providers():
            needed.append((provider or cell.provider, model or cell.model, f"cell {cell.id} (tier 1)"))
    judges = experiment.scorers.judges if experiment.scorers is not None else ()
    for key, scorer in judges:  # a model scorer's judge: an endpoint and model the run asks too
        needed.append((scorer.judge.provider, scorer.judge.model, f"task.scorers: {key} (judge)"))

    endpoints = dict(experiment.endpoints)
    for name, _, where in needed:  # a tier-1 provider named only in a strategy's params
        if name not in endpoints:
            endpoints[name] = default_endpoint(src, registry, name, where)
    if endpoints.keys() != experiment.endpoints.keys():
        plugins = {e.name: e.plugin for e in endpoints.values()}
        experiment = replace(experiment, endpoints=endpoints, prices=experiment.prices.with_endpoints(plugins))
    providers = {name: build_provider(registry, endpoints[name]) for name, _, _ in needed if name in endpoints}

    task = experiment.task
    for key, scorer in judges:
        judge = scorer.judge
        if providers[judge.provider].capabilities(judge.model).tasks is not None:
            raise ConfigError(
                f"{src}: task.scorers: {key}: provider {judge.provider!r} answers only its own tasks; a judge "
                "needs a general model"
            )
        try:
            providers[judge.provider].validate_params(judge.model, dict(judge.model_params))
        except ConfigError as exc:
            raise ConfigError(f"{src}: task.scorers: {key}: model_params: {exc}") from None
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
    if task_placeholders(task):
        _one_prompt_per_request(experiment, strategies, providers, items)
    for cell in experiment.cells:  # tier-1 requests on another model go without the cell's model_params
        try:
            providers[cell.provider].validate_params(cell.model, dict(cell.model_params))
        except ConfigError as exc:
            raise ConfigError(f"{src}: cell {cell.id}: model_params: {exc}") from None
    pairs = [(name, model) for name, model, _ in needed]
    experiment = replace(experiment, prices=experiment.prices.for_models(pairs))
    by_plugin = [(endpoints[name].plugin, model) for name, model in pairs]
    warnings = model_warnings(by_plugin, experiment.prices) + unserved(experiment, providers, pairs)
    return Plan(experiment, items, providers, strategies, warnings)


@asynccontextmanager
async def routed(plan: Plan, *, emulate: bool = True, clock: Clock = REAL_CLOCK) -> AsyncIterator[Plan]:
    """The plan as it will call its endpoints: when the config has ``emulator:`` (and ``emulate``), the emulator
    started (on ``clock``) and the endpoints it stands in for built pointing at it (see ``run.emulated``)."""
    experiment = plan.experiment
    if not emulate or experiment.spec.emulator is None:
        yield plan
        return
    async with emulated(experiment, plan.providers, session=plan.session, clock=clock, items=plan.items) as providers:
        yield replace(plan, providers=providers)


@asynccontextmanager
async def running(plan: Plan) -> AsyncIterator[Plan]:
    """The plan's providers started; closed on the way out."""
    async with AsyncExitStack() as stack:
        for provider in plan.providers.values():
            stack.push_async_callback(provider.aclose)
            await provider.start()
        yield plan


@asynccontextmanager
async def started(plan: Plan, *, emulate: bool = True, clock: Clock = REAL_CLOCK) -> AsyncIterator[Plan]:
    """The plan routed (the emulator started when the config asks for it) and its providers started; yields the
    plan as it runs. Everything is closed on the way out."""
    async with routed(plan, emulate=emulate, clock=clock) as live, running(live):
        yield live
