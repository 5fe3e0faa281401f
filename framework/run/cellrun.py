"""The fixed facts of one cell and repeat: what every part of running it reads and nothing changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from visionbench.preprocessing import Preprocessing
from visionbench.types import Task


@dataclass(frozen=True)
class CellRun:
    """One cell and repeat: its id, the task, the cell's preprocessing, provider, model and model params."""

    cell_id: str
    repeat: int
    task: Task
    preprocessing: Preprocessing
    provider: str
    model: str
    model_params: dict[str, Any]


__all__ = ["CellRun"]
