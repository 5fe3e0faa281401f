"""The result bundle's typed model: what a bundle holds, defined once.

The writer builds these (``BundleWriter``, the runner's header and cell entries), ``bundle.load`` returns a
:class:`Bundle`, the readers (report, compare, gallery, resume) use its attributes, and the JSON Schema
(``schema/bundle.schema.json``) is generated from it (:func:`json_schema`; ``python -m
visionbench.results.model`` writes the file again).

Each model is a ``dict`` of the JSON object it stands for, with its fields as typed attributes over the keys
(``bundle.cells[0].summary.mae`` is ``bundle["cells"][0]["summary"]["mae"]``). So the bundle's file is what
``json.load`` gives, ``json.dumps`` writes a model as it is, and code written against the plain JSON keeps
working. A loaded bundle stays as compact as the JSON it was read into: its records a sequence read from
the file on use (:class:`visionbench.results.records.Records`, plain dicts: records are never made objects at
load; ``Bundle.records_as_objects`` makes them one at a time), its items and answers compact entries that
have the same attributes (``ItemEntry``, ``AnswerEntry``).

A bundle carries its format's version in ``schema_version``; :func:`upgrade` is the one place that brings a
bundle written by an older visionbench to the current format, and ``bundle.load`` calls it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from visionbench.types import Answer, Record, Usage

#: The bundle format's version: bump it when the format changes, and teach :func:`upgrade` the step.
SCHEMA_VERSION = 1

Status = Literal["running", "complete", "incomplete", "interrupted", "failed", "stopped"]
CellStatus = Literal["running", "complete", "interrupted", "failed", "stopped"]

_MISSING: Any = object()


class Key(str):
    """``Annotated`` metadata of a field whose JSON key is not its attribute's name (``items``, which a
    mapping's ``items()`` has taken)."""


def about(text: str, **schema: Any) -> dict[str, Any]:
    """``Annotated`` metadata of a field: its description (and any other JSON Schema keywords)."""
    return {"description": text, **schema}


class View(dict[str, Any]):
    """A typed JSON object: a ``dict`` (what ``json.load`` gives, and ``json.dumps`` writes) whose annotated
    fields are attributes over its keys.

    ``Model.of(data)`` types JSON as it was read: the object, and the objects inside it that have models of
    their own (in place, in the lists and maps that hold them); ``Model(**fields)`` builds new JSON. A field
    with a default may be missing from the JSON, and then reads as the default. Keys the model does not name
    are kept as they are.
    """

    __slots__ = ()
    #: JSON Schema keywords of the object beside its properties (``additionalProperties``, ``anyOf``...).
    SCHEMA: ClassVar[dict[str, Any]] = {}
    _fields: ClassVar[dict[str, _Field]] = {}
    _keys: ClassVar[dict[str, str]] = {}  # attribute name -> JSON key, where they differ

    def __init__(self, data: Mapping[str, Any] | None = None, /, **values: Any) -> None:
        super().__init__(data or ())
        for name, field in self._fields.items():
            if field.adopt is not None and (value := dict.get(self, name)) is not None:
                dict.__setitem__(self, name, field.adopt(value))
        for attr, value in values.items():  # by attribute name (``item_entries`` is ``items``)
            self[self._keys.get(attr, attr)] = value

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> typing.Self:
        """``data`` as this model: itself if it is one already, else typed (a shallow copy of it, the objects
        inside typed where they are)."""
        return data if isinstance(data, cls) else cls(data)

    def to_json(self) -> dict[str, Any]:
        """The JSON object: this, a dict."""
        return self

    def __setitem__(self, key: str, value: Any) -> None:
        field = self._fields.get(key)
        dict.__setitem__(self, key, field.adopt(value) if field and field.adopt and value is not None else value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str  # the JSON key
    hint: Any
    default: Any
    adopt: Callable[[Any], Any] | None  # types the JSON of the field where it is (see View.of)
    #: Whether a read types JSON put in since (a test's crafted cell appended to ``cells``): an object, or a list
    #: (a scan of its entries); a map (a cell's answers, one per image, read once per image) is typed when set.
    on_read: bool = True

    def get(self, view: View) -> Any:
        try:
            value = dict.__getitem__(view, self.name)
        except KeyError:
            if self.default is _MISSING:
                raise AttributeError(f"{type(view).__name__} has no {self.name!r} (the JSON has no such key)") from None
            return self.default() if callable(self.default) else self.default
        if self.adopt is not None and self.on_read and value is not None:  # JSON put in since: typed
            typed = self.adopt(value)
            if typed is not value:
                dict.__setitem__(view, self.name, typed)
            return typed
        return value

    def set(self, view: View, value: Any) -> None:
        view[self.name] = value


def _bare(hint: Any) -> Any:
    while typing.get_origin(hint) is Annotated:
        hint = hint.__origin__
    return hint


def _wrapper(hint: Any) -> Callable[[Any], Any] | None:
    """How a field's JSON is typed: the objects that have a model made that model, in place in the lists and
    maps that hold them (items and answers of a lazy bundle are compact entries with the attributes already)."""
    hint = _bare(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType) and len(args) == 1:
        return _wrapper(args[0])
    if isinstance(hint, type) and hint in _LIKE:
        hint = _LIKE[hint]
    if isinstance(hint, type) and issubclass(hint, View):
        model = hint
        return lambda v: model(v) if type(v) is dict else v
    if origin in (list, Sequence) and (inner := _wrapper(args[0])):

        def in_list(v: Any) -> Any:
            if type(v) is list:
                for i, entry in enumerate(v):
                    if type(entry) is dict:
                        v[i] = inner(entry)
            return v

        return in_list
    if origin in (dict, Mapping) and (inner := _wrapper(args[1])):

        def in_map(v: Any) -> Any:
            if type(v) is dict:
                for key, entry in v.items():
                    if type(entry) is dict:
                        v[key] = inner(entry)
            return v

        return in_map
    return None


def _finish(*models: type[View]) -> None:
    """Make each model's annotated fields attributes over its JSON's keys (once every model is defined)."""
    for model in models:
        hints = typing.get_type_hints(model, include_extras=True)
        model._fields, model._keys = {}, {}
        for attr in model.__annotations__:
            hint = hints[attr]
            if typing.get_origin(hint) is ClassVar:
                continue
            meta = hint.__metadata__ if typing.get_origin(hint) is Annotated else ()
            name = next((m for m in meta if isinstance(m, Key)), attr)
            default = model.__dict__.get(attr, _MISSING)
            if isinstance(default, (list, dict)):
                default = type(default)  # a fresh one each read
            field = _Field(str(name), hint, default, None)
            model._fields[field.name] = field
            if field.name != attr:
                model._keys[attr] = field.name
    for model in models:  # the models are all made now: how each field's JSON is typed
        attrs = {key: attr for attr, key in model._keys.items()}
        for name, field in model._fields.items():
            on_read = typing.get_origin(_bare(field.hint)) not in (dict, Mapping)
            field = model._fields[name] = dataclasses.replace(field, adopt=_wrapper(field.hint), on_read=on_read)
            setattr(model, attrs.get(name, name), property(field.get, field.set, doc=f"The bundle's ``{name}``."))


# The models, in the order a bundle's JSON has them.


class AnswerJson(View):
    """An answer as plain JSON (a bundle loaded without ``lazy``): the fields of :class:`visionbench.types.Answer`,
    which is what its schema is made from."""

    __slots__ = ()

    item_id: str
    value: Any
    error: str | None


class ItemJson(View):
    """One of the bundle's ``items``, as plain JSON (``lazy`` bundles have an ``ItemEntry``, with these attributes)."""

    __slots__ = ()

    SCHEMA = {"additionalProperties": False}

    id: str
    sha256: str
    label: Any
    #: A rows manifest's named fields of the item (its question, options, metadata); absent for a folder's images.
    fields: dict[str, Any] | None = None
    #: An item of several images: each image's sha256, in order (``sha256`` is then the hash of these).
    images: list[str] | None = None


#: Dataclasses of the plugin API that stand for objects in a bundle: plain JSON of them is read through a view.
_LIKE: dict[type, type[View]] = {Answer: AnswerJson}


class Budget(View):
    """``--max-cost`` as the run was given it; it covers the whole run, a resume's spend included."""

    __slots__ = ()

    max_cost_usd: float | None = None


class Pricing(View):
    """The prices the run used."""

    __slots__ = ()

    version: Annotated[str, about("genai-prices version, local table date, +overrides")]
    sha256: Annotated[str, about("hash of the prices used", pattern="^[0-9a-f]{64}$")]
    used: Annotated[dict[str, Any], about("provider/model -> the prices used (null: unpriced)")] = {}


class EndpointEntry(View):
    """An endpoint the run called: its plugin, where its requests went, its options (key variables named, never
    keys)."""

    __slots__ = ()

    plugin: str
    base_url: Annotated[str | None, about("where its requests went (the emulator's when emulated; null: the SDK's)")]
    emulated: bool
    options: dict[str, Any]


class Environment(View):
    """What the run ran on."""

    __slots__ = ()

    python: str
    platform: str
    packages: dict[str, str | None]
    #: Each provider's own account of itself (``Provider.environment()``: its SDK, base URL, options), by name, as
    #: the runner's header writes it. Each endpoint's plugin, base_url and options: ``Bundle.endpoints``.
    providers: Annotated[dict[str, dict[str, Any]], about("each provider's details and options, by name")] = {}
    calibrated_from: Annotated[
        list[dict[str, Any]] | None,
        about(
            "an emulated run whose emulator profiles `visionbench calibrate` fitted to runs' records: those runs "
            "(run_id, path, models, simulated); absent otherwise"
        ),
    ] = None


class RescoredFrom(View):
    """The run a rescored bundle was made from (``visionbench rescore``): its replies, re-parsed and re-scored."""

    __slots__ = ()

    run_id: str
    path: Annotated[str, about("the source run's bundle.json, as it was found")]
    at: Annotated[str, about("when it was rescored")]


class JudgeFigures(View):
    """A model scorer's (an LLM judge's) own requests for a cell run, apart from the cell's: how many it sent (a
    resumed run's earlier ones included, as the cell's own figures include them), how many items it could not
    score (its request failed, or its reply gave no score), their tokens and what they cost."""

    __slots__ = ()

    requests: Annotated[int, {"minimum": 0}]
    attempts: Annotated[int, {"minimum": 0}] = 0
    #: Verdicts replayed from an earlier run (``run --replay``), not asked: in ``cost_usd``, not in ``requests``.
    replayed: Annotated[int, {"minimum": 0}] = 0
    errors: Annotated[int, {"minimum": 0}]
    input_tokens: Annotated[int | None, {"minimum": 0}] = None
    output_tokens: Annotated[int | None, {"minimum": 0}] = None
    cost_usd: Annotated[float | None, about("null when a reply had no price")]


class ScorerFigures(View):
    """One scorer's figures of a cell run."""

    __slots__ = ()

    mean: Annotated[float | None, {"minimum": 0, "maximum": 1}]
    n: Annotated[int, {"minimum": 0}]
    metrics: dict[str, Any] = {}
    #: A model scorer's only: its requests and their cost, which the cell's own figures leave out.
    judge: JudgeFigures | None = None


class CellSummary(View):
    """A cell run's figures (``scoring.summarize_cell``)."""

    __slots__ = ()

    item_count: Annotated[int, Key("items")]
    requests: int
    attempts: int
    errors: int
    wall_s: float
    #: Seconds spent preparing the cell's images before its clock started (not in ``wall_s``; 0 when all were
    #: cached, or with ``--no-cache``, when images are prepared during the cell).
    preprocess_s: float | None = None
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p90_s: float | None = None
    latency_p99_s: float | None = None
    queue_p50_s: float | None = None
    service_p50_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    output_tokens_per_s_p50: float | None = None
    cost_per_1k_images_usd: float | None = None
    images_per_s: float | None
    input_tokens: Annotated[int | None, {"minimum": 0}]
    output_tokens: Annotated[int | None, {"minimum": 0}]
    thinking_tokens: Annotated[int | None, {"minimum": 0}]
    cost_usd: float | None
    #: Of ``cost_usd``, what thinking tokens cost (null when the cost is unknown).
    thinking_cost_usd: float | None = None
    #: Requests answered from an earlier run (``run --replay``): not sent, not in latency, throughput or spend.
    replayed: int = 0
    #: What the replayed requests cost the run they came from (counted in ``cost_usd``, not spent again).
    replayed_cost_usd: float = 0.0
    labelled: int
    answered: int
    exact_match: float | None
    mae: float | None
    #: json tasks only: the mean share of each label's fields answered right.
    field_match: float | None = None
    #: Each of the task's scorers' figures, by its key, the primary one first: the mean score over labelled items
    #: (an unanswered one scores 0), how many were labelled, and the scorer's own figures of the answered ones.
    scores: Annotated[dict[str, ScorerFigures], about("each scorer's figures, primary first")] = {}

    def metric(self, key: str) -> Any:
        """A figure by its name (``None`` when the summary does not have it)."""
        return self.get(key)


class CellEntry(View):
    """One cell and repeat of the run: what it ran, how it ended, its final answers and its summary."""

    __slots__ = ()

    id: str
    repeat: Annotated[int, {"minimum": 0}]
    provider: str
    model: str
    strategy: str
    label: str
    params: dict[str, Any]
    model_params: dict[str, Any]
    preprocessing: Annotated[
        dict[str, Any] | None, about("how this cell's images were prepared (max_side, format, quality)")
    ] = None
    varied: Annotated[
        dict[str, Any], about("what a sweep set apart for this cell (its values of the swept keys)")
    ] = {}
    status: CellStatus
    error: str | None = None
    summary: CellSummary
    answers: Annotated[Mapping[str, Answer], about("final answer per item id")]
    extra: Annotated[dict[str, Any], about("the strategy's own figures")] = {}


class Bundle(View):
    """A run's result bundle (``results/<run-id>/bundle.json``)."""

    __slots__ = ()

    SCHEMA = {"anyOf": [{"required": ["records"]}, {"required": ["records_file"]}]}

    schema_version: Annotated[int, {"const": SCHEMA_VERSION}]
    run_id: Annotated[str, {"minLength": 1}]
    simulated: Annotated[bool, about("true when any answer came from an emulator or fake, not the real service")]
    config_path: str
    config: Annotated[dict[str, Any], {"required": ["name", "dataset", "task", "matrix"]}]
    endpoints: Annotated[
        dict[str, EndpointEntry],
        about(
            "each endpoint the run called, by the name cells give as `provider`: its plugin, the base URL its requests "
            "went to (the emulator's when emulated; null: the SDK's default) and its options (which name key "
            "variables, never hold keys); absent in bundles from before endpoints"
        ),
    ] = {}
    environment: Environment
    item_entries: Annotated[list[ItemJson], Key("items")]
    pricing: Pricing
    status: Status
    started_at: str
    finished_at: str | None
    resumed_at: Annotated[list[str], about("when `run --resume` carried the run on")] = []
    rescored_from: Annotated[
        RescoredFrom | None,
        about(
            "set by `visionbench rescore`: the run whose stored replies this bundle re-parsed and re-scored with its"
            " config's task (no request sent); its records, times, tokens and costs are that run's"
        ),
    ] = None
    error: str | None
    budget: Budget | None = None
    cells: list[CellEntry]
    records: Annotated[Sequence[dict[str, Any]], {"items": {"$ref": "#/$defs/Record"}}] = []
    records_file: Annotated[
        str | None,
        about(
            "only while a run is going (or after it was killed): its records are in this JSON-lines file beside"
            " the bundle, one per line; a finished run has them in `records` instead"
        ),
    ] = None

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self.config["name"]

    @property
    def task(self) -> dict[str, Any]:
        """The task as the config resolved it (id, prompt, answer type...)."""
        return self.config.get("task") or {}

    @property
    def dataset(self) -> dict[str, Any]:
        """The dataset as the config resolved it (path, labels...)."""
        return self.config.get("dataset") or {}

    def entries_of(self, repeat: int | None = None) -> list[CellEntry]:
        """The cell entries of one repeat (all of them when ``repeat`` is None)."""
        return [e for e in self.cells if repeat is None or e.repeat == repeat]

    def records_as_objects(self) -> Iterator[Record]:
        """The records as :class:`visionbench.types.Record` objects, one at a time."""
        return map(record_from_json, self.records)

    @property
    def time_scale(self) -> float | Literal["default"] | None:
        """The emulator's time scale of the run: a number, ``"default"`` when emulated at the profiles' own
        time scale (none set), or None when the run was not emulated. Every reader asks this one."""
        emulator = (self.get("config") or {}).get("emulator")  # a bare bundle of tests or tools: not emulated
        if not emulator:
            return None
        scale = emulator.get("time_scale") if isinstance(emulator, dict) else None
        return float(scale) if isinstance(scale, (int, float)) and not isinstance(scale, bool) else "default"

    @property
    def to_modelled(self) -> float:
        """What a wall-clock duration of the run is multiplied by to give the emulated services' own (modelled)
        seconds: 1 / the time scale of a run emulated at a scale above 0; 1 for a real run, a fake provider's or an
        emulated one at time scale 0 (instant: nothing modelled)."""
        scale = self.numeric_scale
        return 1.0 / scale if scale and self.get("simulated") else 1.0

    @property
    def numeric_scale(self) -> float | None:
        """:attr:`time_scale` when it is a number, else None."""
        scale = self.time_scale
        return scale if isinstance(scale, float) else None


_finish(
    AnswerJson,
    ItemJson,
    Budget,
    Pricing,
    EndpointEntry,
    Environment,
    JudgeFigures,
    ScorerFigures,
    CellSummary,
    CellEntry,
    Bundle,
)
_finish(RescoredFrom)


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a bundle's JSON from the format version it was written in (``schema_version``) to this one, in
    place; returns it. The one place that knows older formats: readers see only the current one.

    Version 1 (every bundle so far) was written over time with fewer keys; what the older writers left out of
    a cell is filled in as the readers used to take it: no ``varied`` (before sweeps) or ``extra`` is empty,
    no ``error`` is none, no ``preprocessing`` (before sweeps too) is the run's, the config's. (Top-level keys added since, ``budget`` and ``resumed_at``, read as their model
    defaults, None and [], without being written in.)
    """
    version = data.get("schema_version", 1)
    if version == 1:
        config = data.get("config")
        preprocessing = config.get("preprocessing") if isinstance(config, Mapping) else None
        for entry in data.get("cells") or ():
            if isinstance(entry, MutableMapping):
                if entry.get("preprocessing") is None and isinstance(preprocessing, Mapping):
                    entry["preprocessing"] = dict(preprocessing)
                for key in ("varied", "extra"):
                    if entry.get(key) is None:
                        entry[key] = {}
                entry.setdefault("error", None)
    return data


# A record's JSON: the Record dataclass's fields, and its latency.

_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(Record))
_USAGE_FIELDS = tuple(f.name for f in dataclasses.fields(Usage))


def record_to_json(record: Record) -> dict[str, Any]:
    # Shallow by hand: dataclasses.asdict deep-copies every field, a measurable cost at thousands of records.
    data = {name: getattr(record, name) for name in _RECORD_FIELDS}
    data["usage"] = None if record.usage is None else {name: getattr(record.usage, name) for name in _USAGE_FIELDS}
    data["answers"] = [{"item_id": a.item_id, "value": a.value, "error": a.error} for a in record.answers]
    data["item_ids"] = list(record.item_ids)
    data["latency_s"] = record.latency_s
    return data


def record_from_json(data: dict[str, Any]) -> Record:
    """The inverse of bundle.record_to_json."""
    fields = {k: v for k, v in data.items() if k != "latency_s"}
    fields["usage"] = Usage(**data["usage"]) if data.get("usage") else None
    fields["answers"] = [Answer(**a) for a in data.get("answers", [])]
    return Record(**fields)



# The JSON Schema, generated from the models.


def _record_notes() -> dict[str, dict[str, Any]]:
    """What a record's schema says beyond its dataclass's types."""
    return {
        "repeat": {"minimum": 0},
        "item_ids": {"minItems": 1},
        "latency_s": {"type": "number", "minimum": 0},
        "attempts": {"minimum": 0, "description": "0 when the request was never sent (image error)"},
        "error": {
            "type": ["object", "null"],
            "required": ["kind", "message"],
            "properties": {
                "kind": {"type": "string"},
                "message": {"type": "string"},
                "status": {"type": ["integer", "null"]},
            },
        },
        "queue_s": {
            "minimum": 0,
            "description": "waiting for a concurrency/rate slot before first sent (before start_s, not latency)",
        },
        "backoff_s": {"minimum": 0, "description": "of the latency: between attempts (sleeping, waiting for a slot)"},
        "ttft_s": {"minimum": 0, "description": "streamed requests: time to first token"},
        "thinking_cost_usd": {"minimum": 0, "description": "of cost_usd, what the thinking tokens cost"},
        "request_key": {"description": "the request's content key, by which run --replay matches it"},
        "replayed": {"description": "the run id its reply was replayed from instead of being sent (not sent: "
            "attempts 0, left out of latency and spend)"},
        "output_tokens_per_s": {
            "minimum": 0,
            "description": "streamed requests: output tokens per second after the first token",
        },
        "judge": {
            "type": ["object", "null"],
            "required": ["scorer", "inputs"],
            "properties": {
                "scorer": {"type": "string"},
                "inputs": {"type": "string"},
                "why": {"type": ["string", "null"]},
            },
            "description": "a model scorer's (an LLM judge's) request about the cell's answer, not one of the cell's "
            "own: the scorer's key, a digest of what it was asked and its verdict in words; its answer's value is "
            "the item's score",
        },
    }


#: Fields of the stored dataclasses that version 1 bundles written before them do not have (records are read
#: from the file as they are used, so they are not upgraded at load: ``record_from_json`` takes the defaults).
_ADDED_LATER: dict[type, tuple[str, ...]] = {
    Record: ("ttft_s", "output_tokens_per_s", "judge", "thinking_cost_usd", "request_key", "replayed")
}
_NOTES: dict[type, dict[str, dict[str, Any]]] = {
    Usage: {name: {"minimum": 0} for name in ("input_tokens", "output_tokens", "thinking_tokens", "cached_tokens")}
    | {"image_tokens": {"minimum": 0}},
}
_ABOUT: dict[type, str] = {Usage: "tokens as the provider reported them; null = not reported (never guessed as 0)"}
_ROOT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"https://visionbench.dev/schema/bundle-{SCHEMA_VERSION}.json",
    "title": "visionbench result bundle",
}
_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _schema(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    while typing.get_origin(hint) is Annotated:
        for meta in hint.__metadata__:
            extra |= meta if isinstance(meta, dict) else {}
        hint = hint.__origin__
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        out: dict[str, Any] = {}
    elif hint in _TYPES:
        out = {"type": _TYPES[hint]}
    elif origin is Literal:
        out = {"enum": list(args)}
    elif origin in (Union, types.UnionType):
        parts = [_schema(a, defs) for a in args]
        if all(set(p) == {"type"} for p in parts):
            out = {"type": [p["type"] for p in parts]}
        else:
            out = {"anyOf": parts}
    elif origin in (list, Sequence):
        out = {"type": "array", "items": _schema(args[0], defs)}
    elif origin in (dict, Mapping):
        value = _schema(args[1], defs)
        out = {"type": "object"} | ({"additionalProperties": value} if value else {})
    elif isinstance(hint, type) and (issubclass(hint, View) or dataclasses.is_dataclass(hint)):
        name = _def_name(hint)
        if name not in defs:
            defs[name] = {}  # taken: a model that holds itself refers to it
            defs[name] = _object_schema(hint, defs)
        out = {"$ref": f"#/$defs/{name}"}
    else:
        raise TypeError(f"no JSON Schema for {hint!r}")
    if "$ref" in out and extra:
        out = {"allOf": [out]}
    return out | extra


def _def_name(model: type) -> str:
    return {AnswerJson: "Answer", ItemJson: "Item"}.get(model, model.__name__)


def _object_schema(model: type, defs: dict[str, Any]) -> dict[str, Any]:
    """An object's schema: a model's fields (required unless they have a default), or a dataclass's (required
    but for those added later: a bundle has every field of the objects it stores, plus a record's ``latency_s``)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    if isinstance(model, type) and issubclass(model, View):
        for name, field in model._fields.items():
            properties[name] = _schema(field.hint, defs)
            if field.default is _MISSING:
                required.append(name)
        return _with_about(model, {"type": "object", "required": required, "properties": properties} | model.SCHEMA)
    hints = typing.get_type_hints(model)
    notes = _record_notes() if model is Record else _NOTES.get(model, {})
    names = [f.name for f in dataclasses.fields(model)] + (["latency_s"] if model is Record else [])
    for name in names:
        schema = _schema(hints[name], defs) if name in hints else {}
        properties[name] = schema | notes.get(name, {})
        if name not in _ADDED_LATER.get(model, ()):
            required.append(name)
    kind = ["object", "null"] if model is Usage else "object"  # a record's usage is null when not reported
    out = {"type": kind, "required": required, "properties": properties, "additionalProperties": False}
    return _with_about(model, out)


def _with_about(model: type, schema: dict[str, Any]) -> dict[str, Any]:
    text = _ABOUT.get(model) or (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    return {"description": text, **schema} if text and model not in (Answer, Record) else schema


def json_schema() -> dict[str, Any]:
    """The bundle's JSON Schema, made from the models (``schema/bundle.schema.json`` is this, written out)."""
    defs: dict[str, Any] = {}
    _schema(Record, defs)  # a finished bundle's records: the JSON of Record (``bundle.record_to_json``)
    root = _object_schema(Bundle, defs)
    return _ROOT | root | {"$defs": dict(sorted(defs.items()))}


SCHEMA_FILE = Path(__file__).parent / "schema" / "bundle.schema.json"


def schema_text() -> str:
    """The schema file's text."""
    return json.dumps(json_schema(), indent=2) + "\n"


if __name__ == "__main__":  # python -m visionbench.results.model [--check]: write (or check) the schema file
    if "--check" in sys.argv[1:]:
        if SCHEMA_FILE.read_text() != schema_text():
            sys.exit(f"{SCHEMA_FILE} is out of date: python -m visionbench.results.model")
    else:
        SCHEMA_FILE.write_text(schema_text())
        print(f"wrote {SCHEMA_FILE}")
