"""Accepted values of typed dataclass configs: each field declares its range or choices in its metadata
(:func:`ranged_field`); :func:`check_fields` checks a whole tree against them and :func:`check_value` one value
(a command-line option that sets a field). One error names the key, the value and what was expected. The rules
that tie several fields of diffpose's config together live with that config (:func:`diffpose.config.validate_config`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any

from diffpose.errors import DiffPoseError


class ConfigError(DiffPoseError):
    """A config key or value is wrong."""


def ranged_field(default: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
       hi_open: bool = False, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with ``default`` and its accepted values in ``metadata``: ``range`` ``(lo, hi)`` (None =
    unbounded; for a tuple field, every element), ``open`` ``(lo_open, hi_open)`` (strict bounds), ``choices``.
    Every float field must also be finite."""
    meta: dict[str, Any] = {}
    if lo is not None or hi is not None:
        meta["range"] = (lo, hi)
        meta["open"] = (lo_open, hi_open)
    if choices is not None:
        meta["choices"] = tuple(choices)
    return field(default=default, metadata=meta)


def describe_range(meta: dict[str, Any]) -> str:
    """``">= 1"``, ``"in [0, 1)"``, ``"> 0"`` for a field's metadata."""
    lo, hi = (_bound(b) for b in meta["range"])
    lo_open, hi_open = meta.get("open", (False, False))
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {hi}"
    return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def _bound(x: float | None) -> str | None:
    """A bound as written: an integer in full (``4294967295``, not ``4.29497e+09``), a float short (``1e-06``)."""
    return None if x is None else str(x) if isinstance(x, int) else f"{x:g}"


def in_range(value: float, meta: dict[str, Any]) -> bool:
    lo, hi = meta["range"]
    lo_open, hi_open = meta.get("open", (False, False))
    if lo is not None and (value <= lo if lo_open else value < lo):
        return False
    return not (hi is not None and (value >= hi if hi_open else value > hi))


# --------------------------------------------------------------------------------------------------
# Validation: every field's range (its metadata)
# --------------------------------------------------------------------------------------------------
def _check_field(value: Any, f: dataclasses.Field, key: str) -> None:
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{_label(key)}: {v} is not a finite number")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{_label(key)}: {value!r} is not one of {', '.join(choices)}")
    if "range" in f.metadata:
        for v in values:
            if not in_range(v, f.metadata):
                raise ConfigError(f"{_label(key)}: {v!r} is out of range, expected {describe_range(f.metadata)}")


def _label(key: str) -> str:
    """``config key a.b`` for a config key, the flag itself for a command-line option (``--steps``)."""
    return key if key.startswith("-") else f"config key {key}"


def _walk(cfg: Any, prefix: str = "") -> None:
    for f in dataclasses.fields(cfg):
        value, key = getattr(cfg, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _walk(value, key + ".")
        else:
            _check_field(value, f, key)


def check_fields(cfg: Any) -> Any:
    """Check every field of the dataclass tree ``cfg`` against the range its metadata declares (floats finite,
    strings among their choices); raise one :class:`ConfigError` naming the key, the value and what was
    expected. Returns ``cfg``."""
    _walk(cfg)
    return cfg


def check_value(value: Any, cls: type, name: str, key: str) -> Any:
    """``value`` if it is accepted for field ``name`` of dataclass ``cls`` (its declared range or choices), else a
    :class:`ConfigError` naming ``key`` (e.g. a command-line flag)."""
    _check_field(value, {f.name: f for f in dataclasses.fields(cls)}[name], key)
    return value
