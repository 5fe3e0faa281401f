"""Which models the emulator serves: those the real service serves today, plus names a profile lists.

"Serves today" is the price data's list of the provider's own models (genai-prices) minus those
``lifecycle.yaml`` says were shut down before today. A model id is served with its versions (dated,
-001, -preview..., -latest), as the services accept them. A profiles file may add names by listing them
exactly (e.g. the seed calibration serves the shut-down gemini-3-pro-preview); globs and ``"*"`` only
give a profile to models that are served anyway. Everything else is answered like the service answers an
unknown model: 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache

from visionbench.emulator.profile_schema import EmulatorProfiles, ModelProfile
from visionbench.services.lifecycle import find_lifecycle, known_models, names_version_of


def _bare(model: str) -> str:
    return model.removeprefix("models/")


@cache
def _official(protocol: str) -> tuple[str, ...]:
    return tuple(known_models(protocol))


def is_official(protocol: str, model: str) -> bool:
    """``model`` is a model id the provider publishes (or a version of one), per the price data."""
    return any(names_version_of(known, _bare(model)) for known in _official(protocol))


def retired_on(protocol: str, model: str) -> date | None:
    """The day the service stopped serving ``model``, if ``lifecycle.yaml`` knows one."""
    row = find_lifecycle(protocol, _bare(model))
    return row.retires if row is not None else None


@dataclass(frozen=True)
class Catalogue:
    """The models one emulator serves, on ``today`` (UTC)."""

    profiles: EmulatorProfiles
    today: date

    @classmethod
    def now(cls, profiles: EmulatorProfiles) -> Catalogue:
        return cls(profiles, datetime.now(UTC).date())

    def listed(self, model: str) -> bool:
        """The profiles file names ``model`` exactly (not by a glob or ``"*"``)."""
        name = _bare(model)
        return name in self.profiles.models and not any(ch in name for ch in "*?[")

    def serves(self, protocol: str, model: str) -> bool:
        if self.listed(model):
            return True
        if not is_official(protocol, model):
            return False
        retired = retired_on(protocol, model)
        return retired is None or retired > self.today

    def resolve(self, protocol: str, model: str) -> tuple[str, ModelProfile] | None:
        """The profile key and profile serving ``model`` over ``protocol``, or ``None`` (answer 404)."""
        if not self.serves(protocol, model):
            return None
        return self.profiles.resolve(_bare(model))

    def served(self, protocol: str) -> list[str]:
        """Every model id served over ``protocol`` (without version suffixes), for listing."""
        official = [m for m in _official(protocol) if self.serves(protocol, m)]
        prefix = {"gemini": "gemini", "anthropic": "claude"}.get(protocol, "")
        extra = [m for m in self.profiles.models if self.listed(m) and m.startswith(prefix) and m not in official]
        return sorted(official + extra)


def not_found_message(protocol: str, model: str) -> str:
    """The message each service gives for a model it does not serve (unknown, misspelt or shut down)."""
    name = _bare(model)
    if protocol == "gemini":
        return (
            f"models/{name} is not found for API version v1beta, or is not supported for generateContent. "
            "Call ListModels to see the list of available models and their supported methods."
        )
    if protocol == "anthropic":
        return f"model: {name}"
    return f"The model `{name}` does not exist or you do not have access to it."
