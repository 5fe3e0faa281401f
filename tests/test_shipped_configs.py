"""Every config in configs/ runs from a fresh clone: it validates, and every path it names is inside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from visionbench.run.plan import load_plan
from visionbench.run.plugins import default_registry

ROOT = Path(__file__).resolve().parents[1]
#: Experiment configs (the emulator profiles files beside them have no matrix).
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if "matrix" in yaml.safe_load(p.read_text()))


def test_the_shipped_experiment_configs_are_found() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"quickstart", "adaptive-filter-emulated", "seed-notebook-emulated", "concurrency-sweep-emulated"} <= names
    assert {"yes-no-emulated", "classify-emulated", "receipts-emulated", "vqa-emulated"} <= names  # the task demos


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_validates_on_repository_data_only(config: Path) -> None:
    plan = load_plan(config, default_registry())  # what `visionbench validate` does, warnings aside
    assert len(plan.items) >= 4 and plan.experiment.cells
    spec = plan.experiment.spec
    paths = [plan.experiment.dataset_path] + [image.path for item in plan.items for image in item.images()]
    if spec.emulator is not None:
        paths += [config.parent / p for p in (spec.emulator.profiles, spec.emulator.dataset) if p]
    for path in paths:
        assert path.resolve().is_relative_to(ROOT), (config.name, path)
    assert all(item.label is not None for item in plan.items)  # every image labelled: accuracy is measured
