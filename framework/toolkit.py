"""What a provider of a remote HTTP API needs besides its client library, as the built-in providers use it.

- :func:`api_key`: the key from the environment variable its options name, registered so that it is blanked out
  of every bundle, log line and error message; a missing key is an error naming the variable (never a value);
- :func:`retry_after`: seconds to wait, from a reply's ``retry-after-ms`` or ``retry-after`` header;
- :func:`error_for_status`: an HTTP status as a neutral :mod:`visionbench.errors` error, saying whether it is an
  overload (the service wants fewer requests in flight: ``max_concurrency: auto`` then backs off);
- :func:`html_title`, :func:`not_the_api`: a web page that answered where the API's JSON was due (a wrong
  ``base_url``), said as such instead of as a malformed body, and never pasted into an error;
- :class:`StreamTimer`: time to first token and generation time of a streamed reply;
- :func:`header`, :func:`is_simulated`, :func:`check_params`: a header from any headers object, whether a reply
  came from the emulator, a cell's ``model_params`` checked against a pydantic model in our words.

It imports no HTTP client: the plugin brings its own.
"""

from __future__ import annotations

import dataclasses
import difflib
import email.utils
import html
import math
import os
import re
import time
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from visionbench.errors import BadRequest, ConfigError, Fatal, ProviderError, RateLimited, Transient
from visionbench.provider import SIMULATED_HEADER
from visionbench.secrets import register_secret
from visionbench.types import Response

ModelT = TypeVar("ModelT", bound=BaseModel)

#: Statuses the built-in providers take as an overload: 503 (Gemini's UNAVAILABLE, OpenAI's "engine overloaded")
#: and 529 (Anthropic's ``overloaded_error``). A provider whose service says it otherwise passes its own.
OVERLOAD_STATUSES: frozenset[int] = frozenset({503, 529})
#: The longest retry-after taken as it is (a day); a longer one (or a date far ahead) is cut to this.
MAX_RETRY_AFTER_S = 86_400.0


def api_key(
    env_var: str, provider: str, *, at_start: bool = False, required: bool = True, hint: str = ""
) -> str | None:
    """The API key in ``env_var`` (stripped), registered as a secret so it is blanked out of everything written.

    A missing or empty one is ``ConfigError`` when ``at_start`` (``Provider.start``: the run stops before it
    begins, exit 2), else ``Fatal`` (that request fails), naming the variable and ``hint``; with ``required=False``
    it is ``None`` instead (a server that takes no key).
    """
    key = os.environ.get(env_var, "").strip()
    if key:
        register_secret(key)
        return key
    if not required:
        return None
    message = f"provider {provider!r}: environment variable {env_var} is not set (it must hold the API key{hint})"
    raise ConfigError(message) if at_start else Fatal(message)


def header(headers: Any, name: str) -> str | None:
    """A header's value, looked up without regard to case, from any mapping-like headers object (or None)."""
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
    """Whether a reply came from visionbench's emulator (its ``x-visionbench-simulated`` header)."""
    value = header(headers, SIMULATED_HEADER)
    return value is not None and value.strip().lower() not in ("0", "false", "no")


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None if neither says.

    Bounded: at most ``MAX_RETRY_AFTER_S`` (a date in the past is 0); a number that is negative or not finite
    (``inf``, ``1e400``, ``nan``) is no value. How long a run waits is the retry policy's to decide.
    """
    ms = header(headers, "retry-after-ms")
    if ms is not None:
        seconds = _seconds(ms)
        if seconds is not None:
            return _bounded(seconds / 1000)
    value = header(headers, "retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return _bounded(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _bounded(when.timestamp() - time.time())


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _bounded(seconds: float) -> float:
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def error_for_status(
    status: int | None,
    message: str,
    *,
    retry_after_s: float | None = None,
    overload_statuses: Collection[int] = OVERLOAD_STATUSES,
) -> ProviderError:
    """The neutral error for an HTTP status (``None``: no reply, e.g. the connection dropped).

    429 is ``RateLimited`` (with ``retry_after_s``); no status, 408, 409, 499 and 5xx are ``Transient``
    (retried), an overload when the status is in ``overload_statuses``; 400, 413, 422 and 431 are ``BadRequest``;
    any other (401, 402, 403, 404...) is ``Fatal``.
    """
    if status == 429:
        return RateLimited(message, retry_after=retry_after_s, status=429)
    if status is None or status in (408, 409, 499) or status >= 500:
        overload = status is not None and status in overload_statuses
        return Transient(message, status=status, retry_after=retry_after_s, overload=overload)
    if status in (400, 413, 422, 431):
        return BadRequest(message, status=status)
    return Fatal(message, status=status)


_HTML_START = re.compile(r"\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.IGNORECASE | re.DOTALL)
_HEADING = re.compile(r"<(title|h1)\b[^>]*>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)


def html_title(content_type: str | None, body: str | bytes | None) -> str | None:
    """If a reply is an HTML page (by its content type, or a body that opens like one): its title or first heading
    (else the start of its text) as plain text, at most 80 characters; None if it is not HTML."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body or ""
    is_html = "html" in (content_type or "").lower() or bool(_HTML_START.match(text[:2000]))
    if not is_html:
        return None
    found = _HEADING.search(text[:100_000])
    shown = found.group(2) if found else re.sub(r"<(script|style)\b.*?</\1\s*>", " ", text[:10_000], flags=re.I | re.S)
    title = " ".join(html.unescape(re.sub(r"<[^>]*>", " ", shown)).split())
    return title if len(title) <= 80 else title[:79] + "…"


def not_the_api(api: str, base_url: str | None, status: int | None, title: str) -> ProviderError:
    """The error for an HTML page where ``api``'s reply was due, e.g. ``not_the_api("OpenAI", url, 200, "Welcome")``.

    A page answering 2xx, 3xx or 4xx is not the API at all (a web site, a 404 page: ``base_url`` is wrong): ``Fatal``,
    never retried. A 429 or 5xx page is a gateway in front of the API: the status's own kind, retried. Either way
    the page's title is all that is said of it.
    """
    what = f"an HTML page answered (HTTP {status}" + (f", {title!r})" if title else ")")
    where = base_url or "the SDK's default URL"
    if status is not None and (status == 429 or status >= 500):
        return error_for_status(status, f"{what} from a gateway or proxy in front of the {api} API ({where})")
    return Fatal(f"{what}, not the {api} API: is base_url right? ({where})", status=status)


class StreamTimer:
    """Time to first token of a streamed reply. Make it as the request is sent, call :meth:`token` at each piece
    of output text (only the first counts) and :meth:`done` when the stream ends; :meth:`stamp` puts the times on
    the ``Response``. A reply with no output text has its first token at the end."""

    def __init__(self) -> None:
        self.sent = time.monotonic()
        self.first: float | None = None
        self.end: float | None = None

    def token(self) -> None:
        """A piece of output text came (the first one sets the time to first token)."""
        if self.first is None:
            self.first = time.monotonic()

    def done(self) -> None:
        """The stream ended."""
        self.end = time.monotonic()

    @property
    def ttft_s(self) -> float:
        """Seconds from sending to the first output token."""
        return self._first() - self.sent

    @property
    def generation_s(self) -> float:
        """Seconds from the first output token to the end of the stream."""
        return self._end() - self._first()

    def stamp(self, response: Response) -> Response:
        """``response`` with this stream's ``ttft_s`` and ``generation_s``."""
        return dataclasses.replace(response, ttft_s=self.ttft_s, generation_s=self.generation_s)

    def _end(self) -> float:
        if self.end is None:
            raise RuntimeError("StreamTimer: done() was not called")
        return self.end

    def _first(self) -> float:
        return self._end() if self.first is None else self.first


def check_params(params: Mapping[str, Any], spec: type[ModelT], provider: str, model: str) -> ModelT:
    """Validate ``model_params`` against ``spec``: unknown names with the closest match, wrong types, ranges.

    For ``Provider.validate_params``. Raises ``ConfigError`` naming every problem, in our words (no pydantic
    boilerplate).
    """
    allowed = sorted(spec.model_fields)
    problems = []
    for name in sorted(set(params) - set(allowed)):
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"unknown parameter {name!r}{hint}; allowed: {', '.join(allowed)}")
    known = {k: v for k, v in params.items() if k in allowed}
    checked: ModelT | None
    try:
        checked = spec.model_validate(known)
    except ValidationError as err:
        for e in err.errors(include_url=False):
            name = ".".join(str(p) for p in e["loc"]) or "model_params"
            msg = e["msg"].removeprefix("Value error, ")
            got = f" (got {e['input']!r})" if e["loc"] else ""
            problems.append(f"{name}: {msg}{got}")
        checked = None
    if problems or checked is None:
        raise ConfigError(f"provider {provider!r}, model {model!r}: " + "; ".join(problems))
    return checked


__all__ = [
    "MAX_RETRY_AFTER_S",
    "OVERLOAD_STATUSES",
    "StreamTimer",
    "api_key",
    "check_params",
    "error_for_status",
    "header",
    "html_title",
    "is_simulated",
    "not_the_api",
    "retry_after",
]
