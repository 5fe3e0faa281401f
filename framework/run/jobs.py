"""Provider batch jobs remembered across runs, so an interrupted batch is resumed, not paid for twice."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from visionbench.results.bundle import write_atomic
from visionbench.run.cellrun import CellRun

log = logging.getLogger(__name__)


def job_key(*parts: Any, item_hashes: Iterable[str]) -> str:
    """A key for 'the same batch': provider, model, task, preprocessing and the images' content hashes."""
    payload = json.dumps([list(map(str, parts)), sorted(item_hashes)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class JobStore:
    """A small JSON file of batch jobs by key: job id, provider, the cell, and the item ids each custom id stands for.

    A cell's batch may be several jobs (the services limit a job's requests and bytes): each is saved under its
    own key as soon as it is submitted, and forgotten once its results are recorded.

    Several runs (processes) may share one results folder: every change is a read-modify-write under an
    exclusive lock on a ``.lock`` file beside it, and the file is replaced atomically, so readers never
    need the lock and no run loses another's job id.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file is closed
            yield

    def _read(self, *, set_aside: bool = False) -> dict[str, Any]:
        try:
            jobs = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            jobs = exc
        if isinstance(jobs, dict):
            return jobs
        aside = self.path.with_name(self.path.name + ".corrupt")
        log.warning(
            "%s: corrupt or unreadable (%s); treated as holding no batch jobs%s",
            self.path,
            jobs if isinstance(jobs, Exception) else "not a JSON object",
            f", kept as {aside}" if set_aside else "",
        )
        if set_aside:
            with suppress(OSError):
                os.replace(self.path, aside)
        return {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._read().get(key)

    def of_cell(self, cell: str) -> dict[str, dict[str, Any]]:
        """The saved jobs of one cell and repeat (entries whose ``cell`` is ``cell``), by key."""
        return {k: v for k, v in self._read().items() if isinstance(v, dict) and v.get("cell") == cell}

    def put(self, key: str, entry: dict[str, Any]) -> None:
        with self._locked():
            jobs = self._read(set_aside=True)
            jobs[key] = entry
            write_atomic(self.path, jobs)

    def forget(self, key: str) -> None:
        with self._locked():
            jobs = self._read(set_aside=True)
            if jobs.pop(key, None) is not None:
                write_atomic(self.path, jobs)


def cell_job_key(run: CellRun, item_hashes: Iterable[str]) -> str:
    """'The same batch' of a cell: this cell and repeat, its model and settings, and the images' content
    (no images: the cell's own key, which its jobs are saved with)."""
    return job_key(
        run.cell_id,
        run.repeat,
        run.provider,
        run.model,
        run.task,
        run.preprocessing.key(),
        run.model_params,
        item_hashes=item_hashes,
    )
