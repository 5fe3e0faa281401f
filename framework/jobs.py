"""Provider batch jobs remembered across runs, so an interrupted batch is resumed, not paid for twice."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from visionbench.bundle import write_atomic


def job_key(*parts: Any, item_hashes: Iterable[str]) -> str:
    """A key for 'the same batch': provider, model, task, preprocessing and the images' content hashes."""
    payload = json.dumps([list(map(str, parts)), sorted(item_hashes)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class JobStore:
    """A small JSON file of batch jobs by key: job id, provider, state, and the item ids each custom id stands for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._read().get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        with self._lock:
            jobs = self._read()
            jobs[key] = entry
            write_atomic(self.path, jobs)

    def forget(self, key: str) -> None:
        with self._lock:
            jobs = self._read()
            if jobs.pop(key, None) is not None:
                write_atomic(self.path, jobs)
