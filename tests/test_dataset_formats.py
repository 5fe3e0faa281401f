"""Rows datasets in more formats (issue 24, "Any image task"): Parquet files and folders of them (as the Hugging
Face hub has them), Hugging Face ``save_to_disk`` folders (Arrow), imagefolders with a metadata file, and image
cells that are bytes (an ``Image`` struct, a binary cell) or bare base64 (VLMEvalKit's TSVs)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from visionbench.data import row_sources
from visionbench.data.dataset import Columns, is_rows_manifest, load_dataset, sha256_file
from visionbench.data.row_sources import open_rows
from visionbench.errors import ConfigError
from visionbench.types import Task

COUNT = Task("count", "{question}", "integer")
PLAIN = Task("count", "How many?", "integer")
BOOL = Task("vqa", "{question} Answer yes or no.", "boolean")
SAMPLES = Path(__file__).resolve().parents[1] / "framework" / "sample_images"
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def png(n: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """A small PNG, different for each ``n``."""
    out = io.BytesIO()
    Image.new("RGB", size, (30 * n % 256, 90, 200 - 20 * n % 200)).save(out, format="PNG")
    return out.getvalue()


def jpeg(n: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), (10 * n, 200, 30)).save(out, format="JPEG")
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hf_parquet(path: Path, rows: int = 3, **extra: list[Any]) -> list[bytes]:
    """A Parquet file as pyarrow writes it, with an HF ``Image`` struct column, a question and an integer answer;
    returns the images' bytes."""
    images = [png(n) for n in range(rows)]
    table = pa.table(
        {
            "image": pa.array([{"bytes": b, "path": f"img{n}.png"} for n, b in enumerate(images)], IMAGE_STRUCT),
            "question": [f"How many in {n}?" for n in range(rows)],
            "answer": list(range(rows)),
            **extra,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return images


# -- Parquet -------------------------------------------------------------------------------------------------------
def test_a_parquet_file_with_image_structs_is_read_as_rows(tmp_path: Path) -> None:
    images = hf_parquet(tmp_path / "vqa.parquet", source=["a", "b", "c"])
    assert is_rows_manifest(tmp_path / "vqa.parquet")
    items = load_dataset(tmp_path / "vqa.parquet", None, None, task=COUNT, downloads=tmp_path / "dl")
    assert [i.id for i in items] == ["row-1", "row-2", "row-3"]  # bytes: no path to name them by
    assert [i.label for i in items] == [0, 1, 2]
    assert items[1].fields == {"question": "How many in 1?", "source": "b"}
    for item, data in zip(items, images):  # stored once, under their content's hash, as data URLs are
        assert item.path == tmp_path / "dl" / f"data-{sha(data)}.png"
        assert item.path.read_bytes() == data and item.sha256 == sha(data)
    again = load_dataset(tmp_path / "vqa.parquet", None, None, task=COUNT, downloads=tmp_path / "dl")
    assert [i.path for i in again] == [i.path for i in items]
    assert len(list((tmp_path / "dl").iterdir())) == 3


def test_path_only_structs_binary_cells_and_an_id_column(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(png(1))
    table = pa.table(
        {
            "id": ["q1", "q2"],
            "image": pa.array([{"bytes": None, "path": "pics/a.png"}, {"bytes": png(2), "path": None}], IMAGE_STRUCT),
            "raw": pa.array([jpeg(1), jpeg(2)], pa.binary()),  # another image column: not a field
            "answer": [True, False],
            "question": ["A?", "B?"],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    items = load_dataset(tmp_path / "t.parquet", None, None, task=BOOL, downloads=tmp_path / "dl")
    assert [(i.id, i.label, i.fields) for i in items] == [
        ("q1", True, {"question": "A?"}),
        ("q2", False, {"question": "B?"}),
    ]
    assert items[0].path == tmp_path / "pics" / "a.png"  # a path alone is relative to the dataset
    assert items[1].path.read_bytes() == png(2)
    raw = load_dataset(
        tmp_path / "t.parquet", None, None, task=BOOL, columns=Columns(image="raw"), downloads=tmp_path / "dl"
    )
    assert raw[0].path == tmp_path / "dl" / f"data-{sha(jpeg(1))}.jpg" and raw[0].path.read_bytes() == jpeg(1)


def test_rows_are_read_a_record_batch_at_a_time_and_numbered_across_batches(tmp_path: Path) -> None:
    rows = row_sources.BATCH_ROWS * 2 + 5
    images = [png(n % 7, (8 + n, 8)) for n in range(rows)]
    cells: list[dict[str, Any] | None] = [{"bytes": b, "path": None} for b in images]
    pq.write_table(
        pa.table({"image": pa.array(cells, IMAGE_STRUCT), "answer": list(range(rows))}), tmp_path / "big.parquet"
    )
    source = open_rows(tmp_path / "big.parquet", "image", split=None, downloads=tmp_path / "dl")
    seen = 0
    for at, row in source.rows:  # each image is on disk when its row comes, not all of them at the start
        seen += 1
        assert str(at) == f"{tmp_path / 'big.parquet'}: row {seen}"
        assert Path(row["image"]).read_bytes() == images[seen - 1]
        if seen == 3:
            assert len(list((tmp_path / "dl").iterdir())) == row_sources.BATCH_ROWS  # one batch stored so far
    assert seen == rows
    cells[rows - 2] = None  # an image missing in the last batch: named by its row, counted from 1
    pq.write_table(
        pa.table({"image": pa.array(cells, IMAGE_STRUCT), "answer": list(range(rows))}), tmp_path / "big.parquet"
    )
    with pytest.raises(ConfigError, match=rf"big.parquet: row {rows - 1}, column 'image': no image"):
        load_dataset(
            tmp_path / "big.parquet", None, None, task=Task("c", "How many?", "integer"), downloads=tmp_path / "dl"
        )


def test_a_list_of_image_structs_becomes_a_list_of_files(tmp_path: Path) -> None:
    """``Sequence(Image())``: each image of a row's list is converted, so an item of several images can use it."""
    images = [[png(1), png(2)], [png(3)]]
    column = pa.array([[{"bytes": b, "path": None} for b in row] for row in images], pa.list_(IMAGE_STRUCT))
    pq.write_table(pa.table({"images": column, "answer": [1, 2]}), tmp_path / "multi.parquet")
    source = open_rows(tmp_path / "multi.parquet", "images", split=None, downloads=tmp_path / "dl")
    got = [row["images"] for _, row in source.rows]
    assert [[Path(p).read_bytes() for p in row] for row in got] == images
    assert all(p in source.stored for row in got for p in row)


def test_string_answers_of_parquet_are_read_as_the_answer_type(tmp_path: Path) -> None:
    hf_parquet(tmp_path / "s.parquet")
    table = pq.read_table(tmp_path / "s.parquet").set_column(2, "answer", pa.array(["0", "1", "two"]))
    pq.write_table(table, tmp_path / "s.parquet")
    with pytest.raises(ConfigError, match=r"s.parquet: row 3, column 'answer': 'two' is not a"):
        load_dataset(tmp_path / "s.parquet", None, None, task=COUNT, downloads=tmp_path / "dl")
    pq.write_table(table.set_column(2, "answer", pa.array(["0", "1", " 2 "])), tmp_path / "s.parquet")
    items = load_dataset(tmp_path / "s.parquet", None, None, task=COUNT, downloads=tmp_path / "dl")
    assert [i.label for i in items] == [0, 1, 2]


# -- Hugging Face datasets: save_to_disk and hub Parquet -------------------------------------------------------------
@pytest.fixture
def hf_datasets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    datasets = pytest.importorskip(
        "datasets", reason="the datasets package is not installed (pip install -e '.[test]')"
    )
    datasets.disable_progress_bars()
    return datasets


def hf_dataset(datasets: Any, rows: int, offset: int = 0) -> Any:
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answer": datasets.ClassLabel(names=["no", "yes"]),
            "qid": datasets.Value("string"),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "image": [Image.new("RGB", (16 + n, 12), (n * 50, 20, 90)) for n in range(offset, offset + rows)],
            "question": [f"Is {n} odd?" for n in range(offset, offset + rows)],
            "answer": [n % 2 for n in range(offset, offset + rows)],
            "qid": [f"q{n}" for n in range(offset, offset + rows)],
        },
        features=features,
    )


def test_a_save_to_disk_dataset_dict_reads_the_test_split_unless_told(tmp_path: Path, hf_datasets: Any) -> None:
    folder = tmp_path / "hf"
    hf_datasets.DatasetDict({"train": hf_dataset(hf_datasets, 4), "test": hf_dataset(hf_datasets, 2, 10)}).save_to_disk(
        str(folder)
    )
    assert is_rows_manifest(folder)
    ids = Columns(id="qid")
    test = load_dataset(folder, None, None, task=BOOL, columns=ids, downloads=tmp_path / "dl")
    assert [(i.id, i.label, i.fields) for i in test] == [
        ("q10", False, {"question": "Is 10 odd?"}),  # ClassLabel: the answer is its name, read as a boolean
        ("q11", True, {"question": "Is 11 odd?"}),
    ]
    assert Image.open(test[1].path).size == (27, 12)
    train = load_dataset(folder, None, None, task=BOOL, columns=ids, split="train", downloads=tmp_path / "dl")
    assert [i.id for i in train] == ["q0", "q1", "q2", "q3"]
    with pytest.raises(ConfigError, match=r"hf: dataset.split 'validation' is not one of its splits \(train, test\)"):
        load_dataset(folder, None, None, task=BOOL, columns=ids, split="validation", downloads=tmp_path / "dl")
    one = tmp_path / "one"
    hf_dataset(hf_datasets, 3).save_to_disk(str(one))  # a Dataset, not a dict: no splits
    assert len(load_dataset(one, None, None, task=BOOL, downloads=tmp_path / "dl")) == 3
    with pytest.raises(ConfigError, match=r"one: dataset.split 'test', but this dataset has no splits"):
        load_dataset(one, None, None, task=BOOL, split="test", downloads=tmp_path / "dl")


def test_a_dataset_dict_without_test_split_needs_dataset_split(tmp_path: Path, hf_datasets: Any) -> None:
    folder = tmp_path / "hf"
    both = {"train": hf_dataset(hf_datasets, 2), "validation": hf_dataset(hf_datasets, 1)}
    hf_datasets.DatasetDict(both).save_to_disk(str(folder))
    with pytest.raises(ConfigError, match=r"several splits \(train, validation\); choose one with dataset.split"):
        load_dataset(folder, None, None, task=BOOL, downloads=tmp_path / "dl")
    hf_datasets.DatasetDict({"validation": hf_dataset(hf_datasets, 1)}).save_to_disk(str(tmp_path / "v"))
    assert len(load_dataset(tmp_path / "v", None, None, task=BOOL, downloads=tmp_path / "dl")) == 1


def test_hub_parquet_files_and_a_snapshot_folder(tmp_path: Path, hf_datasets: Any) -> None:
    snapshot = tmp_path / "snap"
    hf_dataset(hf_datasets, 3).to_parquet(str(snapshot / "data" / "train-00000-of-00001.parquet"))
    hf_dataset(hf_datasets, 2, 5).to_parquet(str(snapshot / "data" / "test-00000-of-00001.parquet"))
    (snapshot / "README.md").write_text("---\nconfigs: []\n---\n")
    assert is_rows_manifest(snapshot) and is_rows_manifest(snapshot / "data" / "test-00000-of-00001.parquet")
    ids = Columns(id="qid")
    items = load_dataset(snapshot, None, None, task=BOOL, columns=ids, downloads=tmp_path / "dl")
    assert [(i.id, i.label) for i in items] == [("q5", True), ("q6", False)]
    train = load_dataset(snapshot, None, None, task=BOOL, columns=ids, split="train", downloads=tmp_path / "dl")
    assert [i.id for i in train] == ["q0", "q1", "q2"]
    single = load_dataset(
        snapshot / "data" / "train-00000-of-00001.parquet",
        None,
        None,
        task=BOOL,
        columns=ids,
        downloads=tmp_path / "dl",
    )
    assert [i.sha256 for i in single] == [i.sha256 for i in train]


# -- imagefolder with metadata -------------------------------------------------------------------------------------
def test_an_imagefolder_with_metadata_jsonl(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(png(1))
    (folder / "sub" / "b.png").write_bytes(png(2))
    rows = [
        {"file_name": "a.png", "question": "How many squares?", "answer": 1},
        {"file_name": "sub/b.png", "question": "How many circles?", "answer": 4},
    ]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert is_rows_manifest(folder)
    items = load_dataset(folder, None, None, task=COUNT, downloads=tmp_path / "dl")
    assert [(i.id, i.path, i.label, i.fields) for i in items] == [
        ("a.png", folder / "a.png", 1, {"question": "How many squares?"}),
        ("sub/b.png", folder / "sub" / "b.png", 4, {"question": "How many circles?"}),
    ]
    (folder / "metadata.jsonl").unlink()  # a metadata.csv: answers typed as a CSV's are
    (folder / "metadata.csv").write_text("file_name,question,answer\na.png,How many?,2\n")
    assert [(i.id, i.label) for i in load_dataset(folder, None, None, task=COUNT)] == [("a.png", 2)]
    (folder / "metadata.csv").write_text("file_name,question,answer\nmissing.png,How many?,2\n")
    with pytest.raises(
        ConfigError, match=r"metadata.csv: line 2, column 'file_name': image 'missing.png' does not exist"
    ):
        load_dataset(folder, None, None, task=COUNT)
    (folder / "metadata.csv").unlink()  # without a metadata file, a folder is a folder of images, as before
    assert not is_rows_manifest(folder)
    assert [i.id for i in load_dataset(folder, None, None)] == ["a.png", "sub/b.png"]


def test_an_imagefolder_with_a_metadata_file_per_split(tmp_path: Path) -> None:
    for split, n in (("train", 2), ("test", 1)):
        (tmp_path / "f" / split).mkdir(parents=True)
        lines = []
        for k in range(n):
            (tmp_path / "f" / split / f"{k}.png").write_bytes(png(k))
            lines.append(json.dumps({"file_name": f"{k}.png", "answer": k, "question": "n?"}) + "\n")
        (tmp_path / "f" / split / "metadata.jsonl").write_text("".join(lines))
    assert [i.id for i in load_dataset(tmp_path / "f", None, None, task=COUNT)] == ["0.png"]
    assert len(load_dataset(tmp_path / "f", None, None, task=COUNT, split="train")) == 2


# -- base64 image columns (VLMEvalKit TSVs) -------------------------------------------------------------------------
def test_a_tsv_with_a_base64_image_column(tmp_path: Path) -> None:
    images = [jpeg(1), png(2)]
    (tmp_path / "chart.png").write_bytes(png(5))
    lines = ["index\timage\tquestion\tA\tB\tanswer"]
    lines += [
        f"{n}\t{base64.b64encode(data).decode()}\tWhich one?\tcat\tdog\t{'AB'[n]}" for n, data in enumerate(images)
    ]
    lines.append("7\tchart.png\tWhich one?\tcat\tdog\tA")  # a path in the same column is still a path
    lines.append("8\t1\tWhich one?\tdog\tcat\tA")  # VLMEvalKit: row 1's image again, by its index
    (tmp_path / "MMB.tsv").write_text("\n".join(lines) + "\n")
    task = Task("mc", "{question} A. {A} B. {B}", "choice", choices=("A", "B"))
    items = load_dataset(
        tmp_path / "MMB.tsv", None, None, task=task, columns=Columns(id="index"), downloads=tmp_path / "dl"
    )
    assert [(i.id, i.label, i.fields) for i in items] == [
        ("0", "A", {"question": "Which one?", "A": "cat", "B": "dog"}),
        ("1", "B", {"question": "Which one?", "A": "cat", "B": "dog"}),
        ("7", "A", {"question": "Which one?", "A": "cat", "B": "dog"}),
        ("8", "A", {"question": "Which one?", "A": "dog", "B": "cat"}),
    ]
    assert items[3].path == items[1].path
    assert items[0].path == tmp_path / "dl" / f"data-{sha(images[0])}.jpg"
    assert items[1].path.read_bytes() == images[1] and items[1].sha256 == sha(images[1])
    assert items[2].path == tmp_path / "chart.png" and items[2].sha256 == sha256_file(tmp_path / "chart.png")
    # without an id column, a base64 row's id is row-N (the file's path in the downloads is no name)
    (tmp_path / "noid.csv").write_text(f"image,answer\n{base64.b64encode(images[1]).decode()},3\n")
    assert [i.id for i in load_dataset(tmp_path / "noid.csv", None, None, downloads=tmp_path / "dl")] == ["row-1"]


def test_base64_is_told_by_its_bytes_not_its_length(tmp_path: Path) -> None:
    """A long name made of base64 letters is a path when its start does not decode to an image's magic bytes."""
    name = "ABCDEFGHabcdefgh12345678ABCDEFGH"  # valid base64 of bytes that are no image
    (tmp_path / name).write_bytes(png(3))
    (tmp_path / "m.csv").write_text(f"image,answer\n{name},1\n")
    [item] = load_dataset(tmp_path / "m.csv", None, None, task=PLAIN, downloads=tmp_path / "dl")
    assert item.id == name and item.path == tmp_path / name
    assert not (tmp_path / "dl").exists()


# -- errors --------------------------------------------------------------------------------------------------------
def test_a_bad_base64_image_names_the_file_line_and_column(tmp_path: Path) -> None:
    good = base64.b64encode(jpeg(3)).decode()
    (tmp_path / "b.tsv").write_text(f"image\tanswer\n{good}\t1\n{good[:40]}!!{good[40:]}\t2\n")
    with pytest.raises(ConfigError, match=r"b.tsv: line 3, column 'image': malformed base64 image"):
        load_dataset(tmp_path / "b.tsv", None, None, task=PLAIN, downloads=tmp_path / "dl")
    (tmp_path / "b.tsv").write_text(f"image\tanswer\n{good[:-3]}\t1\n")  # cut short: padding wrong
    with pytest.raises(ConfigError, match=r"b.tsv: line 2, column 'image': malformed base64 image"):
        load_dataset(tmp_path / "b.tsv", None, None, task=PLAIN, downloads=tmp_path / "dl")


def test_a_missing_image_column_names_the_file_and_the_columns(tmp_path: Path) -> None:
    hf_parquet(tmp_path / "p.parquet")
    with pytest.raises(ConfigError) as err:
        load_dataset(tmp_path / "p.parquet", None, None, task=COUNT, columns=Columns(image="picture"))
    assert str(err.value) == (
        f"{tmp_path / 'p.parquet'}: no column 'picture' for the image (dataset.image); "
        "its columns: image, question, answer"
    )


def test_a_wrong_answer_in_parquet_names_the_row_and_column(tmp_path: Path) -> None:
    hf_parquet(tmp_path / "p.parquet", label=[1.5, 2.0, float("nan")])
    with pytest.raises(ConfigError, match=r"p.parquet: row 3, column 'label': the answer is or holds nan"):
        load_dataset(
            tmp_path / "p.parquet",
            None,
            None,
            task=Task("n", "{question}", "number"),
            columns=Columns(answer="label"),
            downloads=tmp_path / "dl",
        )
    with pytest.raises(ConfigError, match=r"p.parquet: row 1, column 'label': the answer is 1.5 \(float\)"):
        load_dataset(
            tmp_path / "p.parquet", None, None, task=COUNT, columns=Columns(answer="label"), downloads=tmp_path / "dl"
        )


def test_an_unreadable_parquet_or_arrow_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(ConfigError, match=r"broken.parquet: cannot read as Parquet: "):
        load_dataset(tmp_path / "broken.parquet", None, None, task=COUNT)
    (tmp_path / "broken.arrow").write_bytes(b"\x00" * 40)
    with pytest.raises(ConfigError, match=r"broken.arrow: cannot read as Arrow: "):
        load_dataset(tmp_path / "broken.arrow", None, None, task=COUNT)
    folder = tmp_path / "std"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    with pytest.raises(ConfigError, match=r"data-00000-of-00001.arrow: missing \(listed in .*state.json\)"):
        load_dataset(folder, None, None, task=COUNT)


def test_a_split_on_a_dataset_without_splits_is_an_error(tmp_path: Path) -> None:
    hf_parquet(tmp_path / "p.parquet")
    with pytest.raises(ConfigError, match=r"p.parquet: dataset.split 'test', but this dataset has no splits"):
        load_dataset(tmp_path / "p.parquet", None, None, task=COUNT, split="test")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.png").write_bytes(png(1))
    with pytest.raises(ConfigError, match=r"f: dataset.split 'test', but a folder of images"):
        load_dataset(tmp_path / "f", None, None, split="test")


def test_splits_of_a_parquet_folder_and_a_missing_one(tmp_path: Path) -> None:
    hf_parquet(tmp_path / "snap" / "data" / "train-00000-of-00002.parquet", rows=2)
    hf_parquet(tmp_path / "snap" / "data" / "train-00001-of-00002.parquet", rows=3)
    hf_parquet(tmp_path / "snap" / "data" / "validation-00000-of-00001.parquet", rows=1)
    with pytest.raises(ConfigError, match=r"snap: it has several splits \(train, validation\)"):
        load_dataset(tmp_path / "snap", None, None, task=COUNT)
    with pytest.raises(ConfigError, match=r"snap: dataset.split 'test' is not one of its splits \(train, validation\)"):
        load_dataset(tmp_path / "snap", None, None, task=COUNT, split="test")
    with pytest.raises(
        ConfigError,
        match=r"00001-of-00002.parquet: row 1: id 'How many in 0\?' is also .*train-00000-of-00002.parquet: row 1's",
    ):
        load_dataset(tmp_path / "snap", None, None, task=PLAIN, split="train", columns=Columns(id="question"))
    items = load_dataset(tmp_path / "snap", None, None, task=COUNT, split="train", downloads=tmp_path / "dl")
    assert [i.label for i in items] == [0, 1, 0, 1, 2]  # both files of the split, in order


def test_without_pyarrow_a_parquet_dataset_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hf_parquet(tmp_path / "p.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigError, match=r"reading Parquet or Arrow datasets needs pyarrow"):
        load_dataset(tmp_path / "p.parquet", None, None, task=COUNT)


# -- a run against the emulator ------------------------------------------------------------------------------------
QUIET = {
    "latency": {"base_s": 0.0, "jitter": 0.0, "output_tokens_per_s": 1e6, "thinking_sd": 0},
    "faults": {"http_500": 0, "http_503": 0, "http_529": 0, "drop_connection": 0, "slow": {"probability": 0}},
    "rate_limit": {"requests_per_minute": None},
}


async def test_a_parquet_dataset_runs_against_the_emulator(tmp_path: Path) -> None:
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    vqa = {  # a question per sample photo, and its answer
        "astronaut.jpg": ("Is there a person in this picture?", True),
        "chelsea.jpg": ("Is there a cat in this picture?", True),
        "coffee.jpg": ("Is there a person in this picture?", False),
        "rocket.jpg": ("Is there a rocket in this picture?", True),
        "group_2.jpg": ("Is there an animal in this picture?", False),
    }
    table = pa.table(
        {
            "qid": [f"q{n}" for n in range(len(vqa))],
            "image": pa.array([{"bytes": (SAMPLES / name).read_bytes(), "path": name} for name in vqa], IMAGE_STRUCT),
            "question": [q for q, _ in vqa.values()],
            "answer": [a for _, a in vqa.values()],
        }
    )
    (tmp_path / "data").mkdir()
    pq.write_table(table, tmp_path / "data" / "test-00000-of-00001.parquet")
    (tmp_path / "profiles.yaml").write_text(
        yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": QUIET, "models": {"*": {}}})
    )
    config = {
        "name": "parquet-vqa",
        "dataset": {"path": "data", "id": "qid", "split": "test"},
        "task": {"id": "vqa", "answer": "boolean", "prompt": "{question} Answer yes or no."},
        "preprocessing": {"max_side": 512},
        "emulator": {"profiles": "profiles.yaml"},
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20},
        "matrix": [
            {"provider": "openai", "models": ["gpt-6.1-terra"], "strategies": ["sequential"]},
            {"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["sequential"]},
            {"provider": "anthropic", "models": ["claude-haiku-4-5"], "strategies": ["sequential"]},
        ],
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plan = load_plan(tmp_path / "run.yaml", default_registry(), cache_dir=tmp_path / "c")
    assert [i.id for i in plan.items] == [f"q{n}" for n in range(len(vqa))]
    assert [i.sha256 for i in plan.items] == [sha256_file(SAMPLES / name) for name in vqa]
    assert all(i.path.parent == tmp_path / "c" / "downloads" for i in plan.items)
    out = await run(plan, results_dir=tmp_path / "r", cache_dir=tmp_path / "c")
    data = bundle_mod.load(out)
    bundle_mod.validate(data)
    assert data["status"] == "complete" and len(data["cells"]) == 3
    assert [(item["id"], item["label"], item["fields"]) for item in data["items"]] == [
        (f"q{n}", a, {"question": q}) for n, (q, a) in enumerate(vqa.values())
    ]
    for cell in data["cells"]:
        assert cell["summary"]["errors"] == 0, cell["id"]  # every reply parsed as yes/no
        assert cell["summary"]["exact_match"] >= 0.6, cell["id"]  # answered from each row's answer


def _write_format(kind: str, folder: Path, vqa: dict[str, tuple[str, bool]]) -> dict[str, Any]:
    """The same questions about the sample photos as a dataset of ``kind``; returns the config's ``dataset``."""
    folder.mkdir(parents=True)
    if kind == "imagefolder":
        lines = []
        for n, (name, (question, answer)) in enumerate(vqa.items()):
            (folder / name).write_bytes((SAMPLES / name).read_bytes())
            lines.append(json.dumps({"file_name": name, "qid": f"q{n}", "question": question, "answer": answer}))
        (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
        return {"path": str(folder), "id": "qid"}
    if kind == "base64-tsv":
        lines = ["qid\timage\tquestion\tanswer"]
        for n, (name, (question, answer)) in enumerate(vqa.items()):
            encoded = base64.b64encode((SAMPLES / name).read_bytes()).decode()
            lines.append(f"q{n}\t{encoded}\t{question}\t{'yes' if answer else 'no'}")
        (folder / "vqa.tsv").write_text("\n".join(lines) + "\n")
        return {"path": str(folder / "vqa.tsv"), "id": "qid"}
    datasets = pytest.importorskip(
        "datasets", reason="the datasets package is not installed (pip install -e '.[test]')"
    )
    datasets.disable_progress_bars()
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answer": datasets.Value("bool"),
            "qid": datasets.Value("string"),
        }
    )
    table = {
        "image": [str(SAMPLES / name) for name in vqa],
        "question": [q for q, _ in vqa.values()],
        "answer": [a for _, a in vqa.values()],
        "qid": [f"q{n}" for n in range(len(vqa))],
    }
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(table, features=features)}).save_to_disk(folder / "hf")
    return {"path": str(folder / "hf"), "id": "qid"}


@pytest.mark.parametrize("kind", ["imagefolder", "base64-tsv", "save_to_disk"])
async def test_each_format_runs_against_the_emulator(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An imagefolder with metadata, a TSV of base64 images and a Hugging Face save_to_disk folder: loaded, sent
    through a real SDK over HTTP, answered from each row's label and parsed (the parquet test above: three SDKs)."""
    from visionbench.results import bundle as bundle_mod
    from visionbench.run.plan import load_plan
    from visionbench.run.plugins import default_registry
    from visionbench.run.runner import run

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    vqa = {
        "astronaut.jpg": ("Is there a person in this picture?", True),
        "chelsea.jpg": ("Is there a cat in this picture?", True),
        "coffee.jpg": ("Is there a person in this picture?", False),
        "rocket.jpg": ("Is there a rocket in this picture?", True),
    }
    quiet = {**QUIET, "answers": {"boolean_error": 0.0}}
    (tmp_path / "profiles.yaml").write_text(
        yaml.safe_dump({"seed": 1, "time_scale": 0, "defaults": quiet, "models": {"*": {}}})
    )
    config = {
        "name": f"{kind}-vqa",
        "dataset": _write_format(kind, tmp_path / "data", vqa),
        "task": {"id": "vqa", "answer": "boolean", "prompt": "{question} Answer yes or no."},
        "preprocessing": {"max_side": 384},
        "emulator": {"profiles": "profiles.yaml"},
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 20},
        "matrix": [{"provider": "gemini", "models": ["gemini-3.5-flash"], "strategies": ["sequential"]}],
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plan = load_plan(tmp_path / "run.yaml", default_registry(), cache_dir=tmp_path / "c")
    assert [i.sha256 for i in plan.items] == [sha256_file(SAMPLES / name) for name in vqa]
    data = bundle_mod.load(await run(plan, results_dir=tmp_path / "r", cache_dir=tmp_path / "c"))
    bundle_mod.validate(data)
    [cell] = data["cells"]
    assert [(item["id"], item["label"], item["fields"]) for item in data["items"]] == [
        (f"q{n}", a, {"question": q}) for n, (q, a) in enumerate(vqa.values())
    ]
    assert cell["summary"]["errors"] == 0 and cell["summary"]["exact_match"] == 1.0  # each row's own answer
