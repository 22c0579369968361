"""Export a checkpoint as ONNX graphs: backbone, STRL, decoder pyramid and one decoder step (``diffpose export``).

DiffPose becomes four graphs, so that an ONNX runtime can run the same loop as PyTorch
(:mod:`diffpose.inference.onnx_runtime`), with the diffusion maths staying in Python:

==========================  ========================================================  =============================
graph                        inputs                                                   outputs
==========================  ========================================================  =============================
``backbone.onnx``            ``frames (N, 3, H_in, W_in)``                              ``features (N, D, h, w)``
``strl.onnx``                ``features (B, T, D, h, w)``                               ``cond (B, C, h, w)``
``decoder_prepare.onnx``     ``cond (B, C, h, w)``                                      the 7 pyramid tensors (batch B)
``decoder_step.onnx``        ``x_t (B*K, J, H, W)``, ``t (B*K,)`` int64, 6 pyramid tensors  ``x0 (B*K, J, H, W)``
==========================  ========================================================  =============================

The step graph broadcasts the pyramid over the ``K`` hypotheses itself (``K = rows of x_t / B``). A
baseline checkpoint becomes one graph, ``baseline.onnx``: ``images (N, 3, H_in, W_in) -> heatmaps``.
Every batch axis is dynamic. ``diffpose_onnx.json`` holds the checkpoint's config, the graph names and the
parity measured at export (largest absolute difference to PyTorch on random inputs, when onnxruntime is
installed).

The graphs are traced with ``torch.onnx.export(..., dynamo=False)`` (the TorchScript-based exporter: it
needs only the ``onnx`` package), opset 17.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from diffpose.config import Config, config_to_dict
from diffpose.errors import DiffPoseError
from diffpose.io_utils import atomic_write_bytes, atomic_write_json
from diffpose.models.pose_decoder import PYRAMID_FIELDS, ConditionPyramid

OPSET = 17
MANIFEST = "diffpose_onnx.json"
STEP_FIELDS = tuple(f for f in PYRAMID_FIELDS if f != "f1")  # the pyramid tensors a denoising step reads


class _Method(nn.Module):
    """One method of the model as a traceable module: ``forward(*x) = fn(net, *x)``."""

    def __init__(self, net: nn.Module, fn: Callable[..., Any]):
        super().__init__()
        self.net, self.fn = net, fn

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.fn(self.net, *inputs)


class _Step(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        named = dict(zip(STEP_FIELDS, tensors))
        k = x_t.shape[0] // named["p1_masked"].shape[0]  # only checked at trace time; the graph uses reshape(B, -1)
        pyramid = ConditionPyramid(f1=named["p1_masked"], hypotheses=int(k), **named)
        return self.net.denoise(x_t, t, pyramid)  # (B*K, J, H, W)


def _trace(module: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
           dynamic: dict[str, dict[int, str]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings on shape checks and the exporter's deprecation notice
        torch.onnx.export(module, args, buffer, dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True)
    return buffer.getvalue()


def example_inputs(cfg: Config, batch: int = 2, hypotheses: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random graph inputs of the checkpoint's geometry: frames, clip features, cond, x_t and t."""
    from diffpose.models.vit import token_grid

    g = torch.Generator().manual_seed(seed)
    m = cfg.model
    h_in, w_in = m.backbone.image_size
    grid = token_grid((h_in, w_in), m.backbone.patch_size, m.backbone.patch_padding)
    return {
        "frames": torch.randn(batch, 3, h_in, w_in, generator=g),
        "features": torch.randn(batch, m.num_frames, m.backbone.embed_dim, *grid, generator=g),
        "cond": torch.randn(batch, m.strl.out_dim, *grid, generator=g),
        "x_t": torch.randn(batch * hypotheses, m.num_joints, *m.heatmap_size, generator=g),
        "t": torch.randint(0, 1000, (batch * hypotheses,), generator=g),
    }


def export_onnx(model: nn.Module, cfg: Config, out_dir: str | Path, check: bool = True) -> dict[str, Any]:
    """Write the ONNX graphs of ``model`` (DiffPose or baseline, eval mode, on the CPU) and the manifest.

    Args:
        model: the loaded network; cfg: its config; out_dir: the folder to write (created).
        check: compare every graph with PyTorch through onnxruntime (skipped when it is not installed).

    Returns:
        The manifest (also written to ``out_dir/diffpose_onnx.json``).
    """
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise DiffPoseError("exporting needs the onnx package: pip install 'diffpose[onnx]'") from None
    model = model.cpu().float().eval()
    out = Path(out_dir)
    ex = example_inputs(cfg)
    graphs: dict[str, tuple[nn.Module, tuple[torch.Tensor, ...], list[str], list[str], dict]] = {}
    if cfg.model.kind == "baseline":
        graphs["baseline"] = (model, (ex["frames"],), ["images"], ["heatmaps"],
                              {"images": {0: "N"}, "heatmaps": {0: "N"}})
    else:
        with torch.no_grad():
            pyramid = model.prepare(ex["cond"]).tensors()
        step_in = tuple(dict(zip(PYRAMID_FIELDS, pyramid))[f] for f in STEP_FIELDS)
        backbone = _Method(model, lambda n, frames: n.backbone_features(frames))  # (N, D, h, w)
        strl = _Method(model, lambda n, feats: n.condition_from_features(feats))  # (B, C, h, w)
        prepare = _Method(model, lambda n, cond: n.prepare(cond).tensors())  # 7 x (B, ...)
        graphs["backbone"] = (backbone, (ex["frames"],), ["frames"], ["features"],
                              {"frames": {0: "N"}, "features": {0: "N"}})
        graphs["strl"] = (strl, (ex["features"],), ["features"], ["cond"],
                          {"features": {0: "B"}, "cond": {0: "B"}})
        graphs["decoder_prepare"] = (prepare, (ex["cond"],), ["cond"], list(PYRAMID_FIELDS),
                                     {name: {0: "B"} for name in ("cond", *PYRAMID_FIELDS)})
        graphs["decoder_step"] = (_Step(model), (ex["x_t"], ex["t"], *step_in), ["x_t", "t", *STEP_FIELDS], ["x0"],
                                  {"x_t": {0: "BK"}, "t": {0: "BK"}, "x0": {0: "BK"},
                                   **{name: {0: "B"} for name in STEP_FIELDS}})
    files = {}
    for name, (module, args, inputs, outputs, dynamic) in graphs.items():
        files[name] = f"{name}.onnx"
        atomic_write_bytes(_trace(module, args, inputs, outputs, dynamic), out / files[name])
    manifest: dict[str, Any] = {"format": "diffpose-onnx", "version": 1, "kind": cfg.model.kind, "opset": OPSET,
                                "torch": torch.__version__, "graphs": files, "config": config_to_dict(cfg)}
    if check:
        manifest["parity_max_abs"] = check_parity(model, cfg, out, files)
    atomic_write_json(manifest, out / MANIFEST, indent=2)
    return manifest


def check_parity(model: nn.Module, cfg: Config, out_dir: str | Path, files: dict[str, str] | None = None,
                 batch: int = 3, hypotheses: int = 2) -> dict[str, float] | None:
    """Largest absolute difference between every graph (onnxruntime, CPU) and PyTorch on fresh random inputs
    (another batch size than the export's, so the dynamic axes are exercised); None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    files = files or {name: f"{name}.onnx" for name in ("backbone", "strl", "decoder_prepare", "decoder_step")}
    ex = example_inputs(cfg, batch, hypotheses, seed=1)

    def run(name: str, feeds: dict[str, torch.Tensor]) -> list[np.ndarray]:
        session = ort.InferenceSession(str(Path(out_dir) / files[name]), providers=["CPUExecutionProvider"])
        return session.run(None, {k: v.numpy() for k, v in feeds.items()})

    def diff(a: list[np.ndarray], b: tuple[torch.Tensor, ...]) -> float:
        return float(max(np.abs(x - y.numpy()).max() for x, y in zip(a, b)))

    result: dict[str, float] = {}
    with torch.no_grad():
        if cfg.model.kind == "baseline":
            result["baseline"] = diff(run("baseline", {"images": ex["frames"]}), (model(ex["frames"]),))
            return result
        result["backbone"] = diff(run("backbone", {"frames": ex["frames"]}), (model.backbone_features(ex["frames"]),))
        cond = model.condition_from_features(ex["features"])
        result["strl"] = diff(run("strl", {"features": ex["features"]}), (cond,))
        pyramid = model.prepare(ex["cond"])
        result["decoder_prepare"] = diff(run("decoder_prepare", {"cond": ex["cond"]}), pyramid.tensors())
        feeds = {"x_t": ex["x_t"], "t": ex["t"], **{f: getattr(pyramid, f) for f in STEP_FIELDS}}
        result["decoder_step"] = diff(run("decoder_step", feeds),
                                      (model.denoise(ex["x_t"], ex["t"], pyramid.expand(hypotheses)),))
    return result
