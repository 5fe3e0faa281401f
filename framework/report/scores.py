"""The task's scorers as the reports read them: rebuilt from the bundle's config through the plugin registry, each
cell's score of each item (the mean over its repeats, with the first repeat's ``why``) and its scorers' figures.

A bundle from before scorers (no cell summary has ``scores``), or one naming a scorer that is not installed, has
none: the reports then show exact match and MAE as before, with :attr:`Found.note` saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionbench.results.model import Bundle
from visionbench.results.scores import DEFAULT_SCORERS, TaskScorers
from visionbench.run.plugins import Registry

#: How a cell's metrics read at a glance, per metric name: (short head, format). Only these are shown as columns;
#: a scorer's other figures (a per-class table, a confusion matrix) have tables of their own in report.html.
GLANCE: dict[str, tuple[str, str]] = {
    "macro_f1": ("macro-F1", ".2f"),
    "balanced_accuracy": ("bal. acc", ".0%"),
    "mae": ("MAE", ".2f"),
    "whole_object": ("whole", ".0%"),
}

#: Rows of a ``group_by`` table for items without the field.
NO_GROUP = "(none)"


@dataclass(frozen=True)
class CellScores:
    """One cell's scores: per scorer key, each labelled item's score (mean over repeats) and why (first repeat)."""

    values: dict[str, dict[str, float]]
    why: dict[str, dict[str, str | None]]
    #: One repeat, every score 0 or 1 (paired tests use McNemar's exact test then).
    binary: dict[str, bool]
    #: Per scorer key: its metrics, numbers averaged over repeats, tables (per class, confusion) the first repeat's.
    metrics: dict[str, dict[str, Any]]
    repeats: int

    def mean(self, key: str) -> float | None:
        values = self.values.get(key) or {}
        return sum(values.values()) / len(values) if values else None


@dataclass(frozen=True)
class Found:
    """A bundle's scores, or why it has none (``scorers`` None: the reports fall back to exact match and MAE)."""

    scorers: TaskScorers | None
    cells: dict[str, CellScores]
    note: str | None = None

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.scorers.scorers] if self.scorers else []

    @property
    def primary(self) -> str | None:
        return self.scorers.primary if self.scorers else None

    @property
    def answer_type(self) -> str | None:
        return self.scorers.task.answer_type if self.scorers else None


_cache: dict[tuple[int, int, int, int], tuple[tuple[Any, ...], Found]] = {}


def bundle_scores(bundle: Mapping[str, Any], registry: Registry | None = None) -> Found:
    """The bundle's scorers and every cell's scores (computed once per bundle and registry)."""
    bundle = Bundle.of(bundle)
    if registry is None:
        from visionbench.run.plugins import default_registry

        registry = default_registry()
    cells, items = dict.get(bundle, "cells"), dict.get(bundle, "items")
    key = (id(cells), id(items), id(registry), len(cells or ()))
    held = _cache.get(key)
    if held is not None and all(a is b for a, b in zip(held[0], (cells, items, registry))):
        return held[1]
    found = _scores(bundle, registry)
    if len(_cache) > 8:
        _cache.clear()
    _cache[key] = ((cells, items, registry), found)
    return found


def _scorers(bundle: Bundle, registry: Registry) -> tuple[TaskScorers | None, str | None]:
    from visionbench.run.config import TaskSpec, task_scorers

    if not any(e.summary.get("scores") for e in bundle.cells):
        return None, "scores: none in this bundle (it was run before scorers); shown: exact match and MAE"
    written = bundle.task.get("scorers")
    spec = {k: v for k, v in bundle.task.items() if k != "scorers"}
    try:
        task = TaskSpec.model_validate(spec).to_task()
    except Exception as exc:  # noqa: BLE001 - an old or hand-edited task costs the scores, not the report
        return None, f"scores: the bundle's task does not read as one ({type(exc).__name__}); shown: exact match"
    names = [e if isinstance(e, str) else e.get("name") for e in (written or DEFAULT_SCORERS.get(task.answer_type, ()))]
    missing = [str(n) for n in names if n not in registry.scorers]
    if missing:
        return None, (
            f"scores: scorer {', '.join(map(repr, missing))} is not installed; shown: exact match and MAE "
            "(install the plugin that provides it to see its scores)"
        )
    try:
        return task_scorers(Path(bundle.config_path or "bundle"), registry, task, written), None
    except Exception as exc:  # noqa: BLE001
        return None, f"scores: the task's scorers do not load ({exc}); shown: exact match and MAE"


def _scores(bundle: Bundle, registry: Registry) -> Found:
    scorers, note = _scorers(bundle, registry)
    if scorers is None:
        return Found(None, {}, note)
    rows = [(item.id, item.label, item.fields) for item in bundle.item_entries]
    runs: dict[str, list[Any]] = {}
    for entry in bundle.cells:
        runs.setdefault(entry.id, []).append(entry)
    out: dict[str, CellScores] = {}
    verdicts = _verdicts(bundle) if scorers.judges else {}
    replies = _replies(bundle) if scorers.needs_reply else {}
    try:
        for cell_id, entries in runs.items():
            per_repeat = [
                scorers.item_scores(
                    rows,
                    entry.answers,
                    verdicts.get((entry.id, entry.repeat), {}),
                    kept.of(entry.answers) if (kept := replies.get((entry.id, entry.repeat))) else None,
                )
                for entry in entries
            ]
            values, why, binary, metrics = {}, {}, {}, {}
            for key in scorers.scorers:
                name = key[0]
                firsts = per_repeat[0].get(name, {})
                # an LLM judge's verdicts are the run's (its records); an item it could not score is left out
                values[name] = {
                    item_id: _mean([r[name][item_id].value for r in per_repeat if item_id in r.get(name, {})])
                    for item_id in firsts
                }
                why[name] = {item_id: score.why for item_id, score in firsts.items()}
                binary[name] = len(per_repeat) == 1 and all(s.value in (0.0, 1.0) for s in firsts.values())
                metrics[name] = _metrics([(e.summary.get("scores") or {}).get(name) or {} for e in entries])
            out[cell_id] = CellScores(values, why, binary, metrics, len(entries))
    except Exception as exc:  # noqa: BLE001 - a plugin's bug costs the scores, not the report
        return Found(None, {}, f"scores: scoring failed ({type(exc).__name__}: {exc}); shown: exact match and MAE")
    return Found(scorers, out)


def _verdicts(bundle: Bundle) -> dict[tuple[str, int], Any]:
    """The LLM judges' verdicts of each cell and repeat, read from the bundle's judge records (never asked again)."""
    from visionbench.results.model import record_from_json
    from visionbench.results.scores import judge_verdicts

    judged: dict[tuple[str, int], list[Any]] = {}
    for data in bundle.records:
        if data.get("judge") is not None:
            judged.setdefault((data["cell"], data.get("repeat", 0)), []).append(record_from_json(dict(data)))
    return {key: judge_verdicts(records) for key, records in judged.items()}


def _replies(bundle: Bundle) -> dict[tuple[str, int], Any]:
    """The raw replies of each cell and repeat, from the bundle's records (for scorers that read them)."""
    from visionbench.results.model import record_from_json
    from visionbench.results.scores import Replies

    out: dict[tuple[str, int], Replies] = {}
    for data in bundle.records:
        if data.get("judge") is None and data.get("raw_text") is not None:
            out.setdefault((data["cell"], data.get("repeat", 0)), Replies()).add(record_from_json(dict(data)))
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _metrics(figures: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A scorer's metrics over a cell's repeats: numbers averaged, anything else the first repeat's."""
    found = [f.get("metrics") or {} for f in figures]
    out: dict[str, Any] = {}
    for name, value in (found[0] if found else {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers = [v for f in found if isinstance(v := f.get(name), (int, float))]
            out[name] = sum(numbers) / len(numbers)
        else:
            out[name] = value
    return out


def glance(found: Found, cell_id: str | None, exact_shown: bool = False) -> list[tuple[str, str]]:
    """A cell's metrics worth a glance, as (head, text): macro-F1 and balanced accuracy, MAE, whole objects (not
    when the table shows exact match, which is a json task's whole-object accuracy over every labelled image).
    A head names its scorer only when two scorers have the same figure."""
    cell = found.cells.get(cell_id) if cell_id is not None else None
    wanted = [(key, name) for key in found.keys for name in GLANCE if name in _glance_names(found, key)]
    if exact_shown:
        wanted = [(key, name) for key, name in wanted if name != "whole_object"]
    twice = {name for _, name in wanted if sum(1 for _, n in wanted if n == name) > 1}
    out = []
    for key, name in wanted:
        head, spec = GLANCE[name]
        value = (cell.metrics.get(key) or {}).get(name) if cell else None
        shown = f"{key} {head}" if name in twice else head
        out.append((shown, "-" if not isinstance(value, (int, float)) else format(value, spec)))
    return out


def _glance_names(found: Found, key: str) -> set[str]:
    """The glance metrics any cell has of scorer ``key``."""
    return {name for cell in found.cells.values() for name in cell.metrics.get(key, {}) if name in GLANCE}


def shows_exact(found: Found) -> bool:
    """Whether one of the scorers' mean is exact match (``exact``, ``classes``, ``numeric`` without a tolerance), so a
    table need not show exact match beside it."""
    for _, scorer in found.scorers.scorers if found.scorers else ():
        name, params = getattr(scorer, "name", ""), getattr(scorer, "params", None)
        if name in ("exact", "classes"):
            return True
        if name == "numeric" and not getattr(params, "abs_tol", 1) and not getattr(params, "rel_tol", 1):
            return True
    return False


def group_field(bundle: Mapping[str, Any], override: str | None = None) -> str | None:
    """The row field scores are broken down by: ``override`` (``--group-by``), else the task's ``group_by``."""
    if override:
        return override
    value = Bundle.of(bundle).task.get("group_by")
    return value if isinstance(value, str) and value else None


def groups(bundle: Mapping[str, Any], field: str) -> dict[str, list[str]]:
    """Item ids by their value of ``field`` (items without it under ``(none)``), in order of first appearance."""
    out: dict[str, list[str]] = {}
    for item in Bundle.of(bundle).item_entries:
        fields = item.fields or {}
        value = fields.get(field)
        name = NO_GROUP if value is None or value == "" else str(value)
        out.setdefault(name, []).append(item.id)
    if NO_GROUP in out:
        out[NO_GROUP] = out.pop(NO_GROUP)
    return out


def group_means(found: Found, cell_id: str, key: str, ids: list[str]) -> tuple[float | None, int]:
    """Scorer ``key``'s mean over the labelled items of ``ids`` in a cell, and how many there were."""
    values = (found.cells[cell_id].values.get(key) or {}) if cell_id in found.cells else {}
    got = [values[i] for i in ids if i in values]
    return (sum(got) / len(got) if got else None), len(got)


__all__ = ["GLANCE", "NO_GROUP", "CellScores", "Found", "bundle_scores", "glance", "group_field", "groups"]
