"""Typed configuration: dataclasses with named presets, strict YAML and ``a.b=value`` overrides.

* Every field has a type; loading a value of another type, or a key that does not exist, is an error
  that names the key (no silently ignored config keys).
* Presets are plain functions in :data:`PRESETS`. ``load_config("tiny", "my.yaml", ["train.lr=1e-4"])``
  applies the preset, then the YAML file, then the command-line overrides, in that order; a ``preset`` key in
  the YAML file or an override (``preset=paper``) switches the preset they all apply to (the last one named).
* :func:`config_to_dict` / :func:`config_from_dict` round-trip exactly; the resolved dict is saved with
  every run and inside every checkpoint. YAML is parsed with a ``yaml.SafeLoader`` that also refuses a key
  given twice (:func:`read_yaml`): a config file is data, never code; a path that is not a regular file (a FIFO)
  is refused before it is opened.
* Keys that moved keep their old spelling as an alias for one release (:data:`MOVED_KEYS`): a YAML file,
  an override or an older checkpoint that uses one is read as the new key, with a ``DeprecationWarning``.
* :func:`clip_offsets` derives and validates the frame offsets of a model's clips from ``data.frame_offsets``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from diffpose.config_dicts import (
    config_to_dict,
    dataclass_from_dict,
    merge_dict,
    parse_override,
    read_yaml,
    upgrade_dict,
)
from diffpose.config_ranges import ConfigError, check_fields
from diffpose.config_ranges import ranged_field as _f
from diffpose.io_utils import atomic_write_text

# defined in config_ranges / config_dicts, part of this module's interface
__all__ = ["ConfigError", "config_to_dict", "merge_dict", "parse_override"]


# --------------------------------------------------------------------------------------------------
# The config tree
# --------------------------------------------------------------------------------------------------
@dataclass
class BackboneConfig:
    """Per-frame ViT, key-compatible with ViTPose (``backbone.*`` keys)."""

    image_size: tuple[int, int] = _f((256, 192), lo=1)  # input crop (H, W)
    # "patch" (ViTPose's patch convolution) or "conv" (a stride-8 convolutional stem)
    stem: str = _f("patch", choices=("patch", "conv"))
    stem_channels: tuple[int, int] = _f((32, 64), lo=1)  # conv stem widths at 1/2 and 1/4 resolution
    patch_size: int = _f(16, lo=1)
    patch_padding: int = _f(2, lo=0)  # ViTPose pads the patch conv by 2: 256x192 -> 16x12 tokens
    embed_dim: int = _f(768, lo=1)
    depth: int = _f(12, lo=0)
    num_heads: int = _f(12, lo=1)
    mlp_ratio: float = _f(4.0, lo=0, lo_open=True)
    qkv_bias: bool = True
    drop_path: float = _f(0.3, lo=0, hi=1, hi_open=True)
    weights: str = ""  # optional path to a ViTPose / diffpose checkpoint for the backbone
    freeze: bool = False  # keep backbone weights fixed during training
    neighbour_grad: bool = True  # False: only the key frame's backbone pass gets gradients (neighbours no_grad)
    layer_decay: float = _f(1.0, lo=0, hi=1, lo_open=True)  # layer-wise lr decay (1.0 = off); ViTPose uses 0.75


@dataclass
class STRLConfig:
    """SpatioTemporal Representation Learner (method §2.2)."""

    dim: int = _f(384, lo=1)  # token width D after the 1x1 patch embedding
    depth: int = _f(4, lo=1)  # L pre-LN transformer layers over all frames' tokens
    num_heads: int = _f(8, lo=1)
    mlp_ratio: float = _f(4.0, lo=0, lo_open=True)
    out_dim: int = _f(256, lo=1)  # condition channels C
    agg_hidden: int = _f(512, lo=1)  # hidden width of the aggregation MLP (T*D per location -> C)
    key_shortcut: bool = False  # add the key frame's backbone features to the condition (identity or 1x1)
    # "all": joint attention over all frames' tokens; "key": after layer 1 only the key frame's tokens are updated;
    # "cross": from layer 1 on only the key frame's tokens are updated (they attend to all frames' tokens)
    queries: str = _f("all", choices=("all", "key", "cross"))
    neighbour_pool: int = _f(1, lo=1)  # with "key"/"cross": neighbours' tokens average-pooled k x k as keys/values


@dataclass
class DecoderConfig:
    """Pose-Decoder with LMSFI (method §2.3)."""

    heatmap_dim: int = _f(64, lo=1)  # c: width of the embedded noisy heatmap
    widths: tuple[int, int, int] = _f((256, 128, 64), lo=1)  # condition width at 1x, 2x, 4x
    seref_depth: int = _f(2, lo=0)  # SeRef transformer on heatmap tokens (lowest scale)
    seref_dim: int = _f(128, lo=1)
    fuse_depth: int = _f(2, lo=0)  # Trans: transformer fusing masked + plain condition (lowest scale)
    num_heads: int = _f(8, lo=1)
    mlp_ratio: float = _f(4.0, lo=0, lo_open=True)  # MLP width of the SeRef / Trans transformer layers
    conv_depth: int = _f(2, lo=0)  # (3x3 conv, GroupNorm, ReLU) units per conv branch at the 2x and 4x scales
    time_dim: int = _f(128, lo=2)  # sinusoidal timestep embedding width
    # "signal": x0 in the diffused signal space; "heatmap": x0 as heatmaps in [0, 1]
    predicts: str = _f("signal", choices=("signal", "heatmap"))
    # "lmsfi": masks from x_t look up the condition; "concat": x_t features concatenated
    fusion: str = _f("lmsfi", choices=("lmsfi", "concat"))
    heat_path: bool = False  # also add the (refined) x_t features to each scale's fused output
    self_condition: bool = False  # the decoder also sees its previous x0 estimate (needs predicts="heatmap")
    # the decoder predicts a correction of its previous estimate: x0_hat = prev + head(...) (needs self_condition)
    residual: bool = False
    # a regression head on the condition (ViTPose's head): the prior heatmap sampling can start from
    # (diffusion.start="prior"), trained with the heatmap MSE beside the denoising loss
    prior_head: bool = False
    # "full": the paper's per-step layers; "light": 1x1 / separable per-step layers, scales merged top-down
    step: str = _f("full", choices=("full", "light"))


@dataclass
class ModelConfig:
    """The whole network: which model, joints, frames and heatmap geometry."""

    kind: str = "diffpose"  # a key of diffpose.estimators.KINDS (diffpose train --help lists them)
    num_joints: int = _f(17, lo=1)
    num_frames: int = _f(5, lo=1)  # clip length 2*delta+1, key frame in the middle
    heatmap_size: tuple[int, int] = _f((64, 48), lo=1)  # (H, W)
    sigma: float = _f(2.0, lo=0, lo_open=True)  # Gaussian heatmap std in heatmap pixels
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    strl: STRLConfig = field(default_factory=STRLConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    baseline_deconv_channels: int = _f(256, lo=1)  # ViTPose classic head: 2 deconvs of this width
    # ViTPose's heatmap head: "classic" (2 deconvolutions + 1x1 conv) or "simple" (ReLU, x4 bilinear, 3x3 conv)
    head: str = _f("classic", choices=("classic", "simple"))
    # the joint layout the network predicts (diffpose.keypoints): "posetrack18" (trained here) or "coco" (the
    # published ViTPose weights); outputs map it to each file's own layout
    layout: str = _f("posetrack18", choices=("posetrack18", "coco"))


@dataclass
class DiffusionConfig:
    """Heatmap diffusion process (method §3): the noise schedule and the training draws of ``t``.

    The network knows nothing of these numbers. How a trained model is *sampled* is :class:`SamplingConfig`.
    """

    timesteps: int = _f(1000, lo=1)
    cosine_s: float = _f(0.008, lo=0)
    scale: float = _f(2.0, lo=0, lo_open=True)  # signal scale s: heatmap h in [0, 1] -> (2h - 1) * s
    # fraction of training samples at the start step (T-1, or start_t with a prior start; 0 = uniform t, the paper's)
    train_pure_noise: float = _f(0.0, lo=0, hi=1)
    # where sampling starts: "noise" (pure noise at T-1, the paper's) or "prior" (the prior head's heatmap noised
    # to start_t; training then draws t in 0..start_t)
    start: str = _f("noise", choices=("noise", "prior"))
    start_t: int = _f(999, lo=0)  # with start="prior": the step the prior is noised to (abar ~ 0.5 at T/2)
    # with start="prior": fraction of training samples whose x_t is noised from the (detached) prior, not the GT
    train_from_prior: float = _f(0.0, lo=0, hi=1)


SEED_MAX = 2**32 - 1  # the largest seed: numpy's, and train.seed * 1_000_003 + step stays a torch seed

COMBINE_MODES = ("mean", "median", "medoid", "peak")  # how the K hypotheses of a person combine (sampling.combine)


@dataclass
class SamplingConfig:
    """How a diffusion model is sampled at test time (any values work with one trained model).

    A checkpoint carries the values it was trained with; every command uses them unless told otherwise.
    Models that do not sample (the single-frame baseline, regression heads) ignore this section.
    """

    steps: int = _f(1, lo=1)  # DDIM steps S
    eta: float = _f(1.0, lo=0)  # DDIM noise: 0 deterministic, 1 DDPM-like (DiffusionDet's default)
    ensemble: int = _f(1, lo=1)  # hypotheses K per person, combined into one pose
    # "mean" (heatmap mean, then its peak), "median" (keypoint median), "medoid" (per joint, the hypothesis
    # nearest to all others: a mode, never a point between two answers), "peak" (per joint, the most confident
    # hypothesis: the highest heatmap maximum)
    combine: str = _f("mean", choices=COMBINE_MODES)


@dataclass
class CalibrationConfig:
    """Per-joint score and uncertainty from what a diffusion model knows, fitted on training data only
    (``scripts/calibrate.py``; :mod:`diffpose.estimators.calibration` names the features). Empty (the default):
    the score is the heatmap maximum and the uncertainty the RMS spread of the hypotheses."""

    # (J,) logistic intercepts of P(joint within half a head size)
    score_bias: tuple[float, ...] = _f((), lo=-1e6, hi=1e6)
    score_weights: tuple[float, ...] = _f((), lo=-1e6, hi=1e6)  # (F,) logistic weights of the features
    # (J,) intercepts of log(1 + expected error in crop pixels)
    error_bias: tuple[float, ...] = _f((), lo=-1e6, hi=1e6)
    error_weights: tuple[float, ...] = _f((), lo=-1e6, hi=1e6)  # (F,)
    fitted_on: str = ""  # the data and sampling it was fitted with, for the record


@dataclass
class DataConfig:
    """Where the data is and how clips are cut."""

    root: str = ""  # dataset root holding images/ and annotations/ (PoseTrack layout)
    train_split: str = "train"
    val_split: str = "val"
    frame_offsets: tuple[int, ...] = (-2, -1, 0, 1, 2)
    box_enlarge: float = _f(1.25, lo=0, lo_open=True)
    workers: int = _f(0, lo=0)


@dataclass
class TrainConfig:
    """Optimisation."""

    seed: int = _f(0, lo=0, hi=SEED_MAX)  # every seed torch, numpy and the per-step seeds accept
    epochs: int = _f(30, lo=1)
    batch_size: int = _f(32, lo=1)
    lr: float = _f(5e-4, lo=0, lo_open=True)
    backbone_lr: float = _f(5e-5, lo=0)
    weight_decay: float = _f(1e-4, lo=0)
    warmup_steps: int = _f(500, lo=0)
    grad_clip: float = _f(1.0, lo=0)
    ema: float = _f(0.0, lo=0, hi=1, hi_open=True)  # EMA decay (0 = off)
    amp: bool = True  # mixed precision where the device supports it (CUDA)
    device: str = "auto"
    max_steps: int = _f(0, lo=0)  # stop after this many optimiser steps (0 = run all epochs)
    min_lr_ratio: float = _f(0.01, lo=0, hi=1)  # cosine decay ends at lr * min_lr_ratio
    checkpoint_every: int = _f(200, lo=1)  # steps between checkpoints (one is also written at every epoch end)
    log_every: int = _f(10, lo=1)  # steps between metric lines
    val_every: int = _f(0, lo=0)  # epochs between validation AP runs during training, logged as val_total (0 = none)


@dataclass
class Config:
    """Everything a run needs. Saved resolved with every run and inside every checkpoint."""

    preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------
def paper() -> Config:
    """The paper's scale: ViT-B/16 on 256x192 crops, 64x48 heatmaps, 5 frames, 17 joints."""
    return Config(preset="paper")


def tiny() -> Config:
    """The architecture scaled to train on a 2-core CPU (design and measurements in docs/model.md, "Presets").

    128x96 crops; a stride-8 convolutional stem gives the paper's 16x12 token grid and 64x48 heatmaps (the
    paper's ratios at half its crop size). A ViT of width 128 and depth 6 stays the largest per-frame cost
    under feature reuse. The decoder predicts heatmaps (output layer starting at the background), reads its
    previous estimate (self-conditioning) and adds the x_t features to each scale (heat path); the STRL adds
    the key frame's features to the condition (key shortcut), and only the key frame's tokens are queries,
    attending to the neighbours' tokens pooled 2x2 (``queries="cross"``: a fifth of the joint STRL's cost, as
    accurate at equal budget). Neighbour frames' backbone passes run without gradients in training (the key
    frame's pass trains the backbone), which halves the cost of a step. Sampling starts from a regression head's
    heatmap (the prior head) noised to t = 600, and every step predicts a correction of its previous estimate
    (residual), so that diffusion refines the temporal regressor's answer instead of regressing from pure noise.
    """
    return Config(
        preset="tiny",
        model=ModelConfig(
            heatmap_size=(64, 48),
            sigma=2.0,
            backbone=BackboneConfig(image_size=(128, 96), stem="conv", stem_channels=(32, 64), embed_dim=128,
                                    depth=6, num_heads=4, drop_path=0.0, neighbour_grad=False),
            strl=STRLConfig(dim=64, depth=2, num_heads=4, out_dim=128, agg_hidden=256, key_shortcut=True,
                            queries="cross", neighbour_pool=2),
            decoder=DecoderConfig(heatmap_dim=32, widths=(64, 32, 32), seref_depth=1, seref_dim=32, fuse_depth=1,
                                  num_heads=4, conv_depth=1, time_dim=64, predicts="heatmap", heat_path=True,
                                  self_condition=True, prior_head=True, residual=True),
            baseline_deconv_channels=64,
        ),
        # Sampling starts from the prior head's heatmap noised to t = 600; half of the training samples sit there,
        # and half of the x_t are noised from that prior rather than the ground truth (docs/model.md).
        diffusion=DiffusionConfig(train_pure_noise=0.5, start="prior", start_t=600, train_from_prior=0.5),
        train=TrainConfig(batch_size=32, lr=1e-3, backbone_lr=1e-3, warmup_steps=200),
    )  # fmt: skip


PRESETS = {"paper": paper, "tiny": tiny}


# --------------------------------------------------------------------------------------------------
# Keys that moved (old spelling -> new), accepted with a DeprecationWarning until the next release
# --------------------------------------------------------------------------------------------------
MOVED_KEYS = {
    "diffusion.steps": "sampling.steps",
    "diffusion.eta": "sampling.eta",
    "diffusion.ensemble": "sampling.ensemble",
    "diffusion.combine": "sampling.combine",
}


# --------------------------------------------------------------------------------------------------
# Validation: every field's declared range, then the rules that tie fields of this tree together
# --------------------------------------------------------------------------------------------------
def validate_config(cfg: Config) -> Config:
    """Check every field against its declared range (:func:`~diffpose.config_ranges.check_fields`), then the
    rules that tie fields together; raise one :class:`ConfigError` naming the key, the value and what was
    expected. Every config passes here: presets, YAML files, overrides, checkpoints and sampling settings given
    on the command line (:func:`with_sampling`). Returns ``cfg``."""
    check_fields(cfg)
    check_device_name(cfg.train.device)
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
    d, steps = cfg.diffusion, cfg.sampling.steps
    if steps > d.timesteps:
        raise ConfigError(f"config key sampling.steps: {steps} is more than diffusion.timesteps = {d.timesteps}")
    if d.start == "prior":
        if not m.decoder.prior_head:
            raise ConfigError("config key diffusion.start: 'prior' needs model.decoder.prior_head=true")
        if d.start_t >= d.timesteps:
            raise ConfigError(f"config key diffusion.start_t: {d.start_t} is not below diffusion.timesteps = "
                              f"{d.timesteps}")
        if steps > d.start_t + 1:
            raise ConfigError(f"config key sampling.steps: {steps} is more than the {d.start_t + 1} steps from "
                              f"diffusion.start_t = {d.start_t}")
    return cfg  # data.frame_offsets is checked when a model is built (clip_offsets): single-frame kinds ignore it


DEVICE_NAMES = "auto, cpu, cuda or cuda:N"  # the devices diffpose runs on (train.device, --device)


def check_device_name(name: Any, field: str = "train.device") -> str:
    """``name`` if it spells a device diffpose runs on (:data:`DEVICE_NAMES`), else a one-line
    :class:`ConfigError` naming ``field``; whether that device is present is checked when it is used
    (:func:`diffpose.checkpoint.resolve_device`)."""
    if isinstance(name, str) and re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", name):
        return name
    label = field if field.startswith("-") else f"config key {field}"
    raise ConfigError(f"{label}: {name!r} is not a supported device; use {DEVICE_NAMES}")


def with_sampling(cfg: Config, **given: Any) -> SamplingConfig:
    """``cfg.sampling`` with the ``given`` values (``steps``, ``ensemble``, ``combine``, ``eta``; None keeps the
    config's), checked like every config (:func:`validate_config`): the one place sampling settings are checked."""
    sampling = replace(cfg.sampling, **{k: v for k, v in given.items() if v is not None})
    return validate_config(replace(cfg, sampling=sampling)).sampling


# --------------------------------------------------------------------------------------------------
# Dicts and overrides (the strict conversion itself is diffpose.config_dicts)
# --------------------------------------------------------------------------------------------------
def config_from_dict(data: dict[str, Any], cls: type = Config) -> Any:
    """Build a config from a (possibly partial) dict; missing keys take the dataclass defaults.

    A whole-config dict written by an earlier version (e.g. inside an old checkpoint) is upgraded silently.
    """
    if cls is Config:
        data = upgrade_dict(data, MOVED_KEYS, warn=False)
        return validate_config(dataclass_from_dict(cls, data))
    return dataclass_from_dict(cls, data)


def load_config(preset: str = "paper", yaml_path: str | Path | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Preset, then YAML file, then ``a.b=value`` overrides. Unknown keys and wrong types are errors.

    ``preset`` in the YAML file or in an override (``preset=paper``) chooses the preset the others apply to, one
    rule for both: the last one named wins (argument, then YAML, then overrides), the config starts from it, and
    every other value of the YAML file and the overrides is applied on top, in order. A config never says one
    preset while holding another's model.
    """
    layers: list[tuple[Any, Path | None]] = []
    if yaml_path is not None:
        path = Path(yaml_path)
        data = read_yaml(path)
        if data is not None:
            layers.append((upgrade_dict(data, MOVED_KEYS), path))
    for text in overrides:
        layers.append((upgrade_dict(parse_override(text), MOVED_KEYS), None))
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    for data, path in layers:
        if isinstance(data, dict) and "preset" in data:
            preset = _check_preset(data["preset"], path)
    cfg = PRESETS[preset]()
    for data, path in layers:
        if isinstance(data, dict) and "preset" in data:
            data = {k: v for k, v in data.items() if k != "preset"}
        try:
            cfg = merge_dict(cfg, data)
        except ConfigError as e:
            if path is None:
                raise
            raise ConfigError(str(e), path) from None
    return validate_config(cfg)


def _check_preset(name: Any, path: Path | None = None) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"expected a preset name ({', '.join(PRESETS)}), got {name!r}", path, field="preset")
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}", path, field="preset")
    return name


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    return atomic_write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), path)


# --------------------------------------------------------------------------------------------------
# Derived values
# --------------------------------------------------------------------------------------------------
def clip_offsets(data: DataConfig, num_frames: int) -> tuple[int, ...]:
    """The frame offsets of a model that reads ``num_frames`` frames per clip (the key frame is offset 0).

    A single-frame model reads ``(0,)`` whatever ``data.frame_offsets`` says; a temporal model reads
    ``data.frame_offsets``, which must hold ``num_frames`` distinct offsets including 0.
    """
    if num_frames == 1:
        return (0,)
    offsets = tuple(int(o) for o in data.frame_offsets)
    if len(offsets) != num_frames or 0 not in offsets or len(set(offsets)) != len(offsets):
        raise ConfigError(f"data.frame_offsets {offsets} must hold model.num_frames={num_frames} distinct offsets "
                          "including 0", field="data.frame_offsets")
    return offsets
