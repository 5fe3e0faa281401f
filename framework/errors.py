"""Neutral errors: providers raise these, the retry layer and the runner understand them."""

from __future__ import annotations

import math


class VisionbenchError(Exception):
    """Base of every error visionbench raises on purpose."""


class ConfigError(VisionbenchError):
    """An experiment config is wrong; the message names the file and key at fault."""


class InputError(VisionbenchError):
    """A file or folder given to visionbench (a bundle, a results folder...) cannot be used; the message names it."""


class BudgetExceeded(VisionbenchError):
    """A run would cost, or has cost, more than its ``--max-cost``."""


class ItemError(VisionbenchError):
    """One dataset item cannot be used (unreadable, not an image, too large...); the run goes on."""


def wait_s(seconds: float | None) -> float | None:
    """A service's retry-after as kept: a finite number of seconds >= 0, else none (``inf`` is no answer)."""
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


class ProviderError(VisionbenchError):
    """Base of provider call failures. ``kind`` is stored in bundles.

    ``overload``: the provider says the service wants fewer requests (a rate limit, or an overload such as
    Anthropic's 529 or Gemini's 503): ``max_concurrency: auto`` backs off on it. Only the provider knows which
    of its service's replies mean that; nothing else guesses it from the status.
    """

    kind = "fatal"
    retryable = False
    overload = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(ProviderError):
    """The service asked us to slow down, maybe saying for how long (always an overload)."""

    kind = "rate_limited"
    retryable = True
    overload = True

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = wait_s(retry_after)


class Transient(ProviderError):
    """A failure worth retrying: 5xx, overload, dropped connection, timeout, malformed body.

    ``overload=True`` when the service said it is overloaded (wants fewer requests), not merely failed.
    """

    kind = "transient"
    retryable = True

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None, overload: bool = False
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = wait_s(retry_after)
        self.overload = overload


class BadRequest(ProviderError):
    """The request itself is wrong (400-type): retrying cannot help."""

    kind = "bad_request"


class Fatal(ProviderError):
    """Anything else that retrying cannot help: auth, not found, unsupported."""

    kind = "fatal"
