"""The data that flows through a run: plain dataclasses, frozen where possible."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

AnswerType = Literal["integer", "number", "boolean", "text", "choice", "json"]
#: How a reply's numbers are read: "." (1,234.5) or "," (1.234,5) is the decimal mark, the other groups thousands.
DecimalMark = Literal[".", ","]

#: Markdown a model wraps an answer in: bold/italic markers, inline code; and a leading heading, list or quote mark.
_MARKDOWN = re.compile(r"\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)|`")
_LEADING_MARKS = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+)")


def strip_markdown(text: str) -> str:
    """``text`` without markdown emphasis, inline code, or a leading heading, list or quote marker."""
    return _MARKDOWN.sub("", _LEADING_MARKS.sub("", text)).strip()


def normalise_text(text: str) -> str:
    """Text as answers are compared: Unicode NFKC, case folded, runs of whitespace as one space, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def choice_key(text: str) -> str:
    """A choice, a label or a reply as they are matched: normalised, markdown, punctuation and quotes dropped."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", normalise_text(strip_markdown(text))).split())


#: A prompt template's syntax: ``{name}`` (a Python identifier) is a placeholder, ``{{`` and ``}}`` are literal
#: braces; any other brace is literal as it stands, so a JSON example (``{"count": 3}``) needs no escaping.
_TEMPLATE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template_fields(template: str) -> list[str]:
    """The distinct placeholders of a prompt template (``{question}``), in order of first use."""
    if "{" not in template:
        return []
    return list(dict.fromkeys(m.group(1) for m in _TEMPLATE.finditer(template) if m.group(1)))


def field_text(value: Any) -> str:
    """A field's value as a prompt template writes it: a string as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False)


def fill_template(template: str, fields: dict[str, Any] | None) -> str:
    """``template`` with each ``{name}`` replaced by the field's text and ``{{``/``}}`` by one brace; a
    template with no brace is returned as it is (no work on the hot path). A missing field is a KeyError (a plan
    checks every item's fields before any request)."""
    if "{" not in template and "}" not in template:
        return template
    values = fields or {}

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        return match.group(0)[0] if name is None else field_text(values[name])

    return _TEMPLATE.sub(one, template)


def task_placeholders(task: Task) -> dict[str, list[str]]:
    """The placeholders of a task's prompt and system prompt that a row's fields fill, by where they are
    (``{"task.prompt": ["question"]}``); empty for a task that needs no field."""
    found = {"task.prompt": template_fields(task.prompt), "task.system": template_fields(task.system or "")}
    return {where: names for where, names in found.items() if names}


def with_system_for(task: Task, fields: dict[str, Any] | None) -> Task:
    """``task`` with its system prompt's placeholders filled from an item's ``fields`` (as it is without any)."""
    if not task.system or "{" not in task.system:
        return task
    from dataclasses import replace

    return replace(task, system=fill_template(task.system, fields))


@dataclass(frozen=True, slots=True)  # slots: a run holds one per item
class ImageItem:
    """One dataset item: its id (path relative to the dataset root), image, content hash and label; an item of
    a rows manifest (JSONL, CSV, TSV) also has its row's other named fields (a question, options, metadata), which
    fill the task prompt's ``{field}`` placeholders.

    An item of several images (before/after, the pages of one document) has them as ``parts``, each an item of
    one image (id ``<id>#1``, ``<id>#2``...); its ``path`` is the first one's and its ``sha256`` covers them all
    (``images_sha256``). A request sends all of an item's images and gets one answer for the item.
    """

    id: str
    path: Path
    sha256: str
    label: Any = None
    fields: dict[str, Any] | None = field(default=None, hash=False, compare=True)
    parts: tuple[ImageItem, ...] = ()

    def images(self) -> tuple[ImageItem, ...]:
        """The item's images, each as an item of one image: its parts, or the item itself."""
        return self.parts or (self,)


def images_sha256(hashes: list[str] | tuple[str, ...]) -> str:
    """The content hash of an item of several images: the sha256 of its images' hashes, in order."""
    import hashlib

    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


@dataclass(frozen=True)
class PreparedImage:
    """Preprocessed image bytes, ready to send."""

    item_id: str
    data: bytes
    mime_type: str
    width: int
    height: int


@dataclass(frozen=True)
class Task:
    """What every image is asked: a task id (e.g. ``count-people``), a prompt and the type of answer."""

    id: str
    prompt: str
    answer_type: AnswerType = "integer"
    system: str | None = None
    #: ``choice`` tasks: the labels an answer must be one of.
    choices: tuple[str, ...] | None = None
    #: ``json`` tasks: the JSON Schema an answer must follow.
    schema: dict[str, Any] | None = field(default=None, hash=False)  # a dict: compared, not hashed
    #: The decimal mark of numbers in replies (integer and number tasks).
    decimal: DecimalMark = "."


@dataclass(frozen=True)
class Request:
    """One request to a provider: a model, a prompt and one or more images."""

    model: str
    task: Task
    prompt: str
    images: tuple[PreparedImage, ...]
    params: dict[str, Any] = field(default_factory=dict)
    max_output_tokens: int = 1024
    #: JSON Schema the reply must follow, for providers with structured output.
    response_schema: dict[str, Any] | None = None
    #: How many of ``images`` each item of the request has, in order (one answer per item); ``None``: one each.
    images_per_item: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens as the provider reported them; ``None`` means the provider did not say (never guessed as 0)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    thinking_tokens: int | None = None
    cached_tokens: int | None = None
    image_tokens: int | None = None


@dataclass(frozen=True)
class Response:
    """A provider's reply."""

    text: str
    usage: Usage | None
    model_version: str | None = None
    request_id: str | None = None
    #: Set by providers whose answers cost nothing (local models); otherwise cost comes from pricing.
    cost_usd: float | None = None
    #: True when the reply came from an emulator, not the real service (bundles are then marked simulated).
    simulated: bool = False
    #: Streamed replies only: seconds from sending the request to the first output token (time to first token),
    #: and from that token to the end of the stream. ``None`` for replies that were not streamed.
    ttft_s: float | None = None
    generation_s: float | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do for a model."""

    max_images_per_request: int = 1
    structured_output: bool = False
    #: The service's documented limits (None: unknown). Longest image side in pixels, for any request and for
    #: requests of more than ``many_images_threshold`` images; base64 bytes per image and bytes per request.
    max_image_side: int | None = None
    max_image_side_many: int | None = None
    many_images_threshold: int | None = None
    max_image_bytes: int | None = None
    max_request_bytes: int | None = None
    batch: bool = False
    #: Whether the model thinks when a request does not ask it to (Gemini 3: yes; Claude: only when asked).
    thinks_unasked: bool = True
    #: Task ids it can answer; ``None`` means any prompt (a general VLM).
    tasks: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The parsed answer for one item of a request, or why there is none."""

    item_id: str
    value: Any = None
    error: str | None = None


@dataclass(slots=True)  # slots: a big run holds one per request
class Record:
    """One request as it happened: timing, attempts, usage, cost, raw reply and per-item answers."""

    cell: str
    item_ids: list[str]
    provider: str
    model: str
    tier: int | None
    start_s: float
    end_s: float
    attempts: int
    max_side: int | None
    usage: Usage | None = None
    cost_usd: float | None = None
    raw_text: str | None = None
    answers: list[Answer] = field(default_factory=list)
    error: dict[str, Any] | None = None
    request_id: str | None = None
    model_version: str | None = None
    repeat: int = 0
    simulated: bool = False
    #: True when sent through the provider's batch API (billed at the batch price).
    batch: bool = False
    #: Waiting for a concurrency/rate slot before the request was first sent (before ``start_s``: not latency), and
    #: of the latency, the time between attempts (sleeping, waiting for a slot again).
    queue_s: float = 0.0
    backoff_s: float = 0.0
    #: Streamed requests only (else None): time to first token of the attempt that answered, and output tokens
    #: per second after it (output tokens / time from the first token to the end of the stream).
    ttft_s: float | None = None
    output_tokens_per_s: float | None = None
    #: A model scorer's request about the cell's answer (an LLM judge's), else None: ``{"scorer": its key in
    #: task.scorers, "inputs": a digest of what it was asked, "why": the verdict in words}``. Its answer's value is
    #: the item's score. Such records are the judge's: they are not the cell's requests, latency, tokens or cost.
    judge: dict[str, Any] | None = None
    #: Of ``cost_usd``, what the thinking tokens cost (None: unpriced, or the provider gave its own total).
    thinking_cost_usd: float | None = None
    #: The request's content key (``run.replay.request_key``), by which a later run can replay its reply.
    request_key: str | None = None
    #: The run this record's reply was replayed from instead of being sent (``run --replay``), else None.
    replayed: str | None = None

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class BatchStatus:
    """Where a provider-side batch job stands."""

    job_id: str
    state: str  # the provider's own word: BATCH_STATE_RUNNING, in_progress, ended...
    done: bool
    succeeded: int = 0
    failed: int = 0
    total: int = 0


@dataclass(frozen=True)
class BatchJob:
    """A cell's server-side batch job: the service's id and the item each custom id stands for."""

    job_id: str
    item_ids: dict[str, str]  # custom id -> item id
    start_s: float
    #: What the job store knows it by (this cell and repeat, its settings and images).
    key: str
    #: True when the job was submitted by an earlier, interrupted run and picked up again.
    resumed: bool = False
    #: The saved job this one replaces, and why (the service no longer knew it, or it had expired).
    replaced: str | None = None
