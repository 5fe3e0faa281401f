"""Datasets: a folder of images (or a manifest listing them) plus a labels file of expected answers."""

from __future__ import annotations

import hashlib
import json
import math
import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import yaml

from visionbench.errors import ConfigError
from visionbench.types import ImageItem, Task, choice_key

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}

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

    def __init__(self, base: Path, entries: Iterable[tuple[str, Path, str, Any]] = ()) -> None:
        self._base = base
        self._ids: list[str] = []
        self._sha = bytearray()
        self._labels: list[Any] = []
        self._odd_paths: dict[int, Path] = {}  # images not at base / id (a manifest's paths outside its folder)
        self._odd_sha: dict[int, str] = {}  # content hashes that are not hex (an unreadable file's marker)
        for item_id, path, digest, label in entries:
            row = len(self._ids)
            self._ids.append(item_id)
            self._labels.append(label)
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
        return ImageItem(item_id, path, sha, self._labels[row])

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

    def identities(self) -> Iterator[tuple[str, str, Any]]:
        """Each image's id, content hash and label, in order: what a bundle keeps of it, read from the columns
        without making its ``ImageItem`` and path (a run's bundle header is written several times)."""
        for row in self._rows:
            yield self._ids[row], self._odd_sha.get(row) or self._sha[32 * row : 32 * row + 32].hex(), self._labels[row]

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


def _read_mapping_or_list(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: malformed {path.suffix.lstrip('.').upper() or 'YAML'}: {exc}") from None


def _folder_images(root: Path) -> dict[str, Path]:
    """Every image file under ``root`` by its id, the path relative to ``root``: what ``root.rglob("*")`` finds
    (folders that are links are not entered; unreadable ones are skipped), read with ``os.scandir``, whose entries
    know their type, so that no file is looked at twice and a path is made only for an image."""
    found: dict[str, Path] = {}
    folders = [("", str(root))]
    while folders:
        prefix, folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except PermissionError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append((f"{prefix}{entry.name}/", entry.path))
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                found[prefix + entry.name] = Path(entry.path)
    return found


def _image_paths(root: Path) -> tuple[Path, dict[str, Path]]:
    """The dataset's base folder and its image files by id: every image in a folder, or those a manifest lists."""
    if root.is_dir():
        return root, _folder_images(root)
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


def _check_label_types(path: Path, labels: dict[str, Any], answer_type: str, task: Task | None = None) -> None:
    allowed = _LABEL_TYPES[answer_type]
    choices = {choice_key(c): c for c in task.choices or ()} if task is not None else {}
    for name, value in labels.items():
        if answer_type == "choice" and isinstance(value, str) and choices and choice_key(value) not in choices:
            raise ConfigError(
                f"{path}: label of {name!r} is {value!r}, which is not one of the task's choices "
                f"({', '.join(choices.values())})"
            )
        wrong_bool = isinstance(value, bool) and bool not in allowed
        if value is not None and (wrong_bool or not isinstance(value, allowed)):
            raise ConfigError(
                f"{path}: label of {name!r} is {value!r} ({type(value).__name__}); "
                f"the task's answer type is {answer_type}, so labels must be {answer_type} or null"
            )


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
) -> Items:
    """Items sorted by id, each with the sha256 of its content. Labels naming missing images, or not of
    ``answer_type`` (or ``task``'s: integer, number, boolean, text, choice, json) when given, are an error, as
    are a choice task's labels that are not among its choices. A choice label is kept as the config writes the
    choice ("Indoor" for ``indoor`` when the choices say ``Indoor``)."""
    if task is not None:
        answer_type = task.answer_type
    base, by_id = _image_paths(root)
    labels = read_labels(base / labels_file, label_field, objects=answer_type == "json") if labels_file else {}
    if answer_type is not None and labels_file:
        _check_label_types(base / labels_file, labels, answer_type, task)
        if task is not None and task.choices:
            choices = {choice_key(c): c for c in task.choices}
            labels = {k: choices[choice_key(v)] if isinstance(v, str) else v for k, v in labels.items()}
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
