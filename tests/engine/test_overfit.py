"""Overfitting check: the tiny DiffPose memorises a handful of synthetic clips and DDIM finds the joints.

The clips are made here: a blocky textured background and one coloured Gaussian blob per joint (a distinct
hue each), every joint drifting at its own constant velocity across the 5 frames; the target is the key
(middle) frame. Training uses the DiffPose estimator's loss (random ``t`` per sample, as ``diffpose train``) with AdamW;
evaluation samples with DDIM from pure noise and decodes with the codec.

* ``test_tiny_overfits_four_clips`` (slow, ~2 min on 2 cores): the ``tiny`` preset as is, 17 joints,
  4 clips, 450 steps; loss falls > 10x and every decoded keypoint is within 2 crop pixels.
* ``test_tiny_overfits_two_clips_quickly`` (default suite, ~40 s): the same architecture with 4 joints,
  2 clips, 200 steps; loss falls > 10x, ends well below the all-background loss, keypoints within 3 px.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpose.codec import HeatmapCodec
from diffpose.config import SamplingConfig, load_config
from diffpose.estimators import build_estimator
from diffpose.models import param_groups

BLOB_SIGMA = 2.0  # crop pixels
MARGIN = 12  # keep joints this far from the crop border


def make_clips(num_clips: int, num_joints: int, num_frames: int, size_hw: tuple[int, int], seed: int):
    """Synthetic clips ``(N, T, 3, H, W)`` float32 and key-frame keypoints ``(N, J, 2)`` crop pixels."""
    rng = np.random.default_rng(seed)
    h, w = size_hw
    yy, xx = np.mgrid[0:h, 0:w]
    hue = 2 * np.pi * np.arange(num_joints) / num_joints
    colours = np.stack([np.cos(hue), np.cos(hue + 2.1), np.cos(hue + 4.2)], axis=1)  # (J, 3)
    clips, keys = [], []
    for _ in range(num_clips):
        base = rng.uniform([MARGIN, MARGIN], [w - MARGIN, h - MARGIN], size=(num_joints, 2))
        velocity = rng.uniform(-1.5, 1.5, size=(num_joints, 2))
        background = np.kron(rng.normal(0, 0.15, size=(3, h // 8, w // 8)), np.ones((1, 8, 8)))  # (3, H, W)
        frames = []
        for f in range(num_frames):
            kp = base + velocity * (f - num_frames // 2)
            blobs = np.exp(-((xx[None] - kp[:, 0, None, None]) ** 2 + (yy[None] - kp[:, 1, None, None]) ** 2)
                           / (2 * BLOB_SIGMA**2))  # (J, H, W)
            frames.append(background + np.einsum("jc,jhw->chw", colours, blobs))
        clips.append(np.stack(frames))
        keys.append(base)  # the key frame (offset 0)
    return torch.from_numpy(np.stack(clips).astype(np.float32)), torch.from_numpy(np.stack(keys).astype(np.float32))


def overfit(num_joints: int, num_clips: int, steps: int, lr: float = 1e-3, seed: int = 0):
    """Train a fresh tiny DiffPose on the clips; return (losses, trivial loss, sampled errors in crop pixels)."""
    torch.manual_seed(seed)
    cfg = load_config("tiny", overrides=[f"model.num_joints={num_joints}"])
    m = cfg.model
    clips, keypoints = make_clips(num_clips, num_joints, m.num_frames, m.backbone.image_size, seed)
    codec = HeatmapCodec.from_model_config(m)
    target, weights = codec.encode(keypoints, torch.ones(num_clips, num_joints))
    estimator = build_estimator(cfg)
    net = estimator.net.train()
    opt = torch.optim.AdamW(param_groups(net, lr=lr, weight_decay=1e-4))
    gen = torch.Generator().manual_seed(seed)
    batch = {"frames": clips, "heatmaps": target, "weights": weights}
    losses = []
    for _ in range(steps):
        loss = estimator.loss(batch, estimator.training_noise(gen, num_clips))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    trivial = target.pow(2).mean().item()  # the loss of predicting an empty heatmap everywhere
    net.eval()
    with torch.no_grad():
        out = estimator.predict(clips, SamplingConfig(steps=2, ensemble=4), torch.Generator().manual_seed(seed + 1))
    errors = (out.keypoints - keypoints).norm(dim=-1)  # (N, J)
    return np.array(losses), trivial, errors


def test_tiny_overfits_two_clips_quickly():
    losses, trivial, errors = overfit(num_joints=4, num_clips=2, steps=200)
    first, last = losses[:10].mean(), losses[-10:].mean()
    assert last < first / 10, (first, last)
    assert last < 0.3 * trivial, (last, trivial)  # it found the joints, not just the background
    assert errors.max().item() < 3.0, errors


@pytest.mark.slow
def test_tiny_overfits_four_clips():
    losses, trivial, errors = overfit(num_joints=17, num_clips=4, steps=450)
    first, last = losses[:10].mean(), losses[-10:].mean()
    assert last < first / 10, (first, last)
    assert last < 0.1 * trivial, (last, trivial)
    assert errors.max().item() < 2.0, errors
