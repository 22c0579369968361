"""Atomic file output: write to a temporary file in the target directory, then rename over the target.

A crash, a full disk or a kill in the middle of a write leaves the previous file (if any) intact and
never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from diffpose.errors import DiffPoseError


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it is flushed, fsynced and renamed to ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise DiffPoseError(f"cannot write here: {e.strerror or e}", path) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; published files get the usual mode
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    try:
        with atomic_open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise DiffPoseError(f"cannot write: {e.strerror or e}", path) from None
    return Path(path)


def atomic_write_text(text: str, path: str | Path) -> Path:
    return atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj: Any, path: str | Path, indent: int | None = None) -> Path:
    """Serialise ``obj`` as JSON (no NaN allowed) and write it atomically."""
    text = json.dumps(obj, indent=indent, allow_nan=False)
    return atomic_write_text(text, path)


def atomic_write_with(writer: Callable[[IO[bytes]], None], path: str | Path) -> Path:
    """Let ``writer`` fill a binary file object, then publish it atomically (e.g. ``torch.save``)."""
    try:
        with atomic_open(path, "wb") as f:
            writer(f)
    except OSError as e:
        raise DiffPoseError(f"cannot write: {e.strerror or e}", path) from None
    return Path(path)
