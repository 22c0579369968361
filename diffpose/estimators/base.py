"""The one interface every model kind offers: its training loss and its prediction.

A :class:`PoseEstimator` is a network (:class:`~diffpose.models.ClipNetwork`) together with what turns it into
a pose estimator -- the heatmap codec and, for a diffusion model, the noise schedule and the sampler. The
trainer, the test runner, the predictor, export, ``model-info`` and the demo talk to this interface only;
none of them asks which kind of model it holds. A kind declares what it needs:

* ``num_frames`` / ``offsets`` -- how many frames a clip holds, and at which offsets from the key frame;
* ``samples`` -- whether its predictions are sampled (then :class:`~diffpose.config.SamplingConfig` applies);
* ``graph_methods`` -- the network methods an exported (ONNX) model must provide to run it.

Training (one global batch)::

    noise = estimator.training_noise(generator, global_batch)   # CPU tensors, sliced per process by the trainer
    losses = estimator.loss(batch, noise, forward=ddp_net)      # {"loss": scalar, ...}

Prediction (crop pixels; :class:`~diffpose.estimators.predictor.Predictor` adds cropping and image pixels)::

    samples = estimator.predict(clips, sampling, generator)     # PoseSamples, clips (B, T, 3, H_in, W_in)
    feats = estimator.backbone_features(crops)                  # (N, D, h, w), for feature reuse
    samples = estimator.predict_features(clip_feats, sampling, generator)  # clip_feats (B, T, D, h, w)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from diffpose.codec import HeatmapCodec
from diffpose.config import Config, SamplingConfig, clip_offsets
from diffpose.diffusion.ensemble import PoseSamples

Batch = dict[str, torch.Tensor]  # a collated ClipDataset batch: frames (B, T, 3, H, W), heatmaps, weights, ...


class PoseEstimator:
    """Base of the model kinds. Subclasses implement :meth:`loss`, :meth:`predict` and :meth:`predict_features`.

    Args:
        net: the network (a :class:`~diffpose.models.ClipNetwork`, or an exported stand-in with the methods of
            ``graph_methods``).
        cfg: the resolved config the network was built from.
    """

    samples: ClassVar[bool] = False  # predictions are sampled: steps, hypotheses, eta and combine apply
    graph_methods: ClassVar[tuple[str, ...]] = ()  # network methods prediction calls (what ONNX export writes)

    def __init__(self, net: Any, cfg: Config):
        self.net, self.cfg = net, cfg
        self.codec = HeatmapCodec.from_model_config(cfg.model)
        self.num_frames = int(net.num_frames)
        self.offsets = clip_offsets(cfg.data, self.num_frames)  # e.g. (-2, -1, 0, 1, 2); (0,) for one frame
        self.key = self.offsets.index(0)
        if isinstance(net, nn.Module) and hasattr(net, "key_index"):
            net.key_index = self.key  # the network's position of the key frame in a clip

    # ------------------------------------------------------------------------------------------ description
    @property
    def kind(self) -> str:
        """The config's ``model.kind``."""
        return self.cfg.model.kind

    def describe(self) -> str:
        """One line for tables and logs, e.g. ``"diffpose, 5 frames, sampled"``."""
        frames = "1 frame" if self.num_frames == 1 else f"{self.num_frames} frames"
        return f"{self.kind}, {frames}, {'sampled' if self.samples else 'single pass'}"

    def sampling_summary(self, sampling: SamplingConfig | None) -> str:
        """How predictions are made, e.g. ``"steps=4, ensemble=8 (mean), eta=1.0"`` or ``"single pass"``."""
        if not self.samples:
            return "single pass (no sampling)"
        s = sampling or self.cfg.sampling
        return f"steps={s.steps}, ensemble={s.ensemble} ({s.combine}), eta={s.eta:g}"

    def sampling_record(self, sampling: SamplingConfig | None) -> dict[str, Any] | None:
        """The sampling settings used, for ``ap.json`` and manifests (None when the model does not sample)."""
        if not self.samples:
            return None
        s = sampling or self.cfg.sampling
        return {"steps": s.steps, "ensemble": s.ensemble, "combine": s.combine, "eta": s.eta}

    # ------------------------------------------------------------------------------------------ training
    def training_noise(self, generator: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
        """The random draws of a global batch of ``batch`` samples (CPU tensors with a leading batch axis)."""
        return {}

    def loss(self, batch: Batch, noise: dict[str, torch.Tensor],
             forward: Callable[..., torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The training losses of ``batch`` (``{"loss": scalar}``, the value to minimise, plus any parts).

        Args:
            batch: ``frames (B, T, 3, H, W)``, ``heatmaps (B, J, H_hm, W_hm)``, ``weights (B, J)`` on the device.
            noise: this process's rows of :meth:`training_noise`, on the device.
            forward: the callable that runs the network's ``forward`` (the DDP wrapper in distributed
                training); default the network itself.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ prediction
    def backbone_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``(N, D, h, w)`` of crops ``(N, 3, H_in, W_in)``."""
        return self.net.backbone_features(frames)

    def predict(self, clips: torch.Tensor, sampling: SamplingConfig | None = None,
                generator: torch.Generator | None = None) -> PoseSamples:
        """Poses (crop pixels) of clips ``(B, T, 3, H_in, W_in)``."""
        return self.predict_condition(self.net.encode_condition(clips), sampling, generator)

    def predict_features(self, features: torch.Tensor, sampling: SamplingConfig | None = None,
                         generator: torch.Generator | None = None) -> PoseSamples:
        """Poses (crop pixels) from clip features ``(B, T, D, h, w)`` computed already (feature reuse)."""
        return self.predict_condition(self.net.condition_from_features(features), sampling, generator)

    def predict_condition(self, cond: torch.Tensor, sampling: SamplingConfig | None,
                          generator: torch.Generator | None) -> PoseSamples:
        """Poses from the clip condition ``(B, C, h, w)``."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ plumbing
    def to(self, device: torch.device | str) -> PoseEstimator:
        """Move the network (when it is a module) to ``device``; returns self."""
        if isinstance(self.net, nn.Module):
            self.net.to(device)
        return self

    def eval(self) -> PoseEstimator:
        """Put the network in eval mode; returns self."""
        self.net.eval()
        return self
