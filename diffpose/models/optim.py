"""Optimiser parameter groups: backbone learning rate or layer-wise decay, no decay on norms/biases; freezing.

Layer-wise learning-rate decay follows ViTPose's ``LayerDecayOptimizerConstructor`` (behaviour, not code):
with ``L`` backbone blocks, the patch embedding (or conv stem) and ``pos_embed`` are layer 0, ``blocks.i`` is layer
``i + 1`` and ``last_norm`` is layer ``L + 1``; a backbone parameter of layer ``l`` gets
``backbone_lr * layer_decay ** (L + 1 - l)``. So ``last_norm`` trains at ``backbone_lr`` and the patch
embedding at ``backbone_lr * layer_decay ** (L + 1)``. Everything outside the backbone (STRL, decoder,
baseline head) trains at ``lr``.

No weight decay for: 1-D parameters (LayerNorm/GroupNorm/BatchNorm weights, all biases) and learned
position tables (``pos_embed`` of the ViT and of the STRL), as ViT recipes do.
"""

from __future__ import annotations

from typing import Any

from torch import nn

BACKBONE_PREFIX = "backbone."
NO_DECAY_NAMES = ("pos_embed",)  # parameter names (last component) never weight-decayed


def freeze_backbone(model: nn.Module, frozen: bool = True) -> None:
    """Freeze (or unfreeze) ``model.backbone``: no gradients, eval mode, skipped by :func:`param_groups`.

    The networks keep a frozen backbone in eval mode across ``model.train()`` and run it without autograd.
    """
    for p in model.backbone.parameters():
        p.requires_grad_(not frozen)
    model.backbone_frozen = frozen
    model.train(model.training)


def backbone_layer_id(name: str, depth: int) -> int:
    """ViTPose layer index of a backbone parameter name (relative to the backbone, e.g. ``blocks.3.mlp.fc1.weight``)."""
    if name.startswith(("patch_embed.", "stem.", "pos_embed")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def _no_decay(name: str, param: nn.Parameter) -> bool:
    return param.ndim <= 1 or name.split(".")[-1] in NO_DECAY_NAMES


def param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_lr: float | None = None,
                 layer_decay: float = 1.0) -> list[dict[str, Any]]:
    """AdamW parameter groups.

    Args:
        model: a DiffPoseNet or BaselineNet (anything with a ``backbone`` ViT).
        lr: learning rate of the new modules (STRL, decoder, head).
        weight_decay: decay of the weight matrices / kernels; 0 for norms, biases and position tables.
        backbone_lr: base learning rate of the backbone (default ``lr``).
        layer_decay: ViTPose layer-wise decay factor in ``(0, 1]``; 1 gives every backbone layer ``backbone_lr``.

    Returns:
        A list of dicts with ``params``, ``lr``, ``weight_decay`` and a descriptive ``name``, one per distinct
        ``(lr, weight_decay)``; frozen parameters (``requires_grad=False``) are left out. Each group also
        carries ``lr_scale`` (its lr divided by ``lr``) for schedulers that rescale a base lr.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    backbone_lr = lr if backbone_lr is None else backbone_lr
    depth = len(model.backbone.blocks)
    groups: dict[tuple[str, float, float], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        wd = 0.0 if _no_decay(name, param) else weight_decay
        if name.startswith(BACKBONE_PREFIX):
            layer = backbone_layer_id(name[len(BACKBONE_PREFIX):], depth)
            group_lr = backbone_lr * layer_decay ** (depth + 1 - layer)
            tag = f"backbone.layer{layer}" if layer_decay < 1.0 else "backbone"
        else:
            group_lr, tag = lr, "head"
        key = (tag, group_lr, wd)
        if key not in groups:
            groups[key] = {"params": [], "lr": group_lr, "weight_decay": wd,
                           "name": f"{tag}{'' if wd else '.no_decay'}", "lr_scale": group_lr / lr if lr else 1.0}
        groups[key]["params"].append(param)
    return list(groups.values())
