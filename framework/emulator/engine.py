"""Protocol-neutral core: per-model state (capacity, rate limit, stats), faults, answers, tokens, timing."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from visionbench.clock import REAL_CLOCK, Clock
from visionbench.data import faces
from visionbench.emulator.catalogue import Catalogue, not_found_message
from visionbench.emulator.checks import LimitError, check_images, check_request
from visionbench.emulator.matching import DatasetIndex, ImageInfo, analyse
from visionbench.emulator.profile_schema import EmulatorProfiles
from visionbench.emulator.replies import (
    Kind,
    answer_kind,
    distort,
    format_reply,
    item_schema,
    judge_verdict,
    schema_type,
    stable_rng,
)
from visionbench.emulator.request import CountRequest, ImagePart, item_groups
from visionbench.emulator.state import ModelState
from visionbench.services import tokens as tk

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """A computed reply."""

    model_version: str
    text: str
    #: One answer per image, as the reply gives it (a count, a bool, a string, an object...).
    counts: list[Any]
    input_tokens: int
    image_tokens: int
    text_tokens: int
    output_tokens: int
    thinking_tokens: int
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    fault: str | None = None
    #: Streamed requests: real seconds (time_scale applied) over which the output follows the first token.
    stream_s: float = 0.0
    #: Streamed requests: frees the capacity slot held while the output streams (call once the stream ends).
    release: Callable[[], None] | None = None
    #: The forced tool the reply calls, its ``text`` the arguments' JSON (None: a text reply).
    tool: str | None = None


class Rejected(Exception):
    """The request is answered with an error. ``kind``: rate_limited, http_500/503/529, invalid, not_found."""

    def __init__(
        self, kind: str, status: int, message: str, retry_after: float | None = None, quota: str = "requests"
    ) -> None:
        super().__init__(message)
        self.kind, self.status, self.message, self.retry_after = kind, status, message, retry_after
        #: Which limit a 429 is for: requests, input_tokens or output_tokens.
        self.quota = quota


class Engine:
    """Shared by the Gemini, Anthropic and OpenAI routes."""

    def __init__(
        self,
        profiles: EmulatorProfiles,
        index: DatasetIndex | None,
        time_scale: float,
        catalogue: Catalogue | None = None,
        clock: Clock = REAL_CLOCK,
        session: int = 0,
    ) -> None:
        self.profiles, self.index, self.time_scale = profiles, index, time_scale
        #: What every seeded draw starts from: the profiles' seed, and after it a resumed run's session number.
        self.seed: int | str = profiles.seed if not session else f"{profiles.seed}/{session}"
        #: Every wait and every rate-limit window of the emulator is on this clock.
        self.clock = clock
        self.catalogue = catalogue or Catalogue.now(profiles)
        self.models: dict[str, ModelState] = {}
        #: The last requests answered from the dataset: each one's prompt and the dataset keys its images matched
        #: (None: unknown), newest last; bounded, for tests and debugging (a rows manifest's per-item prompts).
        self.asked: deque[tuple[str, tuple[str | None, ...]]] = deque(maxlen=10_000)
        #: The last judges' requests answered (``replies.judge_verdict``): each one's prompt and score, newest last.
        self.judged: deque[tuple[str, int]] = deque(maxlen=10_000)

    def state(self, model: str, protocol: str) -> ModelState:
        """The state of ``model``; raises Rejected(not_found) for a model the service would not serve."""
        name = model.removeprefix("models/")
        if name not in self.models:
            found = self.catalogue.resolve(protocol, name)
            if found is None:
                raise Rejected("not_found", 404, not_found_message(protocol, name))
            self.models[name] = ModelState(name, found[0], found[1], self.seed, self.time_scale, clock=self.clock)
        return self.models[name]

    async def sleep(self, simulated_s: float) -> None:
        if simulated_s * self.time_scale > 0:
            await self.clock.sleep(simulated_s * self.time_scale)

    # -- one synchronous request -------------------------------------------------------------------------------
    async def serve(self, req: CountRequest, *, stream: bool = False) -> Outcome:
        """Rate limit, faults, answer, then hold a capacity slot for the simulated service time.

        With ``stream``, the slot is held only until the first output token is due and is still held on return:
        the route streams the output over ``outcome.stream_s`` real seconds, then calls ``outcome.release()``.
        """
        arrived = self.clock.now()
        st = self.state(req.model, req.protocol)
        st.stats.requests += 1
        retry = st.admit()
        if retry is not None:
            st.stats.rate_limited += 1
            raise Rejected(
                "rate_limited",
                429,
                "Resource exhausted: requests per minute limit reached (emulated)",
                retry_after=retry,
            )
        fault, slow = st.draw_fault(req.digest)
        if fault in ("http_503", "http_529"):
            st.stats.faults[fault] += 1
            raise Rejected(fault, 529 if fault == "http_529" else 503, "The model is overloaded (emulated)")
        try:
            outcome = await self.compute(req, st)
        except Rejected:
            st.stats.rejected += 1
            raise
        over = st.admit_tokens(outcome.input_tokens, outcome.output_tokens + outcome.thinking_tokens)
        if over is not None:
            st.stats.rate_limited += 1
            which, wait = over
            raise Rejected(
                "rate_limited",
                429,
                f"Resource exhausted: {which.replace('_', ' ')} per minute limit reached (emulated)",
                retry_after=wait,
                quota=which,
            )
        first, rest = self.timing(st, outcome, req.digest)
        delay = first if stream else first + rest
        if slow:
            st.stats.faults["slow"] += 1
            delay += st.profile.faults.slow.extra_s
        # The service time counts from arrival, as a real service's does: the emulator's own work (reading the
        # images, counting) is part of it, not added on top, so a fixed-latency profile means that latency.
        if self.time_scale > 0:
            delay = max(0.0, delay - (self.clock.now() - arrived) / self.time_scale)
        if stream:
            outcome.release = await self._hold(st, delay, keep=True)
            outcome.stream_s = rest * self.time_scale
        else:
            await self._hold(st, delay)
        if fault == "http_500":
            if outcome.release is not None:
                outcome.release()
            st.stats.faults[fault] += 1
            raise Rejected(fault, 500, "Internal error (emulated)")
        if fault:
            st.stats.faults[fault] += 1
            outcome.fault = fault
        else:
            st.stats.succeeded += 1
        return outcome

    async def _hold(self, st: ModelState, delay: float, *, keep: bool = False) -> Callable[[], None] | None:
        """Take a capacity slot (queueing FIFO when full) for ``delay``; with ``keep``, return its release."""
        if st.capacity.locked():
            st.stats.queued += 1
            st.stats.max_queued = max(st.stats.max_queued, st.stats.queued)
            try:
                await st.capacity.acquire()
            finally:
                st.stats.queued -= 1
        else:
            await st.capacity.acquire()
        st.stats.in_flight += 1
        st.stats.max_in_flight = max(st.stats.max_in_flight, st.stats.in_flight)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                st.stats.in_flight -= 1
                st.capacity.release()

        try:
            await self.sleep(delay)
        except BaseException:
            release()
            raise
        if keep:
            return release
        release()
        return None

    def service_time(self, st: ModelState, out: Outcome, digest: str) -> float:
        """Simulated seconds the model takes for ``out`` (before time_scale)."""
        first, rest = self.timing(st, out, digest)
        return first + rest

    def timing(self, st: ModelState, out: Outcome, digest: str) -> tuple[float, float]:
        """(to the first output token, from it to the last), simulated seconds before time_scale.

        The first visible token comes after the prompt is read (``ttft``: base + per input token, so images count
        at their resolution) and after any thinking; then the output streams at ``output_tokens_per_s``. Both
        parts share one seeded jitter draw, so their sum is the whole service time.
        """
        lat = st.profile.latency
        first = lat.base_s + lat.per_input_token_s * out.input_tokens + out.thinking_tokens / lat.output_tokens_per_s
        rest = out.output_tokens / lat.output_tokens_per_s
        if lat.jitter > 0:
            rng = stable_rng(st.seed, "jitter", st.name, digest, st.occurrence("jitter:" + digest))
            sigma = math.sqrt(math.log(1 + lat.jitter**2))
            factor = rng.lognormvariate(-(sigma**2) / 2, sigma)
            first, rest = first * factor, rest * factor
        return first, rest

    # -- answers and tokens --------------------------------------------------------------------------------------
    async def analyse_images(self, req: CountRequest, st: ModelState | None) -> list[ImageInfo]:
        keep = st is not None and st.profile.answers.source == "detector"
        try:
            return await asyncio.to_thread(lambda: [analyse(p.data, keep_pixels=keep) for p in req.images])
        except ValueError as exc:
            raise Rejected("invalid", 400, f"Unable to process input image: {exc}") from None

    def prompt_tokens(self, req: CountRequest, infos: list[ImageInfo]) -> tuple[int, int]:
        """(image tokens, text tokens) of the prompt."""
        text = tk.text_tokens(req.prompt) + tk.text_tokens(req.system)
        if req.protocol == "anthropic":
            return sum(tk.anthropic_image_tokens(i.width, i.height) for i in infos), text + tk.ANTHROPIC_OVERHEAD
        if req.protocol == "openai":
            image = sum(
                tk.openai_image_tokens(i.width, i.height, model=req.model, detail=p.media_resolution)
                for i, p in zip(infos, req.images)
            )
            return image, text + tk.OPENAI_OVERHEAD
        image = sum(
            tk.gemini_image_tokens(
                i.width, i.height, model=req.model, media_resolution=p.media_resolution or req.media_resolution
            )
            for i, p in zip(infos, req.images)
        )
        return image, text

    async def compute(self, req: CountRequest, st: ModelState | None = None) -> Outcome:
        """Recognise the images, answer, format the reply and account tokens (no waiting).

        A request with no image is answered too (``replies.NO_IMAGE_REPLY``), with no label and no image tokens.
        """
        st = st or self.state(req.model, req.protocol)
        try:
            check_request(req)
            infos = await self.analyse_images(req, st)
            check_images(req, infos)
        except LimitError as exc:
            raise Rejected("invalid", exc.status, exc.message) from None
        verdict = judge_verdict(req.prompt)
        if verdict is not None:  # a judge's request: its score of the answer it shows, not an answer from labels
            counts, notes, people, text = [verdict], ["answered as a judge"], [], str(verdict)
            self.judged.append((req.prompt, verdict))
        else:
            counts, kinds, notes, people = await self._answers(st, infos, req)
            text = format_reply(counts, kinds, want_json=req.want_json, schema=req.schema, prompt=req.prompt)
        image_tokens, text_tokens = self.prompt_tokens(req, infos)
        thinking = self.thinking(st, people, req.digest, req.thinking_level)
        if req.thinking_budget is not None:
            thinking = min(thinking, max(0, req.thinking_budget))
        output = max(1, tk.text_tokens(text))
        truncated = False
        if req.max_output_tokens is not None:
            thinking = min(thinking, req.max_output_tokens)
            room = req.max_output_tokens - thinking
            if output > room:
                truncated, output, text = True, room, text[: room * 4]
        st.stats.images += len(infos)
        st.stats.input_tokens += image_tokens + text_tokens
        st.stats.output_tokens += output + thinking
        return Outcome(
            model_version=st.profile.model_version or st.name,
            text=text,
            counts=counts,
            input_tokens=image_tokens + text_tokens,
            image_tokens=image_tokens,
            text_tokens=text_tokens,
            output_tokens=output,
            thinking_tokens=thinking,
            truncated=truncated,
            notes=notes,
            tool=req.tool,
        )

    def thinking(self, st: ModelState, people: list[float], digest: str, level: str | None = None) -> int:
        """Thinking tokens for images of ``people`` each (the profile's curve, times the request's thinking level's
        factor, seeded noise), before the budget and max output tokens cap them."""
        lat = st.profile.latency
        work = lat.expected_thinking(people) * lat.level_factor(level)
        if lat.thinking_sd > 0 and work > 0:
            rng = stable_rng(st.seed, "thinking", st.name, digest, st.occurrence("thinking:" + digest))
            work *= max(0.0, rng.gauss(1.0, lat.thinking_sd))
        return int(round(work))

    async def _answers(
        self, st: ModelState, infos: list[ImageInfo], req: CountRequest
    ) -> tuple[list[Any], list[Kind], list[str], list[float]]:
        """(answers, their kinds, notes, people per answer: a numeric label, else a count, else 0) for a request:
        one answer per item the request asks about (``item_groups``: an image each, or items of several images).

        A recognised image is answered from its label through the error model of its kind (``replies.distort``); an
        image the emulator does not know is counted by the face detector, and that count is shaped as the request
        asks (a boolean: anyone there?); for a dataset of text, choice or JSON labels it is ``replies.UNKNOWN``.
        """
        answers = st.profile.answers
        parts = req.images
        groups = item_groups(req.prompt, len(parts))
        if len(groups) > 1 and self.index and answers.source != "detector":
            # A request of one item of several images (its own prompt, no item named): the item its first is.
            first = self.index.match(infos[0].fingerprint, answers.max_hash_distance, req.prompt, len(parts))
            if first.images == len(parts):
                groups = [list(range(len(parts)))]
        values: list[Any] = []
        kinds: list[Kind] = []
        notes: list[str] = []
        people: list[float] = []
        choices = self.index.choices if self.index else []
        keys: list[str | None] = []
        n_answers = len(groups)
        for group in groups:
            # An item of several images is known by its first (the rows give each item's first image its label).
            info, part = infos[group[0]], parts[group[0]]
            if answers.source == "detector":
                values.append(await self._detect(info, part, notes))
                kinds.append("count")
                people.append(values[-1])
                continue
            match = (
                self.index.match(info.fingerprint, answers.max_hash_distance, req.prompt, len(group))
                if self.index
                else None
            )
            keys.append(match.key if match else None)
            if match is None or match.key is None or match.label is None:
                st.stats.unknown_images += 1
                dist = f" (nearest hash distance {match.distance})" if match else ""
                notes.append(f"unknown image {info.width}x{info.height}{dist}")
                value, kind = await self._unknown(info, part, notes, item_schema(req.schema, n_answers))
                values.append(value)
                kinds.append(kind)
                people.append(float(value) if kind == "count" else 0.0)
                continue
            label = match.label
            kind, options = answer_kind(label, item_schema(req.schema, n_answers, label), req.prompt, choices)
            people.append(float(label) if kind == "count" else 0.0)
            rng = stable_rng(st.seed, "answer", st.name, match.key, st.occurrence("answer:" + match.key))
            long_side = max(info.width, info.height)
            values.append(
                distort(
                    label, kind, answers=answers, n_images=len(parts), long_side=long_side, rng=rng, options=options
                )
            )
            kinds.append(kind)
        self.asked.append((req.prompt, tuple(keys)))
        return values, kinds, notes, people

    async def _unknown(
        self, info: ImageInfo, part: ImagePart, notes: list[str], schema: dict[str, Any] | None
    ) -> tuple[Any, Kind]:
        """The answer to an image the emulator does not recognise, and its kind."""
        dataset_kind = self.index.kind() if self.index else None
        if dataset_kind in ("text", "json"):
            return None, "text"
        count = await self._detect(info, part, notes)
        if dataset_kind == "boolean" or (schema is not None and schema_type(schema) == "boolean"):
            return count > 0, "boolean"
        return count, "count"

    async def _detect(self, info: ImageInfo, part: ImagePart, notes: list[str]) -> int:
        def run() -> int | None:
            if not faces.available():
                return None
            rgb = info.rgb if info.rgb is not None else analyse(part.data, keep_pixels=True).rgb
            return faces.count_faces(rgb)

        count = await asyncio.to_thread(run)
        if count is None:
            notes.append("no detector available; answered 0")
            return 0
        notes.append("answered by the face detector")
        return count

    async def count_tokens(self, req: CountRequest) -> tuple[int, int]:
        """(image tokens, text tokens) without answering; images are only measured."""
        self.state(req.model, req.protocol)
        infos = await self.analyse_images(req, None)
        return self.prompt_tokens(req, infos)


def body_digest(raw: bytes) -> str:
    """A short stable digest of a request body (keys the fault and jitter draws)."""
    return hashlib.sha256(raw).hexdigest()[:16]
