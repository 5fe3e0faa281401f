"""The libjpeg-turbo fast path gives what the Pillow path gives: the same sizes, near-identical pixels,
upright, and it stands aside for what it does not handle (CMYK, truncated data, PNG, 16-bit)."""

import io

import numpy as np
import pytest
from PIL import Image

from visionbench.data import image_bytes as preprocess
from visionbench.data import jpeg_turbo
from visionbench.data.image_bytes import process_bytes
from visionbench.errors import ItemError
from visionbench.preprocessing import Preprocessing


def photo(width, height, mode="RGB", orientation=None, quality=90):
    rng = np.random.default_rng(width * height)
    blocks = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    img = Image.fromarray(blocks).resize((width, height), Image.Resampling.BILINEAR).convert(mode)
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    img.save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def both_paths(monkeypatch, data, settings):
    fast = process_bytes(data, settings)
    with monkeypatch.context() as m:
        m.setattr(jpeg_turbo, "available", lambda: False)
        slow = process_bytes(data, settings)
    return fast, slow


def pixels(processed):
    with Image.open(io.BytesIO(processed.data)) as img:
        return np.asarray(img.convert("RGB")).astype(np.int16)


@pytest.mark.parametrize(
    "size, max_side",
    [((4000, 3000), 1536), ((3000, 4000), 768), ((1537, 1000), 1536), ((801, 333), 384), ((640, 480), None)],
)
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_same_size_and_near_same_pixels_as_the_pillow_path(monkeypatch, size, max_side, fmt):
    fast, slow = both_paths(monkeypatch, photo(*size), Preprocessing(max_side=max_side, format=fmt))
    assert (fast.width, fast.height) == (slow.width, slow.height)
    assert fast.mime_type == slow.mime_type
    assert np.abs(pixels(fast) - pixels(slow)).mean() < 3


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_rotated_photos_come_out_upright_as_on_the_pillow_path(monkeypatch, orientation):
    fast, slow = both_paths(monkeypatch, photo(1200, 800, orientation=orientation), Preprocessing(max_side=600))
    assert (fast.width, fast.height) == (slow.width, slow.height)
    assert (fast.width, fast.height) == ((400, 600) if orientation >= 5 else (600, 400))
    assert np.abs(pixels(fast) - pixels(slow)).mean() < 3


def test_greyscale_jpeg_becomes_rgb(monkeypatch):
    fast, slow = both_paths(monkeypatch, photo(900, 600, mode="L"), Preprocessing(max_side=300))
    assert (fast.width, fast.height) == (slow.width, slow.height) == (300, 200)
    assert pixels(fast).shape[2] == 3


def test_cmyk_and_non_jpeg_inputs_take_the_pillow_path(monkeypatch):
    calls = []
    monkeypatch.setattr(preprocess, "_fast_jpeg", lambda *a: calls.append(a) or None)
    cmyk = photo(400, 300, mode="CMYK")
    assert process_bytes(cmyk, Preprocessing(max_side=200)).width == 200
    buf = io.BytesIO()
    Image.fromarray(np.full((30, 40), 40000, dtype=np.uint16)).save(buf, "PNG")  # 16-bit
    assert process_bytes(buf.getvalue(), Preprocessing(max_side=20)).width == 20
    assert calls == []  # neither was offered to libjpeg-turbo
    process_bytes(photo(400, 300), Preprocessing(max_side=200))
    assert len(calls) == 1


def test_a_truncated_jpeg_is_still_an_item_error():
    data = photo(800, 600)
    with pytest.raises(ItemError, match="corrupt, truncated"):
        process_bytes(data[: len(data) // 2], Preprocessing(max_side=400), name="cut.jpg")


def test_the_decoder_scales_in_the_dct_domain_no_smaller_than_asked():
    data = photo(4000, 3000)
    decoded = jpeg_turbo.decode(data, (1536, 1152))
    assert decoded.shape == (1500, 2000, 3)  # 4/8: the smallest eighth still >= the target
    assert jpeg_turbo.decode(b"not a jpeg", (10, 10)) is None
