"""An experiment made ready to run: its items loaded, its plugins built and checked, and their lifetime."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from visionbench.clock import REAL_CLOCK, Clock
from visionbench.data.dataset import Items, load_dataset
from visionbench.errors import ConfigError
from visionbench.provider import Provider, RemoteOptions
from visionbench.run.config import Experiment, build_strategy, load_experiment
from visionbench.run.plugins import Registry
from visionbench.services.lifecycle import model_warnings
from visionbench.strategy import Strategy

EMULATOR_KEY_ENV = "VISIONBENCH_EMULATOR_KEY"


@dataclass
class Plan:
    """An experiment made ready to run: items loaded, plugins built and checked against each other."""

    experiment: Experiment
    items: Items  #: columns, not an object per image
    providers: dict[str, Provider]
    strategies: dict[str, Strategy]
    #: One line per model that is retired, retiring, deprecated or unknown (printed by the CLI).
    warnings: list[str] = field(default_factory=list)
    #: How many times the run was resumed before this session (0: a new run); the emulator draws afresh per session.
    session: int = 0


def load_plan(path: str | Path, registry: Registry, *, dataset: str | Path | None = None) -> Plan:
    """Read, validate and prepare the experiment config at ``path`` (on ``dataset`` instead of the config's
    dataset folder when given: ``--dataset``). Raises ConfigError."""
    return prepare(load_experiment(path, registry, dataset=dataset), registry)


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
            loaded = ", ".join(sorted(registry.providers))
            raise ConfigError(f"{src}: {where}: unknown provider {name!r}; loaded: {loaded}")
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
    for cell in experiment.cells:  # tier-1 requests on another model go without the cell's model_params
        try:
            providers[cell.provider].validate_params(cell.model, dict(cell.model_params))
        except ConfigError as exc:
            raise ConfigError(f"{src}: cell {cell.id}: model_params: {exc}") from None
    pairs = [(name, model) for name, model, _ in needed]
    experiment = replace(experiment, prices=experiment.prices.for_models(pairs))
    warnings = model_warnings(pairs, experiment.prices) + _unserved(experiment, pairs)
    return Plan(experiment, items, providers, strategies, warnings)


def _unserved(experiment: Experiment, pairs: list[tuple[str, str]]) -> list[str]:
    """For an emulated run: the models its emulator will answer 404 for, as the service would."""
    spec = experiment.spec.emulator
    if spec is None:
        return []
    from visionbench.emulator.catalogue import Catalogue
    from visionbench.emulator.profile_schema import load_profiles

    profiles = load_profiles((experiment.source.parent / spec.profiles).resolve() if spec.profiles else None)
    catalogue = Catalogue.now(profiles)
    return [
        f"model {model} ({provider}): the emulator answers 404 for it, as the service would"
        for provider, model in dict.fromkeys(pairs)
        if provider in ("gemini", "anthropic", "openai") and not catalogue.serves(provider, model)
    ]


@asynccontextmanager
async def started(plan: Plan, *, emulate: bool = True, clock: Clock = REAL_CLOCK) -> AsyncIterator[Plan]:
    """The plan's providers started (and the emulator, on ``clock``, when the config asks for it); closed on the way
    out."""
    async with AsyncExitStack() as stack:
        if emulate and plan.experiment.spec.emulator is not None:
            await stack.enter_async_context(emulated(plan, clock))
        for provider in plan.providers.values():
            stack.push_async_callback(provider.aclose)
            await provider.start()
        yield plan


@asynccontextmanager
async def emulated(plan: Plan, clock: Clock = REAL_CLOCK) -> AsyncIterator[object]:
    """Start the local emulator and point every remote provider (``RemoteOptions``) at it."""
    from visionbench.emulator import Emulator

    spec = plan.experiment.spec
    emu_spec = spec.emulator
    assert emu_spec is not None
    base = plan.experiment.source.parent
    dataset = (base / emu_spec.dataset).resolve() if emu_spec.dataset else plan.experiment.dataset_path
    profiles = (base / emu_spec.profiles).resolve() if emu_spec.profiles else None
    valid_keys = None
    if emu_spec.valid_key_env:
        if not os.environ.get(emu_spec.valid_key_env):
            raise ConfigError(
                f"{plan.experiment.source}: emulator.valid_key_env: environment variable "
                f"{emu_spec.valid_key_env} is not set (it holds the one key the emulator accepts)"
            )
        valid_keys = {os.environ[emu_spec.valid_key_env]}
    async with Emulator(
        profiles,
        dataset=dataset,
        labels=emu_spec.labels or spec.dataset.labels,
        label_field=emu_spec.label_field or spec.dataset.label_field,
        time_scale=emu_spec.time_scale,
        valid_keys=valid_keys,
        clock=clock,
        session=plan.session,
    ) as emu:
        os.environ.setdefault(EMULATOR_KEY_ENV, "emulator-key")  # the emulator wants a key; any will do
        for provider in plan.providers.values():
            if isinstance(provider.options, RemoteOptions):
                # A protocol served under a path (OpenAI's /v1) says so on its class.
                path = getattr(type(provider), "emulator_path", "")
                update = {"base_url": emu.base_url + path}
                if valid_keys is None:
                    update["api_key_env"] = EMULATOR_KEY_ENV
                provider.options = provider.options.model_copy(update=update)
        yield emu
