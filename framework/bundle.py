"""The JSON result bundle: one file per run, always valid on disk, rewritten atomically as the run goes."""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from dataclasses import fields
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from visionbench.secrets import redact
from visionbench.types import ImageItem, Record

SCHEMA_VERSION = 1
BUNDLE_NAME = "bundle.json"


def schema() -> dict[str, Any]:
    """The bundle's JSON Schema (shipped as visionbench/schema/bundle.schema.json)."""
    return json.loads(resources.files("visionbench").joinpath("schema/bundle.schema.json").read_text())


def validate(bundle: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``bundle`` does not follow the schema."""
    jsonschema.validate(bundle, schema())


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record_to_json(record: Record) -> dict[str, Any]:
    # Shallow by hand: dataclasses.asdict deep-copies every field, a measurable cost at thousands of records.
    data = {f.name: getattr(record, f.name) for f in fields(record)}
    data["usage"] = None if record.usage is None else {f.name: getattr(record.usage, f.name) for f in fields(record.usage)}
    data["answers"] = [{"item_id": a.item_id, "value": a.value, "error": a.error} for a in record.answers]
    data["item_ids"] = list(record.item_ids)
    data["latency_s"] = record.latency_s
    return data


def item_to_json(item: ImageItem) -> dict[str, Any]:
    return {"id": item.id, "sha256": item.sha256, "label": item.label}


def write_atomic(path: Path, data: dict[str, Any], *, indent: int | None = 1, sync: bool = True) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over: readers never see half a file.

    Any registered secret (API key) that found its way into the data is blanked out on the way.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if indent is None:
        text = json.dumps(data, default=str)  # the C encoder: fast, and one string of the output's size
    else:
        # json.dumps with an indent joins a list of every token (~6x the output in memory, 60 MB for a 10k-item
        # bundle); json.dump into a StringIO writes the same text piece by piece (benchmarks/memory_bench.py).
        buf = io.StringIO()
        json.dump(data, buf, indent=indent, default=str)
        text = buf.getvalue()
        del buf
    text = redact(text)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            if sync:  # mid-run writes skip fsync: the rename is atomic against a crash of this process
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path) -> dict[str, Any]:
    """A bundle from a run folder or a bundle file."""
    path = Path(path)
    if path.is_dir():
        path = path / BUNDLE_NAME
    return json.loads(path.read_text(encoding="utf-8"))


class BundleWriter:
    """Holds a run's bundle in memory and writes it to disk at most every ``interval_s`` and at the end."""

    def __init__(self, path: Path, header: dict[str, Any], *, interval_s: float = 1.0) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            **header,
            "status": "running",
            "started_at": now_iso(),
            "finished_at": None,
            "error": None,
            "cells": [],
            "records": [],
        }
        self.interval_s = interval_s
        self._next_write = 0.0
        self.flush(force=True)

    @classmethod
    def reopen(cls, path: Path, data: dict[str, Any], *, interval_s: float = 1.0) -> "BundleWriter":
        """Carry on writing a bundle from a previous, unfinished run."""
        writer = cls.__new__(cls)
        writer.path, writer.interval_s, writer._next_write = path, interval_s, 0.0
        writer.data = {**data, "status": "running", "finished_at": None, "error": None}
        writer.data.setdefault("resumed_at", []).append(now_iso())
        writer.flush(force=True)
        return writer

    def add_record(self, record: Record) -> None:
        self.data["records"].append(record_to_json(record))
        if record.simulated:
            self.data["simulated"] = True
        self.flush()

    def set_cell(self, entry: dict[str, Any]) -> None:
        """Add or replace the summary entry of one cell run (keyed by cell id and repeat)."""
        cells = self.data["cells"]
        for i, old in enumerate(cells):
            if (old["id"], old["repeat"]) == (entry["id"], entry["repeat"]):
                cells[i] = entry
                break
        else:
            cells.append(entry)
        self.flush()

    def finish(self, status: str, error: str | None = None) -> None:
        self.data["status"] = status
        self.data["error"] = error
        self.data["finished_at"] = now_iso()
        write_atomic(self.path, self.data)  # the last write is indented, for people reading it

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now >= self._next_write:
            # Mid-run writes are compact (json's C encoder), and never take more than a tenth of the time:
            # a big run's bundle is rewritten less often as it grows.
            write_atomic(self.path, self.data, indent=None, sync=False)
            took = time.monotonic() - now
            self._next_write = now + max(self.interval_s, 10 * took)
