"""Model lifecycle: one warning line per model that is retired, retiring, deprecated or unknown.

Data: ``lifecycle.yaml`` (dates, successors, sources) and genai-prices' ``deprecated`` flag.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

import yaml
from genai_prices.data_snapshot import get_snapshot

from visionbench.services.pricing import PROVIDER_IDS, PriceTable

#: libyaml's safe loader where PyYAML has it: several times faster on the packaged tables.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Lifecycle:
    model: str
    provider: str
    retires: date | None = None
    successor: str | None = None
    suggested: bool = False
    source: str = ""


def _normal(model: str) -> str:
    return model.lower().replace(".", "-").removeprefix("models/")


@cache
def lifecycle_rows() -> tuple[Lifecycle, ...]:
    raw = yaml.load(resources.files("visionbench.services").joinpath("lifecycle.yaml").read_text(), Loader=_YAML_LOADER)
    return tuple(Lifecycle(**row) for row in raw["models"])


def names_version_of(row: str, model: str) -> bool:
    """``model`` is ``row`` or a version of it (dated, -001, -preview, -latest), not another model."""
    base, name = _normal(row), _normal(model)
    return name == base or re.match(re.escape(base) + r"[-@](\d|preview|latest)", name) is not None


def find_lifecycle(provider: str, model: str) -> Lifecycle | None:
    return next((r for r in lifecycle_rows() if r.provider == provider and names_version_of(r.model, model)), None)


def known_models(provider: str) -> list[str]:
    """Model ids genai-prices knows for a provider (its own models, not those it resells)."""
    pid = PROVIDER_IDS.get(provider)
    for p in get_snapshot().providers:
        if p.id == pid:
            prefix = {"google": "gemini", "anthropic": "claude"}.get(pid, "")
            return [m.id for m in p.models if m.id.startswith(prefix)]
    return []


def _successor(row: Lifecycle) -> str:
    if not row.successor:
        return ""
    return f"; {'try' if row.suggested else 'successor:'} {row.successor}"


def model_warning(provider: str, model: str, prices: PriceTable, today: date) -> str | None:
    """One line about ``model`` on ``provider`` if it needs one, else ``None``."""
    if provider not in PROVIDER_IDS:
        return None  # local and plugin providers: no lifecycle data
    row = find_lifecycle(provider, model)
    if row is not None and row.retires is not None:
        if row.retires <= today:
            return f"model {model} ({provider}): retired on {row.retires}{_successor(row)}"
        return f"model {model} ({provider}): retires on {row.retires}{_successor(row)}"
    info = prices.package_model(model, provider)
    if info is not None and info.deprecated:
        return f"model {model} ({provider}): deprecated by the provider (genai-prices){_successor(row) if row else ''}"
    if info is None and prices.find(model, provider) is None:
        close = difflib.get_close_matches(model, known_models(provider), n=3, cutoff=0.6)
        hint = f"; closest known: {', '.join(close)}" if close else ""
        return f"model {model} ({provider}): unknown model name, no price{hint}"
    return None


def model_warnings(pairs: list[tuple[str, str]], prices: PriceTable, today: date | None = None) -> list[str]:
    """Warnings for each distinct (provider, model), in order."""
    today = today or prices.at.date()
    lines = (model_warning(p, m, prices, today) for p, m in dict.fromkeys(pairs))
    return [line for line in lines if line]
