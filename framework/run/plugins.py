"""The PluginManager: loads entry-point plugins and collects the providers and strategies they register."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import FrameType, ModuleType, TracebackType
from typing import Any

import pluggy
from pluggy import HookImpl

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


def _code(function: object) -> object:
    """The code object a hookimpl runs (through decorators made with ``functools.wraps``)."""
    return getattr(inspect.unwrap(function), "__code__", None)  # type: ignore[arg-type]


def _plugin_in(frames: Iterable[FrameType], impls: dict[object, HookImpl]) -> HookImpl | None:
    """The hookimpl running in one of ``frames`` (innermost first), if any."""
    for frame in frames:
        impl = impls.get(frame.f_code)
        if impl is not None:
            return impl
    return None


def _stack(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def _traceback(tb: TracebackType | None) -> list[FrameType]:
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames[::-1]  # innermost first


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call the register hooks of every plugin and gather what they register; duplicate names are an error.

    The hooks are called through ``pm.hook``, so pluggy hands each plugin only the arguments it asks for (a
    hook may gain an argument without breaking a plugin). Each registration, and each failure, is traced to the
    plugin whose hookimpl made it (the hookimpl's frame on the stack), so errors name the plugin at fault.
    """
    registry = Registry()
    _call(pm, pm.hook.register_providers, "provider", registry.providers, Provider, registry)
    _call(pm, pm.hook.register_strategies, "strategy", registry.strategies, Strategy, registry)
    return registry


def _call(
    pm: pluggy.PluginManager, hook: pluggy.HookCaller, kind: str, table: dict[str, Any], base: type, registry: Registry
) -> None:
    impls = {_code(impl.function): impl for impl in hook.get_hookimpls()}

    def origin(impl: HookImpl | None) -> str:
        return _origin(pm, impl.plugin) if impl is not None else "(unknown plugin)"

    def register(cls: type) -> None:
        by = origin(_plugin_in(_stack(sys._getframe(1)), impls))
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise VisionbenchError(f"plugin {by} registered {cls!r}, which is not a {base.__name__} subclass")
        name: str = cls.name  # type: ignore[attr-defined]  # checked above: a Provider or Strategy subclass
        if name in table:
            first = registry.origins[f"{kind}:{name}"]
            raise VisionbenchError(f"{kind} {name!r} registered twice: by {first} and by {by}")
        table[name] = cls
        registry.origins[f"{kind}:{name}"] = by

    try:
        hook(register=register)
    except VisionbenchError:
        raise
    except Exception as exc:
        by = origin(_plugin_in(_traceback(exc.__traceback__), impls))
        raise VisionbenchError(f"plugin {by} failed in {hook.name}: {type(exc).__name__}: {exc}") from exc


_default: Registry | None = None


def default_registry() -> Registry:
    """The registry of every installed plugin, loaded once per process."""
    global _default
    if _default is None:
        _default = collect(make_manager())
    return _default
