"""The plugin contract. Plugin authors: this file is the API reference.

A plugin is any module or object with functions marked ``@hookimpl``, registered under the
``visionbench`` entry-point group in its package metadata::

    [project.entry-points.visionbench]
    my_provider = "my_package.my_module"

The built-in providers and strategies register through the very same entry points and hooks.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("visionbench")
hookimpl = pluggy.HookimplMarker("visionbench")


@hookspec
def register_providers(register: Callable[[type], None]) -> None:
    """Called once when plugins load. Call ``register(ProviderClass)`` for each provider you offer.

    ``ProviderClass`` subclasses :class:`visionbench.provider.Provider`; its ``name`` is what configs
    write under ``provider:``.
    """


@hookspec
def register_strategies(register: Callable[[type], None]) -> None:
    """Called once when plugins load. Call ``register(StrategyClass)`` for each strategy you offer.

    ``StrategyClass`` subclasses :class:`visionbench.strategy.Strategy`; its ``name`` is what configs
    write under ``strategies:``.
    """
