"""A bundle's records read from its file when they are iterated, never all held: where each one starts, and
the file to read it from."""

from __future__ import annotations

import copy
import json
import os
from array import array
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any, BinaryIO, overload

import numpy as np
import orjson

from visionbench.errors import InputError

#: Bytes read at a time when scanning a file for its record lines, and when reading records back.
BLOCK = 1 << 22
_NEWLINE, _SPACE, _BRACE, _COMMA = 10, 32, ord("{"), ord(",")


def parse(line: bytes | memoryview) -> dict[str, Any]:
    """One record's JSON: orjson, or json for what orjson refuses (NaN, an int beyond 64 bits)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(bytes(line).decode("utf-8"))


_ITEM_IDS = b'"item_ids":['


def item_ids_of(line: bytes | memoryview) -> list[str] | None:
    """A record line's item ids, read from the line alone (None: not found where a writer puts them: parse it)."""
    head = bytes(line[:4096])
    at = head.find(_ITEM_IDS)
    end = head.find(b"]", at) if at >= 0 else -1
    if end < 0:
        return None
    try:
        ids = orjson.loads(head[at + len(_ITEM_IDS) - 1 : end + 1])
    except orjson.JSONDecodeError:
        return None
    return ids if isinstance(ids, list) else None


class Records(Sequence[dict[str, Any]]):
    """Records as dicts, parsed from an open file each time they are read: 16 bytes a record in memory.

    The file is held open, so what is read is the file as it was found, even after a resumed run has
    replaced it (a rename) or appended to it (the offsets end where it ended).
    """

    def __init__(self, file: BinaryIO, starts: array, ends: array, name: str) -> None:
        self._file, self._starts, self._ends, self.name = file, starts, ends, name

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return list(self._read(range(len(self))[index]))
        [record] = self._read(range(len(self))[index : index + 1 or None])
        return record

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._read(range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Records, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} records of {self.name}>"

    def __copy__(self) -> list[dict[str, Any]]:
        return list(self)  # a copy to edit (a test's crafted bundle, say) is a plain list

    def __deepcopy__(self, memo: dict) -> list[dict[str, Any]]:
        return list(self)  # each read makes fresh dicts: nothing is shared

    def __del__(self) -> None:
        if hasattr(self, "_file"):
            self._file.close()

    def with_items(self, wanted: set[str]) -> Iterator[dict[str, Any]]:
        """The records about any of the ``wanted`` items, in order; the others are not parsed (their item ids are
        read from the line alone), so picking a few thousand items' records out of 300,000 costs a scan."""
        for k, line in self._lines(range(len(self))):
            ids = item_ids_of(line)
            if ids is None or not wanted.isdisjoint(ids):
                try:
                    yield parse(line)
                except ValueError as exc:
                    raise InputError(f"{self.name}: record {k + 1} is not valid JSON: {exc}") from None

    def _read(self, indices: range) -> Iterator[dict[str, Any]]:
        """The records at ``indices`` (a step of 1 reads a block of them at once), in that order."""
        if indices.step != 1:
            for i in indices:
                yield from self._read(range(i, i + 1))
            return
        for k, line in self._lines(indices):
            try:
                yield parse(line)
            except ValueError as exc:
                raise InputError(f"{self.name}: record {k + 1} is not valid JSON: {exc}") from None

    def _lines(self, indices: range) -> Iterator[tuple[int, memoryview]]:
        """Each record's index and line (its JSON), read a block at a time (``indices`` has a step of 1)."""
        i, stop = indices.start, indices.stop
        while i < stop:
            first = self._starts[i]
            j = i + 1  # as many records as fit in one block (at least one)
            while j < stop and self._ends[j] - first <= BLOCK:
                j += 1
            block = memoryview(os.pread(self._file.fileno(), self._ends[j - 1] - first, first))
            for k in range(i, j):
                yield k, block[self._starts[k] - first : self._ends[k] - first]
            i = j


def scan(file: BinaryIO, offset: int, indent: int) -> tuple[array, array, bytes]:
    """Where each line of ``file`` from ``offset`` on holds one record (``indent`` spaces, then ``{``).

    Returns the records' start and end offsets (a line's trailing comma left out) and the rest of the file
    from the first line that is not a record, or else the last line if it has no newline (a torn write).
    """
    starts, ends = array("q"), array("q")
    file.seek(offset)
    base, buf = offset, b""
    while chunk := file.read(BLOCK):
        buf = buf + chunk if buf else chunk  # what is carried over is at most one line
        data = np.frombuffer(buf, np.uint8)
        newlines = np.flatnonzero(data == _NEWLINE)
        if not newlines.size:
            continue
        first = np.concatenate(([0], newlines[:-1] + 1))
        record = newlines - first > indent  # room for the indent and a brace
        for k in range(indent + 1):
            record &= data[np.minimum(first + k, len(buf) - 1)] == (_BRACE if k == indent else _SPACE)
        n = len(record) if record.all() else int(np.argmin(record))
        line_end = newlines[:n] - (data[np.maximum(newlines[:n] - 1, 0)] == _COMMA)
        starts.extend((base + first[:n] + indent).tolist())
        ends.extend((base + line_end).tolist())
        if n < len(record):
            return starts, ends, buf[first[n] :] + file.read()
        consumed = int(newlines[-1]) + 1
        base, buf = base + consumed, buf[consumed:]
    return starts, ends, buf


class _Fixed(MutableMapping[str, Any]):
    """A dict of a fixed set of keys in slots: a third the size of a dict, where a bundle has one per item."""

    __slots__ = ()
    KEYS: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> Any:
        if key not in self.KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.KEYS:
            raise KeyError(f"{key!r}: only {', '.join(self.KEYS)} can be set here")
        setattr(self, key, value)

    def __delitem__(self, key: str) -> None:
        raise KeyError(f"{key!r}: a bundle's entry keeps all its keys")

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return repr(dict(self))

    def __deepcopy__(self, memo: dict) -> _Fixed:
        return type(self)(*(copy.deepcopy(getattr(self, key), memo) for key in self.KEYS))


class ItemEntry(_Fixed):
    """One of a bundle's ``items``."""

    __slots__ = KEYS = ("id", "sha256", "label")
    #: A compact entry is a folder's item, which has no fields (a rows manifest's item stays an ``ItemJson``).
    fields = None

    def __init__(self, id: Any, sha256: Any, label: Any) -> None:  # noqa: A002 - the bundle's key
        self.id, self.sha256, self.label = id, sha256, label  # a bundle has one per image: no loop


class AnswerEntry(_Fixed):
    """One of a cell entry's ``answers``."""

    __slots__ = KEYS = ("item_id", "value", "error")

    def __init__(self, item_id: Any, value: Any, error: Any) -> None:
        self.item_id, self.value, self.error = item_id, value, error


def compact_entries() -> Callable[[dict[str, Any]], Any]:
    """A ``json.loads`` object hook: items and answers as :class:`ItemEntry` / :class:`AnswerEntry`, and each
    item id one string however many times it appears (an answer's key and its ``item_id``)."""
    ids: dict[str, str] = {}

    def hook(obj: dict[str, Any]) -> Any:
        if len(obj) == 3 and "sha256" in obj and "id" in obj and "label" in obj:
            item_id = obj["id"]
            item_id = ids.setdefault(item_id, item_id) if isinstance(item_id, str) else item_id
            return ItemEntry(item_id, obj["sha256"], obj["label"])
        if len(obj) == 3 and "item_id" in obj and "value" in obj and "error" in obj:
            item_id = obj["item_id"]
            return AnswerEntry(
                ids.get(item_id, item_id) if isinstance(item_id, str) else item_id, obj["value"], obj["error"]
            )
        if obj and all(type(v) is AnswerEntry for v in obj.values()):  # a cell's answers: keyed by the same ids
            return {ids.get(k, k): v for k, v in obj.items()}
        return obj

    return hook
