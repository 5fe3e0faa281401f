"""Experiment configs: YAML in, a validated :class:`Experiment` with its matrix expanded into cells out.

Every error names the file, the key at fault and, where there is a choice, the allowed values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from visionbench.data.dataset import read_text
from visionbench.errors import ConfigError
from visionbench.preprocessing import Preprocessing
from visionbench.results.scores import DEFAULT_SCORERS, TaskScorers
from visionbench.run.calling import RetryPolicy
from visionbench.run.plugins import Registry
from visionbench.run.sweep import combinations, describe, varying
from visionbench.scorer import ModelScorer, Scorer
from visionbench.services.pricing import PriceTable, default_table
from visionbench.spec import StrictModel
from visionbench.strategy import Strategy
from visionbench.types import AnswerType, DecimalMark, Task, choice_key


class DatasetSpec(StrictModel):
    #: A folder of images, a manifest file (JSON/YAML list of image paths), or a dataset of rows: JSONL, CSV, TSV,
    #: Parquet (a file, or a folder of them as the Hugging Face hub has them), a Hugging Face ``save_to_disk``
    #: folder, or an imagefolder with a ``metadata.jsonl``/``metadata.csv`` (its image column: ``file_name``).
    path: str
    #: A rows manifest's columns: the image (a path relative to the manifest, an http(s) URL or a data URL), the
    #: reference answer and the item's id (default: the image's path, or ``row-N`` for a URL); the others are fields.
    image: str = "image"
    answer: str = "answer"
    id: str = "id"
    #: Labels file (JSON or YAML: {image: value or {field: value}}), relative to the dataset folder.
    labels: str | None = None
    #: When labels are objects, the field holding the expected answer.
    label_field: str | None = None
    #: Only these images (ids as in the labels file); unknown names are an error.
    include: list[str] | None = None
    #: A Hugging Face dataset's split (save_to_disk DatasetDict, Parquet folder, imagefolder): default ``test`` if
    #: it has one, else its only split.
    split: str | None = None
    #: Only the first N items (after sorting by id), for quick runs.
    limit: int | None = Field(default=None, gt=0)


class TaskSpec(StrictModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = "count-people"
    prompt: str
    answer: AnswerType = "integer"
    system: str | None = None
    #: ``answer: choice``: the labels an answer must be one of.
    choices: list[str] | None = None
    #: ``answer: json``: the JSON Schema every answer must follow (``schema:`` in the config).
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    #: The decimal mark of numbers in replies: "." (1,234.5 is 1234.5) or "," (1.234,5 is 1234.5).
    decimal: DecimalMark = "."
    #: How answers are scored: scorer names, or ``{name: anls, as: anls_strict, threshold: 0.3}`` entries with
    #: the scorer's params (``as``: the key it is known by, for a scorer used twice); the first is the primary
    #: one. None: the answer type's default (``results/scores.py``).
    scorers: list[str | dict[str, Any]] | None = None
    #: A row field (``items[].fields``) the reports break every scorer's mean down by; items without it are
    #: "(none)". ``visionbench report --group-by`` and ``compare --group-by`` name one for a run made without.
    group_by: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _fits_answer(self) -> TaskSpec:
        if self.answer == "choice":
            if not self.choices:
                raise ValueError("answer: choice needs choices: a list of the labels an answer may be")
            seen: dict[str, str] = {}
            for choice in self.choices:
                key = choice_key(choice)
                if not key:
                    raise ValueError(f"choice {choice!r} has no letters or digits")
                if key in seen:
                    raise ValueError(f"choices {seen[key]!r} and {choice!r} are the same once normalised")
                seen[key] = choice
        elif self.choices is not None:
            raise ValueError(f"choices is for answer: choice (this task's answer is {self.answer})")
        if self.json_schema is not None:
            if self.answer != "json":
                raise ValueError(f"schema is for answer: json (this task's answer is {self.answer})")
            import jsonschema

            try:
                jsonschema.Draft202012Validator.check_schema(self.json_schema)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"schema is not a valid JSON Schema: {exc.message}") from None
        return self

    @model_serializer(mode="wrap")
    def _as_written(self, handler: Any) -> Any:
        out = handler(self)
        if isinstance(out, dict) and "json_schema" in out:
            out["schema"] = out.pop("json_schema")
        return out

    def to_task(self) -> Task:
        """The runtime ``Task`` (built here only)."""
        return Task(
            id=self.id,
            prompt=self.prompt,
            answer_type=self.answer,
            system=self.system,
            choices=tuple(self.choices) if self.choices is not None else None,
            schema=self.json_schema,
            decimal=self.decimal,
        )


class MatrixEntry(StrictModel):
    provider: str
    models: list[str] = Field(min_length=1)
    #: Strategy names, or {name: ..., label: ..., <params>} mappings.
    strategies: list[str | dict[str, Any]] = Field(min_length=1)
    #: Model parameters handed to the provider (temperature, thinking, media resolution...); a list sweeps.
    model_params: dict[str, Any] = Field(default_factory=dict)
    #: Preprocessing fields overriding the experiment's for these cells; a list sweeps (max_side: [384, 768]).
    preprocessing: dict[str, Any] = Field(default_factory=dict)

    @field_validator("models", mode="before")
    @classmethod
    def _one_model(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class EmulatorSpec(StrictModel):
    """Run against the local emulator instead of the real services: started in-process, on loopback."""

    #: Folder of labelled images the emulated models answer from; default: the experiment's dataset.
    dataset: str | None = None
    labels: str | None = None
    label_field: str | None = None
    #: Per-model profiles YAML (latency, capacity, rate limits, faults, answer error model); default: packaged.
    profiles: str | None = None
    #: Multiply every simulated delay (0 = instant).
    time_scale: float | None = Field(default=None, ge=0)
    #: Accept only the key in this environment variable, as the services would (others: 400/401); the providers
    #: then send their own keys (api_key_env). Default: any key is accepted and none is needed.
    valid_key_env: str | None = None


class DecideSpec(StrictModel):
    """What the verdict weighs (``decide:``): what to optimise, and the bounds a pick must keep."""

    #: accuracy: the most accurate cell (the primary score), then the cheapest of those as accurate within what
    #: the data can tell; cost: the cheapest; latency: the lowest p95.
    objective: Literal["accuracy", "cost", "latency"] = "accuracy"
    #: Lowest values a pick must reach, by figure: a scorer's key (its mean, 0-1) or ``exact_match``.
    min: dict[str, float] = Field(default_factory=dict)
    #: Highest values a pick may have: ``p95_s`` (latency), ``cost_per_1k`` (dollars per 1,000 items), ``mae``.
    max: dict[Literal["p95_s", "cost_per_1k", "mae"], float] = Field(default_factory=dict)


class ExperimentSpec(StrictModel):
    name: str
    description: str | None = None
    dataset: DatasetSpec
    task: TaskSpec
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    repeats: int = Field(default=1, ge=1)
    #: Endpoints by name: ``plugin:`` (default: the name itself) and that plugin's options, validated by its
    #: Options model into ``Experiment.endpoints``.
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    matrix: list[MatrixEntry] = Field(min_length=1)
    cache_dir: str | None = None
    #: Send every endpoint that has no base_url and speaks a protocol the emulator serves to a local emulator.
    emulator: EmulatorSpec | None = None
    #: Price rows that replace or extend the built-in table (genai-prices, then visionbench/services/prices.yaml).
    pricing: list[dict[str, Any]] = Field(default_factory=list)
    #: What the report's verdict weighs; default: accuracy (the primary score), then cost.
    decide: DecideSpec = Field(default_factory=DecideSpec)
    #: An earlier run (its folder or bundle.json, relative to the config) whose answers stand in for the requests
    #: that match them, instead of sending them (``run --replay RUN``). Off by default: a benchmark measures by
    #: sending.
    replay: str | None = None


@dataclass(frozen=True)
class EndpointSpec:
    """A named endpoint: a provider plugin and its options, validated once, when the config is loaded."""

    name: str
    plugin: str
    options: BaseModel

    def written_options(self) -> dict[str, Any]:
        """The options as JSON (a key is never an option: options name the variable holding it)."""
        return self.options.model_dump(mode="json")


@dataclass(frozen=True)
class Cell:
    """One column of the comparison: an endpoint (``provider``), a model, a strategy with its validated params, and
    the preprocessing."""

    id: str
    provider: str  #: the endpoint's name
    model: str
    strategy: str
    label: str
    params: BaseModel  #: the strategy's Params, validated
    model_params: dict[str, Any]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    #: What sets this cell apart from the others of its provider, model and strategy label (a sweep's values).
    varied: dict[str, Any] = field(default_factory=dict)

    def written_params(self) -> dict[str, Any]:
        """The strategy params the config gave (defaults left out), as JSON."""
        return self.params.model_dump(mode="json", exclude_unset=True)

    def settings(self) -> dict[str, Any]:
        """Everything a sweep may vary, in one mapping (to find what differs between cells)."""
        return {**self.preprocessing.model_dump(), **self.model_params, **self.written_params()}


@dataclass(frozen=True)
class Experiment:
    """A validated config, with paths resolved and the matrix expanded."""

    source: Path
    spec: ExperimentSpec
    task: Task
    cells: tuple[Cell, ...]
    dataset_path: Path
    prices: PriceTable
    #: Every endpoint the config names (``providers:`` and the matrix), by name; tier-1 endpoints the plan adds.
    endpoints: dict[str, EndpointSpec] = field(default_factory=dict)
    #: The task's scorers, built from ``task.scorers`` (or the answer type's default).
    scorers: TaskScorers | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def preprocessing(self) -> Preprocessing:
        return self.spec.preprocessing

    def resolved(self) -> dict[str, Any]:
        """The config as it will run, for the bundle."""
        return self.spec.model_dump(mode="json")


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(source: Path | str, err: ValidationError, prefix: str = "") -> str:
    lines = [f"{source}: invalid config"]
    for e in err.errors():
        loc = tuple(
            p for p in e["loc"] if not (isinstance(p, str) and (p == "str" or p.startswith(("function-", "dict["))))
        )
        where = _where(loc)
        where = f"{prefix}.{where}" if prefix and where != "(top level)" else (prefix or where)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def load_yaml(path: Path) -> Any:
    text = read_text(path, "config")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None


def _strategy_entry(entry: str | dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    if isinstance(entry, str):
        return entry, entry, {}
    entry = dict(entry)
    name = entry.pop("name", None)
    label = entry.pop("label", None) or name
    return name, label, entry


def _validate_params(source: Path, where: str, model: type[BaseModel], params: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(params)
    except ValidationError as err:
        raise ConfigError(format_validation_error(source, err, prefix=where)) from None


def task_scorers(
    source: Path, registry: Registry, task: Task, written: list[str | dict[str, Any]] | None
) -> TaskScorers:
    """The task's scorers as ``task.scorers`` names them (default: its answer type's), params validated, each
    checked to fit the task; errors name the entry."""
    entries: list[str | dict[str, Any]] = list(written) if written else list(DEFAULT_SCORERS[task.answer_type])
    if written is not None and not written:
        raise ConfigError(f"{source}: task.scorers: empty; name at least one scorer (or leave it out for the default)")
    built: list[tuple[str, Scorer]] = []
    for i, entry in enumerate(entries):
        where = f"task.scorers[{i}]"
        params = {} if isinstance(entry, str) else dict(entry)
        name = entry if isinstance(entry, str) else params.pop("name", None)
        key = params.pop("as", name)
        if not isinstance(name, str) or name not in registry.scorers:
            raise ConfigError(
                f"{source}: {where}: unknown scorer {name!r}; loaded scorers: {', '.join(sorted(registry.scorers))}"
            )
        if not isinstance(key, str) or not key or key in dict(built):
            raise ConfigError(f"{source}: {where}: scorer {key!r} is named twice; give one an `as: OTHER_NAME`")
        cls = registry.scorers[name]
        scorer = cls(_validate_params(source, where, cls.Params, params), task)
        why = scorer.check(task)
        if why:
            raise ConfigError(f"{source}: {where}: scorer {name!r} cannot score this task: it {why}")
        built.append((key, scorer))
    return TaskScorers(task, tuple(built))


def build_strategy(registry: Registry, cell: Cell) -> Strategy:
    """The cell's strategy, from the params validated at load."""
    return registry.strategies[cell.strategy](cell.params)


def default_endpoint(source: Path, registry: Registry, name: str, where: str) -> EndpointSpec:
    """The endpoint a config names without a ``providers:`` entry: the plugin of that name, default options."""
    if name not in registry.providers:
        raise ConfigError(
            f"{source}: {where}: unknown provider {name!r}; it is neither an endpoint under providers: nor a "
            f"provider plugin; loaded providers: {', '.join(sorted(registry.providers))}"
        )
    return EndpointSpec(name, name, _validate_params(source, f"providers.{name}", registry.providers[name].Options, {}))


def _endpoints(spec: ExperimentSpec, source: Path, registry: Registry) -> dict[str, EndpointSpec]:
    """``providers:`` validated: each entry an endpoint of a plugin (``plugin:``, default its name) and its options."""
    loaded = ", ".join(sorted(registry.providers))
    out: dict[str, EndpointSpec] = {}
    for name, written in spec.providers.items():
        options = dict(written)
        plugin = options.pop("plugin", name)
        if not isinstance(plugin, str) or plugin not in registry.providers:
            what = (
                f"providers.{name}.plugin: unknown provider plugin {plugin!r}"
                if "plugin" in written
                else f"providers.{name}: unknown provider (an endpoint of another name says which with plugin:)"
            )
            raise ConfigError(f"{source}: {what}; loaded providers: {loaded}")
        if not name or "/" in name:
            raise ConfigError(
                f"{source}: providers.{name}: an endpoint's name cannot hold '/' (cell ids are split on it)"
            )
        cls = registry.providers[plugin]
        out[name] = EndpointSpec(name, plugin, _validate_params(source, f"providers.{name}", cls.Options, options))
    return out


def _preprocessing(source: Path, where: str, base: Preprocessing, override: dict[str, Any]) -> Preprocessing:
    try:
        return Preprocessing.model_validate({**base.model_dump(), **override})
    except ValidationError as err:
        raise ConfigError(format_validation_error(source, err, prefix=where)) from None


def _named(cells: list[Cell], source: Path) -> list[Cell]:
    """Cells of one provider, model and label that a sweep tells apart get what varies in their id and label."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.id, []).append(cell)
    named: list[Cell] = []
    for cell in cells:
        group = groups[cell.id]
        keys = varying([c.settings() for c in group]) if len(group) > 1 else []
        if keys:
            varied = {k: cell.settings().get(k) for k in keys}
            suffix = "@" + describe(varied)
            cell = replace(cell, id=cell.id + suffix, label=cell.label + suffix, varied=varied)
        if any(c.id == cell.id for c in named):
            raise ConfigError(f"{source}: matrix: cell {cell.id!r} appears twice; give one a 'label'")
        named.append(cell)
    return named


def load_experiment(path: str | Path, registry: Registry, *, dataset: str | Path | None = None) -> Experiment:
    """Read, validate and expand an experiment config, checking plugin names against ``registry``.
    ``dataset`` (the ``--dataset`` option) replaces the config's dataset folder: see :func:`with_dataset`."""
    source = Path(path)
    return experiment_from_dict(load_yaml(source), source, registry, dataset=dataset)


def with_dataset(spec: ExperimentSpec, dataset: str | Path) -> ExperimentSpec:
    """``spec`` on another folder of images (or manifest), given relative to the working directory: its labels
    file, by the config's ``labels`` name, is read from there; ``include`` names images of the config's own
    folder, so it is dropped; ``limit`` stays. The path is made absolute, so the bundle (and a resume) keep it."""
    path = Path(dataset).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"--dataset {dataset}: {path} does not exist (give a folder of images, or a manifest)")
    return spec.model_copy(update={"dataset": spec.dataset.model_copy(update={"path": str(path), "include": None})})


def experiment_from_dict(
    raw: Any, source: Path, registry: Registry, *, dataset: str | Path | None = None, dataset_must_exist: bool = True
) -> Experiment:
    """Validate and expand a config already read; relative paths resolve against ``source``'s folder.
    ``dataset_must_exist=False`` (``rescore``, which reads the items its bundle kept) skips the dataset's check."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config must be a YAML mapping with keys name, dataset, task, matrix")
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(source, err)) from None
    if dataset is not None:
        spec = with_dataset(spec, dataset)

    endpoints = _endpoints(spec, source, registry)
    cells: list[Cell] = []
    for i, entry in enumerate(spec.matrix):
        if entry.provider not in endpoints:
            endpoints[entry.provider] = default_endpoint(source, registry, entry.provider, f"matrix[{i}].provider")
        sizes = [
            _preprocessing(source, f"matrix[{i}].preprocessing", spec.preprocessing, p)
            for p in combinations(entry.preprocessing, f"{source}: matrix[{i}].preprocessing")
        ]
        model_params = combinations(entry.model_params, f"{source}: matrix[{i}].model_params")
        for j, strategy_entry in enumerate(entry.strategies):
            name, label, strategy_params = _strategy_entry(strategy_entry)
            where = f"matrix[{i}].strategies[{j}]"
            if name not in registry.strategies:
                raise ConfigError(
                    f"{source}: {where}: unknown strategy {name!r}; "
                    f"loaded strategies: {', '.join(sorted(registry.strategies))}"
                )
            for written in combinations(strategy_params, f"{source}: {where}"):
                params = _validate_params(source, where, registry.strategies[name].Params, written)
                for model, pre, mp in itertools.product(entry.models, sizes, model_params):
                    cell_id = f"{entry.provider}/{model}/{label}"
                    cells.append(Cell(cell_id, entry.provider, model, name, label, params, mp, pre))
    cells = _named(cells, source)

    dataset_path = (source.parent / spec.dataset.path).resolve()
    if dataset_must_exist and not dataset_path.exists():
        raise ConfigError(f"{source}: dataset.path: {dataset_path} does not exist")
    task = spec.task.to_task()
    scorers = task_scorers(source, registry, task, spec.task.scorers)
    for i, (_, scorer) in enumerate(scorers.scorers):  # a judge asks an endpoint of the run, or a plugin's default
        if isinstance(scorer, ModelScorer) and scorer.judge.provider not in endpoints:
            name = scorer.judge.provider
            endpoints[name] = default_endpoint(source, registry, name, f"task.scorers[{i}].provider")
    return Experiment(
        source=source,
        spec=spec,
        task=task,
        scorers=scorers,
        cells=tuple(cells),
        dataset_path=dataset_path,
        prices=default_table()
        .with_overrides(spec.pricing, where=f"{source}: pricing")
        .with_endpoints({e.name: e.plugin for e in endpoints.values()}),
        endpoints=endpoints,
    )
