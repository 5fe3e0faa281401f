"""Dollars from reported usage, with a versioned price table (source and date per row) that configs can override."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml
from pydantic import Field, ValidationError

from visionbench.errors import ConfigError
from visionbench.spec import StrictModel
from visionbench.types import Usage


class ModelPrice(StrictModel):
    """USD per 1M tokens for the models whose id starts with ``match``."""

    match: str
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


def _normal(model: str) -> str:
    return model.lower().replace(".", "-").removeprefix("models/")


@dataclass(frozen=True)
class PriceTable:
    version: str
    rows: tuple[ModelPrice, ...]
    _found: dict[str, ModelPrice | None] = field(default_factory=dict, compare=False, repr=False)

    @property
    def sha256(self) -> str:
        """Hash of the table's content, recorded in every bundle."""
        data = {"version": self.version, "rows": [r.model_dump() for r in self.rows]}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def find(self, model: str) -> ModelPrice | None:
        if model not in self._found:  # looked up once per model, not once per request
            name = _normal(model)
            hits = [r for r in self.rows if name.startswith(_normal(r.match))]
            self._found[model] = max(hits, key=lambda r: len(r.match)) if hits else None
        return self._found[model]

    def with_overrides(self, overrides: list[dict[str, Any]], where: str = "pricing") -> PriceTable:
        """Rows from a config replace built-in rows with the same ``match`` or are added."""
        rows = {r.match: r for r in self.rows}
        for i, raw in enumerate(overrides):
            try:
                row = ModelPrice.model_validate(raw)
            except ValidationError as err:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
                raise ConfigError(f"{where}[{i}]: {problems}") from None
            rows[row.match] = row
        return PriceTable(self.version + ("+overrides" if overrides else ""), tuple(rows.values()))

    def cost(self, model: str, usage: Usage | None, *, batch: bool = False) -> float | None:
        """USD for one request; ``None`` when the model has no price or the usage was not reported."""
        price = self.find(model)
        if price is None or usage is None or usage.input_tokens is None or usage.output_tokens is None:
            return None
        cached = usage.cached_tokens or 0
        fresh = max(0, usage.input_tokens - cached)  # reported input tokens include the cached ones
        output = usage.output_tokens + (usage.thinking_tokens or 0)
        long = price.long_context_threshold is not None and usage.input_tokens > price.long_context_threshold
        rate_in = price.input_long if long and price.input_long is not None else price.input
        rate_out = price.output_long if long and price.output_long is not None else price.output
        rate_cached = price.cached_input if price.cached_input is not None else rate_in
        dollars = (fresh * rate_in + cached * rate_cached + output * rate_out) / 1_000_000
        return dollars * (price.batch_factor if batch else 1.0)


def default_table() -> PriceTable:
    raw = yaml.safe_load(resources.files("visionbench").joinpath("pricing/prices.yaml").read_text())
    return PriceTable(str(raw["version"]), tuple(ModelPrice.model_validate(r) for r in raw["models"]))
