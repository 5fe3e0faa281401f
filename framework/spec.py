"""The strict pydantic base every config section, provider ``Options`` and strategy ``Params`` builds on."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A config model that refuses unknown keys, so a typo is an error naming the key, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class FrozenModel(StrictModel):
    """A strict model whose values never change once validated (hashable, safe to share and to key a cache)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
