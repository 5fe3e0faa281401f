"""The services' documented limits per provider and model, read from the one data file ``limits.yaml``.

Providers turn them into :class:`~visionbench.types.Capabilities` and split batches into jobs by them
(``split_batch``); the emulator enforces them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from visionbench.types import Capabilities, Request

#: libyaml's safe loader where PyYAML has it: several times faster on the packaged tables.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

LIMITS_FILE = Path(__file__).with_name("limits.yaml")


@dataclass(frozen=True)
class Limits:
    """One model's documented limits; ``None`` means not documented (nothing is enforced)."""

    max_images_per_request: int | None = None
    max_image_side: int | None = None
    max_image_side_many: int | None = None
    many_images_threshold: int | None = None
    max_image_bytes: int | None = None
    max_request_bytes: int | None = None
    media_types: tuple[str, ...] = ()
    media_type_must_match: bool = False
    thinking_budget_min: int | None = None
    thinking_budget_max: int | None = None
    thinking_can_disable: bool = True
    thinking_below_max_tokens: bool = False
    rejected_params: tuple[str, ...] = ()
    batch_max_requests: int | None = None
    batch_max_bytes: int | None = None
    batch_inline_max_bytes: int | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def side_limit(self, n_images: int) -> int | None:
        """The longest side allowed for every image of a request of ``n_images``."""
        many = self.many_images_threshold is not None and n_images > self.many_images_threshold
        if many and self.max_image_side_many is not None:
            return self.max_image_side_many
        return self.max_image_side


@cache
def _table() -> dict[str, dict[str, dict[str, Any]]]:
    return yaml.load(LIMITS_FILE.read_text(encoding="utf-8"), Loader=_YAML_LOADER)


@cache  # asked on every emulated request
def limits_for(protocol: str, model: str) -> Limits:
    """The limits of ``model`` on ``protocol`` (``gemini`` or ``anthropic``); empty for anything else."""
    entries = _table().get(protocol) or {}
    name = model.removeprefix("models/")
    merged: dict[str, Any] = dict(entries.get("*") or {})
    own = entries.get(name)
    if own is None:
        own = next((v for k, v in entries.items() if k != "*" and fnmatch.fnmatchcase(name, k)), None)
    for key, value in (own or {}).items():
        merged[key] = {**merged.get(key, {}), **value} if key == "sources" else value
    known = {f.name for f in fields(Limits)}
    unknown = set(merged) - known
    if unknown:
        raise ValueError(f"{LIMITS_FILE}: unknown limit(s) {', '.join(sorted(unknown))} for {protocol}/{model}")
    for key in ("media_types", "rejected_params"):
        if key in merged:
            merged[key] = tuple(merged[key])
    return Limits(**merged)


def capabilities_for(protocol: str, model: str, *, max_images: int, **flags: Any) -> Capabilities:
    """Capabilities of a remote model: ``max_images`` (an option) capped by the documented limits."""
    lim = limits_for(protocol, model)
    cap = lim.max_images_per_request
    return Capabilities(
        max_images_per_request=min(max_images, cap) if cap else max_images,
        max_image_side=lim.max_image_side,
        max_image_side_many=lim.max_image_side_many,
        many_images_threshold=lim.many_images_threshold,
        max_image_bytes=lim.max_image_bytes,
        max_request_bytes=lim.max_request_bytes,
        **flags,
    )


def thinking_problem(protocol: str, model: str, budget: object, max_tokens: object) -> str | None:
    """Why the service would refuse a thinking budget of ``budget`` with ``max_tokens``, or None."""
    if not isinstance(budget, int) or isinstance(budget, bool):
        return None
    lim = limits_for(protocol, model)
    if protocol == "gemini":
        if budget == 0 and not lim.thinking_can_disable:
            return f"{model} cannot turn thinking off: thinking_budget 0 is refused"
        low, high = lim.thinking_budget_min, lim.thinking_budget_max
        if budget > 0 and ((low is not None and budget < low) or (high is not None and budget > high)):
            return f"thinking_budget {budget} is outside {model}'s {low or 0} to {high or 'unbounded'}"
        return None
    if budget <= 0:
        return None
    if lim.thinking_budget_min is not None and budget < lim.thinking_budget_min:
        return f"thinking_budget {budget} is below the minimum {lim.thinking_budget_min}"
    if max_tokens is None:
        max_tokens = next(f.default for f in fields(Request) if f.name == "max_output_tokens")
    if lim.thinking_below_max_tokens and isinstance(max_tokens, int) and budget >= max_tokens:
        return f"thinking_budget {budget} must be below max_output_tokens {max_tokens} (the API refuses it)"
    return None


#: Bytes kept free in every job for what wraps the requests (the JSON envelope, the multipart framing).
ENVELOPE_BYTES = 4096


def split_batch(
    sizes: Sequence[int], max_requests: int | None, max_bytes: int | None, *, envelope: int = ENVELOPE_BYTES
) -> list[range]:
    """Consecutive runs of the requests (``sizes``: each one's bytes in the submission), as few as the limits allow:
    each has at most ``max_requests`` requests and ``envelope`` plus its sizes at most ``max_bytes``.

    A request too big for any job on its own gets a job of its own (the service's refusal then names it).
    ``None`` limits nothing.
    """
    jobs: list[range] = []
    start, used = 0, envelope
    for i, size in enumerate(sizes):
        full = max_requests is not None and i - start >= max_requests
        too_big = max_bytes is not None and used + size > max_bytes
        if i > start and (full or too_big):
            jobs.append(range(start, i))
            start, used = i, envelope
        used += size
    if start < len(sizes):
        jobs.append(range(start, len(sizes)))
    return jobs
