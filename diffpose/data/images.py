"""Reading frame images: one decoder for training, testing and inference, with one-line errors.

:func:`read_rgb` returns every readable image as RGB uint8 ``(H, W, 3)``, whatever the file holds:

* grayscale (8 or 16 bit) -> the gray value in all three channels;
* RGBA / grayscale + alpha -> the colour channels, alpha dropped (transparent pixels keep their colour;
  nothing is composited);
* 16-bit colour (PNG, TIFF) -> the top 8 bits of each channel (OpenCV's ``IMREAD_COLOR`` conversion);
* palette PNG, CMYK JPEG -> converted by the decoder;
* JPEG EXIF orientation is applied by the decoder (as ``cv2.imread`` does).

Frames of one video may differ in size; each frame is returned at its own size and the caller decides (the
clip crop uses the key frame's box on every frame of the clip, see :mod:`diffpose.data.clip_dataset`).

Refused with a :class:`~diffpose.errors.DataFormatError` naming the file: a missing path, a folder, an empty
file, an image whose header claims more than :data:`MAX_PIXELS` pixels (read from the PNG / JPEG / BMP / WebP
header before anything is decoded, so a small file claiming 20000 x 20000 pixels costs nothing), one beyond
OpenCV's own limit (``OPENCV_IO_MAX_IMAGE_PIXELS``, for the kinds whose header is not read here), a JPEG cut
short (its last end-of-image marker does not follow its last start-of-scan marker, which libjpeg would
otherwise decode into a silently grey lower part), and anything the decoder cannot read
(corrupt data, 32-bit float TIFF, not an image).

:func:`missing_files` checks in one pass (``stat`` only, no decoding) that every frame a job needs exists,
so that a half-downloaded dataset is reported before hours of work rather than in the middle; names that
would leave the root (absolute, ``..``) are refused (:func:`~diffpose.data.paths.confined`).

:func:`check_frame_size` compares a decoded frame with the ``width`` / ``height`` its annotation states.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from diffpose.data.paths import confined
from diffpose.errors import DataFormatError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_JPEG_START = b"\xff\xd8"
_JPEG_SCAN = b"\xff\xda"  # start of scan: entropy-coded data follows
_JPEG_END = b"\xff\xd9"  # end of image
# The most pixels an image may claim: 2**26 = 67.1 M pixels (8192 x 8192), 8 times a 4K frame. Decoded as RGB
# uint8 that is 200 MB, and OpenCV's decoders need about as much again; a frame of a pose dataset is far smaller.
MAX_PIXELS = 2**26
# A frame may differ from the width / height its annotation states by this factor at most (either side); the
# keypoints are in the stated pixels, so a resized copy of the image would put every person elsewhere.
SIZE_TOLERANCE = 1.1
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # start-of-frame markers


def header_size(data: bytes) -> tuple[int, int] | None:
    """``(W, H)`` as the header of a PNG, JPEG, BMP or WebP file states it (nothing decoded); None for other
    kinds or a header too short to say."""
    be16 = lambda i: int.from_bytes(data[i:i + 2], "big")  # noqa: E731
    le = lambda i, n: int.from_bytes(data[i:i + n], "little")  # noqa: E731
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(_JPEG_START):
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
                i += 2
                continue
            if marker in _JPEG_SOF and i + 9 <= len(data):
                return be16(i + 7), be16(i + 5)  # (width, height)
            if marker in (0xDA, 0xD9):  # scan data (or the end) before any frame header
                return None
            i += 2 + be16(i + 2)  # skip the segment (an EXIF thumbnail lies inside one)
        return None
    if data.startswith(b"BM") and len(data) >= 26:
        return abs(int.from_bytes(data[18:22], "little", signed=True)), abs(
            int.from_bytes(data[22:26], "little", signed=True))
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8 ":
            return le(26, 2) & 0x3FFF, le(28, 2) & 0x3FFF
        if chunk == b"VP8L":
            b = data[21:25]
            return 1 + (b[0] | (b[1] & 0x3F) << 8), 1 + (b[1] >> 6 | b[2] << 2 | (b[3] & 0x0F) << 10)
        if chunk == b"VP8X":
            return 1 + le(24, 3), 1 + le(27, 3)
    return None


def check_pixel_limit(data: bytes, path: str | Path) -> None:
    """Refuse, before decoding, an image whose header claims more than :data:`MAX_PIXELS` pixels."""
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise DataFormatError(f"image header says {size[0]} x {size[1]} pixels, more than the {MAX_PIXELS} (2**26) "
                              "this tool decodes; refused without decoding (a damaged or hostile file?)", path)


def check_frame_size(image: np.ndarray, size: tuple[int, int] | None, path: str | Path) -> None:
    """Refuse a decoded frame whose size is not the ``(W, H)`` its annotation states (within
    :data:`SIZE_TOLERANCE` per side): its keypoints and boxes would not fit the picture."""
    if size is None or size[0] <= 0 or size[1] <= 0:
        return
    h, w = image.shape[:2]
    if not all(1 / SIZE_TOLERANCE <= got / want <= SIZE_TOLERANCE for got, want in ((w, size[0]), (h, size[1]))):
        raise DataFormatError(f"frame image is {w} x {h} pixels but its annotation says width {size[0]}, height "
                              f"{size[1]}; its keypoints and boxes would not fit the image (resized or replaced "
                              "image?)", path, "width/height")


def jpeg_is_truncated(data: bytes) -> bool:
    """True for JPEG bytes whose last scan is not followed by an end-of-image marker.

    Inside entropy-coded data every ``0xFF`` is followed by ``0x00`` (or a restart marker), so ``FF D9`` after
    the last ``FF DA`` appears only when the image is complete. A thumbnail in the EXIF block has its own
    markers, but they come before the main image's scan.
    """
    if not data.startswith(_JPEG_START):
        return False
    return data.rfind(_JPEG_END) < data.rfind(_JPEG_SCAN)


def read_rgb(path: str | Path) -> np.ndarray:
    """The image at ``path`` as RGB uint8 ``(H, W, 3)``, or a one-line :class:`DataFormatError`."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("frame image does not exist" if not path.exists() else "is not a file", path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataFormatError(f"cannot read: {e.strerror or e}", path) from None
    if not data:
        raise DataFormatError("frame image is an empty file", path)
    if jpeg_is_truncated(data):
        raise DataFormatError("JPEG is cut short (no end-of-image marker after its last scan; an interrupted "
                              "download?)", path)
    check_pixel_limit(data, path)
    try:
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:  # OpenCV's own size limit (OPENCV_IO_MAX_IMAGE_PIXELS), or another refusal
        if "MAX_IMAGE_PIXELS" in str(e):
            raise DataFormatError("image is larger than OpenCV's pixel limit (OPENCV_IO_MAX_IMAGE_PIXELS); refused "
                                  "without decoding", path) from None
        raise DataFormatError(f"cannot decode this image (OpenCV: {' '.join(str(e).split())[-160:]})", path) from None
    if bgr is None:
        raise DataFormatError("cannot decode this image (corrupt, not an image, or a kind OpenCV cannot read as "
                              "8/16-bit colour)", path)
    if bgr.dtype != np.uint8:  # pragma: no cover - IMREAD_COLOR always gives 8 bits
        bgr = (bgr / max(float(np.iinfo(bgr.dtype).max), 1.0) * 255).round().astype(np.uint8)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # (H, W, 3)


def missing_files(root: str | Path, names: Iterable[str]) -> list[str]:
    """The ``names`` (relative to ``root``, in the given order, without repeats) that are not files."""
    root = Path(root)
    seen: set[str] = set()
    missing = []
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        if not confined(root, name, what="frame file name").is_file():
            missing.append(name)
    return missing


def check_frames_exist(root: str | Path, names: Iterable[str], what: str) -> None:
    """Raise one :class:`DataFormatError` naming the first missing file when any of ``names`` is not under ``root``.

    ``what`` says who needs the frames, e.g. ``"the clips of split 'train' need"``.
    """
    names = list(names)
    missing = missing_files(root, names)
    if missing:
        raise DataFormatError(f"frame image does not exist; {len(missing)} of the {len(set(names))} frame images "
                              f"{what} are missing (the dataset looks incomplete)", Path(root) / missing[0])


def opencv_before_fork() -> None:
    """Make OpenCV safe for worker processes forked from this one: run it single-threaded here.

    OpenCV's thread pool does not survive ``fork``: a child whose parent had pool threads waiting hangs in
    its first OpenCV call that touches the pool (even ``cv2.setNumThreads``). Call this in the parent before
    starting data-loading or rendering workers; the parent does no image work while they run.
    """
    cv2.setNumThreads(1)
