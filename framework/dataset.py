"""Datasets: a folder of images (or a manifest listing them) plus a labels file of expected answers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from visionbench.errors import ConfigError
from visionbench.types import ImageItem

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}

# Which label values each task answer type accepts; None (unlabelled) is always allowed. A bool is an int in
# Python, so it is refused by name where a number is expected.
_LABEL_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "text": (str,),
}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content, read in 1 MiB chunks so big files never sit in memory whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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


def _image_paths(root: Path) -> tuple[Path, list[Path]]:
    """The dataset's base folder and its image files: every image in a folder, or those a manifest lists."""
    if root.is_dir():
        return root, sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    listed = _read_mapping_or_list(root)
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        raise ConfigError(f"{root}: a manifest must be a list of image paths (relative to the manifest)")
    return root.parent, [root.parent / x for x in listed]


def read_labels(path: Path, field: str | None) -> dict[str, Any]:
    """A labels file (JSON or YAML: ``{image: value}`` or ``{image: {field: value}}``) as ``{image: value}``."""
    raw = _read_mapping_or_list(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: labels must be a mapping of image name to expected answer")
    labels: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, dict):
            if field is None:
                raise ConfigError(f"{path}: label of {name!r} is a mapping; set dataset.label_field to one of its keys")
            if field not in value:
                raise ConfigError(f"{path}: label of {name!r} has no field {field!r} (it has: {', '.join(value)})")
            value = value[field]
        labels[str(name)] = value
    return labels


def _check_label_types(path: Path, labels: dict[str, Any], answer_type: str) -> None:
    allowed = _LABEL_TYPES[answer_type]
    for name, value in labels.items():
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
) -> list[ImageItem]:
    """Items sorted by id, each with the sha256 of its content. Labels naming missing images, or not of
    ``answer_type`` (integer, number, boolean, text) when given, are an error."""
    base, paths = _image_paths(root)
    by_id = _ids(base, paths)
    for item_id, path in by_id.items():
        if not path.is_file():
            raise ConfigError(f"{root}: listed image {item_id!r} does not exist")
    labels = read_labels(base / labels_file, label_field) if labels_file else {}
    if answer_type is not None and labels_file:
        _check_label_types(base / labels_file, labels, answer_type)
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
    items: list[ImageItem] = []
    for item_id in chosen:
        try:
            digest = sha256_file(by_id[item_id])
        except OSError:
            # Unreadable now: the item gets a per-item error when it is prepared, and the run goes on.
            digest = f"unreadable:{item_id}"
        items.append(ImageItem(id=item_id, path=by_id[item_id], sha256=digest, label=labels.get(item_id)))
    return items
