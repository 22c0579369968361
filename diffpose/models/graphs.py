"""Network methods described as graphs: what ONNX export traces, what an exported model runs, what
``model-info`` counts.

A :class:`Graph` names one method of a network (``backbone_features``, ``condition_from_features``,
``heatmaps``, ``prepare``, ``denoise``, ...), its flat tensor inputs and outputs (the ONNX signature), which of
their axes are dynamic, how often prediction calls it (once per ``frame``, per ``clip`` or per denoising
``step`` of each hypothesis) and which submodule holds its parameters. An estimator lists the graphs its
prediction calls (:meth:`~diffpose.estimators.PoseEstimator.graphs`); export, the ONNX runtime wrapper
(:class:`~diffpose.models.onnx_network.OnnxNetwork`) and the complexity count read only these descriptions, so
none of them knows a model kind.

Most methods take and return plain tensors: the flat inputs are the method's arguments and the flat outputs
its result. A method with structured arguments (the decoder's condition pyramid) gives three functions:
``trace(net, *flat) -> flat outputs`` (what is traced), ``feed(*args) -> {input name: tensor}`` (its
arguments as the graph's inputs) and ``result(outputs) -> value`` (the graph's outputs as the method's
result).

================================  ==========================================================  ==========================
graph (file)                       inputs                                                      outputs
================================  ==========================================================  ==========================
``backbone_features``              ``frames (N, 3, H_in, W_in)``                               ``features (N, D, h, w)``
(``backbone.onnx``)
``condition_from_features``        ``features (B, T, D, h, w)``                                ``cond (B, C, h, w)``
(``condition.onnx``)
``heatmaps`` (``head.onnx``)       ``cond (B, C, h, w)``                                       ``heatmaps (B, J, H, W)``
``prepare``                        ``cond (B, C, h, w)``                                       the 7 pyramid tensors
(``decoder_prepare.onnx``)
``denoise``                        ``x_t (B*K, J, H, W)``, ``t (B*K,)`` int64, [``prev``],      ``x0 (B*K, J, H, W)``
(``decoder_step.onnx``)            6 pyramid tensors
================================  ==========================================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from diffpose.errors import DiffPoseError
from diffpose.models.pose_decoder import PYRAMID_FIELDS, ConditionPyramid

PER = ("frame", "clip", "step")  # how often prediction calls a graph: per frame, per clip, per step x hypothesis
STEP_FIELDS = tuple(f for f in PYRAMID_FIELDS if f != "f1")  # the pyramid tensors a denoising step reads


@dataclass(frozen=True)
class Graph:
    """One network method as a graph (see the module docstring).

    Attributes:
        method: the network method, e.g. ``"heatmaps"``.
        file: the ONNX file it is exported to.
        inputs, outputs: the flat tensor names, in order.
        dynamic: ``{tensor name: {axis: symbolic name}}`` of the dynamic (batch) axes.
        per: ``"frame"``, ``"clip"`` or ``"step"`` (once per denoising step of every hypothesis).
        part: the name ``model-info`` gives its cost, e.g. ``"prior_head"``.
        label: its row in the ``model-info`` table.
        module: the network attribute holding its parameters (None: parameters counted elsewhere).
        trace, feed, result: for structured arguments (see the module docstring); None for plain tensors.
    """

    method: str
    file: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: Mapping[str, Mapping[int, str]]
    per: str
    part: str
    label: str
    module: str | None = None
    trace: Callable[..., Any] | None = None
    feed: Callable[..., dict[str, torch.Tensor]] | None = None
    result: Callable[[list[torch.Tensor]], Any] | None = None

    def __post_init__(self) -> None:
        if self.per not in PER:
            raise ValueError(f"graph {self.method}: per must be one of {PER}, got {self.per!r}")

    def run(self, net: Any, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The flat outputs of the method on ``net`` for the flat inputs (what is traced and compared)."""
        out = self.trace(net, *flat) if self.trace is not None else getattr(net, self.method)(*flat)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    def feeds(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """The method's arguments as the graph's named inputs."""
        if self.feed is not None:
            return self.feed(*args, **kwargs)
        if kwargs or len(args) != len(self.inputs):
            raise DiffPoseError(f"{self.method} takes {len(self.inputs)} tensors ({', '.join(self.inputs)})",
                                field=self.method)
        return dict(zip(self.inputs, args))

    def unpack(self, outputs: list[torch.Tensor]) -> Any:
        """The graph's outputs as the method's result (one tensor, or a tuple)."""
        if self.result is not None:
            return self.result(outputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def params(self, net: nn.Module) -> int | None:
        """Parameters of its :attr:`module` in ``net`` (None when it names none)."""
        module = getattr(net, self.module, None) if self.module else None
        return sum(p.numel() for p in module.parameters()) if isinstance(module, nn.Module) else None


def _batch(*names: str, axis_name: str = "B") -> dict[str, dict[int, str]]:
    return {name: {0: axis_name} for name in names}


BACKBONE = Graph("backbone_features", "backbone.onnx", ("frames",), ("features",),
                 _batch("frames", "features", axis_name="N"), per="frame", part="backbone", label="backbone (ViT)",
                 module="backbone")
CONDITION = Graph("condition_from_features", "condition.onnx", ("features",), ("cond",), _batch("features", "cond"),
                  per="clip", part="strl", label="STRL", module="strl")


def heatmaps_graph(part: str, label: str, module: str) -> Graph:
    """``heatmaps(cond) -> (B, J, H, W)``, a regression head held by ``net.<module>``."""
    return Graph("heatmaps", "head.onnx", ("cond",), ("heatmaps",), _batch("cond", "heatmaps"), per="clip",
                 part=part, label=label, module=module)


# ------------------------------------------------------------------------------------------ denoising head
def _pyramid(tensors: dict[str, torch.Tensor], rows: int) -> ConditionPyramid:
    """The step's pyramid tensors (``STEP_FIELDS``) serving ``rows = B*K`` rows of ``x_t``."""
    k = rows // tensors["p1_masked"].shape[0]  # only read at trace time; the graph uses reshape(B, -1)
    return ConditionPyramid(f1=tensors["p1_masked"], hypotheses=int(k), **tensors)


def _trace_denoise(net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
    return net.denoise(x_t, t, _pyramid(dict(zip(STEP_FIELDS, tensors)), x_t.shape[0]))  # (B*K, J, H, W)


def _trace_denoise_prev(net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, prev: torch.Tensor,
                        *tensors: torch.Tensor) -> torch.Tensor:
    return net.denoise(x_t, t, _pyramid(dict(zip(STEP_FIELDS, tensors)), x_t.shape[0]), prev)  # (B*K, J, H, W)


def _step_feeds(self_condition: bool) -> Callable[..., dict[str, torch.Tensor]]:
    def feed(x_t: torch.Tensor, t: torch.Tensor, cond: ConditionPyramid, prev: torch.Tensor | None = None
             ) -> dict[str, torch.Tensor]:
        if not isinstance(cond, ConditionPyramid):
            raise DiffPoseError("an exported decoder step needs the pyramid of prepare(cond)", field="cond")
        if x_t.shape[0] != cond.batch_size:
            raise DiffPoseError(f"x_t has {x_t.shape[0]} rows, the pyramid serves {cond.batch_size}", field="x_t")
        t = t.reshape(-1).expand(x_t.shape[0]) if t.numel() == 1 else t.reshape(-1)  # (B*K,)
        feeds = {"x_t": x_t.float(), "t": t.long()}
        if self_condition:
            feeds["prev"] = torch.zeros_like(x_t) if prev is None else prev.float()
        return {**feeds, **{f: getattr(cond, f) for f in STEP_FIELDS}}
    return feed


PREPARE = Graph("prepare", "decoder_prepare.onnx", ("cond",), PYRAMID_FIELDS, _batch("cond", *PYRAMID_FIELDS),
                per="clip", part="decoder_prepare", label="Pose-Decoder: condition pyramid",
                trace=lambda net, cond: net.prepare(cond).tensors(),
                result=lambda outs: ConditionPyramid.from_tensors(list(outs)))


def denoise_graph(self_condition: bool) -> Graph:
    """One denoising step ``denoise(x_t, t, pyramid[, prev])``; the pyramid is broadcast over ``K = rows / B``."""
    prev = ("prev",) if self_condition else ()
    return Graph("denoise", "decoder_step.onnx", ("x_t", "t", *prev, *STEP_FIELDS), ("x0",),
                 {**_batch("x_t", "t", *prev, "x0", axis_name="BK"), **_batch(*STEP_FIELDS)}, per="step",
                 part="decoder", label="Pose-Decoder: denoising step", module="decoder",
                 trace=_trace_denoise_prev if self_condition else _trace_denoise, feed=_step_feeds(self_condition))
