"""The JSON result bundle: one file per run, valid on disk at every moment of the run."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import orjson

from visionbench.data.dataset import Items
from visionbench.errors import InputError
from visionbench.results.model import SCHEMA_VERSION, Bundle, CellEntry, View, record_to_json, upgrade
from visionbench.results.model import record_from_json as record_from_json  # where it was
from visionbench.results.records import BLOCK, AnswerEntry, ItemEntry, Records, compact_entries, scan
from visionbench.secrets import RedactingWriter, redact
from visionbench.types import Answer, ImageItem, Record

BUNDLE_NAME = "bundle.json"
RECORDS_NAME = "records.jsonl"  # beside the bundle while its run is going


def schema() -> dict[str, Any]:
    """The bundle's JSON Schema (shipped as visionbench/results/schema/bundle.schema.json, generated from the
    model: ``visionbench.results.model.json_schema``)."""
    return json.loads(resources.files("visionbench.results").joinpath("schema/bundle.schema.json").read_text())


def validate(bundle: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``bundle`` does not follow the schema."""
    import jsonschema  # the tests validate; a run does not, so it does not import it

    # A loaded bundle's records are read from its file, its items and answers are compact: as plain JSON first.
    jsonschema.validate(json.loads(json.dumps(bundle, default=jsonable)), schema())


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def jsonable(value: Any) -> Any:
    """What the JSON encoder writes for values it does not know: an answer's fields, else the value as text."""
    if isinstance(value, View):  # the bundle's model: its JSON
        return value.to_json()
    if isinstance(value, Answer):  # a cell's answers stay Answer objects in memory: no dict per item
        return {"item_id": value.item_id, "value": value.value, "error": value.error}
    if isinstance(value, (Records, ItemList)):  # a loaded bundle's records, a run's items: made as they are read
        return list(value)
    if isinstance(value, (ItemEntry, AnswerEntry)):  # a loaded bundle's items and answers
        return dict(value)
    return str(value)


def item_to_json(item: ImageItem) -> dict[str, Any]:
    """One of the bundle's ``items``: ``fields`` only for an item that has them (a rows manifest's)."""
    images = [part.sha256 for part in item.parts] if item.parts else None
    return _identity(item.id, item.sha256, item.label, item.fields, images)


def _identity(
    item_id: str, sha: str, label: Any, fields: dict[str, Any] | None, images: list[str] | None = None
) -> dict[str, Any]:
    out = {"id": item_id, "sha256": sha, "label": label}
    if fields is not None:
        out["fields"] = fields
    if images is not None:
        out["images"] = images
    return out


class ItemList(Sequence[dict[str, Any]]):
    """A run's ``items`` as the bundle has them, each made from the run's item when it is read or written."""

    def __init__(self, items: Sequence[ImageItem]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [item_to_json(item) for item in self._items[index]]
        return item_to_json(self._items[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if isinstance(self._items, Items):  # a dataset's columns: no ImageItem made for each entry
            return (_identity(*entry) for entry in self._items.identities())
        return map(item_to_json, self._items)


@contextmanager
def _replacing(path: Path, *, sync: bool = True) -> Iterator[TextIO]:
    """A text file that takes the place of ``path`` in one rename when the block ends: readers never see half
    a file, and a failure leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
            if sync:  # mid-run writes skip fsync: the rename is atomic against a crash of this process
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write small JSON (indented) to a temporary file beside ``path`` and rename it over.

    Any registered secret (API key) that found its way into the data is blanked out on the way.
    """
    text = redact(json.dumps(data, indent=1, default=jsonable))
    with _replacing(path) as out:
        out.write(text)


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not valid UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):
        return "empty file" if not exc.doc.strip() else f"malformed JSON (truncated or corrupt?): {exc}"
    return getattr(exc, "strerror", None) or str(exc)


def _record_lines(path: Path) -> Iterator[str]:
    """The lines of a records file, without a last line cut short by a killed process."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.endswith("\n"):
                return  # a torn last write: that request was never fully recorded, so it runs again on resume
            yield line


def load(path: str | Path, *, lazy: bool = False) -> Bundle:
    """A bundle from a run folder or a bundle file, with its records (read from the records file of a run
    that is still going or was killed), as the typed :class:`visionbench.results.model.Bundle`: a view over
    the plain JSON, what ``json.load`` of a finished bundle gives (``bundle.to_json()``; ``bundle["cells"]``
    reads it too), brought to the current format by ``model.upgrade`` if an older visionbench wrote it.

    ``lazy=True`` is for big bundles (report, compare and resume use it): ``records`` is then a
    :class:`visionbench.results.records.Records`, a sequence that reads each record from the file when it is used,
    and items and answers are compact read-mostly mappings, so 100,000 records are not 100,000 dicts in
    memory. Such a bundle serialises with ``json.dumps(data, default=visionbench.results.bundle.jsonable)``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / BUNDLE_NAME
    data = _read_bundle(path) if lazy else _parse_json(_decode(_read_bytes(path), path), path, compact=False)
    if not isinstance(data, dict) or "schema_version" not in data:
        raise InputError(f"{path}: not a visionbench bundle (no schema_version); give a run folder or its bundle.json")
    records_file = data.pop("records_file", None)
    if records_file is not None:
        records = _records_file(path.parent / records_file)
        data["records"] = records if lazy else list(records)
        data["simulated"] = data.get("simulated") or any(r.get("simulated") for r in data["records"])
    return Bundle(upgrade(data))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (a run bundle was expected)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read a run bundle: {_reason(exc)}") from None


#: What a finished bundle has between its header and its records, one per line (``_write_with_records``).
_RECORDS_KEY = b',\n "records": [\n'


def _read_bundle(path: Path) -> Any:
    """The bundle's JSON; a finished bundle's records are left in the file, found by their lines."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (a run bundle was expected)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read a run bundle: {_reason(exc)}") from None
    keep = False  # the file stays open for the records read from it
    try:
        head, at = bytearray(), -1
        while at < 0 and (chunk := file.read(BLOCK)):
            head += chunk
            at = head.find(_RECORDS_KEY, max(0, len(head) - len(chunk) - len(_RECORDS_KEY)))
        if at >= 0:
            starts, ends, rest = scan(file, at + len(_RECORDS_KEY), indent=2)
            if rest.split() == [b"]", b"}"]:  # else not laid out as visionbench writes it: read it whole
                del head[at:]
                head += b"\n}"
                text, head = _decode(head, path), None  # the bytes go before the parse: a bundle's header is big
                data = _parse_json(text, path)
                if isinstance(data, dict) and "records" not in data:
                    data["records"] = Records(file, starts, ends, str(path))
                    keep = True
                    return data
        del head
        file.seek(0)
        return _parse_json(_decode(file.read(), path), path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read a run bundle: {_reason(exc)}") from None
    finally:
        if not keep:
            file.close()


def _decode(data: bytes | bytearray, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: cannot read a run bundle: {_reason(exc)}") from None


def _parse_json(text: str, path: Path, compact: bool = True) -> Any:
    """JSON with json (orjson parses a big document through a tree several times the size of the result), items
    and answers compact (``records.compact_entries``) unless ``compact`` is false."""
    try:
        return json.loads(text, object_hook=compact_entries() if compact else None)
    except ValueError as exc:
        raise InputError(f"{path}: cannot read a run bundle: {_reason(exc)}") from None


def _records_file(path: Path) -> Records:
    """The records of a running or killed run, without a last line cut short by a killed process."""
    try:
        file = path.open("rb")
        starts, ends, rest = scan(file, 0, indent=0)
    except FileNotFoundError:
        return Records(io.BytesIO(), array("q"), array("q"), str(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the run's records: {_reason(exc)}") from None
    if b"\n" in rest:  # a torn last write has no newline: that request runs again on resume; this is no record
        file.close()
        raise InputError(f"{path}: cannot read the run's records: line {len(starts) + 1} is not a record")
    return Records(file, starts, ends, str(path))


def write(path: Path, data: Mapping[str, Any]) -> None:
    """A whole bundle, records included, laid out as a finished run's (``BundleWriter.finish``)."""
    data = data.to_json() if isinstance(data, View) else data
    header = {k: v for k, v in data.items() if k != "records"}
    with _replacing(path) as out:
        _write_with_records(out, header, (_record_line(r) for r in data.get("records", ())))


class BundleWriter:
    """A run's bundle, valid on disk at every moment, in memory no bigger than its header.

    The header (config, items, cell summaries, status) is rewritten atomically when it changes: at the start
    and as each cell ends. Records are appended as they come to a JSON-lines file beside it (named by the
    bundle's ``records_file``), so a run's memory does not grow with its records. ``finish`` folds the records
    into ``bundle.json``: a finished, interrupted or failed run is one self-contained file.
    """

    def __init__(self, path: Path, header: Mapping[str, Any], *, records: Iterable[dict[str, Any]] = ()) -> None:
        self.path = path
        self.records_path = path.with_name(RECORDS_NAME)
        header = header.to_json() if isinstance(header, View) else header
        self.data = Bundle(
            {"schema_version": SCHEMA_VERSION, **header},
            status="running",
            started_at=header.get("started_at") or now_iso(),
            finished_at=None,
            error=None,
            cells=header.get("cells", []),
            records_file=RECORDS_NAME,
        )
        self.data.pop("records", None)
        with _replacing(self.records_path, sync=False) as out:  # a resumed run's earlier records first
            for record in records:
                out.write(_record_line(record))
        self._records = self.records_path.open("ab", buffering=0)
        self._unwritten: list[bytes] = []  # records of this turn of the event loop
        self._write_header()

    @classmethod
    def reopen(cls, path: Path, data: Mapping[str, Any]) -> BundleWriter:
        """Carry on writing a bundle from a previous, unfinished run (``data`` as ``load`` gave it)."""
        bundle = Bundle.of(data)
        header = {**bundle.to_json(), "resumed_at": [*bundle.resumed_at, now_iso()]}
        return cls(path, header, records=bundle.records)

    def add_record(self, record: Record) -> None:
        """Append a record to the records file: right away, or (in a running event loop) with the others of
        this turn of the loop, in one write before the loop next runs a callback. A killed run loses at most
        that turn's records (their requests run again on resume) and never leaves more than a torn last line.
        """
        self._unwritten.append(_record_bytes(record))
        if len(self._unwritten) == 1:
            try:
                asyncio.get_running_loop().call_soon(self._write_records)
            except RuntimeError:  # no loop: nothing to gather, write it now
                self._write_records()
        if record.simulated:
            self.data["simulated"] = True  # on disk with the next header write; until then the records say so

    def _write_records(self) -> None:
        if self._unwritten and not self._records.closed:
            data = memoryview(b"".join(self._unwritten))
            while data:  # an unbuffered write may take only part
                data = data[self._records.write(data) :]
        self._unwritten.clear()

    def set_cell(self, entry: Mapping[str, Any]) -> None:
        """Add or replace the summary entry of one cell run (keyed by cell id and repeat)."""
        entry = CellEntry.of(entry)
        cells = self.data.cells
        for i, old in enumerate(cells):
            if (old.id, old.repeat) == (entry.id, entry.repeat):
                self.data["cells"][i] = entry.to_json()
                break
        else:
            self.data["cells"].append(entry.to_json())
        self._write_header()

    def finish(self, status: str, error: str | None = None) -> None:
        """Write the final bundle, records included (indented, for people reading it: one record per line)."""
        self.data.update(status=status, error=error, finished_at=now_iso())
        self._write_records()
        self._records.close()
        header = {k: v for k, v in self.data.to_json().items() if k != "records_file"}
        with _replacing(self.path) as out:
            _write_with_records(out, header, _record_lines(self.records_path))
        self.records_path.unlink()

    def _write_header(self) -> None:
        with _replacing(self.path, sync=False) as out:  # compact, with json's C encoder
            _write_compact(out, self.data.to_json())


def _write_with_records(out: TextIO, header: dict[str, Any], record_lines: Iterable[str]) -> None:
    """``header`` (indented) with a ``records`` key added, one record per line, streamed piece by piece.

    The header goes through a redacting writer; record lines were redacted when they were written.
    """
    writer = RedactingWriter(out)
    writer.write("{")
    for i, (key, value) in enumerate(header.items()):
        writer.write(("," if i else "") + f"\n {json.dumps(str(key))}: ")
        _write_pieces(writer, value, indent=1)
    writer.write(',\n "records": [')
    writer.close()
    for i, line in enumerate(record_lines):
        out.write(("\n  " if i == 0 else ",\n  ") + line[:-1])
    out.write("\n ]\n}\n")


def _write_compact(out: TextIO, data: dict[str, Any]) -> None:
    """Compact JSON of ``data`` through a redacting writer, a piece at a time: the C encoder's speed without
    the whole document (10k items, a cell's 10k answers) in memory at once."""
    writer = RedactingWriter(out)
    _write_pieces(writer, data)
    writer.close()


#: Sequences written entry by entry like lists: views that make their entries as they are read.
_LISTS = (list, tuple, Records, ItemList)
#: ``json.dumps`` with these arguments builds a new encoder each call; a header write makes one call per item.
_ENCODERS = {
    indented: json.JSONEncoder(default=jsonable, separators=(", ", ": ") if indented else (",", ":"))
    for indented in (False, True)
}


def _write_pieces(writer: RedactingWriter, value: Any, indent: int | None = None) -> None:
    """Containers that are big or hold containers are written entry by entry; anything else in one go.

    With ``indent``, for people reading it: the entries of containers of more than four go one per line at
    that depth, and small flat ones (an item, an answer) on one line.
    """
    if isinstance(value, View):
        value = value.to_json()
    if isinstance(value, ItemList) and len(value):
        _write_items(writer, value, indent)
        return
    is_dict = isinstance(value, Mapping)
    if (is_dict or isinstance(value, _LISTS)) and (
        len(value) > (256 if indent is None else 4) or any(isinstance(v, (Mapping, *_LISTS)) for v in _children(value))
    ):
        pad = "" if indent is None else "\n" + " " * (indent + 1)
        writer.write("{" if is_dict else "[")
        for i, (key, entry) in enumerate(value.items() if is_dict else enumerate(value)):
            name = json.dumps(str(key)) + (":" if indent is None else ": ") if is_dict else ""
            writer.write(("," if i else "") + pad + name)
            _write_pieces(writer, entry, None if indent is None else indent + 1)
        writer.write(("" if indent is None else "\n" + " " * indent) + ("}" if is_dict else "]"))
    else:
        writer.write(_ENCODERS[indent is not None].encode(value))


def _write_items(writer: RedactingWriter, items: ItemList, indent: int | None) -> None:
    """A run's items as ``_write_pieces`` writes any list, the same bytes, without its checks for each item (about
    12 us an item, at every header write and in the final bundle): each item is a small dict of two strings and
    a label. Compact, 256 at a time, one C encoder call each; indented, one per line, as ``_write_pieces`` lays
    out an item, and the rare item whose label is itself a container by ``_write_pieces``."""
    writer.write("[")
    if indent is None:
        entries = iter(items)
        first = True
        while chunk := list(itertools.islice(entries, 256)):
            writer.write(("" if first else ",") + _ENCODERS[False].encode(chunk)[1:-1])
            first = False
    else:
        pad, encode = "\n" + " " * (indent + 1), _ENCODERS[True].encode
        for i, item in enumerate(items):
            writer.write(("," if i else "") + pad)
            if isinstance(item["label"], (Mapping, *_LISTS)):
                _write_pieces(writer, item, indent + 1)
            else:
                writer.write(encode(item))
    writer.write("]" if indent is None else "\n" + " " * indent + "]")


def _children(value: Any) -> Iterable[Any]:
    return value.values() if isinstance(value, Mapping) else value


def _record_bytes(record: Record) -> bytes:
    """``_record_line(record_to_json(record))``, encoded: the same keys in the same order, for one record a request.

    orjson writes a dataclass's fields in order, nested ones too (usage, answers), as ``record_to_json`` does;
    only ``latency_s``, a property, is added at the end. Without the dict in between a record costs about half.
    """
    try:
        text = orjson.dumps(record, default=jsonable)
        latency = orjson.dumps(record.latency_s)
    except orjson.JSONEncodeError:  # as in _record_line: json's encoder takes what orjson will not
        return _record_line(record_to_json(record)).encode()
    line = text[:-1] + b',"latency_s":' + latency + b"}\n"
    return redact(line.decode()).encode()


def _record_line(record: dict[str, Any]) -> str:
    """One record as one line of JSON, secrets blanked out."""
    try:
        text = orjson.dumps(record, default=jsonable).decode()  # faster than json on the hot path
    except orjson.JSONEncodeError:  # an int beyond 64 bits, a lone surrogate in a reply...
        text = json.dumps(record, default=jsonable)
    return redact(text) + "\n"
