"""The batch job store: shared by concurrent runs in one results folder, so no process loses another's job."""

import logging
import multiprocessing
from pathlib import Path

import pytest

from visionbench.run.jobs import JobStore


def _put_many(path: str, worker: int, count: int) -> None:
    store = JobStore(Path(path))
    for i in range(count):
        store.put(f"w{worker}-{i}", {"job_id": f"batches/{worker}-{i}", "ids": {}})


@pytest.mark.slow
def test_eight_processes_writing_at_once_lose_no_job(tmp_path):
    path = tmp_path / "batch_jobs.json"
    workers = [
        multiprocessing.get_context("spawn").Process(target=_put_many, args=(str(path), w, 25)) for w in range(8)
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert all(p.exitcode == 0 for p in workers)
    store = JobStore(path)
    lost = [f"w{w}-{i}" for w in range(8) for i in range(25) if store.get(f"w{w}-{i}") is None]
    assert not lost, f"{len(lost)} of 200 job ids lost"


def test_forget_leaves_the_other_jobs(tmp_path):
    store = JobStore(tmp_path / "batch_jobs.json")
    store.put("a", {"job_id": "1"})
    store.put("b", {"job_id": "2"})
    store.forget("a")
    assert store.get("a") is None and store.get("b") == {"job_id": "2"}


def test_a_corrupt_job_file_is_treated_as_absent_with_a_warning(tmp_path, caplog):
    path = tmp_path / "batch_jobs.json"
    path.write_bytes(b'{"k": {"job_id": "x"')  # cut short
    store = JobStore(path)
    with caplog.at_level(logging.WARNING):
        assert store.get("k") is None
        store.put("n", {"job_id": "y"})
    assert store.get("n") == {"job_id": "y"}
    assert "batch_jobs.json" in caplog.text and "corrupt" in caplog.text
    assert (tmp_path / "batch_jobs.json.corrupt").read_bytes() == b'{"k": {"job_id": "x"'
