import json

import pytest

from visionbench.dataset import load_dataset, sha256_file
from visionbench.errors import ConfigError


def test_folder_with_labels_fields(image_dir):
    items = load_dataset(image_dir, "labels.json", "person_count")
    assert [i.id for i in items] == [f"img{i}.png" for i in range(6)]
    assert [i.label for i in items] == list(range(6))
    assert items[2].sha256 == sha256_file(image_dir / "img2.png")


def test_include_and_limit(image_dir):
    items = load_dataset(image_dir, "labels.json", "person_count", include=["img4.png", "img1.png"])
    assert [i.id for i in items] == ["img1.png", "img4.png"]
    assert [i.id for i in load_dataset(image_dir, "labels.json", "person_count", limit=2)] == ["img0.png", "img1.png"]
    with pytest.raises(ConfigError, match="nope.png"):
        load_dataset(image_dir, "labels.json", "person_count", include=["nope.png"])


def test_manifest_and_plain_labels(image_dir):
    (image_dir / "list.yaml").write_text("- img3.png\n- img5.png\n")
    (image_dir / "plain.json").write_text(json.dumps({"img3.png": 7}))
    items = load_dataset(image_dir / "list.yaml", "plain.json", None)
    assert [(i.id, i.label) for i in items] == [("img3.png", 7), ("img5.png", None)]


def test_label_objects_need_a_field(image_dir):
    with pytest.raises(ConfigError, match="label_field"):
        load_dataset(image_dir, "labels.json", None)
    with pytest.raises(ConfigError, match="has no field 'count'"):
        load_dataset(image_dir, "labels.json", "count")


def test_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no images found"):
        load_dataset(tmp_path, None, None)
