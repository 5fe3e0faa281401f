"""The plugin contract. Plugin authors: this file is the API reference.

A plugin is any module or object with functions marked ``@hookimpl``, registered under the
``visionbench`` entry-point group in its package metadata::

    [project.entry-points.visionbench]
    my_provider = "my_package.my_module"

The built-in providers, strategies and scorers register through the very same entry points and hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from visionbench.provider import Provider
    from visionbench.scorer import Scorer
    from visionbench.strategy import Strategy

hookspec = pluggy.HookspecMarker("visionbench")
hookimpl = pluggy.HookimplMarker("visionbench")


@hookspec
def register_providers(register: Callable[[type[Provider[Any]]], None]) -> None:
    """Called once when plugins load. Call ``register(ProviderClass)`` for each provider you offer.

    ``ProviderClass`` subclasses :class:`visionbench.provider.Provider`; its ``name`` is what configs
    write under ``provider:``.
    """


@hookspec
def register_strategies(register: Callable[[type[Strategy[Any]]], None]) -> None:
    """Called once when plugins load. Call ``register(StrategyClass)`` for each strategy you offer.

    ``StrategyClass`` subclasses :class:`visionbench.strategy.Strategy`; its ``name`` is what configs
    write under ``strategies:``.
    """


@hookspec
def register_scorers(register: Callable[[type[Scorer[Any]]], None]) -> None:
    """Called once when plugins load. Call ``register(ScorerClass)`` for each scorer you offer.

    ``ScorerClass`` subclasses :class:`visionbench.scorer.Scorer`; its ``name`` is what configs write under
    ``task.scorers``.
    """


# Hooks are called through ``pm.hook`` (pluggy), which hands each implementation only the arguments it names:
# a hook may gain an argument (documented here) without breaking the plugins written before it.
