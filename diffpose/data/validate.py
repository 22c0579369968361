"""Small checked accessors used by every reader, so that a malformed file gives one clear line.

Each helper takes the ``path`` and a ``where`` string (e.g. ``"annotations[3] (id 1012834000000)"``) and
raises :class:`~diffpose.errors.DataFormatError` naming the file, the field and what was expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diffpose.errors import DataFormatError
from diffpose.io_utils import missing_reason

_MISSING = object()
# The largest keypoint coordinate (pixels, either sign) a file may hold: frames are a few thousand pixels wide, so
# |x| or |y| above a million (1e300, say) is damage, not a position; it would overflow squared distances.
MAX_COORDINATE = 1e6


def load_json(path: str | Path) -> Any:
    """Parse a JSON file, turning I/O and syntax errors into a one-line :class:`DataFormatError`."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(missing_reason(path), path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataFormatError(f"cannot read: {e.strerror or e}", path) from None
    if not raw.strip():
        raise DataFormatError("file is empty, expected JSON", path)
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise DataFormatError("is not UTF-8 text, expected JSON", path) from None
    except json.JSONDecodeError as e:
        raise DataFormatError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}", path) from None
    except RecursionError:
        raise DataFormatError("JSON nested too deeply (lists or objects inside each other beyond Python's "
                              "recursion limit)", path) from None



def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def get(obj: dict, key: str, path: Path | str, where: str, kind: type | tuple[type, ...] | None = None,
        default: Any = _MISSING) -> Any:
    """``obj[key]``, checking presence and (optionally) the JSON type."""
    if not isinstance(obj, dict):
        raise DataFormatError(f"expected an object, got {type_name(obj)}", path, where)
    if key not in obj:
        if default is not _MISSING:
            return default
        raise DataFormatError("missing required key", path, f"{where}.{key}" if where else key)
    value = obj[key]
    if kind is not None and not _is_kind(value, kind):
        raise DataFormatError(
            f"expected {_kind_name(kind)}, got {type_name(value)} {_short(value)}", path,
            f"{where}.{key}" if where else key,
        )
    return value


def _is_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False  # JSON true/false is not a number here
    if float in kinds and isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, kinds)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) >= {int, float}:
        return "a number"
    return " or ".join(type_name(k()) if k is not type(None) else "null" for k in kinds)


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def number(value: Any, path: Path | str, field: str) -> float:
    """A finite JSON number (not a boolean, not a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataFormatError(f"expected a finite number, got {type_name(value)} {_short(value)}", path, field)
    return float(value)


def integer(value: Any, path: Path | str, field: str) -> int:
    """A JSON integer (``3.0`` is accepted as 3)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise DataFormatError(f"expected an integer, got {type_name(value)} {_short(value)}", path, field)
    return int(value)


def number_array(value: Any, path: Path | str, field: str, length: int | None = None) -> np.ndarray:
    """A flat list of finite numbers as float64, optionally of an exact length."""
    if not isinstance(value, list):
        raise DataFormatError(f"expected a list of numbers, got {type_name(value)}", path, field)
    if length is not None and len(value) != length:
        raise DataFormatError(f"expected {length} numbers, got {len(value)}", path, field)
    bad = next((v for v in value if isinstance(v, bool) or not isinstance(v, (int, float))), _MISSING)
    if bad is not _MISSING:
        raise DataFormatError(f"expected numbers only, found {type_name(bad)} {_short(bad)}", path, field)
    try:  # every item is an int or a float here; a huge int (beyond float64) cannot be converted
        arr = np.array([float(v) for v in value], dtype=np.float64) if value else np.zeros(0)
    except OverflowError:
        raise DataFormatError("expected numbers, found an integer too large for a float", path, field) from None
    if not np.isfinite(arr).all():
        raise DataFormatError("expected finite numbers, found NaN or infinity", path, field)
    return arr


def check_coordinates(xy: np.ndarray, path: Path | str, field: Callable[[int], str]) -> None:
    """Refuse coordinates ``xy (N, ..., 2)`` beyond :data:`MAX_COORDINATE` in magnitude, naming the first bad
    item's ``field(n)``."""
    if xy.size == 0:
        return
    bad = (np.abs(xy) > MAX_COORDINATE).reshape(len(xy), -1).any(axis=1)
    if bad.any():
        n = int(np.flatnonzero(bad)[0])
        value = float(xy[n][np.abs(xy[n]) > MAX_COORDINATE].flat[0])
        raise DataFormatError(f"keypoint coordinate {value:g} is not a pixel position (|x|, |y| must be at most "
                              f"{MAX_COORDINATE:g})", path, field(n))
