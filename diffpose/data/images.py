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
file, a JPEG cut short (its last end-of-image marker does not follow its last start-of-scan marker, which
libjpeg would otherwise decode into a silently grey lower part), and anything the decoder cannot read
(corrupt data, 32-bit float TIFF, not an image).

:func:`missing_files` checks in one pass (``stat`` only, no decoding) that every frame a job needs exists,
so that a half-downloaded dataset is reported before hours of work rather than in the middle.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from diffpose.errors import DataFormatError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_JPEG_START = b"\xff\xd8"
_JPEG_SCAN = b"\xff\xda"  # start of scan: entropy-coded data follows
_JPEG_END = b"\xff\xd9"  # end of image


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
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
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
        if not (root / name).is_file():
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
