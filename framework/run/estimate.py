"""Before spending anything: requests, tokens and dollars each cell is expected to cost."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from visionbench.data.image_bytes import Preprocessor
from visionbench.errors import ItemError
from visionbench.preprocessing import Preprocessing
from visionbench.results.scores import score_rows
from visionbench.run import emulated
from visionbench.run.config import Cell
from visionbench.run.plan import Plan
from visionbench.run.prompts import prompt_for
from visionbench.scorer import Scored
from visionbench.services.tokens import text_tokens
from visionbench.types import Capabilities, ImageItem, Request, Usage, fill_template

if TYPE_CHECKING:
    from visionbench.run.emulated import EmulatorProfiles

#: Reply tokens assumed per answer whose label is a number (a number, or a number in a JSON array) when planning.
OUTPUT_TOKENS_PER_ANSWER = 6


def label_tokens(label: Any) -> int:
    """Reply tokens planned for one answer of ``label``: a number ``OUTPUT_TOKENS_PER_ANSWER``, a yes/no one, a
    string its text's tokens, an object or list its compact JSON's (as the emulator replies)."""
    if isinstance(label, bool):
        return text_tokens("yes")
    if isinstance(label, int | float):
        return OUTPUT_TOKENS_PER_ANSWER
    text = label if isinstance(label, str) else json.dumps(label, separators=(",", ":"), ensure_ascii=False)
    return max(1, text_tokens(text))


def tokens_per_answer(labels: list[Any]) -> int:
    """Reply tokens planned per answer: the mean of ``label_tokens`` over the dataset's labels, rounded up
    (``OUTPUT_TOKENS_PER_ANSWER`` when no image has a label)."""
    sizes = [label_tokens(v) for v in labels if v is not None]
    return math.ceil(sum(sizes) / len(sizes)) if sizes else OUTPUT_TOKENS_PER_ANSWER


#: The model params that set a thinking level, by provider protocol (their values are the emulator's levels).
LEVEL_PARAMS = ("thinking_level", "reasoning_effort", "effort")


def _fit(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def image_sizes(items: list[ImageItem]) -> dict[str, list[tuple[int, int]]]:
    """Each item's images' upright sizes, read from their headers only (no decoding)."""
    sizes: dict[str, list[tuple[int, int]]] = {}
    for item in items:
        for image in item.images():
            try:
                with Image.open(image.path) as im:
                    w, h = im.size
                    orientation = im.getexif().get(0x0112, 1)
            except Exception:  # an unreadable image is a per-item error at run time; plan it at zero
                continue
            sizes.setdefault(item.id, []).append((h, w) if orientation in (5, 6, 7, 8) else (w, h))
    return sizes


@dataclass
class CellEstimate:
    cell_id: str
    requests: int = 0
    image_tokens: int | None = 0
    text_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float | None = 0.0
    counted: bool = False  # True when input tokens came from the service's count-tokens endpoint
    notes: list[str] = field(default_factory=list)
    #: Of ``requests`` and ``cost_usd``: the task's model scorers' (LLM judges'), one request per labelled item.
    judge_requests: int = 0
    judge_cost_usd: float | None = 0.0


def _add_cost(total: float | None, cost: float | None) -> float | None:
    return None if total is None or cost is None else total + cost


def _profiles(plan: Plan) -> EmulatorProfiles:
    # the run reports a bad profiles file; the plan falls back to the packaged one
    return emulated.profiles(plan.experiment, strict=False)


def thinking_per_request(
    plan: Plan, model: str, params: dict, profiles: EmulatorProfiles, labels: list[Any], thinks_unasked: bool
) -> tuple[int, str]:
    """Thinking tokens one request is expected to bill as output, and where the figure comes from.

    The model's emulator profile says how a model thinks (per request, per image, per person the labels say):
    exact on average against the emulator, a plausible figure, not a measurement, for the real service.
    A thinking level (``thinking_level``, ``reasoning_effort``, ``effort``) multiplies it by the profile's factor for
    that level; a ``thinking_budget`` caps it (0: off); a model that thinks only when asked (Claude) thinks 0
    without a budget.
    """
    found = profiles.resolve(model)
    people = [float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0 for v in labels]
    default = 0
    if found is not None and found[0] != "*":
        level = next((str(params[name]) for name in LEVEL_PARAMS if params.get(name)), None)
        latency = found[1].latency
        default = round(latency.expected_thinking(people) * latency.level_factor(level))
    budget = params.get("thinking_budget")
    if isinstance(budget, int) and budget >= 0:
        emulated = plan.experiment.spec.emulator is not None
        value = min(budget, default) if emulated else budget
        return value, f"thinking up to {budget}/request (thinking_budget)"
    if not thinks_unasked:
        return 0, ""
    return default, "thinking from the model's emulator profile (grows with images and people)"


def _over_side_limit(caps: Capabilities, fitted: tuple[tuple[int, int], ...]) -> str | None:
    """A warning when images of one request exceed the provider's documented side limit (it would refuse them)."""
    n = len(fitted)
    many = caps.many_images_threshold is not None and n > caps.many_images_threshold
    limit = caps.max_image_side_many if many and caps.max_image_side_many else caps.max_image_side
    over = sum(1 for w, h in fitted if limit is not None and max(w, h) > limit)
    if not over:
        return None
    return f"images above the provider's {limit} px limit for requests of {n} images: lower preprocessing.max_side"


def request_count(plan: Plan) -> int:
    """The requests a new run of ``plan`` sends (all repeats; LLM judges' not counted), from the strategies' own
    plans alone: no image is read, so a big run is told from a small one cheaply (``estimate`` then says more)."""
    count = 0
    for cell in plan.experiment.cells:
        caps = plan.providers[cell.provider].capabilities(cell.model)
        count += sum(1 for _ in plan.strategies[cell.id].plan(plan.items, caps))
    return count * plan.experiment.spec.repeats


async def estimate(plan: Plan, *, count_tokens: bool = False) -> list[CellEstimate]:
    """Per cell (all repeats): requests, image/text/output tokens and dollars.

    Image tokens follow each provider's documented formula; with ``count_tokens`` the provider's
    count-tokens endpoint is asked for one representative request per (provider, model, size) instead.
    """
    exp = plan.experiment
    sizes = image_sizes(plan.items)
    items = {item.id: item for item in plan.items}
    out: list[CellEstimate] = []
    counted_cache: dict[tuple, int | None] = {}
    profiles = _profiles(plan)
    per_answer = tokens_per_answer([item.label for item in plan.items])
    for cell in exp.cells:
        strategy = plan.strategies[cell.id]
        caps = plan.providers[cell.provider].capabilities(cell.model)
        est = CellEstimate(cell.id)
        for req in strategy.plan(plan.items, caps):
            provider_name = req.provider or cell.provider
            model = req.model or cell.model
            provider = plan.providers[provider_name]
            side = req.max_side if req.max_side is not None else cell.preprocessing.max_side
            first = items.get(req.item_ids[0]) if req.item_ids else None
            counts = [len(items[i].images()) for i in req.item_ids if i in items]
            several = counts if any(c > 1 for c in counts) else None
            prompt = prompt_for(exp.task, len(req.item_ids), first.fields if first else None, several)
            text = text_tokens(prompt + (exp.task.system or ""))
            image_tokens: int | None = 0
            fitted = tuple(_fit(w, h, side) for item_id in req.item_ids for w, h in sizes.get(item_id, [(0, 0)]))
            too_big = _over_side_limit(provider.capabilities(model), fitted)
            if too_big and too_big not in est.notes:
                est.notes.append(too_big)
            for w, h in fitted:
                t = provider.estimate_image_tokens(model, w, h) if w else 0
                image_tokens = None if image_tokens is None or t is None else image_tokens + t
            if count_tokens:
                # One call per distinct (provider, model, image sizes): same sizes, same token count.
                key = (provider_name, model, fitted, cell.preprocessing.key())
                if key not in counted_cache:
                    settings = cell.preprocessing.at(side)
                    counted_cache[key] = await _counted(plan, provider_name, model, req.item_ids, items, settings)
                counted = counted_cache[key]
                if counted is not None:
                    image_tokens, text, est.counted = max(0, counted - text), text, True
            same = req.provider is None and req.model is None  # as CellContext.ask hands out model_params
            output = per_answer * len(req.item_ids)
            cap = cell.model_params.get("max_output_tokens") if same else None
            if isinstance(cap, int) and not isinstance(cap, bool) and 0 < cap < output:
                output = cap
                note = f"output capped at {cap} tokens/request (max_output_tokens)"
                if note not in est.notes:
                    est.notes.append(note)
            thinking, why = (
                (0, "")
                if provider.free
                else thinking_per_request(
                    plan,
                    model,
                    cell.model_params if same else {},
                    profiles,
                    [items[i].label for i in req.item_ids],
                    provider.capabilities(model).thinks_unasked,
                )
            )
            if thinking and why not in est.notes:
                est.notes.append(why)
            est.requests += 1
            est.text_tokens += text
            est.output_tokens += output
            est.thinking_tokens += thinking
            est.image_tokens = (
                None if est.image_tokens is None or image_tokens is None else est.image_tokens + image_tokens
            )
            if provider.free:
                continue
            usage = Usage(input_tokens=(image_tokens or 0) + text, output_tokens=output, thinking_tokens=thinking)
            cost = (
                exp.prices.cost(model, usage, batch=req.batch, provider=provider_name)
                if image_tokens is not None
                else None
            )
            if cost is None and f"no price or token formula for {model}" not in est.notes:
                est.notes.append(f"no price or token formula for {model}")
            est.cost_usd = _add_cost(est.cost_usd, cost)
        _add_judges(plan, cell, est, sizes, profiles)
        repeats = exp.spec.repeats
        est.judge_requests *= repeats
        est.judge_cost_usd = est.judge_cost_usd * repeats if est.judge_cost_usd is not None else None
        est.requests *= repeats
        est.text_tokens *= repeats
        est.output_tokens *= repeats
        est.thinking_tokens *= repeats
        est.image_tokens = est.image_tokens * repeats if est.image_tokens is not None else None
        est.cost_usd = est.cost_usd * repeats if est.cost_usd is not None else None
        out.append(est)
    return out


def _add_judges(
    plan: Plan, cell: Cell, est: CellEstimate, sizes: dict[str, list[tuple[int, int]]], profiles: EmulatorProfiles
) -> None:
    """The task's model scorers' (LLM judges') requests for one repeat of ``cell``, added to ``est`` (and apart, as
    ``judge_requests``/``judge_cost_usd``): one per labelled item, each worded as asking about a right answer (the
    first reference), with the item's images at the cell's size when the judge sends them."""
    exp = plan.experiment
    judges = exp.scorers.judges if exp.scorers is not None else ()
    for key, scorer in judges:
        judge = scorer.judge
        provider = plan.providers[judge.provider]
        requests = 0
        cost: float | None = 0.0
        think, _ = thinking_per_request(
            plan, judge.model, judge.model_params, profiles, [], provider.capabilities(judge.model).thinks_unasked
        )
        for scored, _ in exp.scorers.scored_items(score_rows(plan.items), {}):  # type: ignore[union-attr]
            item = Scored(scored.item_id, scored.references[0], scored.references, scored.fields)
            asked = scorer.ask(item, fill_template(exp.task.prompt, dict(scored.fields or {})))
            text = text_tokens(asked.prompt + (asked.system or ""))
            images: int | None = 0
            if judge.images:
                for w, h in sizes.get(scored.item_id, []):
                    fitted = _fit(w, h, cell.preprocessing.max_side)
                    t = provider.estimate_image_tokens(judge.model, *fitted)
                    images = None if images is None or t is None else images + t
            requests += 1
            if provider.free:
                continue
            output = OUTPUT_TOKENS_PER_ANSWER  # a verdict is a number
            usage = Usage(input_tokens=(images or 0) + text, output_tokens=output, thinking_tokens=think)
            one = exp.prices.cost(judge.model, usage, provider=judge.provider) if images is not None else None
            cost = None if cost is None or one is None else cost + one
        est.requests += requests
        est.judge_requests += requests
        est.cost_usd = _add_cost(est.cost_usd, cost)
        est.judge_cost_usd = _add_cost(est.judge_cost_usd, cost)
        shown = "?" if cost is None else f"${cost:.4f}"
        est.notes.append(
            f"of which the judge {key} ({judge.provider}/{judge.model}): {requests:,} requests, {shown} per repeat"
        )


async def _counted(
    plan: Plan,
    provider_name: str,
    model: str,
    item_ids: tuple[str, ...],
    items: dict[str, ImageItem],
    settings: Preprocessing,
) -> int | None:
    """Input tokens of a request with these images, from the provider's count-tokens endpoint."""
    exp = plan.experiment
    images = []
    counts = []
    with Preprocessor(None) as pre:
        for item_id in item_ids:
            try:
                prepared = [pre.prepare(image, settings) for image in items[item_id].images()]
            except ItemError:
                continue
            images.extend(prepared)
            counts.append(len(prepared))
    several = tuple(counts) if any(c > 1 for c in counts) else None
    prompt = prompt_for(exp.task, len(counts), items[item_ids[0]].fields if images else None, several)
    request = Request(model, exp.task, prompt, tuple(images), images_per_item=several)
    return await plan.providers[provider_name].count_tokens(request) if images else 0


def total_cost(estimates: list[CellEstimate]) -> float | None:
    total: float | None = 0.0
    for est in estimates:
        total = _add_cost(total, est.cost_usd)
    return total
