"""Loading original ViTPose checkpoints (``backbone.*``, ``keypoint_head.*``) into our models.

Accepted files: a ``.pth`` holding a dict with a ``state_dict`` entry (the mmpose/ViTPose layout, beside
``meta`` and ``optimizer``) or a raw state dict. They are read with
``torch.load(..., weights_only=True, map_location="cpu")``, which refuses pickled code. A leading
``module.`` (from DistributedDataParallel) is stripped. A transformers VitPose (``save_pretrained`` folder or
``.safetensors`` file) and mmpose 1.x key names are converted to ours first
(:func:`~diffpose.models.vitpose_formats.to_diffpose_keys`).

Loading is strict about shapes and explicit about names:

* keys of the checkpoint under the loaded prefixes that the model lacks are **unexpected**;
* model keys under the loaded prefixes that the checkpoint lacks are **missing**;
* a shape mismatch is an error (:class:`~diffpose.errors.DiffPoseError` listing every mismatch), except
  ``backbone.pos_embed`` on another token grid, which is resized bicubically (the first slot kept) and
  listed as **interpolated**.

The prefixes are ``backbone.`` (plus ``keypoint_head.`` when the model has a ``keypoint_head``, i.e. the
single-frame baseline). Checkpoint keys outside them (a ViTPose head when loading into DiffPose) are
reported as unexpected and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffpose.checkpoint import load_checkpoint
from diffpose.errors import DiffPoseError
from diffpose.models.embeddings import factor_grid, resize_pos_embed
from diffpose.models.vitpose_formats import read_weights, to_diffpose_keys

DDP_PREFIX = "module."
POS_EMBED_KEY = "backbone.pos_embed"


@dataclass
class LoadReport:
    """What a checkpoint load did. All lists hold full state-dict keys (e.g. ``backbone.blocks.0.norm1.weight``)."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # model keys the checkpoint does not have
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys the model does not have
    mismatched: list[str] = field(default_factory=list)  # "key: checkpoint (shape) vs model (shape)"
    interpolated: list[str] = field(default_factory=list)  # resized position embeddings

    @property
    def ok(self) -> bool:
        """True when nothing is missing and no shape mismatches (unexpected keys are tolerated)."""
        return not self.missing and not self.mismatched

    def summary(self) -> str:
        return (f"{len(self.loaded)} loaded, {len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.mismatched)} shape mismatches, {len(self.interpolated)} interpolated")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (or a transformers folder) into a flat ``{key: tensor}`` dict (CPU) in our key names,
    safely."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".safetensors":
        return read_weights(path)
    return to_diffpose_keys(extract_state_dict(load_checkpoint(path), path))  # weights_only, one-line errors


def extract_state_dict(obj: Any, path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint object.

    ``obj["state_dict"]`` (ViTPose / mmpose), ``obj["model"]`` (a diffpose checkpoint: ``final.pt`` /
    ``last.pt``, so a trained baseline can initialise DiffPose's backbone), or ``obj`` itself.
    """
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
        where = "state_dict"
    elif isinstance(obj, dict) and isinstance(obj.get("model"), dict) and str(obj.get("format", "")).startswith(
            "diffpose-checkpoint"):
        obj = obj["model"]
        where = "model"
    else:
        where = None
    if not isinstance(obj, dict) or not obj:
        raise DiffPoseError("expected a non-empty dict of tensors (or a dict with a 'state_dict' entry)", path, where)
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DiffPoseError(f"expected tensors, found non-tensor entries: {', '.join(map(str, bad[:5]))}", path, where)
    out = {}
    for key, value in obj.items():
        key = str(key)
        out[key[len(DDP_PREFIX):] if key.startswith(DDP_PREFIX) else key] = value
    return out


def _resize_pos_embed_key(value: torch.Tensor, target: torch.Tensor, model: nn.Module) -> torch.Tensor | None:
    """``value`` resized to ``target``'s token grid, or None when the two cannot be matched."""
    if value.ndim != 3 or target.ndim != 3 or value.shape[0] != 1 or value.shape[2] != target.shape[2]:
        return None
    grid = getattr(getattr(model, "backbone", None), "grid_size", None)
    if grid is None or target.shape[1] != 1 + grid[0] * grid[1]:
        return None
    old = factor_grid(value.shape[1] - 1, grid[0] / grid[1])  # checkpoint grid with the model's aspect
    return resize_pos_embed(value, old, grid)


def load_vitpose(model: nn.Module, source: str | Path | dict[str, torch.Tensor],
                 prefixes: tuple[str, ...] | None = None, raise_on_mismatch: bool = True) -> LoadReport:
    """Load ViTPose weights into ``model`` (in place) and report what happened.

    Args:
        model: a model whose backbone is ``model.backbone`` (DiffPoseNet, BaselineNet).
        source: a checkpoint path (``.pth``, ``.safetensors`` or a transformers folder) or an already-read state
            dict (any layout :func:`~diffpose.models.vitpose_formats.to_diffpose_keys` reads).
        prefixes: key prefixes to load; default ``("backbone.",)`` plus ``"keypoint_head."`` if the model has one.
        raise_on_mismatch: raise :class:`DiffPoseError` on shape mismatches (else only report them).

    Returns:
        :class:`LoadReport`. Missing keys are reported, not raised: call ``report.ok`` to insist.
    """
    path = None if isinstance(source, dict) else Path(source)
    ckpt = to_diffpose_keys(extract_state_dict(source)) if isinstance(source, dict) else read_state_dict(source)
    if prefixes is None:
        prefixes = ("backbone.",) + (("keypoint_head.",) if hasattr(model, "keypoint_head") else ())
    own = model.state_dict()
    report = LoadReport()
    to_load: dict[str, torch.Tensor] = {}
    for key, value in ckpt.items():
        if not key.startswith(prefixes) or key not in own:
            report.unexpected.append(key)
            continue
        target = own[key]
        if value.shape != target.shape:
            resized = _resize_pos_embed_key(value, target, model) if key == POS_EMBED_KEY else None
            if resized is None:
                report.mismatched.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(target.shape)}")
                continue
            report.interpolated.append(f"{key}: {tuple(value.shape)} -> {tuple(target.shape)}")
            value = resized
        to_load[key] = value.to(dtype=target.dtype)
        report.loaded.append(key)
    report.missing = [k for k in own if k.startswith(prefixes) and k not in ckpt]
    if report.mismatched and raise_on_mismatch:
        raise DiffPoseError(f"{len(report.mismatched)} shape mismatch(es): " + "; ".join(report.mismatched), path)
    model.load_state_dict(to_load, strict=False)
    return report
