"""Dollars from reported usage: prices from the maintained ``genai-prices`` package, config overrides first.

visionbench adds only what the package lacks (``services/prices.yaml``: batch factors per provider, rows for
models it has no entry for). Thinking tokens bill as output; an unknown price or unreported usage is ``None``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import genai_prices
import yaml
from genai_prices import types as gp
from genai_prices.data_snapshot import get_snapshot
from pydantic import ConfigDict, Field, ValidationError

from visionbench.errors import ConfigError
from visionbench.spec import StrictModel
from visionbench.types import Usage

#: libyaml's safe loader where PyYAML has it: several times faster on the packaged tables.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: visionbench provider name -> genai-prices provider id (providers not listed are priced by overrides only).
PROVIDER_IDS = {"gemini": "google", "anthropic": "anthropic", "openai": "openai"}
BATCH = {"processing": "batch"}


class ModelPrice(StrictModel):
    """USD per 1M tokens for the models whose id starts with ``match`` (a config override or a local row).
    Prices are finite: an infinite or NaN price could neither be summed nor budgeted."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    #: A model id prefix: never empty (an empty one would price every model alike).
    match: str = Field(min_length=1, pattern=r"\S")
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    long_context_threshold: int | None = Field(default=None, gt=0)
    input_long: float | None = Field(default=None, ge=0)
    output_long: float | None = Field(default=None, ge=0)
    batch_factor: float = Field(default=0.5, gt=0, le=1)
    source: str = "config"
    checked: str | None = None
    note: str | None = None

    def cost(self, usage: Usage, batch: bool) -> float:
        cached = usage.cached_tokens or 0
        fresh = max(0, (usage.input_tokens or 0) - cached)  # reported input tokens include the cached ones
        output = (usage.output_tokens or 0) + (usage.thinking_tokens or 0)
        long = self.long_context_threshold is not None and (usage.input_tokens or 0) > self.long_context_threshold
        rate_in = self.input_long if long and self.input_long is not None else self.input
        rate_out = self.output_long if long and self.output_long is not None else self.output
        rate_cached = self.cached_input if self.cached_input is not None else rate_in
        dollars = (fresh * rate_in + cached * rate_cached + output * rate_out) / 1_000_000
        return dollars * (self.batch_factor if batch else 1.0)


@dataclass(frozen=True)
class PackagePrice:
    """A model's genai-prices entry, resolved for one day: standard and batch prices."""

    model: gp.ModelInfo
    standard: gp.ModelPrice
    batch: gp.ModelPrice | None  # the package's batch variant, if it has one in force
    batch_factor: float | None  # else ours, per provider
    #: genai-prices takes ~0.1 ms a call; a cell's requests mostly repeat the same few usages.
    _memo: dict[tuple[Usage, bool], float | None] = field(default_factory=dict, compare=False, repr=False)

    def cost(self, usage: Usage, batch: bool) -> float | None:
        key = (usage, batch)
        if key not in self._memo:
            if len(self._memo) > 4096:
                self._memo.clear()
            self._memo[key] = self._cost(usage, batch)
        return self._memo[key]

    def _cost(self, usage: Usage, batch: bool) -> float | None:
        price = self.standard
        factor = 1.0
        if batch:
            if self.batch is not None:
                price = self.batch
            elif self.batch_factor is not None:
                factor = self.batch_factor
            else:
                return None
        thinking = usage.thinking_tokens or 0
        counts = {
            "input_tokens": usage.input_tokens,
            "cache_read_tokens": usage.cached_tokens or None,
            "output_tokens": (usage.output_tokens or 0) + thinking,  # thinking bills as output
            "output_reasoning_tokens": thinking or None,
            "input_image_tokens": usage.image_tokens or None,  # priced apart only where the provider does
        }
        try:
            total = price.calc_price(gp.Usage(**counts))["total_price"]
        except ValueError:  # usage the package cannot split (e.g. cached image tokens): without the image split
            counts.pop("input_image_tokens")
            total = price.calc_price(gp.Usage(**counts))["total_price"]
        return float(total) * factor

    def describe(self) -> dict[str, Any]:
        return {
            "genai_prices_model": self.model.id,
            "standard": _rates(self.standard),
            "batch": _rates(self.batch) if self.batch is not None else f"standard x {self.batch_factor}",
        }


def _rates(price: gp.ModelPrice) -> dict[str, Any]:
    """USD per unit by genai-prices key (``input_mtok``...), tiers spelled out: what a bundle's hash covers."""
    out: dict[str, Any] = {}
    for key, value in sorted(vars(price).items()):
        if isinstance(value, gp.TieredPrices):
            out[key] = {"base": str(value.base), "tiers": [[t.start, str(t.price)] for t in value.tiers]}
        elif value is not None and not key.startswith("_"):
            out[key] = str(value)
    return out


def _normal(model: str) -> str:
    return model.lower().replace(".", "-").removeprefix("models/")


def _has_batch_variant(model: gp.ModelInfo, at: datetime) -> bool:
    return any(
        v.when == BATCH and (v.constraint is None or v.constraint.active(at)) for v in model.price_variants or ()
    )


@dataclass(frozen=True)
class PriceTable:
    """Prices for one run: config overrides, then genai-prices, then the local rows; resolved on day ``at``."""

    version: str
    rows: tuple[ModelPrice, ...]  # overrides and local rows, matched by longest prefix
    batch_factors: dict[str, float] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: (provider, model) pairs the run uses: what ``sha256`` covers.
    models: tuple[tuple[str | None, str], ...] = ()
    overrides: frozenset[str] = frozenset()
    #: Endpoint name -> provider plugin name: an endpoint is priced as its plugin (``openai`` for a vLLM server).
    plugins: dict[str, str] = field(default_factory=dict)
    _found: dict[tuple[str | None, str], ModelPrice | PackagePrice | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def _row(self, model: str, only: frozenset[str] | None = None) -> ModelPrice | None:
        name = _normal(model)
        hits = [r for r in self.rows if name.startswith(_normal(r.match)) and (only is None or r.match in only)]
        return max(hits, key=lambda r: len(r.match)) if hits else None

    def package_model(self, model: str, provider: str | None) -> gp.ModelInfo | None:
        """The genai-prices entry for ``model`` on ``provider`` (any provider if ``None``), or ``None``."""
        if provider is not None and provider not in PROVIDER_IDS:
            return None
        try:
            return get_snapshot().find_provider_model(model, None, PROVIDER_IDS.get(provider or ""), None)[1]
        except LookupError:
            return None

    def find(self, model: str, provider: str | None = None) -> ModelPrice | PackagePrice | None:
        """An override row wins; else the package's entry; else a local row. Looked up once per model."""
        provider = self.plugins.get(provider, provider) if provider is not None else None
        key = (provider, model)
        if key not in self._found:
            found: ModelPrice | PackagePrice | None = self._row(model, self.overrides)
            if found is None and (info := self.package_model(model, provider)) is not None:
                batch = info.get_prices(self.at, BATCH) if _has_batch_variant(info, self.at) else None
                found = PackagePrice(info, info.get_prices(self.at), batch, self.batch_factors.get(provider or ""))
            self._found[key] = found if found is not None else self._row(model)
        return self._found[key]

    def cost(
        self, model: str, usage: Usage | None, *, batch: bool = False, provider: str | None = None
    ) -> float | None:
        """USD for one request; ``None`` when the model has no price or the usage was not reported."""
        price = self.find(model, provider)
        if price is None or usage is None or usage.input_tokens is None or usage.output_tokens is None:
            return None
        return price.cost(usage, batch)

    def used(self) -> dict[str, Any]:
        """The prices of the run's models as resolved: what two bundles compare."""
        out: dict[str, Any] = {}
        for provider, model in sorted(self.models, key=lambda m: (m[0] or "", m[1])):
            price = self.find(model, provider)
            described = price.describe() if isinstance(price, PackagePrice) else price and price.model_dump()
            out[f"{provider}/{model}"] = described
        return out

    @property
    def sha256(self) -> str:
        """Hash of the prices actually used by the run's models (and the batch factors), kept in every bundle."""
        data = {"used": self.used(), "batch_factors": self.batch_factors}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def for_models(self, models: list[tuple[str | None, str]]) -> PriceTable:
        """The same table, told which (provider, model) pairs a run uses (endpoints named by their plugin)."""
        plugins = [(self.plugins.get(p, p) if p is not None else None, m) for p, m in models]
        return replace(self, models=tuple(dict.fromkeys(plugins)), _found={})

    def with_endpoints(self, plugins: dict[str, str]) -> PriceTable:
        """The same table, told each endpoint's plugin: an endpoint is priced as its plugin."""
        return replace(self, plugins=dict(plugins), _found={})

    def with_overrides(self, overrides: list[dict[str, Any]], where: str = "pricing") -> PriceTable:
        """Rows from a config win over the package and the local rows (same ``match``: replaced)."""
        rows = {r.match: r for r in self.rows}
        names = set(self.overrides)
        for i, raw in enumerate(overrides):
            try:
                row = ModelPrice.model_validate(raw)
            except ValidationError as err:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
                raise ConfigError(f"{where}[{i}]: {problems}") from None
            rows[row.match] = row
            names.add(row.match)
        return replace(
            self,
            version=self.version + ("+overrides" if overrides else ""),
            rows=tuple(rows.values()),
            overrides=frozenset(names),
            _found={},
        )


def default_table(at: datetime | None = None) -> PriceTable:
    """genai-prices as installed, plus the local table, resolved for ``at`` (default: now)."""
    raw = yaml.load(resources.files("visionbench.services").joinpath("prices.yaml").read_text(), Loader=_YAML_LOADER)
    return PriceTable(
        version=f"genai-prices {genai_prices.__version__}; local {raw['checked']}",
        rows=tuple(ModelPrice.model_validate(r) for r in raw["models"] or ()),
        batch_factors={r["provider"]: float(r["factor"]) for r in raw["batch_factors"]},
        at=at or datetime.now(UTC),
    )
