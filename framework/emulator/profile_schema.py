"""Per-model emulator profiles: latency, capacity, rate limits, faults, answer error model, batch turnaround.

A profiles file is YAML::

    seed: 0                 # makes faults and answer noise reproducible
    time_scale: 1.0         # multiplies every simulated delay (0 = instant)
    defaults: {...}         # optional; deep-merged under every model entry
    models:
      gemini-2.5-flash: {latency: {...}, capacity: 8, rate_limit: {...}, faults: {...}, answers: {...}, batch: {...}}
      "*": {...}            # fallback for any other model name; without it unknown models get 404
    calibrated_from: [...]  # optional, written by `visionbench calibrate`: the runs fitted (run_id, path, models)

Model names are matched exactly, then without a ``models/`` prefix or a ``-YYYYMMDD`` date suffix,
then as glob patterns (``claude-*``) in file order, then ``"*"``.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from visionbench.spec import StrictModel

DEFAULT_PROFILES = Path(__file__).with_name("profiles") / "default.yaml"
_DATE_SUFFIX = re.compile(r"-\d{8}$")


#: Thinking per level, relative to the profile's figures (a request that names no level: 1.0). Shared by the three
#: protocols' controls: Gemini thinking_level (minimal, low, medium, high), OpenAI reasoning_effort (none, minimal,
#: low, medium, high, xhigh), Anthropic effort (low, medium, high, max).
THINKING_LEVELS: dict[str, float] = {
    "none": 0.0,
    "minimal": 0.25,
    "low": 0.5,
    "medium": 1.0,
    "high": 2.0,
    "xhigh": 3.0,
    "max": 3.0,
}


class Latency(StrictModel):
    """Service time, driven by the work of the request (all tokens are emulated, before time_scale)::

        time     = ttft + (output + thinking) / output_tokens_per_s, times a seeded log-normal (jitter)
        ttft     = base_s + per_input_token_s * input tokens         (images count at their resolution)
        thinking = (thinking_tokens + sum over images of (thinking_per_image + thinking_per_person * d(label)))
                   * (1 + multi_image_thinking * (images - 1)), times a seeded normal (1, thinking_sd)
        d(n)     = thinking_person_cap * (1 - exp(-n / thinking_person_cap))   (for counting: the people the
                   label says; ~n for small crowds, saturating: nobody counts a 2,000-person crowd one by one)

    times the request's thinking level (``thinking_levels``: Gemini ``thinkingLevel``, OpenAI ``reasoning_effort``,
    Anthropic ``output_config.effort``; a request that sets none thinks as the profile says, factor 1), then
    capped by the request's thinking budget and max output tokens.
    """

    base_s: float = Field(0.5, ge=0)
    per_input_token_s: float = Field(0.0, ge=0)
    output_tokens_per_s: float = Field(100.0, gt=0)
    #: Thinking tokens per request whatever the images (0 and the per-image terms 0: not a thinking model).
    thinking_tokens: int = Field(0, ge=0)
    thinking_per_image: float = Field(0.0, ge=0)
    thinking_per_person: float = Field(0.0, ge=0)
    thinking_person_cap: float = Field(300.0, gt=0)
    #: Extra thinking per additional image in one request (comparing images with each other costs more).
    multi_image_thinking: float = Field(0.0, ge=0)
    thinking_sd: float = Field(0.0, ge=0, le=1)
    #: Relative standard deviation of a log-normal multiplier on the service time (0: none).
    jitter: float = Field(0.0, ge=0, le=2)
    #: Factors on thinking per request level, over ``THINKING_LEVELS`` (lower case; an unknown level: 1).
    thinking_levels: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)

    def level_factor(self, level: str | None) -> float:
        """The factor ``level`` puts on thinking (1 when the request sets no level)."""
        if not level:
            return 1.0
        name = str(level).lower()
        return self.thinking_levels.get(name, THINKING_LEVELS.get(name, 1.0))

    def expected_thinking(self, people: list[float]) -> float:
        """``thinking`` above without its noise, for a request of images of ``people`` each."""
        work = self.thinking_tokens + sum(
            self.thinking_per_image + self.thinking_per_person * self.difficulty(n) for n in people
        )
        return work * (1.0 + self.multi_image_thinking * max(0, len(people) - 1))

    def difficulty(self, people: float) -> float:
        """d(n) above: the thinking work an image of ``people`` people asks for, in units of people."""
        cap = self.thinking_person_cap
        return cap * (1.0 - math.exp(-max(0.0, people) / cap))


class RateLimit(StrictModel):
    """Sliding-window limits on requests and on input / output tokens per window; ``None`` disables one.

    A request over a token limit is answered 429 (input: when its own input would exceed what is left;
    output: when the window's output, thinking included, has reached the limit), like the services' ITPM/OTPM.
    """

    requests_per_minute: int | None = Field(None, ge=1)
    input_tokens_per_minute: int | None = Field(None, ge=1)
    output_tokens_per_minute: int | None = Field(None, ge=1)
    #: Window length in simulated seconds (scaled by time_scale unless time_scale is 0).
    window_s: float = Field(60.0, gt=0)


class Slow(StrictModel):
    probability: float = Field(0.0, ge=0, le=1)
    extra_s: float = Field(10.0, ge=0)


class Faults(StrictModel):
    """Probabilities per request; the first five are mutually exclusive (their sum must be <= 1)."""

    http_500: float = Field(0.0, ge=0, le=1)
    #: Gemini answers 503 UNAVAILABLE; the Anthropic route answers 503 api_error.
    http_503: float = Field(0.0, ge=0, le=1)
    #: Anthropic 529 overloaded_error; on Gemini routes this becomes 503 UNAVAILABLE.
    http_529: float = Field(0.0, ge=0, le=1)
    #: HTTP 200 with content-type application/json and a body that is not valid JSON.
    malformed_body: float = Field(0.0, ge=0, le=1)
    #: The connection is closed without any response.
    drop_connection: float = Field(0.0, ge=0, le=1)
    #: Independent of the others: add extra_s (simulated) to the service time.
    slow: Slow = Field(default_factory=Slow)

    @model_validator(mode="after")
    def _sum_le_one(self) -> Faults:
        total = self.http_500 + self.http_503 + self.http_529 + self.malformed_body + self.drop_connection
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities sum to {total:.3f}; they must not exceed 1")
        return self


class Answers(StrictModel):
    """Where counts come from and how they are distorted (labels source only; deterministic given the seed).

    count = label * (1 - multi_image_undercount * crowd) ** log2(n)  [n images in one request: 2 once, 4 twice]
                  * (1 - low_res_undercount * crowd * smallness)    [smallness = max(0, 1 - long_side/low_res_side)]
    crowd = min(1, label / crowd_scale); then gaussian noise with sd = relative_sd * count + absolute_sd,
    rounded and clipped at 0. Other labels (bool, string, object, list): see ``replies.distort``.
    """

    source: Literal["labels", "detector"] = "labels"
    #: Labels that are not numbers (see replies.py): at full resolution, one image per request, the probability
    #: a yes/no answer is flipped, a choice is confused with another, a character of a text answer is substituted
    #: or deleted, a field of a JSON answer is dropped or perturbed. Each grows, like the count error, by
    #: (1 + low_res_error * smallness) * (1 + multi_image_error * log2(images)), up to 0.5 (flips) or 0.9.
    boolean_error: float = Field(0.05, ge=0, le=1)
    choice_error: float = Field(0.08, ge=0, le=1)
    text_error: float = Field(0.02, ge=0, le=1)
    json_error: float = Field(0.05, ge=0, le=1)
    low_res_error: float = Field(2.0, ge=0)
    multi_image_error: float = Field(0.5, ge=0)
    relative_sd: float = Field(0.0, ge=0)
    absolute_sd: float = Field(0.0, ge=0)
    multi_image_undercount: float = Field(0.0, ge=0, le=1)
    low_res_undercount: float = Field(0.0, ge=0, le=1)
    low_res_side: int = Field(768, ge=1)
    crowd_scale: float = Field(50.0, gt=0)
    #: Largest dHash Hamming distance (of 256 bits) at which an incoming image still matches a dataset image.
    max_hash_distance: int = Field(40, ge=0, le=256)


class Batch(StrictModel):
    #: Simulated seconds from submission to completion (scaled by time_scale).
    turnaround_s: float = Field(60.0, ge=0)


class ModelProfile(StrictModel):
    """Everything the emulator needs to imitate one model."""

    latency: Latency = Field(default_factory=Latency)
    #: Requests served at once; more wait in a FIFO queue.
    capacity: int = Field(8, ge=1)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    faults: Faults = Field(default_factory=Faults)
    answers: Answers = Field(default_factory=Answers)
    batch: Batch = Field(default_factory=Batch)
    #: Reported as modelVersion / model; defaults to the requested name.
    model_version: str | None = None


class CalibratedFrom(StrictModel):
    """A run whose records a profiles file was fitted to (``visionbench calibrate``)."""

    run_id: str
    #: Its bundle, as calibrate found it.
    path: str
    #: The models fitted from its records.
    models: list[str] = Field(default_factory=list)
    #: True when the run itself was made against an emulator.
    simulated: bool = False


class EmulatorProfiles(StrictModel):
    """A whole profiles file."""

    seed: int = 0
    time_scale: float = Field(1.0, ge=0)
    models: dict[str, ModelProfile] = Field(default_factory=dict)
    #: Written by ``visionbench calibrate``: the runs the profiles were fitted to (a run made with them records it).
    calibrated_from: list[CalibratedFrom] = Field(default_factory=list)

    def resolve(self, model: str) -> tuple[str, ModelProfile] | None:
        """The profile key and profile serving ``model``, or ``None`` (unknown model)."""
        names = [model]
        if model.startswith("models/"):
            names.append(model.removeprefix("models/"))
        names += [_DATE_SUFFIX.sub("", n) for n in names if _DATE_SUFFIX.search(n)]
        for name in names:
            if name in self.models:
                return name, self.models[name]
        for key, profile in self.models.items():
            if key != "*" and any(ch in key for ch in "*?[") and any(fnmatch.fnmatchcase(n, key) for n in names):
                return key, profile
        if "*" in self.models:
            return "*", self.models["*"]
        return None


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def profiles_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> EmulatorProfiles:
    """Validate a profiles mapping (``defaults`` is merged under every model first)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a profiles file must be a mapping, not {type(data).__name__}")
    data = dict(data)
    defaults = data.pop("defaults", None) or {}
    if not isinstance(defaults, dict):
        raise ValueError(f"{source}: 'defaults' must be a mapping")
    models = data.get("models") or {}
    if not isinstance(models, dict):
        raise ValueError(f"{source}: 'models' must be a mapping of model name -> profile")
    data["models"] = {str(k): _deep_merge(defaults, v or {}) for k, v in models.items()}
    try:
        return EmulatorProfiles.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: invalid emulator profiles"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"{where}: {err['msg']}")
        raise ValueError("; ".join(lines)) from None


def load_profiles(path: str | Path | None = None) -> EmulatorProfiles:
    """Read and validate a profiles YAML file (the packaged ``default.yaml`` when ``path`` is None)."""
    path = Path(path) if path is not None else DEFAULT_PROFILES
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: emulator profiles file does not exist") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read emulator profiles: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: emulator profiles are not valid UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: emulator profiles are not valid YAML: {exc}") from None
    return profiles_from_dict(data or {}, source=str(path))
