"""The base class of provider plugins: adapters that know an SDK (or a local model) and nothing of orchestration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from visionbench.errors import ProviderError
from visionbench.spec import StrictModel
from visionbench.types import BatchStatus, Capabilities, Request, Response

#: Response header an emulator sets on every reply; a provider marks a Response with it as simulated.
SIMULATED_HEADER = "x-visionbench-simulated"
#: The SDK's own timeout, a backstop only: the framework times each attempt itself (retry.timeout_s).
DEFAULT_SDK_TIMEOUT_S = 600.0


class NoOptions(StrictModel):
    """Options for a provider that takes none."""


@dataclass(frozen=True)
class Endpoint:
    """Where a provider sends its requests instead of where its options say: given when the provider is built.

    A run with ``emulator:`` builds each endpoint it emulates with one (see ``Provider.protocols``).
    ``api_key`` is sent as it is; ``None`` keeps the key the options name (``api_key_env``).
    """

    #: What the provider's client takes as its base URL (the protocol's path included, e.g. ``.../v1``).
    base_url: str
    api_key: str | None = field(default=None, repr=False)


class RemoteOptions(StrictModel):
    """Options every provider of a remote API shares; subclasses set their own key variable and limits.

    Only a provider that declares ``protocols`` is ever pointed at the emulator; these options alone never are.
    """

    api_key_env: str = Field(description="Environment variable holding the API key (never the key itself).")
    base_url: str | None = Field(
        default=None, description="Another endpoint speaking the same API, e.g. http://127.0.0.1:8080."
    )
    timeout_s: float = Field(
        DEFAULT_SDK_TIMEOUT_S, gt=0, description="The SDK's own timeout, a backstop: attempts are timed apart."
    )

    @field_validator("base_url")
    @classmethod
    def _usable_url(cls, value: str | None) -> str | None:
        """An http(s) URL with a host (and a valid port): caught by ``validate``, not at the first request."""
        if value is None:
            return value
        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{value!r} is not a usable URL; give http(s)://host[:port], e.g. http://127.0.0.1:8765")
        return value


#: The options model of a provider: ``class MyProvider(Provider[MyOptions])`` types ``self.options`` as ``MyOptions``.
OptionsT = TypeVar("OptionsT", bound=BaseModel)


class Provider(ABC, Generic[OptionsT]):
    """A provider answers requests. It never sleeps, retries or times itself: the framework does that.

    Subclasses set ``name`` (the plugin name: what a config's endpoint gives as ``plugin:``, or names directly
    under ``provider:``) and may set ``Options``, a pydantic model validated from the endpoint's entry in the
    config's ``providers:`` section. One instance is built per endpoint. ``class P(Provider[POptions])``
    with ``Options = POptions`` types ``self.options`` as ``POptions`` (``Provider[NoOptions]`` for none).
    Failures are raised as :mod:`visionbench.errors` ``ProviderError`` kinds.
    """

    name: ClassVar[str]
    #: The options model (a pydantic model); ``NoOptions`` unless the subclass sets its own.
    Options: type[OptionsT] = cast("type[OptionsT]", NoOptions)
    #: True for providers whose answers do not come from the real service (emulators, fakes).
    simulated: ClassVar[bool] = False
    #: True for providers that cost nothing to call (local models).
    free: ClassVar[bool] = False
    #: The wire protocols this provider speaks, each with the path it is served under below the base URL its
    #: client takes (``{"openai": "/v1"}``). A run with ``emulator:`` builds an endpoint of this provider with an
    #: ``Endpoint`` at the emulator when the emulator serves one of them and the endpoint sets no ``base_url``;
    #: a provider that declares none is never rerouted. A provider that declares some takes ``endpoint=``.
    protocols: ClassVar[Mapping[str, str]] = {}

    def __init__(self, options: OptionsT | None = None, *, endpoint: Endpoint | None = None) -> None:
        self.options: OptionsT = options if options is not None else self.Options()
        #: Where requests go instead of the options' ``base_url`` (and with which key), or ``None``.
        self.endpoint = endpoint

    def base_url(self) -> str | None:
        """The base URL this provider's requests go to: the endpoint's, else its options' (``None``: the SDK's)."""
        if self.endpoint is not None:
            return self.endpoint.base_url
        url = getattr(self.options, "base_url", None)
        return url if isinstance(url, str) else None

    @abstractmethod
    def capabilities(self, model: str) -> Capabilities:
        """What this provider can do with ``model``."""

    @abstractmethod
    async def generate(self, request: Request) -> Response:
        """Send one request and return the reply, or raise a ``ProviderError``."""

    def validate_params(self, model: str, params: dict[str, Any]) -> None:
        """Check a cell's ``model_params`` for ``model`` before anything is sent; raise ``ConfigError`` naming
        the parameter and what is allowed. Default: accept anything."""

    def estimate_image_tokens(self, model: str, width: int, height: int) -> int | None:
        """Input tokens one image of this size costs, by the provider's documented formula (for planning)."""
        return None

    async def count_tokens(self, request: Request) -> int | None:
        """Input tokens of ``request`` as the service's own count-tokens endpoint says (for planning)."""
        return None

    # Server-side batch APIs (optional; providers that have one say ``batch=True`` in their capabilities).

    def batch_limits(self, model: str) -> tuple[int | None, int | None]:
        """Requests and bytes one batch job may hold, as the service documents them (``None``: no limit)."""
        return None, None

    def batch_entry_bytes(self, model: str, custom_id: str, request: Request) -> int:
        """Bytes ``request`` adds to a batch job's submission (to split a batch into jobs within the limits)."""
        return 0

    async def submit_batch(self, model: str, requests: dict[str, Request]) -> str:
        """Submit ``requests`` (keyed by a custom id) as one batch job; return the job id."""
        raise NotImplementedError(f"provider {self.name!r} has no batch API")

    async def poll_batch(self, job_id: str) -> BatchStatus:
        """The job's state now (one HTTP call; the framework does the waiting)."""
        raise NotImplementedError(f"provider {self.name!r} has no batch API")

    async def collect_batch(self, job_id: str) -> dict[str, Response | ProviderError]:
        """Results of a finished job by custom id: a response, or the error for that request."""
        raise NotImplementedError(f"provider {self.name!r} has no batch API")

    async def cancel_batch(self, job_id: str) -> None:
        """Ask the service to cancel a job."""
        raise NotImplementedError(f"provider {self.name!r} has no batch API")

    async def start(self) -> None:
        """Called once before any cell runs: load models, open clients, so no cell's time pays for it."""

    def environment(self) -> dict[str, str]:
        """Versions worth recording in a bundle (SDK, model files...). Never secrets."""
        return {}

    async def aclose(self) -> None:
        """Release clients and sessions at the end of a run."""
