"""Resuming a run that stopped half-way: its bundle says what was done; only what is missing runs again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionbench.bundle import load as load_bundle
from visionbench.config import Experiment, experiment_from_dict
from visionbench.errors import ConfigError
from visionbench.plan import Plan, prepare
from visionbench.plugins import Registry


def prepare_resume(run: str | Path, registry: Registry) -> tuple[Plan, dict[str, Any]]:
    """The plan of a previous run, rebuilt from its bundle's resolved config, checked against the dataset now."""
    bundle = load_bundle(run)
    if bundle["status"] == "complete":
        raise ConfigError(f"{run}: this run is complete; nothing to resume")
    experiment: Experiment = experiment_from_dict(bundle["config"], Path(bundle["config_path"]), registry)
    plan = prepare(experiment, registry)
    then = {item["id"]: item["sha256"] for item in bundle["items"]}
    now = {item.id: item.sha256 for item in plan.items}
    if then != now:
        changed = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
        raise ConfigError(
            f"{run}: the dataset changed since this run started ({len(changed)} images differ, "
            f"e.g. {', '.join(changed[:3])}); "
            "start a new run instead"
        )
    return plan, bundle
