"""Scoring a run again without asking again: its stored replies re-parsed and re-scored with the (changed) task.

``visionbench rescore RUN [--config CHANGED.yaml]`` reads the run's bundle, takes its config (or the changed one,
validated as a run's is), re-parses each record's raw reply with the task's answer type, choices, schema and
decimal rule, feeds the records in their order through each cell's strategy tally (which answer counts for each
item: adaptive's tier 2 where it answered), and scores the final answers with the task's scorers. A new run
folder holds the result; its bundle names its source (``rescored_from``). No provider is started, no request is
sent: anything that would have changed what was sent (a prompt, a model, the images...) is refused.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from visionbench.data.dataset import task_label
from visionbench.errors import ConfigError
from visionbench.provider import Provider
from visionbench.results.bundle import BUNDLE_NAME, now_iso, write
from visionbench.results.bundle import load as load_bundle
from visionbench.results.model import Bundle, CellEntry, record_from_json, record_to_json
from visionbench.results.scores import Replies, judge_figures, judge_verdicts, score_rows
from visionbench.results.scoring import accuracy
from visionbench.run.answers import parse_answers
from visionbench.run.cellrun import CellRun
from visionbench.run.config import (
    Cell,
    Experiment,
    build_strategy,
    default_endpoint,
    experiment_from_dict,
    load_yaml,
)
from visionbench.run.judging import earlier_verdicts, judge_cell, judge_jobs
from visionbench.run.plan import build_provider
from visionbench.run.plugins import Registry
from visionbench.run.prompts import multi_image_prompt, response_schema
from visionbench.run.runner import final_status, new_run_id
from visionbench.strategy import Tally
from visionbench.types import Answer, ImageItem, Record, Task

log = logging.getLogger(__name__)

#: What a changed config may change: how replies are read and scored (and what the run is called). Anything else
#: changes what was sent, which items and labels were asked about, or what it cost: that is a new run.
CHANGEABLE = (
    ("name",),
    ("replay",),
    ("description",),
    ("cache_dir",),
    ("task", "answer"),
    ("task", "choices"),
    ("task", "schema"),
    ("task", "decimal"),
    ("task", "scorers"),
    ("task", "group_by"),
    ("decide",),
)
#: The summary figures a rescore makes again; the others (times, tokens, costs, requests) are the source run's.
RESCORED = ("errors", "labelled", "answered", "exact_match", "mae", "field_match", "scores")


def rescore(
    run: str | Path,
    registry: Registry,
    *,
    config: str | Path | None = None,
    results_dir: str | Path | None = None,
    run_id: str | None = None,
    ask_judges: bool = True,
    cache_dir: str | Path | None = None,
) -> Path:
    """Rescore the run at ``run`` (its folder or bundle.json) with its own config, or ``config``; write the new
    bundle in ``results_dir`` (default: beside the source run's folder) and return its path. Raises ConfigError
    (or InputError for a bundle that cannot be read) before anything is written."""
    source = load_bundle(run, lazy=True)
    source_path = Path(run).resolve()
    source_path = source_path / BUNDLE_NAME if source_path.is_dir() else source_path
    old = _experiment(source.config, Path(source.config_path), registry, f"{source_path}: the run's config")
    if config is None:
        new = old
    else:
        new = _experiment(load_yaml(Path(config)), Path(config), registry, None)
        _refuse_changes(old, new, Path(config))
    task = new.task
    if (old.task.answer_type, old.task.choices, old.task.schema) != (task.answer_type, task.choices, task.schema):
        _refuse_other_requests(source, old, new, registry, Path(config or source_path))
    items = _items(source, task, config or source_path)
    strategies = {cell.id: build_strategy(registry, cell) for cell in new.cells}
    tallies: dict[tuple[str, int], Tally] = {}
    judged: dict[tuple[str, int], list[Record]] = {}
    replies: dict[tuple[str, int], Replies] = {}  # only for scorers that read the raw replies
    keep_replies = new.scorers is not None and new.scorers.needs_reply
    for data in _reparsed(source.records, task):
        key = (data["cell"], data.get("repeat", 0))
        if data.get("judge") is not None:  # a judge's verdict: not an answer of the cell
            judged.setdefault(key, []).append(record_from_json(data))
            continue
        if key not in tallies:
            if data["cell"] not in strategies:
                raise ConfigError(f"{source_path}: record of cell {data['cell']!r}, which the config has no cell for")
            tallies[key] = strategies[data["cell"]].tally()
        record = record_from_json(data)
        tallies[key].add(record)
        if keep_replies:
            replies.setdefault(key, Replies()).add(record)
    by_id = {cell.id: cell for cell in new.cells}
    asked: list[Record] = []
    if ask_judges:
        finals = {key: dict(tally.final_answers()) for key, tally in tallies.items()}
        asked = _judge_again(new, registry, items, finals, judged, by_id, cache_dir)
        for record in asked:
            judged.setdefault((record.cell, record.repeat), []).append(record)
    cells = [
        _cell(
            entry,
            tallies.get((entry.id, entry.repeat)),
            items,
            new,
            judged.get((entry.id, entry.repeat), []),
            by_id,
            replies.get((entry.id, entry.repeat)),
        )
        for entry in source.cells
    ]

    header = {k: v for k, v in source.to_json().items() if k not in ("records", "records_file")}
    run_id = run_id or new_run_id(new.name)
    header.update(
        run_id=run_id,
        config_path=str(Path(config).resolve()) if config is not None else source.config_path,
        config=new.resolved(),
        rescored_from={"run_id": source.run_id, "path": str(source_path), "at": now_iso()},
        cells=cells,
    )
    if source.status in ("complete", "incomplete"):  # a run that asked every item: failed ones may differ now
        header["status"] = final_status([CellEntry.of(c) for c in cells])
    out_dir = Path(results_dir) if results_dir is not None else source_path.parent.parent
    path = out_dir / run_id / BUNDLE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    records = itertools.chain(_reparsed(source.records, task), (record_to_json(r) for r in asked))
    write(path, {**header, "records": records})
    return path


def _judge_again(
    experiment: Experiment,
    registry: Registry,
    items: list[ImageItem],
    finals: dict[tuple[str, int], dict[str, Answer]],
    judged: dict[tuple[str, int], list[Record]],
    cells: dict[str, Cell],
    cache_dir: str | Path | None,
) -> list[Record]:
    """The LLM judges asked again about the items whose answer (or question) changed since the run judged them, and
    only those (``judge_cell`` keeps every verdict about the same inputs), through the config's endpoints (the
    emulator when it has ``emulator:``); their records. None asked when nothing changed, or when the dataset's
    images are not there to show the judge (a warning: those verdicts stay left out)."""
    stale = [
        key
        for key, final in finals.items()
        if judged.get(key)
        and any(
            STALE in verdicts.values()
            for verdicts in (_verdicts(experiment, cells.get(key[0]), key[1], items, final, judged[key]) or {}).values()
        )
    ]
    if not stale or experiment.scorers is None:
        return []
    from visionbench.data.dataset import default_cache_dir
    from visionbench.data.image_bytes import Preprocessor
    from visionbench.run.calling import Caller
    from visionbench.run.plan import prepare, started

    try:
        plan = prepare(experiment, registry, cache_dir=cache_dir)
    except ConfigError as exc:
        log.warning("the LLM judge is not asked again about changed answers: %s", exc)
        return []
    if not {(i.id, i.sha256) for i in items} <= {(i.id, i.sha256) for i in plan.items}:
        log.warning("the LLM judge is not asked again: the dataset's images are not those the run had")
        return []
    scorers = experiment.scorers
    asked: list[Record] = []

    async def ask() -> None:
        async with started(plan) as live:
            caller = Caller(experiment.spec.retry)
            cache = Path(cache_dir) if cache_dir else Path(experiment.spec.cache_dir or default_cache_dir())
            with Preprocessor(cache) as preprocessor:
                for cell_id, repeat in stale:
                    cell = cells[cell_id]
                    run = CellRun(
                        cell.id,
                        repeat,
                        experiment.task,
                        cell.preprocessing,
                        cell.provider,
                        cell.model,
                        cell.model_params,
                    )
                    await judge_cell(
                        scorers,
                        run,
                        plan.items,
                        finals[(cell_id, repeat)],
                        providers=live.providers,
                        caller=caller,
                        preprocessor=preprocessor,
                        prices=experiment.prices,
                        on_record=asked.append,
                        earlier=judged[(cell_id, repeat)],
                    )

    asyncio.run(ask())
    return asked


def _experiment(raw: Any, source: Path, registry: Registry, what: str | None) -> Experiment:
    """A config validated as a run's (its dataset need not be there: the bundle holds the items)."""
    try:
        return experiment_from_dict(raw, source, registry, dataset_must_exist=False)
    except ConfigError as exc:
        if what is None:
            raise
        raise ConfigError(f"{what} no longer loads: {exc}") from None


def _differences(a: Any, b: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where two configs' JSON differ, as key paths (a list of another length differs as a whole)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in list(a) + [k for k in b if k not in a]:
            yield from _differences(a.get(key), b.get(key), (*path, key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _differences(x, y, (*path, i))
    elif a != b:
        yield path


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def _refuse_changes(old: Experiment, new: Experiment, source: Path) -> None:
    """Refuse a config that changes anything but how replies are read and scored, naming what changed."""
    before, after = old.resolved(), new.resolved()
    before["dataset"]["path"], after["dataset"]["path"] = str(old.dataset_path), str(new.dataset_path)
    emulator_before, emulator_after = before.get("emulator"), after.get("emulator")
    if isinstance(emulator_before, dict) and isinstance(emulator_after, dict) and emulator_after["time_scale"] is None:
        # the run's bundle records the time scale it ran at even when only the profiles set it
        emulator_after["time_scale"] = emulator_before["time_scale"]
    changed = [_dotted(p) for p in _differences(before, after) if not any(p[: len(c)] == c for c in CHANGEABLE)]
    if changed:
        allowed = ", ".join(_dotted(c) for c in CHANGEABLE)
        raise ConfigError(
            f"{source}: rescore cannot change {', '.join(changed)}: it re-reads the replies the run got, for the "
            f"items and labels it kept, and cannot ask again; only {allowed} may change (run the changed config "
            "for a new run: visionbench run CONFIG)"
        )


def _items(source: Bundle, task: Task, where: str | Path) -> list[ImageItem]:
    """The run's items as its bundle kept them, each label as ``task`` takes it (a label that no longer fits the
    task's answer type or choices is refused: rescore scores against the run's own labels)."""
    out = []
    for entry in source.item_entries:
        label = entry["label"]
        if label is not None:
            try:
                label = task_label(label, task)
            except ValueError as exc:
                raise ConfigError(
                    f"{where}: item {entry['id']!r}: its label {exc}; rescore scores against the labels the run "
                    "kept (run the changed config on a dataset labelled for it instead)"
                ) from None
        out.append(ImageItem(entry["id"], Path(entry["id"]), entry["sha256"], label, entry.get("fields")))
    return out


def _refuse_other_requests(source: Bundle, old: Experiment, new: Experiment, registry: Registry, where: Path) -> None:
    """Refuse a change of answer type, choices or schema that the run's requests stated: the wording of a request
    of several items (which says what each answer is), or the answer schema sent for structured output."""
    images = {entry["id"]: len(entry.get("images") or ()) or 1 for entry in source.item_entries}
    providers: dict[str, Provider] = {}
    seen: set[tuple[Any, ...]] = set()
    for data in source.records:
        ids = list(data["item_ids"])
        counts = tuple(images.get(i, 1) for i in ids)
        key = (data["provider"], data["model"], counts)
        if data.get("attempts", 0) == 0 or key in seen:  # never sent (an image that failed), or checked
            continue
        seen.add(key)
        n, several = len(ids), any(c > 1 for c in counts)
        what = f"cell {data['cell']}'s requests"
        if n > 1:
            per = counts if several else None
            if multi_image_prompt(old.task, n, None, per) != multi_image_prompt(new.task, n, None, per):
                raise ConfigError(
                    f"{where}: rescore cannot change task.answer, task.choices or task.schema here: {what} asked "
                    f"about {n} items at once, in words that say what each answer is; that is a new run"
                )
        if response_schema(old.task, n) != response_schema(new.task, n):
            name = data["provider"]
            if name not in providers:
                endpoint = new.endpoints.get(name) or default_endpoint(where, registry, name, what)
                providers[name] = build_provider(registry, endpoint)  # built, never started: no request
            if providers[name].capabilities(data["model"]).structured_output:
                raise ConfigError(
                    f"{where}: rescore cannot change task.answer, task.choices or task.schema here: {what} sent "
                    f"the answer's schema to {name}/{data['model']} (structured output); that is a new run"
                )


def _reparsed(records: Iterable[dict[str, Any]], task: Task) -> Iterator[dict[str, Any]]:
    """Each record with its answers parsed again from its raw reply; a record that failed stays as it was, and so
    does a judge's (its reply is a verdict, read by its scorer)."""
    for data in records:
        raw = data.get("raw_text")
        if data.get("error") is None and raw is not None and data.get("judge") is None:
            answers = parse_answers(raw, list(data["item_ids"]), task)
            data = {**data, "answers": [{"item_id": a.item_id, "value": a.value, "error": a.error} for a in answers]}
        yield data


def _cell(
    entry: CellEntry,
    tally: Tally | None,
    items: list[ImageItem],
    experiment: Experiment,
    judged: list[Record],
    cells: dict[str, Cell],
    replies: Replies | None = None,
) -> dict[str, Any]:
    """A cell entry rescored: its final answers from the tally, its answer figures and scores made again, the rest
    (status, times, tokens, costs, the strategy's run figures) as the source run had them."""
    final: dict[str, Answer] = dict(tally.final_answers()) if tally is not None else {}
    verdicts = _verdicts(experiment, cells.get(entry.id), entry.repeat, items, final, judged)
    figures = {
        "errors": sum(1 for item in items if item.id not in final or final[item.id].error is not None),
        **accuracy(items, final, experiment.task.answer_type),
        "scores": _scores(experiment, items, final, entry.id, verdicts, judged, replies.of(final) if replies else None),
    }
    # in the source's order; a figure of the old answer type only (a json task's field_match) goes
    summary = {k: figures.get(k, v) for k, v in entry.summary.items() if k not in RESCORED or k in figures}
    summary.update(figures)
    extra = dict(entry.extra)
    if tally is not None:
        extra.update(tally.summarize(items))
    return {**entry.to_json(), "summary": summary, "answers": final, "extra": extra}


#: Why a judge's verdict is not used: what it was asked about has changed, and it was not asked again (``--no-judge``,
#: or its images are not there).
STALE = "not judged again: its answer or question changed since the run judged it"


def _verdicts(
    experiment: Experiment,
    cell: Cell | None,
    repeat: int,
    items: list[ImageItem],
    final: dict[str, Answer],
    judged: list[Record],
) -> dict[str, dict[str, Any]] | None:
    """A model scorer's (LLM judge's) verdicts as the run gave them, where what it would be asked now is what it
    was asked then (the same inputs digest); where the answer or question changed, ``STALE`` (left out of its mean,
    counted in ``judge.errors``). None when the cell was never judged."""
    scorers = experiment.scorers
    if scorers is None or not scorers.judges or cell is None or not judged:
        return None
    run = CellRun(cell.id, repeat, experiment.task, cell.preprocessing, cell.provider, cell.model, cell.model_params)
    given = judge_verdicts(judged)
    asked = {(key, digest) for key, digest in earlier_verdicts(judged)}
    asked |= {(r.judge["scorer"], r.judge.get("inputs")) for r in judged if r.judge is not None}
    out: dict[str, dict[str, Any]] = {}
    for key, scorer in scorers.judges:
        now = {item.id: digest for item, _, digest in judge_jobs(scorers, scorer, run, items, final)}
        out[key] = {
            item_id: given.get(key, {}).get(item_id, STALE) if (key, digest) in asked else STALE
            for item_id, digest in now.items()
        }
    return out


def _scores(
    experiment: Experiment,
    items: list[ImageItem],
    final: dict[str, Answer],
    cell_id: str,
    verdicts: dict[str, dict[str, Any]] | None = None,
    judged: Iterable[Record] = (),
    replies: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The task's scorers' figures (as a run's: a scorer that fails costs its figures, logged), a judge's with its
    requests' figures."""
    if experiment.scorers is None:
        return {}
    try:
        scores = experiment.scorers.score_cell(score_rows(items), final, verdicts, replies)
        for key, figures in judge_figures(judged).items():
            if key in scores:
                stale = sum(1 for v in (verdicts or {}).get(key, {}).values() if v == STALE)
                scores[key]["judge"] = {**figures, "errors": figures.get("errors", 0) + stale}
        return scores
    except Exception as exc:  # noqa: BLE001 - a plugin's bug is reported, the answers are kept
        log.error("cell %s: scoring failed: %s: %s", cell_id, type(exc).__name__, exc)
        return {}


__all__ = ["CHANGEABLE", "rescore"]
