import hashlib
import json
import os
import tracemalloc

import pytest

from visionbench.data.dataset import Items, load_dataset, sha256_file
from visionbench.errors import ConfigError
from visionbench.results.bundle import ItemList, item_to_json
from visionbench.types import ImageItem


def test_folder_with_labels_fields(image_dir):
    items = load_dataset(image_dir, "labels.json", "person_count")
    assert [i.id for i in items] == [f"img{i}.png" for i in range(6)]
    assert [i.label for i in items] == list(range(6))
    assert items[2].sha256 == sha256_file(image_dir / "img2.png")


def test_a_folder_lists_what_rglob_finds(tmp_path):
    """Subfolders (hidden ones too) by relative id, any case of suffix, links to files; a link to a folder already
    walked (linked_folder -> a) adds nothing."""
    for name in ["x.JPG", "a/y.png", "a/b/z.jpeg", "a/b/notes.txt", ".hidden/h.jpg", "a/dir.jpg/q.webp"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"not decoded when listed")
    (tmp_path / "folder.png").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "linked_folder")
    os.symlink(tmp_path / "x.JPG", tmp_path / "linked.jpg")
    os.symlink(tmp_path / "gone.jpg", tmp_path / "broken.jpg")
    expected = sorted(
        p.relative_to(tmp_path).as_posix()
        for p in tmp_path.rglob("*")
        if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"} and p.is_file()
    )
    items = load_dataset(tmp_path, None, None)
    assert [i.id for i in items] == expected
    assert expected == [".hidden/h.jpg", "a/b/z.jpeg", "a/dir.jpg/q.webp", "a/y.png", "linked.jpg", "x.JPG"]
    assert [i.path for i in items] == [tmp_path / i for i in expected]


def test_linked_sub_folders_are_walked_once_and_loops_end(tmp_path):
    """A dataset of linked sub-folders (data/train -> elsewhere): their images are in it (rglob leaves them out);
    a link back up the tree (a loop) and a second link to the same folder add nothing."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "deep").mkdir(parents=True)
    (elsewhere / "e.png").write_bytes(b"e")
    (elsewhere / "deep" / "f.jpg").write_bytes(b"f")
    data = tmp_path / "data"
    data.mkdir()
    (data / "own.png").write_bytes(b"o")
    os.symlink(elsewhere, data / "train")
    os.symlink(elsewhere, data / "z_again")  # the same folder again, under a later name
    os.symlink(data, elsewhere / "deep" / "loop")  # back up: data -> train -> deep -> loop -> data ...
    assert not any(p.suffix == ".png" and "train" in p.parts for p in data.rglob("*"))  # what rglob missed
    items = load_dataset(data, None, None)
    assert [i.id for i in items] == ["own.png", "train/deep/f.jpg", "train/e.png"]
    assert items[2].path == data / "train" / "e.png" and items[2].sha256 == sha256_file(elsewhere / "e.png")


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


def test_items_are_the_image_items_a_list_would_hold(image_dir, tmp_path):
    outside = tmp_path / "elsewhere" / "far.png"
    outside.parent.mkdir()
    outside.write_bytes((image_dir / "img0.png").read_bytes())
    (image_dir / "list.yaml").write_text(f"- img3.png\n- {outside}\n- img5.png\n")
    (image_dir / "img5.png").chmod(0)  # unreadable: its hash is a marker, and the item stays
    try:
        items = load_dataset(image_dir / "list.yaml", None, None)
    finally:
        (image_dir / "img5.png").chmod(0o644)
    assert isinstance(items, Items) and len(items) == 3
    want = [
        ImageItem("far.png", outside, sha256_file(outside)),
        ImageItem("img3.png", image_dir / "img3.png", sha256_file(image_dir / "img3.png")),
        ImageItem("img5.png", image_dir / "img5.png", "unreadable:img5.png"),
    ]
    if os.geteuid() == 0:  # root reads what chmod 0 forbids
        want[2] = ImageItem("img5.png", image_dir / "img5.png", sha256_file(image_dir / "img5.png"))
    assert list(items) == want and items == want and items[-1] == want[-1]
    assert isinstance(items[1:], Items) and list(items[1:]) == want[1:] and list(items[::2]) == want[::2]
    assert list(items.without({"img3.png"})) == [want[0], want[2]] and items.without(set()) is items
    assert [item.id for item in items.without({"far.png"})[1:]] == ["img5.png"]


def test_identities_are_what_the_bundle_keeps_of_each_item(tmp_path):
    entries = [
        ("a.png", tmp_path / "a.png", hashlib.sha256(b"a").hexdigest(), 3),
        ("far.png", tmp_path / "elsewhere" / "far.png", hashlib.sha256(b"far").hexdigest(), None),
        ("gone.png", tmp_path / "gone.png", "unreadable:gone.png", "text"),
    ]
    items = Items(tmp_path, entries)
    for view in (items, items[1:], items.without({"far.png"})):
        assert list(view.identities()) == [(i.id, i.sha256, i.label, None, None) for i in view]
        assert list(view.ids_and_labels()) == [(i.id, i.label) for i in view]
        assert list(ItemList(view)) == [item_to_json(i) for i in view] == [item_to_json(i) for i in list(view)]
    assert list(items.identities())[2] == ("gone.png", "unreadable:gone.png", "text", None, None)


def test_items_hold_about_a_hundred_bytes_an_image(tmp_path):
    n = 20_000
    entries = [
        (f"img{i:06d}.png", tmp_path / f"img{i:06d}.png", hashlib.sha256(bytes(i)).hexdigest(), i % 7) for i in range(n)
    ]
    ids = [entry[0] for entry in entries]  # held by the caller too: the ids are shared, not copied
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    items = Items(tmp_path, iter(entries))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(items) == n and items[n - 1].sha256 == entries[-1][2] and items[123].path == entries[123][1]
    assert held / n < 64  # an id pointer, 32 bytes of hash and a label pointer; list of ImageItem: ~420 bytes
    assert ids[0] is items[0].id
