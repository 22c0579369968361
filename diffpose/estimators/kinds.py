"""The model kinds (``model.kind``), named in one place, and how estimators are built and loaded.

:data:`KINDS` maps each kind to its network class (anything with ``from_config(cfg.model)``) and its estimator
class. Adding a kind is one new network file plus one line here; nothing else in the package names kinds.

* :func:`build_estimator` -- a fresh estimator from a config (optionally loading ``model.backbone.weights``);
* :func:`load_estimator` -- the estimator a ``diffpose train`` checkpoint describes, with its weights, or the
  single-frame estimator of a published ViTPose checkpoint (:mod:`diffpose.models.vitpose_formats`);
* :func:`checkpoint_config` -- the config either kind of file describes, without building the network;
* :func:`load_onnx_estimator` -- the estimator of a ``diffpose export --onnx`` folder, its graphs run by
  onnxruntime;
* :func:`model_complexity` -- parameters and GFLOPs per part of a config's model, counted on the meta device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from diffpose.checkpoint import CheckpointError, free_memory, load_checkpoint, model_state
from diffpose.config import Config, ConfigError, config_from_dict, load_config
from diffpose.errors import DiffPoseError
from diffpose.estimators.base import PoseEstimator
from diffpose.estimators.diffusion import DiffusionEstimator
from diffpose.estimators.regression import RegressionEstimator
from diffpose.models import BaselineNet, Complexity, DiffPoseNet, TemporalRegressionNet, freeze_backbone, load_vitpose
from diffpose.models.onnx_network import OnnxNetwork, read_manifest
from diffpose.models.vitpose_formats import (
    PublishedViTPose,
    config_overrides,
    load_published_vitpose,
    read_published_vitpose,
)


@dataclass(frozen=True)
class Kind:
    """A model kind: which network, driven by which estimator."""

    network: Any  # a class with ``from_config(ModelConfig) -> ClipNetwork``
    estimator: type[PoseEstimator]
    summary: str  # one line for --help and docs


KINDS: dict[str, Kind] = {
    "diffpose": Kind(DiffPoseNet, DiffusionEstimator, "temporal diffusion: ViT + STRL + Pose-Decoder with LMSFI"),
    "baseline": Kind(BaselineNet, RegressionEstimator, "single-frame heatmap regression: ViT + ViTPose head"),
    "regression": Kind(TemporalRegressionNet, RegressionEstimator, "temporal heatmap regression: ViT + STRL + "
                       "ViTPose head, no diffusion"),
}


def get_kind(name: str) -> Kind:
    """The :class:`Kind` called ``name``; a :class:`ConfigError` naming ``model.kind`` otherwise."""
    if name not in KINDS:
        raise ConfigError(f"unknown model kind {name!r}; choose one of: {', '.join(KINDS)}", field="model.kind")
    return KINDS[name]


def build_estimator(cfg: Config, load_weights: bool = True, net: Any = None) -> PoseEstimator:
    """The estimator of ``cfg.model.kind`` around a fresh network (or around ``net``, e.g. exported graphs).

    Args:
        cfg: the resolved config.
        load_weights: load ``model.backbone.weights`` into the fresh network when it is set: a ViTPose checkpoint
            or a diffpose checkpoint (e.g. a trained baseline's ``final.pt`` to start DiffPose from). Only the
            backbone is required; missing backbone keys are an error.
        net: use this network instead of building one (no weights are loaded then).
    """
    kind = get_kind(cfg.model.kind)
    if net is None:
        check_model_fits(cfg)
        net = kind.network.from_config(cfg.model)
        weights = cfg.model.backbone.weights
        if load_weights and weights:
            report = load_vitpose(net, weights)
            missing = [k for k in report.missing if k.startswith("backbone.")]
            if missing:
                raise DiffPoseError(f"{len(missing)} backbone keys missing from the checkpoint, e.g. {missing[0]}",
                                    weights, "model.backbone.weights")
        if cfg.model.backbone.freeze:
            freeze_backbone(net)
    return kind.estimator(net, cfg)


# the fields that stack identical layers: a network's parameters grow by the same count per layer of each
DEPTH_FIELDS = (("backbone", "depth"), ("strl", "depth"), ("decoder", "seref_depth"), ("decoder", "fuse_depth"),
                ("decoder", "conv_depth"))


def _with_depths(model: Any, depths: dict[tuple[str, str], int]) -> Any:
    parts = {}
    for (part, name), value in depths.items():
        parts[part] = replace(parts.get(part, getattr(model, part)), **{name: value})
    return replace(model, **parts)


def _meta_params(kind: Kind, model: Any) -> int:
    with torch.device("meta"):  # shapes only: nothing is allocated
        net = kind.network.from_config(model)
    return sum(t.numel() for t in (*net.parameters(), *net.buffers()))


def estimate_params(cfg: Config) -> int:
    """The parameters (and buffers) of ``cfg``'s network, counted without allocating anything and in a time that
    does not grow with the depths: the network is built on the ``meta`` device with every depth of
    :data:`DEPTH_FIELDS` above 2 cut to 2, and each cut depth adds what its second layer holds per layer."""
    kind, m = get_kind(cfg.model.kind), cfg.model
    depths = {key: getattr(getattr(m, key[0]), key[1]) for key in DEPTH_FIELDS}
    cut = {key: min(d, 2) for key, d in depths.items()}
    total = base = _meta_params(kind, _with_depths(m, cut))
    for key, depth in depths.items():
        if depth > 2:
            per_layer = base - _meta_params(kind, _with_depths(m, {**cut, key: 1}))
            total += (depth - 2) * per_layer
    return total


def check_model_fits(cfg: Config) -> None:
    """Refuse, before anything is allocated, a config whose network's float32 weights alone would not fit in the
    memory available on the device it is built on (a small checkpoint or ``--set`` can claim any width or
    depth). Building on the ``meta`` device (:func:`model_complexity`) is never refused."""
    device = torch.empty(0).device  # the default device: where from_config allocates
    if device.type == "meta":
        return
    free = free_memory(device)
    if free is None:
        return
    params = estimate_params(cfg)
    if params * 4 > free:
        m = cfg.model
        raise ConfigError(f"model too large: this {m.kind} model has about {params:,} parameters "
                          f"({params * 4 / 2**30:,.1f} GiB as float32; backbone {m.backbone.embed_dim}d x "
                          f"{m.backbone.depth} blocks), more than the {free / 2**30:.1f} GiB of memory available; "
                          "refusing to build it")


def _published(path: str | Path) -> tuple[PublishedViTPose, Config]:
    p = read_published_vitpose(path)
    return p, load_config("paper", overrides=config_overrides(p))


def _is_torch_file(path: str | Path) -> bool:
    """Not a transformers folder or ``.safetensors`` file (a missing path counts: its error names it)."""
    return not Path(path).is_dir() and Path(path).suffix.lower() != ".safetensors"


def checkpoint_config(checkpoint: str | Path) -> Config:
    """The config of a diffpose checkpoint (its ``config`` entry) or of a published ViTPose checkpoint (read from
    its weights); nothing is built."""
    if _is_torch_file(checkpoint):
        ckpt = load_checkpoint(checkpoint)
        if "config" in ckpt:
            return _config_of(ckpt, checkpoint)
        del ckpt  # the published reader reads the file itself: not two copies of the weights at once
    return _published(checkpoint)[1]


def _config_of(ckpt: dict[str, Any], checkpoint: str | Path) -> Config:
    if not isinstance(ckpt["config"], dict):
        raise CheckpointError(f"expected a config dict, found {type(ckpt['config']).__name__}", checkpoint, "config")
    try:
        return config_from_dict(ckpt["config"])
    except Exception as e:  # a config this version cannot build: name the checkpoint, not just the key
        text = str(e) if isinstance(e, DiffPoseError) else f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
        raise CheckpointError(f"its config cannot be used: {text}", checkpoint, "config") from None


def load_published_estimator(checkpoint: str | Path, device: torch.device | str = "cpu") -> PoseEstimator:
    """The single-frame estimator of a published ViTPose checkpoint (an mmpose ``.pth``, a transformers folder or
    ``.safetensors`` file), its size and head read from the weights, loaded strictly, predicting COCO's 17 joints
    (``model.layout=coco``), in eval mode."""
    p, cfg = _published(checkpoint)
    estimator = build_estimator(cfg, load_weights=False)
    load_published_vitpose(estimator.net, p)
    return estimator.to(device).eval()


def load_estimator(checkpoint: str | Path, device: torch.device | str = "cpu", use_ema: bool = True
                   ) -> PoseEstimator:
    """The estimator a checkpoint describes, with its weights, in eval mode: a diffpose checkpoint (EMA weights
    when present) or a published ViTPose checkpoint (:func:`load_published_estimator`).

    Every failure is a one-line :class:`~diffpose.errors.DiffPoseError` naming the file: neither kind of
    checkpoint, a config this version cannot build, weights that do not fit the config's model.
    """
    if not _is_torch_file(checkpoint):  # a transformers folder or .safetensors file
        return load_published_estimator(checkpoint, device)
    ckpt = load_checkpoint(checkpoint)
    if "config" not in ckpt:
        del ckpt  # the published reader reads the file itself: not two copies of the weights at once
        try:
            return load_published_estimator(checkpoint, device)
        except DiffPoseError as e:
            if "not a published ViTPose" not in str(e):
                raise
        raise CheckpointError("neither a diffpose checkpoint (no 'config' entry) nor a published ViTPose checkpoint "
                              "(mmpose .pth, transformers folder or .safetensors)", checkpoint)
    cfg = _config_of(ckpt, checkpoint)
    try:
        cfg.model.backbone.weights = ""  # the checkpoint holds the backbone already
        estimator = build_estimator(cfg, load_weights=False)
    except Exception as e:  # a config this version cannot build: name the checkpoint, not just the key
        text = str(e) if isinstance(e, DiffPoseError) else f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
        raise CheckpointError(f"its config cannot be used: {text}", checkpoint, "config") from None
    state = ckpt["ema"] if use_ema and isinstance(ckpt.get("ema"), dict) and ckpt["ema"] else \
        model_state(ckpt, checkpoint)
    net = estimator.net
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except Exception as e:  # shape mismatches (RuntimeError), entries that are not tensors
        shapes = [line.strip() for line in str(e).splitlines() if "size mismatch" in line]
        detail = shapes[0] if shapes else " ".join(str(e).split())[:160]
        what = f"{len(shapes)} shape mismatches, e.g. {detail}" if shapes else detail
        raise CheckpointError(f"weights do not fit the {cfg.model.kind} model of its own config ({what})",
                              checkpoint, "model") from None
    if missing or unexpected:
        raise CheckpointError(f"weights do not fit the {cfg.model.kind} model of its own config "
                              f"({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. "
                              f"{(missing or unexpected)[0]})", checkpoint)
    return estimator.to(device).eval()


def load_onnx_estimator(folder: str | Path, threads: int | None = None, providers: list[str] | None = None
                        ) -> PoseEstimator:
    """The estimator of an export folder (``diffpose export --onnx``), its network the exported graphs run by
    onnxruntime (:class:`~diffpose.models.onnx_network.OnnxNetwork`), described by the kind's own graphs."""
    _, cfg = read_manifest(folder)
    net = OnnxNetwork(folder, get_kind(cfg.model.kind).estimator.graphs(cfg), threads, providers)
    return build_estimator(net.cfg, net=net)


def meta_estimator(cfg: Config) -> PoseEstimator:
    """The estimator of ``cfg`` without its weights file; call it (and use it) under ``torch.device("meta")``
    so that nothing is allocated or computed."""
    cfg = replace(cfg, model=replace(cfg.model, backbone=replace(cfg.model.backbone, weights="", freeze=False)))
    return build_estimator(cfg, load_weights=False)


def model_complexity(cfg: Config) -> Complexity:
    """Parameter counts and GFLOPs of each part of ``cfg``'s model (:meth:`PoseEstimator.complexity`), built on
    the ``meta`` device: nothing is allocated or computed, so the ``paper`` model is measured in a second."""
    with torch.device("meta"):
        return meta_estimator(cfg).complexity()
