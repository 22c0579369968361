"""Accepted values of the typed config: each dataclass field declares its range or choices in its metadata
(:func:`ranged_field`), and :func:`validate_config` checks a whole config against them, then the rules that
tie several fields together. One error names the key, the value and what was expected."""

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
    lo, hi = meta["range"]
    lo_open, hi_open = meta.get("open", (False, False))
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def in_range(value: float, meta: dict[str, Any]) -> bool:
    lo, hi = meta["range"]
    lo_open, hi_open = meta.get("open", (False, False))
    if lo is not None and (value <= lo if lo_open else value < lo):
        return False
    return not (hi is not None and (value >= hi if hi_open else value > hi))


# --------------------------------------------------------------------------------------------------
# Validation: every field's range (its metadata), then the checks that involve several fields
# --------------------------------------------------------------------------------------------------
def _check_field(value: Any, f: dataclasses.Field, key: str) -> None:
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"config key {key}: {v} is not a finite number")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"config key {key}: {value!r} is not one of {', '.join(choices)}")
    if "range" in f.metadata:
        for v in values:
            if not in_range(v, f.metadata):
                raise ConfigError(f"config key {key}: {v!r} is out of range, expected {describe_range(f.metadata)}")


def _walk(cfg: Any, prefix: str = "") -> None:
    for f in dataclasses.fields(cfg):
        value, key = getattr(cfg, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _walk(value, key + ".")
        else:
            _check_field(value, f, key)


def validate_config(cfg: Any) -> Any:
    """Check every field against the range its metadata declares (floats finite, strings among their choices),
    then the rules that tie fields together; raise one :class:`ConfigError` naming the key, the value and what
    was expected. Used by :func:`~diffpose.config.load_config` and :func:`~diffpose.config.config_from_dict`
    (so presets, YAML files, overrides and checkpoints alike). Returns ``cfg``."""
    _walk(cfg)
    m = cfg.model
    for key, width, heads in (("model.backbone", m.backbone.embed_dim, m.backbone.num_heads),
                              ("model.strl", m.strl.dim, m.strl.num_heads),
                              ("model.decoder", m.decoder.seref_dim, m.decoder.num_heads)):
        if width % heads:
            wname = "embed_dim" if key == "model.backbone" else "seref_dim" if key == "model.decoder" else "dim"
            raise ConfigError(f"config key {key}.num_heads: {heads} heads do not divide {key}.{wname} = {width}")
    if m.decoder.time_dim % 2:
        raise ConfigError(f"config key model.decoder.time_dim: {m.decoder.time_dim} is odd, expected an even width")
    if m.decoder.self_condition and m.decoder.predicts != "heatmap":
        raise ConfigError("config key model.decoder.self_condition: true needs model.decoder.predicts=heatmap, "
                          f"got {m.decoder.predicts!r}")
    if m.decoder.residual and not m.decoder.self_condition:
        raise ConfigError("config key model.decoder.residual: true needs model.decoder.self_condition=true")
    if cfg.sampling.steps > cfg.diffusion.timesteps:
        raise ConfigError(f"config key sampling.steps: {cfg.sampling.steps} is more than diffusion.timesteps = "
                          f"{cfg.diffusion.timesteps}")
    d = cfg.diffusion
    if d.start == "prior":
        if not m.decoder.prior_head:
            raise ConfigError("config key diffusion.start: 'prior' needs model.decoder.prior_head=true")
        if d.start_t >= d.timesteps:
            raise ConfigError(f"config key diffusion.start_t: {d.start_t} is not below diffusion.timesteps = "
                              f"{d.timesteps}")
        if cfg.sampling.steps > d.start_t + 1:
            raise ConfigError(f"config key sampling.steps: {cfg.sampling.steps} is more than the {d.start_t + 1} "
                              f"steps from diffusion.start_t = {d.start_t}")
    return cfg  # data.frame_offsets is checked when a model is built (clip_offsets): single-frame kinds ignore it
