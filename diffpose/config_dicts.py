"""Strict conversion between plain dicts and config dataclasses, and ``a.b=value`` overrides.

Generic over dataclasses (nothing here knows the config tree of :mod:`diffpose.config`, which re-exports
these functions): every field has a type; a value of another type, or a key the dataclass does not have, is a
:class:`~diffpose.config_ranges.ConfigError` naming the key. Values parsed from text are read as YAML data
(``yaml.safe_load``), never executed.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Union

import yaml

from diffpose.config_ranges import ConfigError
from diffpose.io_utils import SPECIAL_FILES


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict (tuples become lists) that :func:`config_from_dict` turns back into ``cfg``."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        return v

    return conv(cfg)


def coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"value {value!r} matches none of {tp}", field=key)
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"expected null, got {value!r}", field=key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping of {tp.__name__} fields, got {value!r}", field=key)
        return dataclass_from_dict(tp, value, key)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}", field=key)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"expected {len(args)} values, got {len(value)}", field=key)
        return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected true or false, got {value!r}", field=key)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"expected an integer, got {value!r}", field=key)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"expected a number, got {value!r}", field=key)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"expected a string, got {value!r}", field=key)
    raise ConfigError(f"unsupported config type {tp}", field=key)


def dataclass_from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            full = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"unknown config key; {cls.__name__} has: {', '.join(sorted(names))}", field=full)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = coerce(data[f.name], hints[f.name], f"{prefix}.{f.name}" if prefix else f.name)
    return cls(**kwargs)


def merge_dict(cfg: Any, data: dict[str, Any], prefix: str = "") -> Any:
    """Return a copy of ``cfg`` with the (possibly nested, partial) values of ``data`` applied."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {data!r}", field=prefix or None)
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in hints:
            names = ", ".join(f.name for f in dataclasses.fields(cfg))
            raise ConfigError(f"unknown config key; {type(cfg).__name__} has: {names}", field=full)
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = merge_dict(current, value, full)
        else:
            changes[key] = coerce(value, hints[key], full)
    return dataclasses.replace(cfg, **changes)


def parse_override(text: str) -> dict[str, Any]:
    """``"train.lr=1e-4"`` -> ``{"train": {"lr": 1e-4}}``; the value is parsed as YAML (``[1, 2]``, ``true``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    dotted, raw = text.split("=", 1)
    keys = dotted.strip().split(".")
    if not all(keys):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML reads "1e-4" as a string (no dot in the mantissa); accept it as the number it means.
    if isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        value = float(value)  # not finite: the range check names the key
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            pass
    out: dict[str, Any] = {keys[-1]: value}
    for k in reversed(keys[:-1]):
        out = {k: out}
    return out


def upgrade_dict(data: Any, moved: dict[str, str], warn: bool = True) -> Any:
    """A copy of a (possibly partial) config dict with the ``moved`` keys (``{"old.key": "new.key"}``, e.g.
    :data:`diffpose.config.MOVED_KEYS`) under their new names, with a ``DeprecationWarning`` for each unless not
    ``warn``.

    A dict that names both spellings keeps the new one. Anything that is not a dict is returned unchanged (the
    strict conversion reports it).
    """
    if not isinstance(data, dict):
        return data
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for old, new in moved.items():
        old_sec, old_key = old.split(".")
        new_sec, new_key = new.split(".")
        section = out.get(old_sec)
        if not isinstance(section, dict) or old_key not in section:
            continue
        value = section.pop(old_key)
        target = out.setdefault(new_sec, {})
        if isinstance(target, dict):
            target.setdefault(new_key, value)
        if warn:
            warnings.warn(f"config key {old} is now {new}; the old spelling will stop working in the next release",
                          DeprecationWarning, stacklevel=3)
    return out


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping naming one key twice (``safe_load`` keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base" then a key of its own is an override
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise ConfigError(f"duplicate key {key!r} (lines {seen[key]} and {line}); YAML would keep only "
                                      "the last value: write each key once")
                seen[key] = line
            except TypeError:  # an unhashable key: the SafeLoader names it
                continue
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """The data of a YAML config file, with a one-line :class:`ConfigError` for every failure: a path that is
    not a regular file (a FIFO, a device or a directory is refused before it is opened, so nothing blocks), a
    file that cannot be read or is not UTF-8 text, invalid YAML, a key given twice in one mapping."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISREG(mode):
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # swapped for a FIFO since: no block
            with os.fdopen(fd, "rb") as f:
                mode = os.fstat(f.fileno()).st_mode
                raw = f.read() if stat.S_ISREG(mode) else b""
    except OSError as e:
        why = "cannot resolve this path (a symlink loop)" if e.errno == 40 else e.strerror or e
        raise ConfigError(f"cannot read config: {why}", path) from None
    if not stat.S_ISREG(mode):
        what = next((what for test, what in SPECIAL_FILES if test(mode)),
                    "a directory" if stat.S_ISDIR(mode) else "not a regular file")
        raise ConfigError(f"cannot read config: {what}, not a regular file", path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read config: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})",
                          path) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: data, never code
    except ConfigError as e:
        raise ConfigError(str(e), path) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}".replace("\n", " "), path) from None
