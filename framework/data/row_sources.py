"""Where a rows dataset's rows come from: a JSONL, CSV or TSV manifest, a Parquet file or a folder of them (a
Hugging Face hub snapshot), a Hugging Face ``save_to_disk`` folder (Arrow IPC streams), or an ``imagefolder``
with a ``metadata.jsonl`` / ``metadata.csv``.

``open_rows`` gives a ``RowSource``: its rows, read lazily (a text manifest line by line, Parquet and Arrow a
record batch at a time), each with where it is (``At``: the file and "line N" or "row N") and its image cells
already strings: a path (relative to ``RowSource.base``), an http(s) URL, a data URL, or the absolute path of a
file in the downloads folder that holds an image given as bytes (an Hugging Face ``Image`` struct
``{"bytes", "path"}``, a binary cell, a bare base64 cell as VLMEvalKit's TSVs have). ``image_value`` converts one
image value, so a list of images is converted element by element.

pyarrow is imported only to read Parquet or Arrow.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime
import decimal
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from visionbench.errors import ConfigError

#: Manifests of rows (an image, named fields and a reference answer per row) in text, by file suffix.
ROW_SUFFIXES = {".jsonl", ".csv", ".tsv"}
#: Single files read through pyarrow.
ARROW_SUFFIXES = {".parquet", ".arrow"}
#: An imagefolder's metadata files, as Hugging Face's ``imagefolder`` reads them.
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
#: Rows converted at a time from Parquet or Arrow: what is held in memory of a dataset's images.
BATCH_ROWS = 64
#: A hub file name's split: ``test-00000-of-00001.parquet`` (older ones end in ``-<hash>``).
_HUB_NAME = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}(?:-[0-9a-f]+)?$")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
#: The suffix a stored image file gets, by its first bytes.
_MAGIC = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"BM", ".bmp"),
)


def image_suffix(data: bytes) -> str | None:
    """The file suffix of the image format ``data`` starts with (JPEG, PNG, GIF, WebP, TIFF, BMP), else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    return None


class At(NamedTuple):
    """Where a row is: its file and "line N" (text) or "row N" (Parquet, Arrow; 1-based in the file)."""

    file: Path
    pos: str

    def __str__(self) -> str:
        return f"{self.file}: {self.pos}"


@dataclass
class RowSource:
    """A rows dataset opened: ``rows`` yields ``(At, row)`` lazily; relative image paths are relative to
    ``base``; ``image`` is the image's column (the config's; an imagefolder's is ``file_name``); ``from_text``: string
    answer cells are read as the answer type (CSV, TSV, Parquet, Arrow; not JSONL, whose values are typed);
    ``stored`` holds the image strings that are files stored from bytes (their id is ``row-N``, not the path)."""

    base: Path
    image: str
    from_text: bool
    rows: Iterable[tuple[At, dict[str, Any]]] = ()
    stored: set[str] = field(default_factory=set)


# --- what a path is ---------------------------------------------------------------------------------------------


def _metadata_file(folder: Path) -> Path | None:
    for name in METADATA_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _parquet_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if p.is_file() and _visible(p, root))


def is_rows_folder(path: Path) -> bool:
    """Whether the folder ``path`` is a rows dataset: a ``save_to_disk`` folder (``dataset_dict.json`` or
    ``state.json``), an imagefolder with a metadata file (at the top or in each split's sub-folder), or a folder
    of Parquet files (a hub snapshot: at most three levels down, as ``data/test-00000-of-00001.parquet`` or
    ``default/test/0000.parquet``)."""
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return True
    if _metadata_file(path) or any(_metadata_file(sub) for sub in _subfolders(path)):
        return True
    return any(next(path.glob(pattern), None) for pattern in ("*.parquet", "*/*.parquet", "*/*/*.parquet"))


def is_rows_file(path: Path) -> bool:
    """Whether the file ``path`` is a rows dataset by its suffix (JSONL, CSV, TSV, Parquet, Arrow)."""
    return path.suffix.lower() in ROW_SUFFIXES | ARROW_SUFFIXES


def _subfolders(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _choose(root: Path, splits: list[str], split: str | None) -> str:
    """The split to read: ``split`` if given, else ``test`` if there is one, else the only one."""
    shown = ", ".join(splits)
    if split is not None:
        if split not in splits:
            raise ConfigError(f"{root}: dataset.split {split!r} is not one of its splits ({shown})")
        return split
    if "test" in splits:
        return "test"
    if len(splits) == 1:
        return splits[0]
    raise ConfigError(f"{root}: it has several splits ({shown}); choose one with dataset.split")


def _no_splits(root: Path, split: str | None) -> None:
    if split is not None:
        raise ConfigError(
            f"{root}: dataset.split {split!r}, but this dataset has no splits (splits are sub-folders of a "
            "save_to_disk DatasetDict, an imagefolder or a folder of Parquet files)"
        )


# --- opening ----------------------------------------------------------------------------------------------------


def open_rows(path: Path, image: str, *, split: str | None, downloads: Path) -> RowSource:
    """The rows of the dataset at ``path`` (a rows file or folder, see ``is_rows_folder``) whose image is in column
    ``image`` (the config's ``dataset.image``); ``split`` chooses among a folder's splits. Image bytes are stored
    in ``downloads``. Nothing is read until the rows are."""
    if not path.is_dir():
        suffix = path.suffix.lower()
        _no_splits(path, split)
        if suffix in ARROW_SUFFIXES:
            return _arrow_source(path.parent, [path], image, downloads)
        source = RowSource(path.parent, image, from_text=suffix != ".jsonl")
        source.rows = _text_rows(path, source, downloads)
        return source
    if (path / "dataset_dict.json").is_file():
        info = _read_json(path / "dataset_dict.json")
        splits = info.get("splits") if isinstance(info, dict) else None
        if not isinstance(splits, list) or not splits:
            raise ConfigError(f"{path / 'dataset_dict.json'}: no list of splits (a save_to_disk DatasetDict has one)")
        chosen = _choose(path, [str(s) for s in splits], split)
        return _arrow_source(path, _state_files(path / chosen), image, downloads)
    if (path / "state.json").is_file():
        state = _read_json(path / "state.json")
        own = state.get("_split") if isinstance(state, dict) else None
        if own:
            _choose(path, [str(own)], split)
        else:
            _no_splits(path, split)
        return _arrow_source(path, _state_files(path), image, downloads)
    metadata = _metadata_file(path)
    if metadata is None:
        per_split = {sub.name: m for sub in _subfolders(path) if (m := _metadata_file(sub))}
        if per_split:
            metadata = per_split[_choose(path, sorted(per_split), split)]
    else:
        _no_splits(path, split)
    if metadata is not None:
        column = "file_name" if image == "image" else image  # the default column: the metadata's file_name
        source = RowSource(metadata.parent, column, from_text=metadata.suffix != ".jsonl")
        source.rows = _text_rows(metadata, source, downloads)
        return source
    files = _parquet_files(path)
    if not files:
        raise ConfigError(f"{path}: no rows dataset here (no Parquet files, save_to_disk folder or metadata file)")
    by_split: dict[str, list[Path]] = {}
    for file in files:
        rel = file.relative_to(path)
        match = _HUB_NAME.match(file.stem)
        name = match["split"] if match else rel.parts[-2] if len(rel.parts) > 1 and rel.parts[-2] != "data" else "train"
        by_split.setdefault(name, []).append(file)
    parts = by_split[_choose(path, sorted(by_split), split)]
    folders = sorted({file.parent.relative_to(path).as_posix() for file in parts})
    if len(folders) > 1:
        raise ConfigError(
            f"{path}: the split's Parquet files are in several folders ({', '.join(folders)}): several configs? "
            "set dataset.path to one of them"
        )
    return _arrow_source(path, parts, image, downloads)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None


def _state_files(folder: Path) -> list[Path]:
    """A ``save_to_disk`` dataset's Arrow files, from its ``state.json`` (else its ``data-*.arrow``)."""
    state = _read_json(folder / "state.json") if (folder / "state.json").is_file() else None
    listed = state.get("_data_files") if isinstance(state, dict) else None
    if isinstance(listed, list) and listed:
        files = [folder / str(entry.get("filename")) for entry in listed if isinstance(entry, dict)]
    else:
        files = sorted(folder.glob("data-*.arrow"))
    if not files:
        raise ConfigError(f"{folder}: no Arrow files (a save_to_disk folder has state.json and data-*.arrow)")
    for file in files:
        if not file.is_file():
            raise ConfigError(f"{file}: missing (listed in {folder / 'state.json'})")
    return files


# --- image values -----------------------------------------------------------------------------------------------


def store_file(folder: Path, name: str, data: bytes) -> Path:
    """``data`` at ``folder / name``, written whole or not at all (a rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=folder)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, target)
    return target


def _stored(data: bytes, downloads: Path) -> Path:
    """``data`` as a file in ``downloads`` named by its sha256 (``data-<sha256>.<suffix>``, as data URLs are), written
    once."""
    name = "data-" + hashlib.sha256(data).hexdigest() + (image_suffix(data) or "")
    target = downloads / name
    return target if target.is_file() else store_file(downloads, name, data)


def _base64_image(text: str) -> bytes | None:
    """The image a bare base64 string holds (as VLMEvalKit's TSVs have), or None when it is not one: its start
    must decode to an image format's first bytes. One that starts so but does not decode whole is a ValueError."""
    if not _BASE64.fullmatch(text[:16]) or len(text) < 16:
        return None
    head = base64.b64decode(text[:16])  # 16 base64 characters: 12 bytes, enough for every format's magic
    if image_suffix(head) is None:
        return None
    compact = "".join(text.split())  # base64 wrapped in lines
    if not _BASE64.fullmatch(compact):
        raise ValueError("malformed base64 image: it holds characters that are not base64")
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"malformed base64 image ({exc})") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long to be a file's
        return False


def image_value(value: Any, where: str, base: Path, downloads: Path, stored: set[str]) -> Any:
    """One image value as a string the rows loader reads: bytes (a binary cell, an HF ``Image`` struct's
    ``bytes``, a bare base64 string) stored in ``downloads`` as a file named by content, whose absolute path is
    added to ``stored``; an ``Image`` struct's ``path`` alone; a path, URL or data URL as it is. A list is
    converted element by element; anything else is returned as it is (the loader says it is no image).
    ``where`` names the cell in errors."""
    if isinstance(value, list):
        return [image_value(v, where, base, downloads, stored) for v in value]
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        data, path = value.get("bytes"), value.get("path")
        if isinstance(data, (bytes, bytearray, memoryview)) and len(data):
            value = bytes(data)
        elif isinstance(path, str) and path.strip():
            return path
        else:
            return None
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if isinstance(value, bytes):
        if not value:
            return None
        text = str(_stored(value, downloads))
        stored.add(text)
        return text
    if isinstance(value, str) and not value.startswith(("data:", "http://", "https://")):
        try:
            data = _base64_image(value.strip())
        except ValueError as exc:
            if _is_file(base / value.strip()):
                return value
            raise ConfigError(f"{where}: {exc}") from None
        if data is not None:
            text = str(_stored(data, downloads))
            stored.add(text)
            return text
    return value


# --- text manifests ---------------------------------------------------------------------------------------------


def _text_rows(path: Path, source: RowSource, downloads: Path) -> Iterator[tuple[At, dict[str, Any]]]:
    """Each row of a JSONL, CSV or TSV file with the line it starts on (blank JSONL lines skipped), read as a
    stream, its image cell converted (``image_value``); an image cell that is an earlier base64 row's ``index``
    (as VLMEvalKit's TSVs refer to an image they already hold) is that row's image."""
    column = source.image
    # VLMEvalKit's TSVs give an image once, in base64: another row of it holds that row's ``index`` instead
    shared: dict[str, str] = {}
    try:
        text = open(path, encoding="utf-8-sig", newline="")  # closed below, when the rows are read
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with text:
        rows = _jsonl(path, text) if path.suffix.lower() == ".jsonl" else _delimited(path, text)
        while True:
            try:
                at, row = next(rows)
            except StopIteration:
                return
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"{path}: not valid UTF-8 text; save it as UTF-8") from None
            cell = row.get(column)
            if isinstance(cell, str) and cell.strip() in shared and not _is_file(source.base / cell.strip()):
                row[column] = shared[cell.strip()]
            elif column in row:
                try:
                    row[column] = image_value(cell, f"{at}, column {column!r}", source.base, downloads, source.stored)
                except OSError as exc:
                    raise ConfigError(f"{downloads}: cannot store the image of {at}: {exc}") from None
                if isinstance(row[column], str) and row[column] in source.stored and row.get("index") is not None:
                    shared[str(row["index"]).strip()] = row[column]
            yield at, row


def _jsonl(path: Path, text: Iterable[str]) -> Iterator[tuple[At, dict[str, Any]]]:
    for line_no, line in enumerate(text, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: line {line_no}: malformed JSON: {exc}") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}: line {line_no}: a row must be a JSON object, not {type(row).__name__}")
        yield At(path, f"line {line_no}"), row


def _delimited(path: Path, text: Iterable[str]) -> Iterator[tuple[At, dict[str, Any]]]:
    csv.field_size_limit(2**31 - 1)  # a base64 image is one cell, often over csv's 128 KiB default
    reader = csv.DictReader(text, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        if not reader.fieldnames:
            return
        start = reader.line_num + 1
        for row in reader:
            if None in row:
                raise ConfigError(
                    f"{path}: line {start}: more cells than the header's {len(reader.fieldnames)} columns"
                )
            yield At(path, f"line {start}"), {k: v for k, v in row.items() if v is not None}
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ConfigError(f"{path}: line {reader.line_num}: {exc}") from None


# --- Parquet and Arrow ------------------------------------------------------------------------------------------


def _pyarrow() -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet
    except ImportError as exc:
        raise ConfigError(
            f"reading Parquet or Arrow datasets needs pyarrow, which cannot be imported ({exc}); pip install pyarrow"
        ) from None
    return pyarrow


def _binary(kind: Any, pa: Any) -> bool:
    """Whether an Arrow type holds image bytes: binary, an ``Image`` struct (a ``bytes`` field) or lists of them."""
    types = pa.types
    if types.is_binary(kind) or types.is_large_binary(kind) or types.is_fixed_size_binary(kind):
        return True
    if types.is_struct(kind):
        return any(kind.field(i).name == "bytes" and _binary(kind.field(i).type, pa) for i in range(kind.num_fields))
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        return bool(_binary(kind.value_type, pa))
    return False


def _class_names(schema: Any) -> dict[str, list[str]]:
    """The names of each ``ClassLabel`` column, from the Hugging Face features in the schema's metadata."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        features = json.loads(raw)["info"]["features"] if raw else {}
    except (ValueError, KeyError, TypeError):
        return {}
    if not isinstance(features, dict):
        return {}
    return {
        name: [str(n) for n in spec["names"]]
        for name, spec in features.items()
        if isinstance(spec, dict) and spec.get("_type") == "ClassLabel" and isinstance(spec.get("names"), list)
    }


def _plain(value: Any) -> Any:
    """A cell as JSON values: dates and times as ISO text, decimals as floats, bytes dropped."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


def _class_name(value: Any, classes: list[str]) -> Any:
    """A ClassLabel cell as its name (-1, no label, as None)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return classes[value] if 0 <= value < len(classes) else None
    return value


def _arrow_source(base: Path, files: list[Path], image: str, downloads: Path) -> RowSource:
    source = RowSource(base, image, from_text=True)
    source.rows = _arrow_rows(files, source, downloads)
    return source


def _batches(file: Path, pa: Any) -> tuple[Any, Callable[[list[str]], Iterator[Any]]]:
    """The schema and record batches (``BATCH_ROWS`` rows at most) of a Parquet file or an Arrow IPC stream or
    file (memory-mapped: a batch's bytes are read when it is converted)."""
    if file.suffix.lower() == ".parquet":
        # pyarrow's defaults (pre-buffered, threaded reads) keep what was read: memory grew with the file (300 MB
        # of Arrow buffers for a 250 MB file); read so, it stays near a row group (63 MB for that file).
        parquet = pa.parquet.ParquetFile(file, pre_buffer=False, buffer_size=1 << 20)
        schema = parquet.schema_arrow

        def read(names: list[str]) -> Iterator[Any]:
            return parquet.iter_batches(batch_size=BATCH_ROWS, columns=names, use_threads=False)

        return schema, read
    mapped = pa.memory_map(str(file))
    try:
        reader = pa.ipc.open_stream(mapped)
        batches: Iterable[Any] = reader
    except pa.ArrowInvalid:
        reader = pa.ipc.open_file(mapped)
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))

    def read_arrow(names: list[str]) -> Iterator[Any]:
        for batch in batches:
            chosen = batch.select(names)
            for offset in range(0, chosen.num_rows, BATCH_ROWS):
                yield chosen.slice(offset, BATCH_ROWS)

    return reader.schema, read_arrow


def _arrow_rows(files: list[Path], source: RowSource, downloads: Path) -> Iterator[tuple[At, dict[str, Any]]]:
    """Each row of Parquet or Arrow ``files``, numbered from 1 in its file, read a record batch at a time: image
    cells stored (``image_value``) before the rows are handed on, ClassLabel ints as their names, other binary
    columns left out (they are not fields)."""
    pa = _pyarrow()
    image = source.image
    what = "Parquet" if files[0].suffix.lower() == ".parquet" else "Arrow"
    for file in files:
        number = 0
        try:
            schema, read = _batches(file, pa)
            names = [f.name for f in schema if f.name == image or not _binary(f.type, pa)]
            if image not in schema.names:
                raise ConfigError(
                    f"{file}: no column {image!r} for the image (dataset.image); its columns: {', '.join(schema.names)}"
                )
            labels = {k: v for k, v in _class_names(schema).items() if k in names}
            for batch in read(names):
                cells = {name: batch.column(name).to_pylist() for name in names}
                images = cells[image]
                try:
                    for i, value in enumerate(images):
                        where = f"{file}: row {number + i + 1}, column {image!r}"
                        images[i] = image_value(value, where, source.base, downloads, source.stored)
                except OSError as exc:
                    raise ConfigError(f"{downloads}: cannot store an image of {file}: {exc}") from None
                for name, classes in labels.items():
                    cells[name] = [_class_name(v, classes) for v in cells[name]]
                for i in range(batch.num_rows):
                    number += 1
                    row = {name: values[i] if name == image else _plain(values[i]) for name, values in cells.items()}
                    yield At(file, f"row {number}"), row
        except (pa.ArrowException, OSError) as exc:
            at = f"row {number + 1}: " if number else ""
            raise ConfigError(f"{file}: {at}cannot read as {what}: {exc}") from None
