"""Resuming a run that stopped half-way: its bundle says what was done; only what is missing runs again."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from visionbench.errors import ConfigError
from visionbench.results.bundle import load as load_bundle
from visionbench.results.model import Bundle
from visionbench.run.config import Experiment, experiment_from_dict
from visionbench.run.plan import Plan, prepare
from visionbench.run.plugins import Registry


def failed_items(bundle: Mapping[str, Any]) -> int:
    """How many items of the run's cells (all repeats) ended without an answer."""
    return sum(entry.summary.errors for entry in Bundle.of(bundle).cells)


def prepare_resume(
    run: str | Path, registry: Registry, *, retry_errors: bool = False, cache_dir: str | Path | None = None
) -> tuple[Plan, Bundle]:
    """The plan of a previous run, rebuilt from its bundle's resolved config, checked against the dataset now.

    A run that asked about every item (complete, or incomplete with failed items) has nothing left to resume,
    unless ``retry_errors`` asks its failed items again.
    """
    bundle = load_bundle(run, lazy=True)
    failed = failed_items(bundle)
    if bundle.status in ("complete", "incomplete"):
        if not failed:
            raise ConfigError(f"{run}: this run is complete, every item answered; nothing to resume")
        if not retry_errors:
            raise ConfigError(f"{run}: every item was asked and {failed} failed; add --retry-errors to ask those again")
    experiment: Experiment = experiment_from_dict(bundle.config, Path(bundle.config_path), registry)
    plan = prepare(experiment, registry, cache_dir=cache_dir)
    plan.session = len(bundle.resumed_at or []) + 1
    then = {item.id: item.sha256 for item in bundle.item_entries}
    now = {item.id: item.sha256 for item in plan.items}
    if then != now:
        changed = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
        raise ConfigError(
            f"{run}: the dataset changed since this run started ({len(changed)} images differ, "
            f"e.g. {', '.join(changed[:3])}); "
            "start a new run instead"
        )
    return plan, bundle
