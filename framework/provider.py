"""The base class of provider plugins: adapters that know an SDK (or a local model) and nothing of orchestration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from visionbench.types import Capabilities, Request, Response


class NoOptions(BaseModel):
    """Options for a provider that takes none."""

    model_config = ConfigDict(extra="forbid")


class Provider(ABC):
    """A provider answers requests. It never sleeps, retries or times itself: the framework does that.

    Subclasses set ``name`` (what configs write under ``provider:``) and may set ``Options``, a pydantic
    model validated from the config's ``providers: {name: {...}}`` section.
    Failures are raised as :mod:`visionbench.errors` ``ProviderError`` kinds.
    """

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: True for providers whose answers do not come from the real service (emulators, fakes).
    simulated: ClassVar[bool] = False

    def __init__(self, options: BaseModel | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @abstractmethod
    def capabilities(self, model: str) -> Capabilities:
        """What this provider can do with ``model``."""

    @abstractmethod
    async def generate(self, request: Request) -> Response:
        """Send one request and return the reply, or raise a ``ProviderError``."""

    async def start(self) -> None:
        """Called once before any cell runs: load models, open clients, so no cell's time pays for it."""

    def environment(self) -> dict[str, str]:
        """Versions worth recording in a bundle (SDK, model files...). Never secrets."""
        return {}

    async def aclose(self) -> None:
        """Release clients and sessions at the end of a run."""
