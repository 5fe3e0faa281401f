"""The PluginManager: loads entry-point plugins and collects the providers and strategies they register."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType

import pluggy

from visionbench import hookspecs
from visionbench.errors import VisionbenchError
from visionbench.provider import Provider
from visionbench.strategy import Strategy

GROUP = "visionbench"


@dataclass
class Registry:
    """Everything the loaded plugins offer, by name, with the distribution each came from."""

    providers: dict[str, type[Provider]] = field(default_factory=dict)
    strategies: dict[str, type[Strategy]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)


def make_manager(extra_plugins: Iterable[object] = (), *, entry_points: bool = True) -> pluggy.PluginManager:
    """A PluginManager with the hookspecs added, entry-point plugins loaded and ``extra_plugins`` registered."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    if entry_points:
        pm.load_setuptools_entrypoints(GROUP)
    for plugin in extra_plugins:
        pm.register(plugin)
    return pm


def _origin(pm: pluggy.PluginManager, plugin: object) -> str:
    for loaded, dist in pm.list_plugin_distinfo():
        if loaded is plugin:
            meta = dist.metadata  # parsed on each access (project_name and version would parse it twice)
            return f"{meta['name']} {meta['version']}"
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return type(plugin).__name__


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call the register hooks of every plugin and gather what they register; duplicate names are an error."""
    registry = Registry()

    def adder(kind: str, table: dict, base: type, origin: str):
        def register(cls: type) -> None:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise VisionbenchError(f"plugin {origin} registered {cls!r}, which is not a {base.__name__} subclass")
            if cls.name in table:
                raise VisionbenchError(
                    f"{kind} {cls.name!r} registered twice: by {registry.origins[f'{kind}:{cls.name}']} and by {origin}"
                )
            table[cls.name] = cls
            registry.origins[f"{kind}:{cls.name}"] = origin

        return register

    # Each hookimpl is called on its own so that every registration knows which plugin made it.
    for impl in pm.hook.register_providers.get_hookimpls():
        impl.function(register=adder("provider", registry.providers, Provider, _origin(pm, impl.plugin)))
    for impl in pm.hook.register_strategies.get_hookimpls():
        impl.function(register=adder("strategy", registry.strategies, Strategy, _origin(pm, impl.plugin)))
    return registry


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of every installed plugin, loaded once per process."""
    global _default
    if _default is None:
        _default = collect(make_manager())
    return _default
