"""A catalogue of bad inputs: each gives a clear message naming what is wrong; the whole run stops
(non-zero exit) only when it cannot go on, otherwise the item gets an error and the rest is answered."""

import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
from conftest import write_config
from PIL import Image
from visionbench import bundle as bundle_mod
from visionbench.cli import main
from visionbench.config import load_experiment
from visionbench.runner import prepare, run


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.fixture
def messy_dir(tmp_path):
    folder = tmp_path / "messy"
    folder.mkdir()
    good = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 200, 30)).save(good, "JPEG")
    (folder / "good.jpg").write_bytes(good.getvalue())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not an image")
    (folder / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 3])
    (folder / "bomb.png").write_bytes(png_claiming(40000, 40000))
    Image.new("CMYK", (120, 80), (0, 255, 255, 0)).save(folder / "cmyk.jpg")
    Image.fromarray((np.arange(64 * 64, dtype=np.uint16) * 16).reshape(64, 64)).save(folder / "deep16.png")
    frames = [Image.new("RGB", (50, 50), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    unreadable = folder / "locked.png"
    Image.new("RGB", (10, 10)).save(unreadable)
    unreadable.chmod(0)
    labels = {name: 1 for name in os.listdir(folder)}
    (folder / "labels.json").write_text(json.dumps(labels))
    yield folder
    unreadable.chmod(0o644)


async def test_bad_images_are_per_item_errors_and_the_rest_is_answered(tmp_path, messy_dir, registry):
    answers = {name: 1 for name in os.listdir(messy_dir)}
    path = write_config(tmp_path, messy_dir, ["sequential", {"name": "single-prompt"}], options={"answers": answers})
    path.write_text(path.read_text().replace("label_field: person_count", "label_field: null"))
    plan = prepare(load_experiment(path, registry), registry)
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=tmp_path / "cache"))
    bundle_mod.validate(data)
    assert data["status"] == "complete"
    expected_errors = {
        "empty.jpg": "empty",
        "notes.jpg": "not an image",
        "truncated.jpg": "truncated",
        "bomb.png": "decompression bomb",
        "locked.png": "locked.png",
    }
    is_root = os.geteuid() == 0  # root reads files whatever their mode
    for cell in data["cells"]:
        answers_by_item = cell["answers"]
        for name in ("good.jpg", "cmyk.jpg", "deep16.png", "anim.gif"):
            assert answers_by_item[name]["value"] == 1, (cell["id"], name, answers_by_item[name])
        for name, words in expected_errors.items():
            if name == "locked.png" and is_root:
                continue
            error = answers_by_item[name]["error"]
            assert error is not None and error.startswith("image:"), (name, error)
            assert name in error and words.lower() in error.lower(), (name, error)


def test_whole_run_errors_exit_non_zero_with_the_culprit_named(tmp_path, image_dir, capsys):
    cases = {
        "malformed.yaml": ("name: [x\n", "malformed YAML"),
        "notamap.yaml": ("- just\n- a list\n", "must be a YAML mapping"),
        "unknownplugin.yaml": (None, "unknown provider 'gpt-vision'"),
        "badtype.yaml": (None, "repeats"),
    }
    base = write_config(tmp_path, image_dir, ["sequential"], provider="local-faces").read_text()
    base = base.replace("- m1", "- centerface")
    for name, (text, needle) in cases.items():
        if text is None:
            text = (
                base.replace("provider: local-faces", "provider: gpt-vision")
                if "plugin" in name
                else base.replace("repeats: 1", "repeats: lots")
                if "repeats: 1" in base
                else base + "repeats: lots\n"
            )
        path = tmp_path / name
        path.write_text(text)
        assert main(["validate", str(path)]) == 2, name
        err = capsys.readouterr().err
        assert name in err and needle in err, (name, err)


def test_manifest_listing_a_missing_image(tmp_path, image_dir, capsys):
    (image_dir / "manifest.json").write_text(json.dumps(["img0.png", "ghost.png"]))
    path = write_config(tmp_path, image_dir / "manifest.json", ["sequential"], provider="local-faces")
    path.write_text(path.read_text().replace("- m1", "- centerface"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ghost.png" in err and "does not exist" in err


def _validate(tmp_path, dataset, capsys, **replace) -> tuple[int, str]:
    """`visionbench validate` on a local-faces config over ``dataset``: its exit code and stderr."""
    path = write_config(tmp_path, dataset, ["sequential"], provider="local-faces")
    text = path.read_text().replace("- m1", "- centerface")
    for old, new in replace.items():
        text = text.replace(old, new)
    path.write_text(text)
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("bad", ["3", [3], True, 2.5])
def test_a_label_of_the_wrong_type_names_the_image_and_value(tmp_path, image_dir, capsys, bad):
    labels = json.loads((image_dir / "labels.json").read_text())
    labels["img4.png"]["person_count"] = bad
    labels["img5.png"]["person_count"] = None  # unlabelled: allowed
    (image_dir / "labels.json").write_text(json.dumps(labels))
    code, err = _validate(tmp_path, image_dir, capsys)
    assert code == 2, err
    assert "labels.json" in err and "'img4.png'" in err and repr(bad) in err and "integer" in err, err
    assert "img5.png" not in err


def test_labels_fit_each_answer_type(tmp_path, image_dir, capsys):
    labels = {"img0.png": True, "img1.png": False, "img2.png": None}
    (image_dir / "bool.json").write_text(json.dumps(labels))
    code, err = _validate(
        tmp_path, image_dir, capsys, **{"answer: integer": "answer: boolean", "labels.json": "bool.json"}
    )
    assert code == 0, err
    (image_dir / "bool.json").write_text(json.dumps({**labels, "img3.png": 1}))
    code, err = _validate(
        tmp_path, image_dir, capsys, **{"answer: integer": "answer: boolean", "labels.json": "bool.json"}
    )
    assert code == 2 and "'img3.png'" in err and "boolean" in err, err


def test_a_manifest_listing_two_files_of_one_name_names_both(tmp_path, image_dir, capsys):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.new("RGB", (20, 20)).save(tmp_path / sub / "same.png")
    first, second = str(tmp_path / "a" / "same.png"), str(tmp_path / "b" / "same.png")
    (image_dir / "manifest.json").write_text(json.dumps(["img0.png", first, second]))
    code, err = _validate(tmp_path, image_dir / "manifest.json", capsys, **{"labels: labels.json": "labels: null"})
    assert code == 2, err
    assert first in err and second in err and "same id" in err, err
