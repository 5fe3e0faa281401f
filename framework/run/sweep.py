"""Sweep axes in the matrix: a list where a config expects one value is an axis, and each combination a cell.

``preprocessing: {max_side: [384, 768]}`` and ``model_params: {media_resolution: [low, high]}`` in one matrix
entry give four cells. A parameter whose value is itself a list is written as a list of one list.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from visionbench.errors import ConfigError


def combinations(values: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """Every combination of ``values``' list entries (other entries are the same in each), in order."""
    axes: list[tuple[str, list[Any]]] = []
    for key, value in values.items():
        if not isinstance(value, list):
            continue
        if not value:
            raise ConfigError(f"{where}.{key}: an empty list sweeps nothing; give one value or several")
        seen: dict[str, Any] = {}
        for v in value:
            same = json.dumps(_canonical(key, v), sort_keys=True, default=str)
            if same in seen:
                twice = (
                    f"{seen[same]!r} and {v!r} are the same value"
                    if seen[same] != v or type(seen[same]) is not type(v)
                    else f"{v!r} twice"
                )
                raise ConfigError(
                    f"{where}.{key}: the sweep {value!r} names one value twice ({twice}): it would run, and pay "
                    "for, the same cell twice"
                )
            seen[same] = v
        axes.append((key, value))
    if not axes:
        return [dict(values)]
    keys = [key for key, _ in axes]
    return [{**values, **dict(zip(keys, combo))} for combo in itertools.product(*(v for _, v in axes))]


def _canonical(key: str, value: Any) -> Any:
    """A sweep value as duplicates are told: numbers by value (4 is 4.0), words by their name whatever the case or
    an enum's prefix (``LOW``, ``low`` and ``media_resolution_low`` for ``media_resolution``); lists and objects
    by their parts."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        word = value.strip().casefold()
        return word.removeprefix(f"{key.casefold()}_")
    if isinstance(value, list):
        return [_canonical(key, v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(k, v) for k, v in value.items()}
    return value


def describe(varied: dict[str, Any]) -> str:
    """A short, readable name for what varies: ``384px,media_resolution=low``."""
    parts = []
    for key, value in varied.items():
        if key == "max_side":
            parts.append("full-size" if value is None else f"{value}px")
        else:
            parts.append(f"{key}={_short(value)}")
    return ",".join(parts)


def varying(settings: list[dict[str, Any]]) -> list[str]:
    """The keys whose value is not the same in every one of ``settings``, in first-seen order."""
    keys: list[str] = []
    for s in settings:
        keys += [k for k in s if k not in keys]
    marker = object()
    return [k for k in keys if len({json.dumps(s.get(k, marker), default=str) for s in settings}) > 1]


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
