"""Preprocessing: decoding, orientation, mode conversion, downscaling, errors and the content-keyed cache."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import diskcache
import numpy as np
import pytest
from conftest import EVAL_IMAGES, needs_eval_images
from PIL import Image

from visionbench.data.dataset import sha256_file
from visionbench.data.image_bytes import Preprocessor, process_bytes
from visionbench.errors import ItemError
from visionbench.preprocessing import Preprocessing
from visionbench.types import ImageItem, PreparedImage

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _item(path: Path, item_id: str | None = None) -> ImageItem:
    return ImageItem(id=item_id or path.name, path=path, sha256=sha256_file(path))


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def _noise(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


# --- settings -----------------------------------------------------------------------------------


def test_key_names_every_parameter() -> None:
    key = Preprocessing(max_side=768, format="png", quality=70).key()
    assert "768" in key and "png" in key and "70" in key
    assert Preprocessing().key() == Preprocessing().key()
    assert len({Preprocessing(max_side=s).key() for s in (None, 512, 768)}) == 3
    with pytest.raises(ValueError):
        Preprocessing(max_side=0)
    with pytest.raises(ValueError):
        Preprocessing(quality=0)


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "blob"
    path.write_bytes(b"x" * (3 * 2**20 + 17))  # spans several 1 MiB chunks
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


# --- geometry -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_downscale_keeps_aspect_and_never_upscales(fmt: str) -> None:
    data = _encode(Image.new("RGB", (400, 200), RED), "PNG")
    cases = {100: (100, 50), 300: (300, 150), 400: (400, 200), 1000: (400, 200), None: (400, 200)}
    for max_side, expected in cases.items():
        out = process_bytes(data, Preprocessing(max_side=max_side, format=fmt))
        img = _decode(out.data)
        assert (out.width, out.height) == img.size == expected
        assert img.format == fmt.upper() and img.mode == "RGB"
        assert out.mime_type == f"image/{fmt}"


def test_big_jpeg_uses_reduced_decode_and_exact_target() -> None:
    data = _encode(_noise((3000, 2000)), "JPEG", quality=90)
    out = process_bytes(data, Preprocessing(max_side=300))
    assert (out.width, out.height) == (300, 200)
    assert _decode(out.data).size == (300, 200)
    # A portrait panorama: the short side follows the aspect ratio.
    tall = process_bytes(_encode(_noise((200, 1000)), "JPEG"), Preprocessing(max_side=250))
    assert (tall.width, tall.height) == (50, 250)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_exif_orientation_is_applied(fmt: str) -> None:
    # 60x40 stored; the top-left 30x20 quadrant red, the rest blue. Orientation 6 = rotate 90 degrees clockwise.
    img = Image.new("RGB", (60, 40), BLUE)
    img.paste(RED, (0, 0, 30, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(img, "JPEG", quality=95, exif=exif.tobytes())
    out = process_bytes(data, Preprocessing(max_side=None, format=fmt))
    result = _decode(out.data)
    assert (out.width, out.height) == result.size == (40, 60)
    assert _close(result.getpixel((37, 2)), RED)  # the red corner moved to the top right
    assert _close(result.getpixel((2, 2)), BLUE)
    assert _close(result.getpixel((37, 57)), BLUE)
    assert "exif" not in result.info  # the orientation is baked in, so no viewer rotates it twice


# --- modes --------------------------------------------------------------------------------------


def _cmyk_jpeg() -> bytes:
    return _encode(Image.new("CMYK", (32, 24), (0, 255, 255, 0)), "JPEG", quality=95)  # red ink


def _rgba_png() -> bytes:
    img = Image.new("RGBA", (32, 24), (0, 0, 0, 0))  # transparent black must show as white
    img.paste((255, 0, 0, 255), (16, 0, 32, 24))
    return _encode(img, "PNG")


def _palette_png() -> bytes:
    img = Image.new("P", (32, 24), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (16, 0, 32, 24))
    return _encode(img, "PNG", transparency=0)


def _la_png() -> bytes:
    img = Image.new("LA", (32, 24), (0, 0))
    img.paste((0, 255), (16, 0, 32, 24))  # opaque black on the right
    return _encode(img, "PNG")


def _gray16_png() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 32), (24, 1)).astype(np.uint16)  # dark left, bright right
    return _encode(Image.fromarray(ramp), "PNG")


def _gray12_png() -> bytes:  # 16-bit container, 12-bit data: must not come out near-black
    ramp = np.tile(np.linspace(0, 4095, 32), (24, 1)).astype(np.uint16)
    return _encode(Image.fromarray(ramp), "PNG")


def _float_tiff() -> bytes:
    ramp = np.tile(np.linspace(-1.0, 3.0, 32), (24, 1)).astype(np.float32)
    return _encode(Image.fromarray(ramp), "TIFF")


def _bilevel_png() -> bytes:
    img = Image.new("1", (32, 24), 0)
    img.paste(1, (16, 0, 32, 24))
    return _encode(img, "PNG")


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (32, 24), c) for c in (RED, BLUE)]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


MODES = {
    "cmyk-jpeg": (_cmyk_jpeg, RED, RED),
    "rgba-png": (_rgba_png, WHITE, RED),
    "palette-transparency": (_palette_png, WHITE, RED),
    "la-png": (_la_png, WHITE, (0, 0, 0)),
    "gray16-png": (_gray16_png, (0, 0, 0), WHITE),
    "gray12-png": (_gray12_png, (0, 0, 0), WHITE),
    "float-tiff": (_float_tiff, (0, 0, 0), WHITE),
    "bilevel-png": (_bilevel_png, (0, 0, 0), WHITE),
    "animated-gif": (lambda: _animated("GIF"), RED, RED),
    "animated-png": (lambda: _animated("PNG"), RED, RED),
}


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize("case", list(MODES))
def test_every_mode_becomes_rgb(case: str, fmt: str) -> None:
    make, left, right = MODES[case]
    out = process_bytes(make(), Preprocessing(max_side=None, format=fmt), name=case)
    img = _decode(out.data)
    assert img.mode == "RGB" and img.format == fmt.upper() and img.size == (32, 24)
    assert (out.width, out.height) == (32, 24)
    assert _close(img.getpixel((1, 12)), left), img.getpixel((1, 12))
    assert _close(img.getpixel((30, 12)), right), img.getpixel((30, 12))


def test_high_bit_ramp_keeps_its_range() -> None:
    img = _decode(process_bytes(_gray16_png(), Preprocessing(max_side=None, format="png")).data)
    values = np.asarray(img.convert("L"))
    row = values[0].astype(int)
    assert row[0] <= 2 and row[-1] >= 253  # full 8-bit range, neither clipped nor crushed
    assert (np.diff(row) > 0).all()  # every one of the 32 steps stays distinct and in order


# --- errors -------------------------------------------------------------------------------------


def _truncated_jpeg() -> bytes:
    data = _encode(_noise((256, 256)), "JPEG", quality=90)
    return data[: len(data) // 2]


def _png_claiming(width: int, height: int) -> bytes:
    """A small real PNG whose IHDR (with a valid CRC) claims another size."""
    data = bytearray(_encode(Image.new("RGB", (8, 8), RED), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "max_pixels", "message"),
    [
        (b"", 100_000_000, "empty"),
        (b"just some text, not a JPEG\n" * 10, 100_000_000, "not an image"),
        (_truncated_jpeg(), 100_000_000, "truncated"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, 100_000_000, "photo.jpg"),  # JPEG magic, garbage body
        (_encode(Image.new("RGB", (100, 100)), "PNG"), 5_000, "decompression bomb"),
        (_png_claiming(9_000, 9_000), 10_000_000, "decompression bomb"),  # our header check
        (_png_claiming(100_000, 100_000), 100_000_000, "decompression bomb"),  # Pillow's own limit
    ],
    ids=["empty", "text", "truncated", "garbage", "small-limit", "header-9000", "header-100000"],
)
def test_bad_bytes_raise_item_error_naming_the_file(data: bytes, max_pixels: int, message: str) -> None:
    with pytest.raises(ItemError) as info:
        process_bytes(data, Preprocessing(), name="photo.jpg", max_pixels=max_pixels)
    assert "photo.jpg" in str(info.value) and message in str(info.value)


def test_real_huge_bilevel_png_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(path, compress_level=1)
    assert path.stat().st_size < 1_000_000  # tiny on disk, 400 million pixels decoded
    with Preprocessor(None, max_pixels=50_000_000) as pre, pytest.raises(ItemError, match="decompression bomb"):
        pre.prepare(_item(path), Preprocessing())


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "gone.jpg"
    item = ImageItem(id="gone.jpg", path=path, sha256="0" * 64)
    with Preprocessor(None) as pre:
        with pytest.raises(ItemError, match="gone.jpg"):
            pre.prepare(item, Preprocessing())
        with pytest.raises(ItemError, match="cannot read"):
            pre.prepare(ImageItem(id="dir", path=tmp_path, sha256="0" * 64), Preprocessing())


def test_text_file_named_jpg_through_preprocessor(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    with Preprocessor(tmp_path / "cache") as pre, pytest.raises(ItemError, match="notes.jpg.*not an image"):
        pre.prepare(_item(path), Preprocessing())


# --- cache --------------------------------------------------------------------------------------


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (400, 300), RED).save(path)
    return path


def test_second_prepare_is_a_hit_without_reading_the_file(tmp_path: Path, photo: Path) -> None:
    item, settings = _item(photo), Preprocessing(max_side=200)
    with Preprocessor(tmp_path / "cache") as pre:
        first = pre.prepare(item, settings)
        photo.unlink()  # a hit must not touch the file
        second = pre.prepare(item, settings)
        assert (pre.hits, pre.misses) == (1, 1)
    assert isinstance(second, PreparedImage) and second == first
    assert (second.item_id, second.width, second.height, second.mime_type) == ("photo.png", 200, 150, "image/jpeg")


def test_cache_survives_reopening(tmp_path: Path, photo: Path) -> None:
    item, settings = _item(photo), Preprocessing(max_side=200)
    with Preprocessor(tmp_path / "cache") as pre:
        first = pre.prepare(item, settings)
    with Preprocessor(tmp_path / "cache") as pre:
        assert pre.prepare(item, settings) == first and pre.hits == 1


def test_two_sizes_from_one_file_are_two_entries(tmp_path: Path, photo: Path) -> None:
    item = _item(photo)
    with Preprocessor(tmp_path / "cache") as pre:
        big = pre.prepare(item, Preprocessing(max_side=200))
        small = pre.prepare(item, Preprocessing(max_side=100))
        png = pre.prepare(item, Preprocessing(max_side=100, format="png"))
        assert pre.misses == 3 and pre.hits == 0
    assert (big.width, big.height) == (200, 150) and (small.width, small.height) == (100, 75)
    assert png.mime_type == "image/png" and _decode(png.data).format == "PNG"


def test_edited_file_gives_new_bytes_not_stale_ones(tmp_path: Path, photo: Path) -> None:
    settings = Preprocessing(max_side=200)
    with Preprocessor(tmp_path / "cache") as pre:
        before = pre.prepare(_item(photo), settings)
        Image.new("RGB", (400, 300), BLUE).save(photo)  # same path, same size, maybe the same mtime
        after = pre.prepare(_item(photo), settings)
        assert pre.hits == 0 and pre.misses == 2
    assert after.data != before.data
    assert _close(_decode(after.data).getpixel((5, 5)), BLUE)


def test_same_content_at_two_paths_shares_an_entry(tmp_path: Path, photo: Path) -> None:
    copy = tmp_path / "sub" / "copy.png"
    copy.parent.mkdir()
    copy.write_bytes(photo.read_bytes())
    with Preprocessor(tmp_path / "cache") as pre:
        a = pre.prepare(_item(photo, "a.png"), Preprocessing())
        b = pre.prepare(_item(copy, "sub/copy.png"), Preprocessing())
        assert (pre.hits, pre.misses) == (1, 1)
    assert a.data == b.data and (a.item_id, b.item_id) == ("a.png", "sub/copy.png")


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage",
        ("not bytes", "image/jpeg", 10, 10),
        (b"\xff\xd8\xff truncated", "image/jpeg", 200, 150),  # no end marker
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/jpeg", 200, 150),  # wrong format
        (b"\xff\xd8\xff\xd9", "image/jpeg", 4000, 3000),  # larger than max_side allows
    ],
    ids=["bytes", "wrong-type", "truncated-jpeg", "png-as-jpeg", "wrong-size"],
)
def test_corrupt_cache_entry_is_rebuilt(tmp_path: Path, photo: Path, garbage: object) -> None:
    item, settings = _item(photo), Preprocessing(max_side=200)
    key = Preprocessor.cache_key(item, settings)
    with diskcache.Cache(str(tmp_path / "cache")) as cache:
        cache.set(key, garbage)
    with Preprocessor(tmp_path / "cache") as pre:
        out = pre.prepare(item, settings)
        assert (pre.hits, pre.misses) == (0, 1)
        assert _decode(out.data).size == (200, 150)
        assert pre.prepare(item, settings) == out and pre.hits == 1  # the rebuilt entry is served


def test_a_jpeg_entry_padded_after_its_end_marker_is_still_a_hit(tmp_path: Path, photo: Path) -> None:
    item, settings = _item(photo), Preprocessing(max_side=200)
    with Preprocessor(tmp_path / "cache") as pre:
        out = pre.prepare(item, settings)
    with diskcache.Cache(str(tmp_path / "cache")) as cache:  # some encoders pad the file with zeros
        cache.set(
            Preprocessor.cache_key(item, settings), (out.data + b"\x00" * 8, out.mime_type, out.width, out.height)
        )
    with Preprocessor(tmp_path / "cache") as pre:
        assert pre.lookup(item, settings).data == out.data + b"\x00" * 8 and pre.hits == 1


def test_corrupt_png_entry_is_rebuilt(tmp_path: Path, photo: Path) -> None:
    item, settings = _item(photo), Preprocessing(max_side=200, format="png")
    with Preprocessor(tmp_path / "cache") as pre:
        good = pre.prepare(item, settings)
        pre._cache.set(Preprocessor.cache_key(item, settings), (good.data[:-20], "image/png", 200, 150))
        assert pre.prepare(item, settings) == good and (pre.hits, pre.misses) == (0, 2)


def test_file_changed_after_loading_is_an_item_error(tmp_path: Path, photo: Path) -> None:
    item = _item(photo)
    Image.new("RGB", (400, 300), BLUE).save(photo)
    with Preprocessor(tmp_path / "cache") as pre, pytest.raises(ItemError, match="changed since the dataset"):
        pre.prepare(item, Preprocessing())


def test_no_cache_dir_still_prepares(photo: Path) -> None:
    with Preprocessor(None) as pre:
        a = pre.prepare(_item(photo), Preprocessing(max_side=100))
        b = pre.prepare(_item(photo), Preprocessing(max_side=100))
        assert a == b and (pre.hits, pre.misses) == (0, 2)


def _largest_side(path: Path) -> int:
    with Image.open(path) as img:
        return max(img.size)


@needs_eval_images
def test_real_photo_downscales_to_768() -> None:
    path = max(EVAL_IMAGES.glob("*.jpg"), key=_largest_side)  # the largest photo by dimensions
    if _largest_side(path) <= 768:
        pytest.skip(f"{path.name} is already small")
    out = Preprocessor(None).prepare(_item(path), Preprocessing(max_side=768))
    img = _decode(out.data)
    assert max(img.size) == 768 == max(out.width, out.height) and img.mode == "RGB" and img.format == "JPEG"


def test_read_ahead_serves_warm_hits_a_window_at_a_time(tmp_path, image_dir):
    from visionbench.data.dataset import load_dataset
    from visionbench.run.readahead import ReadAhead

    items = load_dataset(image_dir, "labels.json", "person_count")
    settings = Preprocessing(max_side=32)
    with Preprocessor(tmp_path / "cache") as pre:
        warm = [pre.prepare(item, settings) for item in items[:4]]  # items 4 and 5 stay cold: misses
        asked: list[str] = []
        lookup = pre.lookup
        pre.lookup = lambda item, s: asked.append(item.id) or lookup(item, s)  # type: ignore[method-assign]

        ahead = ReadAhead(pre, items, settings, window=3)
        first = ahead.lookup(items[0], settings)
        assert first is not None and first.data == warm[0].data
        assert asked == [i.id for i in items[:3]]  # one burst: the window
        assert ahead.lookup(items[1], settings) is not None and ahead.lookup(items[2], settings) is not None
        assert len(asked) == 3  # served from the window, no more lookups
        assert ahead.lookup(items[4], settings) is None  # next window (3, 4, 5): a miss comes back as None
        assert asked[3:] == [i.id for i in items[3:]]
        assert ahead.lookup(items[3], settings) is not None and len(asked) == 6
        # another size, or an item asked again: a plain lookup
        assert ahead.lookup(items[0], Preprocessing(max_side=16)) is None
        assert ahead.lookup(items[0], settings) is not None and len(asked) == 8


async def test_read_ahead_builds_the_next_misses_on_the_other_cores(tmp_path, image_dir):
    from visionbench.data.dataset import load_dataset
    from visionbench.run.readahead import ReadAhead

    items = load_dataset(image_dir, "labels.json", "person_count")
    settings = Preprocessing(max_side=32)
    with Preprocessor(tmp_path / "cache") as pre:
        pre.workers = 3
        pre.prepare(items[1], settings)  # a hit among the misses: never built
        ahead = ReadAhead(pre, items, settings, window=6)
        assert ahead.lookup(items[0], settings) is None
        first = await ahead.build(items[0], settings)
        assert first.item_id == items[0].id
        assert sorted(ahead._building) == [items[2].id, items[3].id]  # two more cores: the next two misses
        for item in items[2:]:
            assert ahead.lookup(item, settings) is None
            assert (await ahead.build(item, settings)).item_id == item.id
        assert pre.misses == 1 + 5  # each miss built once: the ones built ahead were not built again
        ahead.close()
