"""Helpers shared by the SDK-backed built-in providers (``gemini``, ``anthropic``, ``openai``) only.

What any HTTP provider needs (the API key, retry-after, status to neutral error, a TTFT timer) is public in
:mod:`visionbench.toolkit`; this keeps what is about the SDKs or the built-ins' own options.

Usage follows one meaning for every provider (the one pricing assumes): ``input_tokens`` is the whole
prompt, cached tokens included; ``output_tokens`` excludes thinking tokens, which are counted apart.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from visionbench.errors import BadRequest, ProviderError
from visionbench.secrets import redact
from visionbench.toolkit import header, html_title, not_the_api
from visionbench.types import Request


def sdk_version(dist: str) -> str:
    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return f"{dist} (not installed)"


async def mapped(awaitable: Any, to_error: Callable[[Exception], ProviderError]) -> Any:
    """Await an SDK call; any failure comes out as the neutral error ``to_error`` makes of it."""
    try:
        return await awaitable
    except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a neutral error
        raise to_error(exc) from None


def duration_s(value: Any) -> float | None:
    """A protobuf Duration as JSON (``"2s"``, ``"0.5s"``) in seconds; None if not one, or not finite (``"1e400s"``
    is not a Duration, and 400 nines overflow to ``inf``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)s\s*", str(value)) if value is not None else None
    seconds = float(match.group(1)) if match else None
    return seconds if seconds is not None and math.isfinite(seconds) else None


async def html_page(response: Any, api: str, base_url: str | None) -> ProviderError | None:
    """The error for an httpx response that is an HTML page (a wrong ``base_url``: ``not_the_api``), its body read
    here if a stream's has not been; None if it is not one."""
    if "html" in (header(response.headers, "content-type") or "").lower():
        with contextlib.suppress(Exception):
            await response.aread()
    return html_reply(response, api, base_url)


def html_reply(response: Any, api: str, base_url: str | None) -> ProviderError | None:
    """``html_page`` for a response whose body was read (an SDK's status error), or that is judged by its type."""
    content_type = header(getattr(response, "headers", None), "content-type")
    if any(kind in (content_type or "").lower() for kind in ("json", "event-stream")):
        return None  # the API's own reply (its body is not decoded twice)
    try:
        body = response.text
    except Exception:  # noqa: BLE001 - not read (a stream): judged by its content type alone
        body = ""
    title = html_title(content_type, body)
    status = getattr(response, "status_code", None)
    return None if title is None else not_the_api(api, redact(base_url) if base_url else None, status, title)


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
