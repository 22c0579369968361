"""The one interface every model kind offers: its training loss and its prediction.

A :class:`PoseEstimator` is a network (:class:`~diffpose.models.ClipNetwork`) together with what turns it into
a pose estimator -- the heatmap codec and, for a diffusion model, the noise schedule and the sampler. The
trainer, the test runner, the predictor, export, ``model-info`` and the demo talk to this interface only;
none of them asks which kind of model it holds. A kind declares what it needs:

* ``num_frames`` / ``offsets`` -- how many frames a clip holds, and at which offsets from the key frame;
* ``samples`` -- whether its predictions are sampled (then :class:`~diffpose.config.SamplingConfig` applies);
* :meth:`~PoseEstimator.graphs` -- the network methods its prediction calls, each a
  :class:`~diffpose.models.graphs.Graph`: what ``diffpose export`` writes, what an exported model runs and what
  ``model-info`` counts (with :meth:`~PoseEstimator.example_inputs` and :meth:`~PoseEstimator.complexity`);
* :meth:`~PoseEstimator.memory_per_clip` -- the memory one clip's prediction needs, so the predictor can size
  its batches.

Export, ``model-info`` and the predictor read only these; a new kind with a new head declares its graphs here
and touches nothing else.

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
from diffpose.models.complexity import Complexity, Part, count_gflops, count_params
from diffpose.models.graphs import Graph

Batch = dict[str, torch.Tensor]  # a collated ClipDataset batch: frames (B, T, 3, H, W), heatmaps, weights, ...


class PoseEstimator:
    """Base of the model kinds. Subclasses implement :meth:`loss`, :meth:`predict` and :meth:`predict_features`.

    Args:
        net: the network (a :class:`~diffpose.models.ClipNetwork`, or an exported stand-in with the methods of
            ``graph_methods``).
        cfg: the resolved config the network was built from.
    """

    samples: ClassVar[bool] = False  # predictions are sampled: steps, hypotheses, eta and combine apply

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

    # ------------------------------------------------------------------------------------------ graphs and costs
    @classmethod
    def graphs(cls, cfg: Config) -> dict[str, Graph]:
        """The network methods prediction calls, as :class:`~diffpose.models.graphs.Graph` (in call order), for a
        network built from ``cfg``. A class method: an exported model needs them before an estimator exists."""
        raise NotImplementedError

    @property
    def graph_methods(self) -> tuple[str, ...]:
        """The names of :meth:`graphs`."""
        return tuple(self.graphs(self.cfg))

    def example_tensors(self, batch: int, hypotheses: int, generator: torch.Generator | None
                        ) -> dict[str, torch.Tensor]:
        """Named example tensors the graphs' inputs are taken from: random ``frames (B*T, 3, H_in, W_in)``, what
        the network makes of them (``features (B, T, D, h, w)``, slightly perturbed, and ``cond (B, C, h, w)``).
        A kind whose graphs read other inputs adds them here."""
        net, m = self.net, self.cfg.model
        h_in, w_in = m.backbone.image_size
        frames = torch.randn(batch * self.num_frames, 3, h_in, w_in, generator=generator)
        feats = net.backbone_features(frames)  # (B*T, D, h, w)
        feats = feats.reshape(batch, self.num_frames, *feats.shape[1:]) + 0.1 * torch.randn(
            batch, self.num_frames, *feats.shape[1:], generator=generator)  # (B, T, D, h, w)
        return {"frames": frames, "features": feats, "cond": net.condition_from_features(feats)}

    @torch.no_grad()
    def example_inputs(self, batch: int = 2, hypotheses: int = 3, seed: int | None = 0
                       ) -> dict[str, tuple[torch.Tensor, ...]]:
        """Inputs of every graph (``{method: flat input tensors}``) for ``batch`` clips and ``hypotheses`` per
        clip; ``seed`` None draws without a generator (on the meta device)."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        known = self.example_tensors(batch, hypotheses, g)
        out = {}
        for method, graph in self.graphs(self.cfg).items():
            missing = [name for name in graph.inputs if name not in known]
            if missing:
                raise NotImplementedError(f"{type(self).__name__}.example_tensors gives no {missing[0]!r} for the "
                                          f"{method} graph")
            out[method] = tuple(known[name] for name in graph.inputs)
        return out

    def complexity(self) -> Complexity:
        """Parameters and GFLOPs of each graph at batch 1 (build the estimator on the meta device, as
        :func:`~diffpose.estimators.model_complexity` does, and nothing is computed). A graph that holds no
        parameters of its own and costs nothing (a single-frame model's condition) is left out."""
        net = self.net.eval()
        examples = self.example_inputs(batch=1, hypotheses=1, seed=None)
        parts = []
        for method, graph in self.graphs(self.cfg).items():
            gflops = count_gflops(lambda *x, g=graph: g.run(net, *x), *examples[method])
            if graph.per == "frame":  # the example clip's T frames went through it
                gflops /= self.num_frames
            params = graph.params(net)
            if params is not None or gflops > 0:
                parts.append(Part(graph.part, graph.label, graph.per, params, gflops))
        return Complexity(parts, count_params(net))

    def memory_per_clip(self, sampling: SamplingConfig | None = None) -> tuple[int, str]:
        """A generous estimate of the bytes one clip's prediction holds beyond the weights and the backbone
        (its heatmaps and their temporaries, float32), and what it grows with (for messages)."""
        h, w = self.cfg.model.heatmap_size
        return 4 * h * w * 8 * self.cfg.model.num_joints, "a person clip"

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
