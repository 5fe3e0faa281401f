"""Datasets: a folder of images (or a manifest listing them) plus a labels file of expected answers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import mimetypes
import os
import urllib.parse
import urllib.request
from array import array
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, overload

import yaml

from visionbench.data.row_sources import At, is_rows_file, is_rows_folder, open_rows
from visionbench.data.row_sources import store_file as _store
from visionbench.errors import ConfigError
from visionbench.types import ImageItem, Task, choice_key, images_sha256, task_placeholders

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
#: Seconds to fetch one image URL of a rows manifest before it is an error.
URL_TIMEOUT_S = 60.0

# Which label values each task answer type accepts; None (unlabelled) is always allowed. A bool is an int in
# Python, so it is refused by name where a number is expected.
_LABEL_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "text": (str,),
    "choice": (str,),
    # any JSON value (an object, usually); checked against the task's schema only at scoring, by field
    "json": (dict, list, str, int, float, bool),
}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content, read in 64 KiB chunks so big files never sit in memory whole.

    Every image of a run is hashed when its dataset is loaded: a plain descriptor and chunks under malloc's mmap
    threshold take ~8 us for a small image, where ``open()``'s buffered file and 1 MiB reads took ~15."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, 1 << 16):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


class Items(Sequence[ImageItem]):
    """A dataset's images held as columns (ids, 32-byte content hashes, labels, one base folder): under 64
    bytes an image besides its id, where an ``ImageItem`` and its ``Path`` take about 420. Each ``ImageItem``
    is made when it is read; a slice or ``without`` is a view over the same columns.
    """

    def __init__(self, base: Path, entries: Iterable[tuple[Any, ...]] = ()) -> None:
        """``entries``: (id, path, content hash, label[, fields[, parts]]), ``parts`` the (path, hash) of each image
        of an item of several (its path is the first's, its hash ``images_sha256`` of theirs)."""
        self._base = base
        self._ids: list[str] = []
        self._sha = bytearray()
        self._labels: list[Any] = []
        self._odd_paths: dict[int, Path] = {}  # images not at base / id (a manifest's paths outside its folder)
        self._odd_sha: dict[int, str] = {}  # content hashes that are not hex (an unreadable file's marker)
        self._fields: dict[int, dict[str, Any]] = {}  # a rows manifest's named fields, by row (folders have none)
        self._parts: dict[int, tuple[tuple[Path, str], ...]] = {}  # items of several images: each image's path, hash
        for item_id, path, digest, label, *more in entries:
            row = len(self._ids)
            self._ids.append(item_id)
            self._labels.append(label)
            if more and more[0] is not None:
                self._fields[row] = more[0]
            if len(more) > 1 and more[1]:
                self._parts[row] = tuple(more[1])
            if path != base / item_id:
                self._odd_paths[row] = path
            try:
                raw = bytes.fromhex(digest)
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raw, self._odd_sha[row] = bytes(32), digest
            self._sha += raw
        self._rows: range | array = range(len(self._ids))

    def _view(self, rows: range | array) -> Items:
        view = object.__new__(Items)
        view.__dict__.update(self.__dict__)
        view._rows = rows
        return view

    def _item(self, row: int) -> ImageItem:
        item_id = self._ids[row]
        path = self._odd_paths.get(row) or self._base / item_id
        sha = self._odd_sha.get(row) or self._sha[32 * row : 32 * row + 32].hex()
        parts = self._parts.get(row)
        if parts:
            images = tuple(ImageItem(f"{item_id}#{k}", p, h) for k, (p, h) in enumerate(parts, 1))
            return ImageItem(item_id, path, sha, self._labels[row], self._fields.get(row), images)
        return ImageItem(item_id, path, sha, self._labels[row], self._fields.get(row))

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> ImageItem: ...

    @overload
    def __getitem__(self, index: slice) -> Items: ...

    def __getitem__(self, index: int | slice) -> ImageItem | Items:
        if isinstance(index, slice):
            return self._view(self._rows[index])
        return self._item(self._rows[index])

    def __iter__(self):
        for row in self._rows:
            yield self._item(row)

    def identities(self) -> Iterator[tuple[str, str, Any, dict[str, Any] | None, list[str] | None]]:
        """Each item's id, content hash, label, fields (None but for a rows manifest) and its images' hashes (None
        but for an item of several), in order: what a bundle keeps of it, read from the columns without making its
        ``ImageItem`` and path (a run's bundle header is written several times)."""
        fields, parts = self._fields, self._parts
        for row in self._rows:
            sha = self._odd_sha.get(row) or self._sha[32 * row : 32 * row + 32].hex()
            images = [h for _, h in parts[row]] if row in parts else None
            yield self._ids[row], sha, self._labels[row], fields.get(row), images

    @property
    def has_fields(self) -> bool:
        """Whether any item has named fields (a rows manifest)."""
        return bool(self._fields)

    def ids_and_labels(self) -> Iterator[tuple[str, Any]]:
        """Each image's id and label, in order, read from the columns: what a cell's summary needs of it, without
        making its ``ImageItem`` and path (``scoring`` reads them at the end of every cell)."""
        ids, labels = self._ids, self._labels
        for row in self._rows:
            yield ids[row], labels[row]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self)} images of {self._base}>"

    def without(self, ids: set[str]) -> Items:
        """These images but those in ``ids`` (a resumed cell's finished ones), in the same order."""
        if not ids:
            return self
        return self._view(array("q", (row for row in self._rows if self._ids[row] not in ids)))


def read_text(path: Path, what: str = "") -> str:
    """A text file the user wrote (a config, labels, a manifest), UTF-8 with or without a BOM; a file that cannot
    be read or is not UTF-8 is a ConfigError naming it (``what``: "config" makes "cannot read config")."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read{' ' + what if what else ''}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid UTF-8 text (byte {exc.start}); save {'the ' + what if what else 'it'} as UTF-8"
        ) from None


def _read_mapping_or_list(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: malformed {path.suffix.lstrip('.').upper() or 'YAML'}: {exc}") from None


def folder_images(root: Path) -> dict[str, Path]:
    """Every image file under ``root`` by its id, the path relative to ``root``, read with ``os.scandir``, whose
    entries know their type, so that no file is looked at twice and a path is made only for an image. Folders that
    are links are entered (a dataset of linked sub-folders is common), each real folder once: a link back up the
    tree (a loop) or a second link to a folder already walked adds nothing. Unreadable folders are skipped."""
    found: dict[str, Path] = {}
    seen: set[str] = set()
    folders = [("", str(root))]
    while folders:
        prefix, folder = folders.pop()
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (PermissionError, FileNotFoundError):
            continue
        # Walked in name order, depth first (a stack: later names first), so which of two links to one folder
        # names its images does not depend on the file system's order.
        for entry in reversed(entries):
            # d_type says what an entry is without a stat; only a link is followed (a stat) to see if it is a folder
            if entry.is_dir(follow_symlinks=False) or (entry.is_symlink() and entry.is_dir()):
                folders.append((f"{prefix}{entry.name}/", entry.path))
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                found[prefix + entry.name] = Path(entry.path)
    return found


def _image_paths(root: Path) -> tuple[Path, dict[str, Path]]:
    """The dataset's base folder and its image files by id: every image in a folder, or those a manifest lists."""
    if root.is_dir():
        return root, folder_images(root)
    listed = _read_mapping_or_list(root)
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        raise ConfigError(f"{root}: a manifest must be a list of image paths (relative to the manifest)")
    by_id = _ids(root.parent, [root.parent / x for x in listed])
    for item_id, path in by_id.items():
        if not path.is_file():
            raise ConfigError(f"{root}: listed image {item_id!r} does not exist")
    return root.parent, by_id


def _not_finite(value: Any) -> bool:
    """Whether ``value`` is or holds (in an object or list) a NaN or infinite number."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_not_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_not_finite(v) for v in value)
    return False


def read_labels(path: Path, field: str | None, objects: bool = False) -> dict[str, Any]:
    """A labels file (JSON or YAML: ``{image: value}`` or ``{image: {field: value}}``) as ``{image: value}``.

    With ``objects`` (a json task) an object is the label itself unless ``field`` is given. A NaN or infinite
    number (JSON ``NaN``, YAML ``.nan``, ``.inf``) is an error naming the image: it has no error to score."""
    raw = _read_mapping_or_list(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: labels must be a mapping of image name to expected answer")
    labels: dict[str, Any] = {}
    for name, value in raw.items():
        if _not_finite(value):
            raise ConfigError(
                f"{path}: label of {name!r} is or holds {value!r}; a label must be a finite number (or null)"
            )
        if isinstance(value, dict) and not (objects and field is None):
            if field is None:
                raise ConfigError(f"{path}: label of {name!r} is a mapping; set dataset.label_field to one of its keys")
            if field not in value:
                raise ConfigError(f"{path}: label of {name!r} has no field {field!r} (it has: {', '.join(value)})")
            value = value[field]
        labels[str(name)] = value
    return labels


def _label_type_error(value: Any, answer_type: str, choices: dict[str, str]) -> str | None:
    """Why ``value`` is not a label of ``answer_type`` (and ``choices``), or None when it is one. A list of labels
    is several acceptable answers (any is right), but for a json task, whose label may be any JSON value."""
    if isinstance(value, list) and answer_type != "json":
        if not value:
            return "is an empty list; several acceptable answers need at least one"
        for one in value:
            why = "is a list" if isinstance(one, list) else _label_type_error(one, answer_type, choices)
            if why:
                return f"lists one that {why.removeprefix('is ')}"
        return None
    if answer_type == "choice" and isinstance(value, str) and choices and choice_key(value) not in choices:
        return f"is {value!r}, which is not one of the task's choices ({', '.join(choices.values())})"
    allowed = _LABEL_TYPES[answer_type]
    wrong_bool = isinstance(value, bool) and bool not in allowed
    if value is not None and (wrong_bool or not isinstance(value, allowed)):
        return (
            f"is {value!r} ({type(value).__name__}); "
            f"the task's answer type is {answer_type}, so labels must be {answer_type} or null"
        )
    return None


def _as_choice(label: Any, choices: dict[str, str]) -> Any:
    """A choice label (or each of several) as the config writes the choice ("Indoor" for ``indoor``)."""
    if isinstance(label, list):
        return [_as_choice(one, choices) for one in label]
    return choices[choice_key(label)] if isinstance(label, str) else label


def task_label(value: Any, task: Task) -> Any:
    """A label kept for one task as ``task`` takes it (a choice as its config writes it), checked as a dataset's
    labels are; raises ``ValueError`` saying why it is not one of ``task``'s labels (``rescore`` of a run whose
    task changed its answer type or choices)."""
    choices = {choice_key(c): c for c in task.choices or ()}
    why = _label_type_error(value, task.answer_type, choices)
    if why:
        raise ValueError(why)
    return _as_choice(value, choices) if choices else value


def _check_label_types(path: Path, labels: dict[str, Any], answer_type: str, task: Task | None = None) -> None:
    choices = {choice_key(c): c for c in task.choices or ()} if task is not None else {}
    for name, value in labels.items():
        why = _label_type_error(value, answer_type, choices)
        if why:
            raise ConfigError(f"{path}: label of {name!r} {why}")


def _ids(base: Path, paths: list[Path]) -> dict[str, Path]:
    """Each image by its id (path relative to the dataset's base, else its file name); a clash is an error."""
    by_id: dict[str, Path] = {}
    for path in paths:
        item_id = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name
        if item_id in by_id:
            raise ConfigError(
                f"{base}: {by_id[item_id]} and {path} have the same id {item_id!r}; "
                "ids must be unique (list each image once, with paths relative to the manifest)"
            )
        by_id[item_id] = path
    return by_id


def load_dataset(
    root: Path,
    labels_file: str | None,
    label_field: str | None,
    limit: int | None = None,
    include: list[str] | None = None,
    answer_type: str | None = None,
    task: Task | None = None,
    columns: Columns | None = None,
    downloads: Path | None = None,
    split: str | None = None,
) -> Items:
    """Items sorted by id, each with the sha256 of its content (a rows manifest's: in its order, see
    ``load_rows``). Labels naming missing images, or not of
    ``answer_type`` (or ``task``'s: integer, number, boolean, text, choice, json) when given, are an error, as
    are a choice task's labels that are not among its choices. A choice label is kept as the config writes the
    choice ("Indoor" for ``indoor`` when the choices say ``Indoor``)."""
    if task is not None:
        answer_type = task.answer_type
    if is_rows_manifest(root):
        if labels_file:
            raise ConfigError(
                f"{root}: a rows manifest holds its answers in a column (dataset.answer); dataset.labels is for "
                "folders and lists of paths"
            )
        return load_rows(
            root,
            columns or Columns(),
            label_field=label_field,
            limit=limit,
            include=include,
            answer_type=answer_type,
            task=task,
            downloads=downloads,
            split=split,
        )
    if split is not None:
        raise ConfigError(
            f"{root}: dataset.split {split!r}, but a folder of images or a list of paths has no splits (splits are "
            "a Hugging Face dataset's: a save_to_disk folder, a folder of Parquet files, an imagefolder with metadata)"
        )
    for where, names in (task_placeholders(task) if task is not None else {}).items():
        shown = ", ".join("{" + name + "}" for name in names)
        raise ConfigError(
            f"{root}: {where} has placeholders ({shown}) that nothing fills: only a rows manifest (JSONL, CSV, "
            "TSV, Parquet, a Hugging Face dataset, an imagefolder with metadata) has fields; write {{ and }} for "
            "literal braces"
        )
    base, by_id = _image_paths(root)
    labels = read_labels(base / labels_file, label_field, objects=answer_type == "json") if labels_file else {}
    if answer_type is not None and labels_file:
        _check_label_types(base / labels_file, labels, answer_type, task)
        if task is not None and task.choices:
            choices = {choice_key(c): c for c in task.choices}
            labels = {k: _as_choice(v, choices) for k, v in labels.items()}
    missing = sorted(set(labels) - set(by_id))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ConfigError(f"{base / labels_file}: labels name images that are not in the dataset: {shown}")
    chosen = sorted(by_id)
    if include is not None:
        unknown = sorted(set(include) - set(by_id))
        if unknown:
            raise ConfigError(f"{root}: dataset.include names images that are not there: {', '.join(unknown)}")
        chosen = [i for i in chosen if i in set(include)]
    chosen = chosen[:limit] if limit else chosen
    if not chosen:
        raise ConfigError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return Items(base, ((i, by_id[i], _digest(by_id[i], i), labels.get(i)) for i in chosen))


def _digest(path: Path, item_id: str) -> str:
    try:
        return sha256_file(path)
    except OSError:
        # Unreadable now: the item gets a per-item error when it is prepared, and the run goes on.
        return f"unreadable:{item_id}"


# --- rows manifests: JSONL, CSV, TSV -------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """Which column of a rows manifest is the image, the reference answer and the id; the others are fields."""

    image: str = "image"
    answer: str = "answer"
    id: str = "id"


def is_rows_manifest(path: Path) -> bool:
    """Whether ``path`` is a dataset of rows rather than a folder of images or a list of paths: a JSONL, CSV, TSV,
    Parquet or Arrow file, or a folder of Parquet files, a Hugging Face ``save_to_disk`` folder or an imagefolder
    with a ``metadata.jsonl``/``metadata.csv`` (``row_sources``)."""
    return is_rows_folder(path) if path.is_dir() else is_rows_file(path)


def default_cache_dir() -> Path:
    """The image cache's folder: VISIONBENCH_CACHE_DIR, else the user's cache folder."""
    if os.environ.get("VISIONBENCH_CACHE_DIR"):
        return Path(os.environ["VISIONBENCH_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "visionbench" / "images"


def default_downloads_dir() -> Path:
    """Where image URLs are downloaded: ``downloads/`` in the image cache, keyed by the URL's hash."""
    return default_cache_dir() / "downloads"


_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _typed_cell(value: str, answer_type: str) -> Any:
    """A CSV/TSV answer cell as the task's answer type reads it; an empty cell is unlabelled."""
    text = value.strip()
    if not text:
        return None
    if answer_type != "json" and text.startswith("["):  # several acceptable answers, as a JSON array
        try:
            several = json.loads(text)
        except json.JSONDecodeError:
            several = None
        if isinstance(several, list):
            return several
    if answer_type == "integer":
        return int(text)
    if answer_type == "number":
        return float(text)
    if answer_type == "boolean":
        if text.casefold() not in _BOOL_WORDS:
            raise ValueError(f"{value!r} is not true/false (or yes/no, 1/0)")
        return _BOOL_WORDS[text.casefold()]
    if answer_type == "json":
        return json.loads(text)
    return value


def _row_label(
    where: str, value: Any, answer_type: str | None, task: Task | None, label_field: str | None, from_text: bool
) -> Any:
    """A row's answer cell as its label, checked as a labels file's labels are (``where`` names file, line and
    column in errors)."""
    if from_text and answer_type is not None and isinstance(value, str):
        try:
            value = _typed_cell(value, answer_type)
        except ValueError as exc:
            raise ConfigError(f"{where}: {value!r} is not a {answer_type} answer ({exc})") from None
    if _not_finite(value):
        raise ConfigError(f"{where}: the answer is or holds {value!r}; a label must be a finite number (or null)")
    if isinstance(value, dict) and not (answer_type == "json" and label_field is None):
        if label_field is None:
            raise ConfigError(f"{where}: the answer is a mapping; set dataset.label_field to one of its keys")
        if label_field not in value:
            raise ConfigError(f"{where}: the answer has no field {label_field!r} (it has: {', '.join(value)})")
        value = value[label_field]
    if answer_type is not None:
        why = _label_type_error(value, answer_type, {choice_key(c): c for c in task.choices or ()} if task else {})
        if why:
            raise ConfigError(f"{where}: the answer {why}")
        if task is not None and task.choices:
            value = _as_choice(value, {choice_key(c): c for c in task.choices})
    return value


def _data_url_bytes(url: str) -> bytes:
    """The bytes of a ``data:`` URL (base64 or percent-encoded)."""
    head, sep, payload = url.partition(",")
    if not sep:
        raise ValueError("a data URL needs a comma before its data")
    if head.endswith(";base64"):
        return base64.b64decode(payload, validate=True)
    return urllib.parse.unquote_to_bytes(payload)


def _suffix_for(url: str) -> str:
    if url.startswith("data:"):
        mime = url[5:].split(",", 1)[0].split(";", 1)[0]
        return mimetypes.guess_extension(mime) or "" if mime else ""
    suffix = Path(urllib.parse.urlsplit(url).path).suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ""


def _fetch(url: str, folder: Path) -> Path:
    """The image at ``url``, downloaded once into ``folder`` under the URL's sha256 (kept for later runs)."""
    target = folder / (hashlib.sha256(url.encode()).hexdigest() + _suffix_for(url))
    if target.is_file():
        return target
    with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as reply:  # noqa: S310 - http(s) only, checked
        data = reply.read()
    if not data:
        raise ValueError("the reply is empty")
    return _store(folder, target.name, data)


def _row_images(base: Path, wanted: list[tuple[str, str]], downloads: Path) -> dict[str, Path]:
    """Each row image (``(where, image)``: a path relative to ``base``, an http(s) URL or a data URL) as a local
    file: URLs downloaded (8 at a time) and data URLs decoded into ``downloads``. A URL that cannot be fetched is an
    error naming it."""
    paths: dict[str, Path] = {}
    urls: dict[str, str] = {}
    for where, image in wanted:
        if image in paths or image in urls:
            continue
        if image.startswith("data:"):
            try:
                data = _data_url_bytes(image)
            except (ValueError, binascii.Error) as exc:
                raise ConfigError(f"{where}: malformed data URL ({exc})") from None
            name = "data-" + hashlib.sha256(data).hexdigest() + _suffix_for(image)
            paths[image] = downloads / name if (downloads / name).is_file() else _store(downloads, name, data)
        elif image.startswith(("http://", "https://")):
            urls[image] = where
        else:
            paths[image] = base / image
            if not paths[image].is_file():
                raise ConfigError(f"{where}: image {image!r} does not exist (paths are relative to the manifest)")
    if urls:

        def fetch(url: str) -> tuple[str, Path | str]:
            try:
                return url, _fetch(url, downloads)
            except Exception as exc:  # noqa: BLE001 - any failure to fetch is reported with the URL
                return url, str(exc) or type(exc).__name__

        with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
            for url, got in pool.map(fetch, urls):
                if isinstance(got, str):
                    raise ConfigError(f"{urls[url]}: cannot fetch {url}: {got}")
                paths[url] = got
    return paths


def load_rows(
    manifest: Path,
    columns: Columns,
    *,
    label_field: str | None = None,
    limit: int | None = None,
    include: list[str] | None = None,
    answer_type: str | None = None,
    task: Task | None = None,
    downloads: Path | None = None,
    split: str | None = None,
) -> Items:
    """The items of a rows manifest (JSONL, CSV, TSV; Parquet, Arrow, a ``save_to_disk`` folder or an imagefolder
    with metadata, whose ``split`` may be chosen: ``row_sources``), in the file's order: each row's image (a path
    relative to the manifest, an http(s) URL downloaded once into ``downloads``, a data URL, or bytes stored
    there), its answer column typed by the task's answer type and checked as labels files are, its id (the id
    column, else the image's path, else ``row-N``) and its other columns as fields. Errors name the file, the line
    (or row) and the column."""
    if task is not None:
        answer_type = task.answer_type
    downloads = downloads or default_downloads_dir()
    source = open_rows(manifest, columns.image, split=split, downloads=downloads)
    columns, from_text = replace(columns, image=source.image), source.from_text
    needed = [(where, name) for where, names in (task_placeholders(task) if task else {}).items() for name in names]
    chosen: list[tuple[str, list[str], Any, dict[str, Any]]] = []  # (id, images, label, fields)
    seen: dict[str, At] = {}
    wanted = set(include) if include is not None else None
    for place, row in source.rows:
        at = str(place)
        images = _image_cell(row.get(columns.image), f"{at}, column {columns.image!r}")
        raw_id = row.get(columns.id)
        if raw_id is not None and str(raw_id).strip():
            item_id = str(raw_id).strip()
        elif any(image.startswith(("data:", "http://", "https://")) or image in source.stored for image in images):
            item_id = f"row-{len(seen) + 1}"
        else:
            item_id = "+".join(Path(image).as_posix() for image in images)
        if item_id in seen:
            first = seen[item_id].pos if seen[item_id].file == place.file else seen[item_id]
            raise ConfigError(
                f"{at}: id {item_id!r} is also {first}'s; ids must be unique (give each row an {columns.id!r} column)"
            )
        seen[item_id] = place
        label = _row_label(
            f"{at}, column {columns.answer!r}", row.get(columns.answer), answer_type, task, label_field, from_text
        )
        fields = {k: v for k, v in row.items() if k not in (columns.image, columns.answer, columns.id)}
        for needs, name in needed:
            if fields.get(name) is None:
                has = ", ".join(fields) or "none"
                raise ConfigError(
                    f"{at}, column {name!r}: the row has no {name!r}, which {needs}'s {{{name}}} needs "
                    f"(its fields: {has}; the image, answer and id columns are not fields)"
                )
        if wanted is None or item_id in wanted:
            chosen.append((item_id, images, label, fields))
    if wanted is not None:
        unknown = sorted(wanted - set(seen))
        if unknown:
            raise ConfigError(f"{manifest}: dataset.include names items that are not there: {', '.join(unknown)}")
    chosen = chosen[:limit] if limit else chosen
    if not chosen:
        raise ConfigError(f"{manifest}: no rows")
    where = {image: f"{seen[i]}, column {columns.image!r}" for i, images, _, _ in chosen for image in images}
    paths = _row_images(source.base, [(w, image) for image, w in where.items()], downloads)

    def entry(item_id: str, images: list[str], label: Any, fields: dict[str, Any]) -> tuple[Any, ...]:
        if len(images) == 1:
            return item_id, paths[images[0]], _digest(paths[images[0]], item_id), label, fields
        parts = [(paths[image], _digest(paths[image], f"{item_id}#{k}")) for k, image in enumerate(images, 1)]
        return item_id, parts[0][0], images_sha256([h for _, h in parts]), label, fields, parts

    return Items(source.base, (entry(*row) for row in chosen))


def _image_cell(value: Any, where: str) -> list[str]:
    """A row's image cell as its images: one (a path, an http(s) URL or a data URL), or a list of them (a JSON
    array; in a CSV/TSV cell written as one, ``["a.jpg", "b.jpg"]``) for an item of several images."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: a list of images must be a JSON array of strings ({exc})") from None
    images = value if isinstance(value, list) else [value]
    if not images or not all(isinstance(image, str) and image.strip() for image in images):
        raise ConfigError(
            f"{where}: no image (a path, an http(s) URL or a data URL; or a JSON array of them for several)"
        )
    return [image.strip() for image in images]
