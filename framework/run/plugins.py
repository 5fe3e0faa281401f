"""The PluginManager: loads entry-point plugins and collects the providers, strategies and scorers they register."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from visionbench import hookspecs
from visionbench.errors import VisionbenchError
from visionbench.provider import Provider
from visionbench.scorer import Scorer
from visionbench.strategy import Strategy

GROUP = "visionbench"


@dataclass
class Registry:
    """Everything the loaded plugins offer, by name, with the distribution each came from."""

    providers: dict[str, type[Provider]] = field(default_factory=dict)
    strategies: dict[str, type[Strategy]] = field(default_factory=dict)
    scorers: dict[str, type[Scorer]] = field(default_factory=dict)
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


def _origin(pm: pluggy.PluginManager, plugin: object, named: dict[int, str]) -> str:
    for loaded, facade in pm.list_plugin_distinfo():
        if loaded is plugin:
            # Its metadata is parsed on each access (~4 ms): once per distribution, which has all its entry points'
            # plugins (the built-ins are some twenty of one).
            dist = getattr(facade, "_dist", facade)
            if id(dist) not in named:
                meta = facade.metadata
                named[id(dist)] = f"{meta['name']} {meta['version']}"
            return named[id(dist)]
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return type(plugin).__name__


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call the register hooks of every plugin and gather what they register; duplicate names are an error.

    The hooks are called through pluggy (``pm.hook``, one plugin at a time through ``subset_hook_caller``), so
    pluggy hands each plugin only the arguments it asks for (a hook may gain an argument without breaking a
    plugin), and each registration and each failure is known to come from that plugin: errors name it.
    """
    registry = Registry()
    named: dict[int, str] = {}
    _call(pm, "register_providers", "provider", registry.providers, Provider, registry, named)
    _call(pm, "register_strategies", "strategy", registry.strategies, Strategy, registry, named)
    _call(pm, "register_scorers", "scorer", registry.scorers, Scorer, registry, named)
    return registry


def _call(
    pm: pluggy.PluginManager,
    hook_name: str,
    kind: str,
    table: dict[str, Any],
    base: type,
    registry: Registry,
    named: dict[int, str],
) -> None:
    plugins = [impl.plugin for impl in getattr(pm.hook, hook_name).get_hookimpls()]
    for plugin in plugins:
        by = _origin(pm, plugin, named)

        def register(cls: type, by: str = by) -> None:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise VisionbenchError(f"plugin {by} registered {cls!r}, which is not a {base.__name__} subclass")
            name: str = cls.name  # type: ignore[attr-defined]  # checked above: a plugin class
            if name in table:
                first = registry.origins[f"{kind}:{name}"]
                raise VisionbenchError(f"{kind} {name!r} registered twice: by {first} and by {by}")
            table[name] = cls
            registry.origins[f"{kind}:{name}"] = by

        only_this = pm.subset_hook_caller(hook_name, remove_plugins=[p for p in plugins if p is not plugin])
        try:
            only_this(register=register)
        except VisionbenchError:
            raise
        except Exception as exc:
            raise VisionbenchError(f"plugin {by} failed in {hook_name}: {type(exc).__name__}: {exc}") from exc


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of every installed plugin, loaded once per process."""
    global _default
    if _default is None:
        _default = collect(make_manager())
    return _default
