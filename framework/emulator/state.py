"""Per-model runtime state: capacity semaphore, sliding rate-limit window, fault draws and counters."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from visionbench.clock import REAL_CLOCK, Clock
from visionbench.emulator.profile_schema import ModelProfile
from visionbench.emulator.replies import stable_rng

#: Mutually exclusive per-request faults, in the order probabilities are accumulated.
FAULT_KINDS = ("http_500", "http_503", "http_529", "malformed_body", "drop_connection")


@dataclass
class ModelStats:
    """Counters for one model name (as requested), for tests and the CLI."""

    requests: int = 0
    succeeded: int = 0
    rate_limited: int = 0
    rejected: int = 0
    faults: dict[str, int] = field(default_factory=lambda: {k: 0 for k in (*FAULT_KINDS, "slow")})
    in_flight: int = 0
    max_in_flight: int = 0
    queued: int = 0
    max_queued: int = 0
    images: int = 0
    unknown_images: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    batch_jobs: int = 0
    batch_requests: int = 0


class ModelState:
    """Capacity semaphore, sliding rate-limit window, fault draws and stats of one model name."""

    def __init__(
        self,
        name: str,
        profile_key: str,
        profile: ModelProfile,
        seed: int | str,
        time_scale: float,
        *,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.name, self.profile_key, self.profile = name, profile_key, profile
        self.seed, self.time_scale, self.clock = seed, time_scale, clock
        self.stats = ModelStats()
        self.capacity = asyncio.Semaphore(profile.capacity)
        self._window: collections.deque[float] = collections.deque()
        #: (arrival, input tokens, output tokens) of admitted requests, for the token limits.
        self._tokens: collections.deque[tuple[float, int, int]] = collections.deque()
        self._seen: collections.Counter[str] = collections.Counter()

    # -- rate limit -------------------------------------------------------------------------------------------
    @property
    def window_s(self) -> float:
        w = self.profile.rate_limit.window_s
        return w * self.time_scale if self.time_scale > 0 else w

    def _prune(self, now: float) -> None:
        while self._window and self._window[0] <= now - self.window_s:
            self._window.popleft()
        while self._tokens and self._tokens[0][0] <= now - self.window_s:
            self._tokens.popleft()

    def _used(self) -> tuple[int, int]:
        return sum(t[1] for t in self._tokens), sum(t[2] for t in self._tokens)

    def admit_tokens(self, input_tokens: int, output_tokens: int) -> tuple[str, float] | None:
        """Account a request's tokens; (which limit, seconds to wait) when over a token limit (then not counted)."""
        rl = self.profile.rate_limit
        now = self.clock.now()
        self._prune(now)
        used_in, used_out = self._used()
        wait = max(0.001, self._tokens[0][0] + self.window_s - now) if self._tokens else 0.001
        if rl.input_tokens_per_minute is not None and used_in + input_tokens > rl.input_tokens_per_minute:
            return "input_tokens", wait
        if rl.output_tokens_per_minute is not None and used_out >= rl.output_tokens_per_minute:
            return "output_tokens", wait
        self._tokens.append((now, input_tokens, output_tokens))
        return None

    def token_headers(self) -> dict[str, tuple[int, int, float]]:
        """{"input-tokens" | "output-tokens" | "tokens": (limit, remaining, seconds to reset)} for set limits."""
        rl = self.profile.rate_limit
        now = self.clock.now()
        self._prune(now)
        used_in, used_out = self._used()
        reset = max(0.0, self._tokens[0][0] + self.window_s - now) if self._tokens else 0.0
        out: dict[str, tuple[int, int, float]] = {}
        for key, limit, used in (
            ("input-tokens", rl.input_tokens_per_minute, used_in),
            ("output-tokens", rl.output_tokens_per_minute, used_out),
        ):
            if limit is not None:
                out[key] = (limit, max(0, limit - used), reset)
        if out:  # "tokens": the most restrictive of the two, as the service reports it
            out["tokens"] = min(out.values(), key=lambda v: v[1])
        return out

    def admit(self) -> float | None:
        """Record an arrival; the seconds to wait when over the limit (the request is then not counted)."""
        limit = self.profile.rate_limit.requests_per_minute
        if limit is None:
            return None
        now = self.clock.now()
        self._prune(now)
        if len(self._window) >= limit:
            return max(0.001, self._window[0] + self.window_s - now)
        self._window.append(now)
        return None

    def rate_headers(self) -> tuple[int, int, float]:
        """(limit, remaining, seconds until the window frees a slot) for rate-limit headers."""
        limit = self.profile.rate_limit.requests_per_minute or 1_000_000
        now = self.clock.now()
        self._prune(now)
        reset = (self._window[0] + self.window_s - now) if self._window else 0.0
        return limit, max(0, limit - len(self._window)), max(0.0, reset)

    # -- randomness ---------------------------------------------------------------------------------------------
    def occurrence(self, key: str) -> int:
        """How many times ``key`` was seen before (so repeated identical requests draw differently)."""
        n = self._seen[key]
        self._seen[key] += 1
        return n

    def draw_fault(self, digest: str) -> tuple[str | None, bool]:
        """(exclusive fault kind or None, slow?) for one request, reproducible given the seed."""
        faults = self.profile.faults
        rng = stable_rng(self.seed, "fault", self.name, digest, self.occurrence("fault:" + digest))
        u, acc, kind = rng.random(), 0.0, None
        for name in FAULT_KINDS:
            acc += getattr(faults, name)
            if u < acc:
                kind = name
                break
        return kind, rng.random() < faults.slow.probability
