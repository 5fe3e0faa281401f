"""Helpers shared by the SDK-backed providers (``gemini``, ``anthropic``): keys, headers, errors.

Usage follows one meaning for every provider (the one pricing assumes): ``input_tokens`` is the whole
prompt, cached tokens included; ``output_tokens`` excludes thinking tokens, which are counted apart.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from visionbench.errors import BadRequest, ConfigError, Fatal, ProviderError, RateLimited, Transient
from visionbench.secrets import register_secret
from visionbench.types import Request

#: Response header an emulator sets on every reply; its presence marks the Response as simulated.
SIMULATED_HEADER = "x-visionbench-simulated"
#: The SDK's own timeout, a backstop only: the framework times each attempt itself (retry.timeout_s).
DEFAULT_SDK_TIMEOUT_S = 600.0


def sdk_version(dist: str) -> str:
    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return f"{dist} (not installed)"


class RemoteOptions(BaseModel):
    """Options every provider of a remote API shares; subclasses set their own key variable and limits."""

    model_config = ConfigDict(extra="forbid")

    #: Environment variable holding the API key (the key itself never goes in a config).
    api_key_env: str
    #: Another endpoint speaking the same API, e.g. ``http://127.0.0.1:8080`` (the emulator).
    base_url: str | None = None
    #: The SDK's own timeout, a backstop: the framework times each attempt itself.
    timeout_s: float = Field(DEFAULT_SDK_TIMEOUT_S, gt=0)

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


async def mapped(awaitable: Any, to_error: Callable[[Exception], ProviderError]) -> Any:
    """Await an SDK call; any failure comes out as the neutral error ``to_error`` makes of it."""
    try:
        return await awaitable
    except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a neutral error
        raise to_error(exc) from None


def read_key(env_var: str, provider: str, *, at_start: bool = False) -> str:
    """The API key from ``env_var``; a missing or empty one names the variable (never a value)."""
    key = os.environ.get(env_var, "").strip()
    if not key:
        message = f"provider {provider!r}: environment variable {env_var} is not set (it must hold the API key)"
        raise ConfigError(message) if at_start else Fatal(message)
    register_secret(key)  # blanked out of every bundle, log line and error message from now on
    return key


def header(headers: Any, name: str) -> str | None:
    """A header's value, looked up without regard to case, from any mapping-like headers object."""
    if not headers:
        return None
    value = headers.get(name) if hasattr(headers, "get") else None
    if value is not None:
        return str(value)
    wanted = name.lower()
    for key in headers.keys() if hasattr(headers, "keys") else ():
        if str(key).lower() == wanted:
            return str(headers[key])
    return None


def is_simulated(headers: Any) -> bool:
    value = header(headers, SIMULATED_HEADER)
    return value is not None and value.strip().lower() not in ("0", "false", "no")


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    ms = header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = header(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def duration_s(value: Any) -> float | None:
    """A protobuf Duration as JSON (``"2s"``, ``"0.5s"``) in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)s\s*", str(value)) if value is not None else None
    return float(match.group(1)) if match else None


def error_for_status(status: int | None, message: str, *, retry_after_s: float | None = None) -> ProviderError:
    """The neutral error for an HTTP status (the table in the providers' docs)."""
    if status == 429:
        return RateLimited(message, retry_after=retry_after_s, status=429)
    if status is None or status in (408, 409, 499) or status >= 500:
        return Transient(message, status=status, retry_after=retry_after_s)
    if status in (400, 413, 422, 431):
        return BadRequest(message, status=status)
    return Fatal(message, status=status)  # 401, 402, 403, 404 and any other 4xx


def check_images(request: Request, limit: int, provider: str) -> None:
    if len(request.images) > limit:
        raise BadRequest(
            f"provider {provider!r}: request has {len(request.images)} images; at most {limit} are allowed "
            f"(option max_images_per_request)"
        )


def unknown_params(params: Mapping[str, Any], allowed: tuple[str, ...], provider: str) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise BadRequest(
            f"provider {provider!r}: unknown model parameter(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


def is_transport_error(exc: BaseException) -> bool:
    """An httpx/httpx2 transport error or timeout (connection dropped, read timeout...), without importing them."""
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2") and any(
        c.__name__ in ("TransportError", "TimeoutException") for c in type(exc).__mro__
    )
