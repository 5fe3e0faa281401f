"""The bundle on disk while a run goes (header + records file), after it finishes (one file), and when killed."""

import asyncio
import io
import json

import pytest
from conftest import write_config

from visionbench.errors import InputError
from visionbench.results import bundle as bundle_mod
from visionbench.results.bundle import RECORDS_NAME, BundleWriter, ItemList
from visionbench.results.records import AnswerEntry, ItemEntry, Records
from visionbench.run.plan import load_plan
from visionbench.run.runner import run
from visionbench.secrets import REDACTED, RedactingWriter, redact, register_secret
from visionbench.types import Answer, ImageItem, Record, Usage

KEY = "sk-bundle-test-0123456789"


def record(i: int, **extra) -> Record:
    return Record(
        "p/m/sequential",
        [f"img{i}.png"],
        "p",
        "m",
        None,
        float(i),
        i + 0.5,
        1,
        64,
        usage=Usage(input_tokens=10, output_tokens=1),
        raw_text=str(i),
        answers=[Answer(f"img{i}.png", i)],
        **extra,
    )


async def header_of_a_real_run(tmp_path, image_dir, registry, answers_for_labels) -> dict:
    path = write_config(tmp_path, image_dir, ["sequential"], options={"answers": answers_for_labels})
    data = bundle_mod.load(await run(load_plan(path, registry), results_dir=tmp_path / "r0"))
    return {k: v for k, v in data.items() if k not in ("records", "status", "started_at", "finished_at", "error")}


async def test_records_stream_to_a_file_beside_the_bundle_until_it_finishes(
    tmp_path, image_dir, registry, answers_for_labels
):
    header = await header_of_a_real_run(tmp_path, image_dir, registry, answers_for_labels)
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(path, header)
    for i in range(3):
        writer.add_record(record(i))
    records_file = path.parent / RECORDS_NAME
    assert records_file.read_text() == ""  # one turn of the event loop's records go out in one write...
    await asyncio.sleep(0)
    assert len(records_file.read_text().splitlines()) == 3  # ...before the loop runs anything else

    on_disk = json.loads(path.read_text())
    bundle_mod.validate(on_disk)
    assert on_disk["status"] == "running" and on_disk["records_file"] == RECORDS_NAME and "records" not in on_disk
    loaded = bundle_mod.load(path.parent)
    bundle_mod.validate(loaded)
    assert [r["item_ids"] for r in loaded["records"]] == [["img0.png"], ["img1.png"], ["img2.png"]]
    assert "records_file" not in loaded

    writer.finish("complete")
    assert not (path.parent / RECORDS_NAME).exists()
    final = json.loads(path.read_text())  # one self-contained file, plain JSON
    bundle_mod.validate(final)
    assert final["status"] == "complete" and final["records"] == loaded["records"]
    assert {k: final[k] for k in header} == header
    assert path.read_text().count('\n  {"cell"') == 3  # one record per line, for people reading it


async def test_a_torn_last_record_is_dropped_and_resume_rewrites_the_file(
    tmp_path, image_dir, registry, answers_for_labels
):
    header = await header_of_a_real_run(tmp_path, image_dir, registry, answers_for_labels)
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(path, header)
    writer.add_record(record(0))
    writer.add_record(record(1))
    await asyncio.sleep(0)
    with (path.parent / RECORDS_NAME).open("a") as f:  # a process killed half-way through writing a record
        f.write('{"cell": "p/m/sequential", "item_ids": ["im')

    killed = bundle_mod.load(path)
    assert [r["item_ids"][0] for r in killed["records"]] == ["img0.png", "img1.png"]
    resumed = BundleWriter.reopen(path, killed)
    resumed.add_record(record(2))
    resumed.finish("complete")
    final = bundle_mod.load(path)
    bundle_mod.validate(final)
    assert [r["item_ids"][0] for r in final["records"]] == ["img0.png", "img1.png", "img2.png"]
    assert len(final["resumed_at"]) == 1 and final["started_at"] == killed["started_at"]


async def test_secrets_are_blanked_in_the_records_file_and_the_final_bundle(
    tmp_path, image_dir, registry, answers_for_labels
):
    register_secret(KEY)
    header = await header_of_a_real_run(tmp_path, image_dir, registry, answers_for_labels)
    header["config"]["note"] = f"key {KEY}"
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(path, header)
    writer.add_record(record(0, error={"kind": "fatal", "message": f"401 for key {KEY}", "status": 401}))
    await asyncio.sleep(0)
    written = (path.parent / RECORDS_NAME).read_text()
    assert "401 for key" in written and KEY not in written and KEY not in path.read_text()
    writer.finish("failed", f"bad key {KEY}")
    text = path.read_text()
    assert KEY not in text and text.count(REDACTED) == 3
    bundle_mod.validate(json.loads(text))


async def test_records_of_an_unfinished_turn_are_written_by_finish(tmp_path):
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(path, {"run_id": "r", "items": []})
    writer.add_record(record(0))
    writer.add_record(record(1))
    writer.finish("interrupted", "interrupted by the user")  # e.g. Ctrl-C before the loop turned again
    assert [r["item_ids"] for r in bundle_mod.load(path)["records"]] == [["img0.png"], ["img1.png"]]


def test_a_simulated_reply_marks_the_bundle_simulated_even_before_the_header_is_rewritten(tmp_path):
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(path, {"run_id": "r", "items": [], "simulated": False})
    writer.add_record(record(0, simulated=True))
    assert json.loads(path.read_text())["simulated"] is False  # no header rewrite for it mid-cell...
    assert bundle_mod.load(path)["simulated"] is True  # ...the records say so, and load reads them
    writer.finish("complete")
    assert json.loads(path.read_text())["simulated"] is True


def test_without_an_event_loop_each_record_is_written_at_once(tmp_path):
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(path, {"run_id": "r", "items": []})
    writer.add_record(record(0))
    assert len((path.parent / RECORDS_NAME).read_text().splitlines()) == 1
    writer.finish("complete")


def test_values_the_fast_encoder_refuses_still_make_a_valid_line(tmp_path):
    from visionbench.results.bundle import _record_line, record_to_json

    odd = record(0)
    odd.raw_text, odd.answers = "half a pair: \ud83d", [Answer("img0.png", 10**30)]  # a lone surrogate, > 64 bits
    plain = record(1)
    lines = [_record_line(record_to_json(r)) for r in (odd, plain)]
    assert json.loads(lines[0])["answers"][0]["value"] == 10**30 and json.loads(lines[0])["raw_text"] == odd.raw_text
    assert json.loads(lines[1]) == json.loads(json.dumps(record_to_json(plain)))  # same data as the standard encoder


def test_a_record_is_written_straight_from_its_dataclass_as_from_its_dict():
    from visionbench.results.bundle import _record_bytes, _record_line, record_to_json

    register_secret(KEY)
    full = record(0, ttft_s=0.2, simulated=True, queue_s=0.01)
    full.usage, full.raw_text = Usage(3, 1, None, None, 258), f"7 {KEY} \u00e9"
    failed = record(1, error={"kind": "transient", "message": "x", "status": 503}, batch=True)
    failed.usage, failed.answers = None, [Answer("img1.png", error="transient: x"), Answer("img9.png", error="x")]
    odd = record(2)
    odd.item_ids, odd.answers = ("img2.png",), [Answer("img2.png", [1, "x", None, 2.5])]
    huge = record(3)
    huge.answers = [Answer("img3.png", 10**30)]  # beyond orjson: json's encoder takes it
    for r in (full, failed, odd, huge):
        assert _record_bytes(r) == _record_line(record_to_json(r)).encode()
    assert KEY not in _record_bytes(full).decode()


def test_the_redacting_writer_catches_a_secret_split_across_writes():
    register_secret(KEY)
    for at in range(0, 40):  # the secret at every offset across the chunk boundaries, written in pieces of 5
        text = "x" * at + KEY + "y" * 23
        out = io.StringIO()
        writer = RedactingWriter(out, chunk=16)
        for start in range(0, len(text), 5):
            writer.write(text[start : start + 5])
        writer.close()
        assert out.getvalue() == redact(text) == "x" * at + REDACTED + "y" * 23


def test_compact_writes_go_piece_by_piece_and_equal_one_dump():
    from visionbench.results.bundle import _write_compact, jsonable

    register_secret(KEY)
    data = {
        "items": [{"id": f"i{i}", "label": i} for i in range(3000)],  # ~80 kB: more than one piece
        "cells": [{"id": "c", "answers": {f"i{i}": Answer(f"i{i}", i) for i in range(300)}, "summary": {"n": 1}}],
        "config": {"nested": {"list": [1, [2, 3], {}], "empty": []}, "note": f"key {KEY}"},
        "small": [1, 2, 3],
    }
    pieces: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            pieces.append(text)
            return super().write(text)

    out = Recorder()
    _write_compact(out, data)
    assert json.loads(out.getvalue()) == json.loads(redact(json.dumps(data, default=jsonable)))
    assert KEY not in out.getvalue() and len(pieces) > 1  # streamed, not one string


def _finished(tmp_path, n: int, **extra):
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(path, {"run_id": "r", "items": [], **extra})
    for i in range(n):
        writer.add_record(record(i))
    writer.finish("complete")
    return path


def test_a_finished_bundle_reads_its_records_from_the_file_when_they_are_used(tmp_path, monkeypatch):
    monkeypatch.setattr("visionbench.results.records.BLOCK", 256)  # blocks of a few records: many reads, edges between
    path = _finished(tmp_path, 40, note='a "records": [ key in a string,\n and a newline')
    loaded = bundle_mod.load(path, lazy=True)
    want = json.loads(path.read_text())
    assert bundle_mod.load(path) == want and type(bundle_mod.load(path)["records"]) is list  # plain unless lazy
    assert isinstance(loaded["records"], Records) and len(loaded["records"]) == 40
    assert list(loaded["records"]) == want["records"] and loaded["note"] == want["note"]
    assert loaded["records"][7] == want["records"][7] and loaded["records"][-1] == want["records"][-1]
    assert loaded["records"][5:30:3] == want["records"][5:30:3]
    assert {k: v for k, v in loaded.items() if k != "records"} == {k: v for k, v in want.items() if k != "records"}
    path.unlink()  # as a resumed run's rename does: what was loaded is still read from the file it came from
    assert list(loaded["records"]) == want["records"]


def test_a_bundle_laid_out_otherwise_is_read_whole(tmp_path):
    path = _finished(tmp_path, 3)
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data))  # one line: no record lines to find
    assert bundle_mod.load(path, lazy=True) == data
    path.write_text(json.dumps(data, indent=1))  # records over several lines each
    assert bundle_mod.load(path, lazy=True) == data
    empty = _finished(tmp_path / "empty", 0)
    assert bundle_mod.load(empty, lazy=True)["records"] == [] == bundle_mod.load(empty)["records"]


def test_a_corrupt_line_in_the_records_file_is_an_input_error(tmp_path):
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(path, {"run_id": "r", "items": []})
    writer.add_record(record(0))
    writer._records.write(b"not json\n")
    writer.add_record(record(1))
    with pytest.raises(InputError, match="records.jsonl: cannot read the run's records: line 2 is not a record"):
        bundle_mod.load(path)


def test_items_and_answers_load_compact_and_behave_as_the_dicts_they_were(tmp_path):
    path = _finished(tmp_path, 2, items=[{"id": "img0.png", "sha256": "0" * 64, "label": 3}])
    header = json.loads(path.read_text())
    header["cells"] = [{"id": "c", "answers": {"img0.png": {"item_id": "img0.png", "value": 3, "error": None}}}]
    bundle_mod.write(path, {**header, "records": json.loads(path.read_text())["records"]})
    loaded = bundle_mod.load(path, lazy=True)
    item, answer = loaded["items"][0], loaded["cells"][0]["answers"]["img0.png"]
    assert isinstance(item, ItemEntry) and isinstance(answer, AnswerEntry)
    assert item == header["items"][0] and answer == {"item_id": "img0.png", "value": 3, "error": None}
    assert item["id"] is answer["item_id"] is next(iter(loaded["cells"][0]["answers"]))  # one string for the id
    answer["value"] = 4  # as a test crafting a bundle does
    assert dict(answer) == {"item_id": "img0.png", "value": 4, "error": None} and answer.get("error") is None
    plain = json.loads(json.dumps(loaded, default=bundle_mod.jsonable))  # as documented for a lazy bundle
    assert plain["items"] == header["items"] and plain["records"] == json.loads(path.read_text())["records"]
    assert json.loads(json.dumps(bundle_mod.load(path)))["items"] == header["items"]  # a plain load: no default
    with pytest.raises(KeyError):
        answer["other"] = 1
    bundle_mod.write_atomic(tmp_path / "again.json", loaded)
    assert json.loads((tmp_path / "again.json").read_text())["cells"][0]["answers"]["img0.png"]["value"] == 4


def test_a_runs_items_are_made_as_they_are_written_one_per_line(tmp_path):
    items = [ImageItem(f"i{n}.png", tmp_path / f"i{n}.png", f"{n:064x}", n % 3 or None) for n in range(300)]
    want = [{"id": i.id, "sha256": i.sha256, "label": i.label} for i in items]
    path = tmp_path / "run" / "bundle.json"
    writer = BundleWriter(path, {"run_id": "r", "items": ItemList(items)})
    header = path.read_text()  # the compact header of a running run: its items encoded a chunk at a time
    assert json.loads(header)["items"] == want
    assert header == json.dumps(json.loads(header), separators=(",", ":"))  # the bytes json's encoder would give
    writer.add_record(record(0))
    writer.finish("complete")
    text = path.read_text()
    assert json.loads(text)["items"] == want == bundle_mod.load(path, lazy=True)["items"]
    assert text.count('\n  {"id": "i') == 300 and text.count('\n  {"cell":') == 1  # and the record
