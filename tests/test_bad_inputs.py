"""A catalogue of bad inputs: each gives a clear message naming what is wrong; the whole run stops
(non-zero exit) only when it cannot go on, otherwise the item gets an error and the rest is answered."""

import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_config
from PIL import Image

from visionbench.cli import main
from visionbench.results import bundle as bundle_mod
from visionbench.run.plan import load_plan
from visionbench.run.runner import run

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


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
    plan = load_plan(path, registry)
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=tmp_path / "cache"))
    bundle_mod.validate(data)
    assert data["status"] == "incomplete"  # every cell ran to its end; the bad images have no answer
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


@pytest.mark.parametrize("bad", ["3", [3, "4"], [], [[3]], True, 2.5])
def test_a_label_of_the_wrong_type_names_the_image_and_value(tmp_path, image_dir, capsys, bad):
    labels = json.loads((image_dir / "labels.json").read_text())
    labels["img4.png"]["person_count"] = bad
    labels["img5.png"]["person_count"] = None  # unlabelled: allowed
    labels["img3.png"]["person_count"] = [3, 4]  # several acceptable answers: allowed
    (image_dir / "labels.json").write_text(json.dumps(labels))
    code, err = _validate(tmp_path, image_dir, capsys)
    assert code == 2, err
    assert "labels.json" in err and "'img4.png'" in err, err
    if bad == []:
        assert "empty list" in err, err
    elif bad == [[3]]:
        assert "lists one that a list" in err, err
    else:
        assert repr(bad[-1] if isinstance(bad, list) else bad) in err and "integer" in err, err
    assert "img5.png" not in err and "img3.png" not in err


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


def _one_line_error(code: int, err: str, *needles: str, expected: int = 2) -> None:
    assert code == expected, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert all(n in err for n in needles), (needles, err)


BAD_BUNDLES = {
    "empty": b"",
    "truncated": b'{"schema_version": 1, "run_id": "x", "cel',
    "corrupt": b"\x00\xff\xfe garbage \x81",
    "foreign": b'{"name": "some-package", "version": "1.0"}',
    "list": b"[1, 2, 3]",
}


@pytest.mark.parametrize("kind", sorted(BAD_BUNDLES))
@pytest.mark.parametrize("command", ["report", "compare", "resume"])
def test_a_bad_bundle_is_one_line_naming_the_file(tmp_path, capsys, kind, command):
    path = tmp_path / f"{kind}.json"
    path.write_bytes(BAD_BUNDLES[kind])
    argv = {"report": ["report", str(path)], "compare": ["compare", str(path), str(path)]}.get(
        command, ["run", "--resume", str(path)]
    )
    _one_line_error(main(argv), capsys.readouterr().err, f"{kind}.json")


@pytest.fixture
def faces_config(tmp_path, image_dir):
    path = write_config(tmp_path, image_dir, ["sequential"], provider="local-faces")
    path.write_text(path.read_text().replace("- m1", "- centerface"))
    return path


@pytest.mark.parametrize("which", ["--results", "--cache-dir"])
def test_a_results_or_cache_folder_that_is_a_file(tmp_path, capsys, faces_config, which):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    folders = {"--results": str(tmp_path / "results"), "--cache-dir": str(tmp_path / "cache")}
    for target in (blocker, blocker / "below"):
        folders[which] = str(target)
        argv = ["run", str(faces_config), "--quiet"] + [x for pair in folders.items() for x in pair]
        _one_line_error(main(argv), capsys.readouterr().err, str(target), which.lstrip("-").split("-")[0])
    bundles = list((tmp_path / "results").glob("*/bundle.json"))
    assert all(bundle_mod.load(b)["status"] != "running" for b in bundles)


NOT_UTF8 = "caf\xe9".encode("latin-1")


def test_a_config_that_is_not_utf8(tmp_path, capsys, faces_config):
    faces_config.write_bytes(faces_config.read_bytes().replace(b"name: t", b"name: " + NOT_UTF8))
    _one_line_error(main(["validate", str(faces_config)]), capsys.readouterr().err, "exp.yaml", "UTF-8")


def test_a_labels_file_that_is_not_utf8(tmp_path, image_dir, capsys, faces_config):
    (image_dir / "labels.json").write_bytes(b'{"img0.png": {"person_count": 1, "note": "' + NOT_UTF8 + b'"}}')
    _one_line_error(main(["validate", str(faces_config)]), capsys.readouterr().err, "labels.json", "UTF-8")


@pytest.mark.parametrize(
    "profiles, needle",
    [(None, "does not exist"), (b"models: " + NOT_UTF8, "UTF-8"), (b"models: 3", "models"), (b"[x", "YAML")],
)
def test_emulator_profiles_missing_or_invalid_are_caught_by_validate(tmp_path, capsys, faces_config, profiles, needle):
    if profiles is not None:
        (tmp_path / "profiles.yaml").write_bytes(profiles)
    faces_config.write_text(faces_config.read_text() + "emulator: {profiles: profiles.yaml}\n")
    _one_line_error(main(["validate", str(faces_config)]), capsys.readouterr().err, "profiles.yaml", needle)
    if profiles is not None:
        code = main(["emulate", "--profiles", str(tmp_path / "profiles.yaml"), "--port", "0"])
        _one_line_error(code, capsys.readouterr().err, "profiles.yaml", needle)


@pytest.mark.parametrize("url", ["localhost:8080", "ftp://example.com", "http://", "http://h:99999", "not a url"])
def test_an_unusable_base_url_is_caught_by_validate(tmp_path, image_dir, capsys, url):
    path = write_config(tmp_path, image_dir, ["sequential"], provider="gemini", options={"base_url": url})
    path.write_text(path.read_text().replace("- m1", "- gemini-2.5-flash"))
    _one_line_error(main(["validate", str(path)]), capsys.readouterr().err, "exp.yaml", "base_url", repr(url))


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "visionbench.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_emulate_on_a_port_in_use_or_out_of_range():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _cli("emulate", "--port", str(port))
        _one_line_error(done.returncode, done.stderr, str(port), "in use")
    for bad in ("70000", "-1"):
        done = _cli("emulate", "--port", bad)
        _one_line_error(done.returncode, done.stderr, bad, "0..65535")


def test_a_bug_is_one_line_saying_so_without_secrets(monkeypatch, capsys, faces_config):
    from visionbench import cli
    from visionbench.secrets import register_secret

    register_secret("sk-test-0123456789")

    def broken(args):
        raise RuntimeError("unexpected state near key sk-test-0123456789")

    monkeypatch.setattr(cli, "cmd_validate", broken)
    monkeypatch.delenv("VISIONBENCH_DEBUG", raising=False)
    err_code = main(["validate", str(faces_config)])
    err = capsys.readouterr().err
    _one_line_error(err_code, err, "bug in visionbench", "RuntimeError", "VISIONBENCH_DEBUG=1", expected=70)
    assert "sk-test-0123456789" not in err
    monkeypatch.setenv("VISIONBENCH_DEBUG", "1")
    assert main(["validate", str(faces_config)]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "sk-test-0123456789" not in err


def test_large_photos_are_not_bombs_and_the_limit_is_configurable(monkeypatch):
    from visionbench.data.image_bytes import Preprocessing, max_pixels_from_env, process_bytes
    from visionbench.errors import ConfigError, ItemError

    monkeypatch.delenv("VISIONBENCH_MAX_IMAGE_PIXELS", raising=False)
    with pytest.raises(ItemError) as caught:  # a 200 MP header over a few bytes: truncated, but no bomb
        process_bytes(png_claiming(16_330, 12_247), Preprocessing(), max_pixels=max_pixels_from_env())
    assert "bomb" not in str(caught.value)
    monkeypatch.setenv("VISIONBENCH_MAX_IMAGE_PIXELS", "1000")
    small = io.BytesIO()
    Image.new("RGB", (40, 40)).save(small, "PNG")
    with pytest.raises(ItemError, match="decompression bomb.*VISIONBENCH_MAX_IMAGE_PIXELS"):
        process_bytes(small.getvalue(), Preprocessing(), max_pixels=max_pixels_from_env())
    monkeypatch.setenv("VISIONBENCH_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ConfigError, match="VISIONBENCH_MAX_IMAGE_PIXELS"):
        max_pixels_from_env()


def test_a_bad_pixel_limit_stops_the_run_before_it_starts(tmp_path, capsys, monkeypatch, faces_config):
    monkeypatch.setenv("VISIONBENCH_MAX_IMAGE_PIXELS", "-5")
    code = main(["run", str(faces_config), "--quiet", "--results", str(tmp_path / "r"), "--no-cache"])
    _one_line_error(code, capsys.readouterr().err, "VISIONBENCH_MAX_IMAGE_PIXELS", "-5")
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").glob("*/bundle.json"))


@pytest.mark.skipif(os.uname().sysname == "Darwin", reason="macOS refuses file names that are not UTF-8")
def test_an_image_name_that_is_not_utf8_does_not_break_the_report(tmp_path, image_dir, capsys, faces_config):
    Image.new("RGB", (40, 30)).save(os.fsencode(image_dir) + b"/caf\xe9.png")
    results = tmp_path / "r"
    code = main(["run", str(faces_config), "--quiet", "--results", str(results), "--no-cache"])
    assert code == 0, capsys.readouterr().err
    [run_dir] = results.iterdir()
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "caf" in html
    assert main(["report", str(run_dir)]) == 0


def test_ctrl_c_pressed_again_and_again_leaves_an_interrupted_bundle_and_no_traceback(tmp_path):
    config = yaml.safe_load(QUICKSTART.read_text())
    config["dataset"]["path"] = str(QUICKSTART.parent / config["dataset"]["path"])
    config["repeats"] = 50  # long enough to be still running when the keys are pressed
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(config))
    results = tmp_path / "r"
    argv = [sys.executable, "-m", "visionbench.cli", "run", str(path), "--results", str(results), "--quiet"]
    argv += ["--no-cache", "--yes"]  # 1,850 requests: more than a run does unasked
    # A child of a non-interactive shell may inherit SIGINT ignored; a user's terminal delivers it.
    proc = subprocess.Popen(
        argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, preexec_fn=_default_sigint
    )
    deadline = time.monotonic() + 60
    while not list(results.glob("*/records.jsonl")) or not next(results.glob("*/records.jsonl")).stat().st_size:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    while proc.poll() is None and time.monotonic() < deadline:  # pressed until it ends, as an impatient user does
        proc.send_signal(signal.SIGINT)
        time.sleep(0.01)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err and "interrupted" in err, err
    [bundle] = results.glob("*/bundle.json")
    assert bundle_mod.load(bundle)["status"] == "interrupted"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_emulate_with_labels_that_are_not_utf8(image_dir):
    (image_dir / "labels.json").write_bytes(b'{"img0.png": "' + NOT_UTF8 + b'"}')
    done = _cli("emulate", "--dataset", str(image_dir), "--port", "0")
    _one_line_error(done.returncode, done.stderr, str(image_dir / "labels.json"), "UTF-8")


@pytest.mark.parametrize(
    "name, text",
    [
        ("nan.json", '{"img0.png": 1, "img3.png": NaN}'),
        ("inf.json", '{"img0.png": 1, "img3.png": Infinity}'),
        ("nan.yaml", "img0.png: 1\nimg3.png: .inf\n"),
        ("obj.json", '{"img0.png": 1, "img3.png": {"person_count": -Infinity}}'),
    ],
)
def test_a_nan_or_infinite_label_is_refused_naming_the_file_and_image(tmp_path, image_dir, capsys, name, text):
    (image_dir / name).write_text(text)
    code, err = _validate(tmp_path, image_dir, capsys, **{"answer: integer": "answer: number", "labels.json": name})
    assert code == 2, err
    assert name in err and "'img3.png'" in err and "finite" in err and "Traceback" not in err, err


_CHOICE = "answer: choice\n  choices: [street, Indoor, crowd]"


def test_choice_labels_must_be_among_the_choices(tmp_path, image_dir, capsys):
    (image_dir / "scenes.json").write_text(json.dumps({"img0.png": "street", "img1.png": "indoor", "img2.png": None}))
    code, err = _validate(tmp_path, image_dir, capsys, **{"answer: integer": _CHOICE, "labels.json": "scenes.json"})
    assert code == 0, err
    (image_dir / "scenes.json").write_text(json.dumps({"img0.png": "street", "img3.png": "beach"}))
    code, err = _validate(tmp_path, image_dir, capsys, **{"answer: integer": _CHOICE, "labels.json": "scenes.json"})
    assert code == 2 and "'img3.png'" in err and "'beach'" in err and "street, Indoor, crowd" in err, err


def test_a_choice_task_without_choices_is_a_config_error(tmp_path, image_dir, capsys):
    code, err = _validate(tmp_path, image_dir, capsys, **{"answer: integer": "answer: choice"})
    assert code == 2 and "task" in err and "choices" in err, err


def test_json_labels_are_objects_from_the_labels_file(tmp_path, image_dir):
    from visionbench.data.dataset import load_dataset
    from visionbench.types import Task

    (image_dir / "objs.json").write_text(json.dumps({"img0.png": {"count": 2, "kind": "cat"}, "img1.png": None}))
    task = Task("t", "?", answer_type="json", schema={"type": "object"})
    items = load_dataset(image_dir, "objs.json", None, task=task)
    labels = dict(items.ids_and_labels())
    assert labels["img0.png"] == {"count": 2, "kind": "cat"} and labels["img1.png"] is None
    # a choice label is kept as the config spells the choice
    (image_dir / "scenes.json").write_text(json.dumps({"img0.png": '"indoor"'}))
    items = load_dataset(image_dir, "scenes.json", None, task=Task("t", "?", answer_type="choice", choices=("Indoor",)))
    assert dict(items.ids_and_labels())["img0.png"] == "Indoor"
