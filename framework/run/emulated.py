"""The local emulator in a run: which endpoints it stands in for, and those endpoints built pointing at it.

An endpoint is emulated when the config has ``emulator:``, the endpoint sets no ``base_url`` (one that does names
its own server, which it keeps) and its plugin declares a protocol the emulator serves (``Provider.protocols``).
Such an endpoint's provider is built with an ``Endpoint`` override (the emulator's URL, and a key handed to it
directly); nothing else changes: no provider's options, no environment variable.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionbench.clock import REAL_CLOCK, Clock
from visionbench.data.dataset import is_rows_manifest
from visionbench.errors import ConfigError
from visionbench.provider import Endpoint, Provider
from visionbench.run.config import EndpointSpec, Experiment
from visionbench.types import ImageItem, fill_template, template_fields

if TYPE_CHECKING:  # the emulator is imported only when a run or plan needs it (its server costs ~0.4 s)
    from visionbench.emulator.profile_schema import EmulatorProfiles

#: The wire protocols the emulator serves (what ``Provider.protocols`` may name to be emulated).
SERVED = ("gemini", "anthropic", "openai")
#: The key an emulated endpoint sends when the emulator takes any key (no ``emulator.valid_key_env``).
EMULATOR_KEY = "emulator-key"


def emulated_protocol(experiment: Experiment, endpoint: EndpointSpec, cls: type[Provider]) -> str | None:
    """The protocol the emulator answers ``endpoint`` on in this run, or ``None`` if it goes where it says."""
    if experiment.spec.emulator is None or getattr(endpoint.options, "base_url", None):
        return None
    return next((protocol for protocol in cls.protocols if protocol in SERVED), None)


def unserved(experiment: Experiment, providers: Mapping[str, Provider], pairs: list[tuple[str, str]]) -> list[str]:
    """For an emulated run: the models its emulator will answer 404 for, as the service would."""
    spec = experiment.spec.emulator
    if spec is None:
        return []
    protocols = {
        name: emulated_protocol(experiment, experiment.endpoints[name], type(provider))
        for name, provider in providers.items()
    }
    if not any(protocols.values()):
        return []
    from visionbench.emulator.catalogue import Catalogue

    catalogue = Catalogue.now(profiles(experiment))
    return [
        f"model {model} ({name}): the emulator answers 404 for it, as the service would"
        for name, model in dict.fromkeys(pairs)
        if (protocol := protocols.get(name)) and not catalogue.serves(protocol, model)
    ]


def profiles(experiment: Experiment, *, strict: bool = True) -> EmulatorProfiles:
    """The emulator profiles ``experiment`` names (the packaged ones when it names none). A missing or invalid file
    is a ConfigError naming it; with ``strict=False`` the packaged profiles stand in for it (for estimates)."""
    from visionbench.emulator.profile_schema import load_profiles

    spec = experiment.spec.emulator
    path = (experiment.source.parent / spec.profiles).resolve() if spec is not None and spec.profiles else None
    try:
        return load_profiles(path)
    except ValueError as exc:
        if not strict:
            return load_profiles(None)
        raise ConfigError(f"{experiment.source}: emulator.profiles: {exc}") from None


def calibrated_from(experiment: Experiment) -> list[dict[str, Any]]:
    """The runs ``experiment``'s emulator profiles were fitted to (``visionbench calibrate``); [] when it is not
    emulated or its profiles were not calibrated."""
    if experiment.spec.emulator is None:
        return []
    return [run.model_dump(mode="json") for run in profiles(experiment).calibrated_from]


def time_scale(experiment: Experiment) -> float | None:
    """The time scale the emulator runs ``experiment`` at: the config's, else its profiles' (None: not emulated)."""
    spec = experiment.spec.emulator
    if spec is None:
        return None
    return spec.time_scale if spec.time_scale is not None else profiles(experiment).time_scale


def _as_label(value: Any, answer_type: str) -> Any:
    """A row's label as the emulator answers from it: numbers as floats (as it reads labels files), the first of
    several acceptable answers."""
    if isinstance(value, list) and value and answer_type != "json":
        value = value[0]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


@asynccontextmanager
async def emulated(
    experiment: Experiment,
    providers: Mapping[str, Provider],
    *,
    session: int = 0,
    clock: Clock = REAL_CLOCK,
    items: Sequence[ImageItem] | None = None,
) -> AsyncIterator[dict[str, Provider]]:
    """Start the local emulator; yield ``providers`` with each emulated endpoint's provider built anew, pointed at
    it (the others as they are). The emulator stops on the way out. On a rows manifest (and no
    ``emulator.dataset``) the emulator answers from ``items``, the run's, each with its row's answer."""
    from visionbench.emulator import Emulator

    spec = experiment.spec
    emu_spec = spec.emulator
    assert emu_spec is not None
    base = experiment.source.parent
    dataset: Path | None = (base / emu_spec.dataset).resolve() if emu_spec.dataset else experiment.dataset_path
    images = None
    if not emu_spec.dataset and items is not None and is_rows_manifest(experiment.dataset_path):
        # Numbers as floats, as the emulator reads labels files; each item's own prompt where rows fill it (one
        # image asked several questions is told apart by the question).
        prompt = experiment.task.prompt if template_fields(experiment.task.prompt) else None
        images = [
            (
                item.id,
                item.path,
                _as_label(item.label, experiment.task.answer_type),
                prompt and fill_template(prompt, item.fields),
                len(item.images()),
            )
            for item in items
        ]
        dataset = None
    elif dataset is not None and dataset.is_file():  # a list manifest: names are relative to its folder
        dataset = dataset.parent
    profiles = (base / emu_spec.profiles).resolve() if emu_spec.profiles else None
    valid_keys = None
    if emu_spec.valid_key_env:
        if not os.environ.get(emu_spec.valid_key_env):
            raise ConfigError(
                f"{experiment.source}: emulator.valid_key_env: environment variable "
                f"{emu_spec.valid_key_env} is not set (it holds the one key the emulator accepts)"
            )
        valid_keys = {os.environ[emu_spec.valid_key_env]}
    async with Emulator(
        profiles,
        dataset=dataset,
        images=images,
        labels=emu_spec.labels or spec.dataset.labels,
        label_field=emu_spec.label_field or spec.dataset.label_field,
        time_scale=emu_spec.time_scale,
        valid_keys=valid_keys,
        clock=clock,
        session=session,
    ) as emu:
        routed = dict(providers)
        for name, provider in providers.items():
            cls = type(provider)
            protocol = emulated_protocol(experiment, experiment.endpoints[name], cls)
            if protocol is not None:
                # With valid_key_env the endpoint sends its own key (api_key_env), which the emulator checks.
                key = None if valid_keys is not None else EMULATOR_KEY
                routed[name] = cls(provider.options, endpoint=Endpoint(emu.base_url + cls.protocols[protocol], key))
        yield routed
