"""Export an estimator's network as ONNX graphs, one per network method its prediction calls (``diffpose export``).

An estimator declares the network methods it calls when it predicts (``graph_methods``); each becomes one
graph, so an ONNX runtime can run the same Python prediction code with the graphs in place of the network
(:class:`~diffpose.models.onnx_network.OnnxNetwork`). The diffusion maths stays in Python.

==========================  ===========================================================  =========================
method (graph file)          inputs                                                       outputs
==========================  ===========================================================  =========================
``backbone_features``        ``frames (N, 3, H_in, W_in)``                                ``features (N, D, h, w)``
(``backbone.onnx``)
``condition_from_features``  ``features (B, T, D, h, w)``                                 ``cond (B, C, h, w)``
(``condition.onnx``)
``prepare``                  ``cond (B, C, h, w)``                                        the 7 pyramid tensors
(``decoder_prepare.onnx``)
``denoise``                  ``x_t (B*K, J, H, W)``, ``t (B*K,)`` int64, 6 pyramid tensors  ``x0 (B*K, J, H, W)``
(``decoder_step.onnx``)
``heatmaps`` (``head.onnx``)  ``cond (B, C, h, w)``                                        ``heatmaps (B, J, H, W)``
==========================  ===========================================================  =========================

The step graph broadcasts the pyramid over the ``K`` hypotheses itself (``K = rows of x_t / B``). Every batch
axis is dynamic. ``diffpose_onnx.json`` holds the checkpoint's config, the clip length, the graph files and
the parity measured at export (largest absolute difference to PyTorch on random inputs, when onnxruntime is
installed). The graphs are traced with ``torch.onnx.export(..., dynamo=False)`` (the TorchScript-based
exporter: it needs only the ``onnx`` package), opset 17.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from diffpose.config import config_to_dict
from diffpose.errors import DiffPoseError
from diffpose.estimators import PoseEstimator
from diffpose.io_utils import atomic_write_bytes, atomic_write_json, ensure_dir
from diffpose.models.onnx_network import FORMAT_VERSION, GRAPH_FILES, MANIFEST, STEP_FIELDS
from diffpose.models.pose_decoder import PYRAMID_FIELDS, ConditionPyramid

OPSET = 17


class _Method(nn.Module):
    """One method of the network as a traceable module: ``forward(*x) = fn(net, *x)``."""

    def __init__(self, net: nn.Module, fn: Callable[..., Any]):
        super().__init__()
        self.net, self.fn = net, fn

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.fn(self.net, *inputs)


def _denoise(net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
    named = dict(zip(STEP_FIELDS, tensors))
    k = x_t.shape[0] // named["p1_masked"].shape[0]  # only checked at trace time; the graph uses reshape(B, -1)
    pyramid = ConditionPyramid(f1=named["p1_masked"], hypotheses=int(k), **named)
    return net.denoise(x_t, t, pyramid)  # (B*K, J, H, W)


def _denoise_prev(net: nn.Module, x_t: torch.Tensor, t: torch.Tensor, prev: torch.Tensor,
                  *tensors: torch.Tensor) -> torch.Tensor:
    named = dict(zip(STEP_FIELDS, tensors))
    k = x_t.shape[0] // named["p1_masked"].shape[0]
    pyramid = ConditionPyramid(f1=named["p1_masked"], hypotheses=int(k), **named)
    return net.denoise(x_t, t, pyramid, prev)  # (B*K, J, H, W)


# method -> (traced function, input names, output names, dynamic axes)
_SIGNATURES: dict[str, tuple[Callable[..., Any], list[str], list[str], dict[str, dict[int, str]]]] = {
    "backbone_features": (lambda n, frames: n.backbone_features(frames), ["frames"], ["features"],
                          {"frames": {0: "N"}, "features": {0: "N"}}),
    "condition_from_features": (lambda n, feats: n.condition_from_features(feats), ["features"], ["cond"],
                                {"features": {0: "B"}, "cond": {0: "B"}}),
    "prepare": (lambda n, cond: n.prepare(cond).tensors(), ["cond"], list(PYRAMID_FIELDS),
                {name: {0: "B"} for name in ("cond", *PYRAMID_FIELDS)}),
    "denoise": (_denoise, ["x_t", "t", *STEP_FIELDS], ["x0"],
                {"x_t": {0: "BK"}, "t": {0: "BK"}, "x0": {0: "BK"}, **{name: {0: "B"} for name in STEP_FIELDS}}),
    "heatmaps": (lambda n, cond: n.heatmaps(cond), ["cond"], ["heatmaps"], {"cond": {0: "B"}, "heatmaps": {0: "B"}}),
}
# a self-conditioning decoder step also reads the previous estimate
_DENOISE_PREV = (_denoise_prev, ["x_t", "t", "prev", *STEP_FIELDS], ["x0"],
                 {"x_t": {0: "BK"}, "t": {0: "BK"}, "prev": {0: "BK"}, "x0": {0: "BK"},
                  **{name: {0: "B"} for name in STEP_FIELDS}})


def _signature(estimator: PoseEstimator, method: str) -> tuple[Callable[..., Any], list[str], list[str], dict]:
    if method == "denoise" and estimator.cfg.model.decoder.self_condition:
        return _DENOISE_PREV
    return _SIGNATURES[method]


def _trace(module: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
           dynamic: dict[str, dict[int, str]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings on shape checks and the exporter's deprecation notice
        torch.onnx.export(module, args, buffer, dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True)
    return buffer.getvalue()


@torch.no_grad()
def example_inputs(estimator: PoseEstimator, batch: int = 2, hypotheses: int = 3, seed: int = 0
                   ) -> dict[str, tuple[torch.Tensor, ...]]:
    """Random inputs of every graph method: each method's input is what the network makes of random frames."""
    g = torch.Generator().manual_seed(seed)
    net, m = estimator.net, estimator.cfg.model
    h_in, w_in = m.backbone.image_size
    frames = torch.randn(batch * estimator.num_frames, 3, h_in, w_in, generator=g)
    feats = net.backbone_features(frames)  # (B*T, D, h, w)
    feats = feats.reshape(batch, estimator.num_frames, *feats.shape[1:]) + 0.1 * torch.randn(
        batch, estimator.num_frames, *feats.shape[1:], generator=g)  # (B, T, D, h, w)
    cond = net.condition_from_features(feats)  # (B, C, h, w)
    out: dict[str, tuple[torch.Tensor, ...]] = {
        "backbone_features": (frames,), "condition_from_features": (feats,), "prepare": (cond,), "heatmaps": (cond,),
    }
    if "denoise" in estimator.graph_methods:
        pyramid = dict(zip(PYRAMID_FIELDS, net.prepare(cond).tensors()))
        x_t = torch.randn(batch * hypotheses, m.num_joints, *m.heatmap_size, generator=g)
        t = torch.randint(0, 1000, (batch * hypotheses,), generator=g)
        prev = (torch.rand(x_t.shape, generator=g),) if estimator.cfg.model.decoder.self_condition else ()
        out["denoise"] = (x_t, t, *prev, *(pyramid[f] for f in STEP_FIELDS))
    return {k: v for k, v in out.items() if k in estimator.graph_methods}


def _outputs(estimator: PoseEstimator, method: str, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    out = _signature(estimator, method)[0](estimator.net, *args)
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def export_onnx(estimator: PoseEstimator, out_dir: str | Path, check: bool = True,
                tolerance: float | None = None) -> dict[str, Any]:
    """Write the ONNX graphs of ``estimator`` (its network is moved to the CPU in eval mode) and the manifest.

    The graphs are written to a temporary folder inside ``out_dir`` and checked there; only when the parity
    check passes (largest difference <= ``tolerance``) are they moved in, and the manifest -- which lists each
    graph's size, so a truncated graph is recognised -- is written last. A failed export leaves no graph and
    no manifest of its own; an earlier export in ``out_dir`` loses its manifest only once the new graphs are
    about to replace its graphs.

    Args:
        estimator: a loaded estimator (:func:`~diffpose.estimators.load_estimator`).
        out_dir: the folder to write (created).
        check: compare every graph with PyTorch through onnxruntime (skipped when it is not installed).
        tolerance: the largest allowed difference (None: any).

    Returns:
        The manifest (also written to ``out_dir/diffpose_onnx.json``).
    """
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise DiffPoseError("exporting needs the onnx package: pip install 'diffpose[onnx]'") from None
    estimator.net.cpu().float().eval()
    out = ensure_dir(out_dir)
    try:
        stage = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    except OSError as e:
        raise DiffPoseError(f"cannot write here: {e.strerror or e}", out) from None
    try:
        examples = example_inputs(estimator)
        files = {}
        for method in estimator.graph_methods:
            fn, inputs, outputs, dynamic = _signature(estimator, method)
            files[method] = GRAPH_FILES[method]
            data = _trace(_Method(estimator.net, fn).eval(), examples[method], inputs, outputs, dynamic)
            atomic_write_bytes(data, stage / files[method])
        manifest: dict[str, Any] = {"format": "diffpose-onnx", "version": FORMAT_VERSION, "opset": OPSET,
                                    "torch": torch.__version__, "num_frames": estimator.num_frames, "graphs": files,
                                    "bytes": {name: (stage / name).stat().st_size for name in files.values()},
                                    "config": config_to_dict(estimator.cfg)}
        if check:
            parity = check_parity(estimator, stage, files)
            manifest["parity_max_abs"] = parity
            worst = max(parity.values()) if parity else 0.0
            if tolerance is not None and parity and not worst <= tolerance:
                raise DiffPoseError(f"ONNX graphs differ from PyTorch by {worst:.2e} > --tolerance {tolerance:g} "
                                    f"({', '.join(f'{k} {v:.2e}' for k, v in parity.items())}); nothing was written",
                                    out)
        (out / MANIFEST).unlink(missing_ok=True)  # from here until the new manifest, the folder is not an export
        for name in files.values():
            os.replace(stage / name, out / name)
        atomic_write_json(manifest, out / MANIFEST, indent=2)
        return manifest
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def check_parity(estimator: PoseEstimator, out_dir: str | Path, files: dict[str, str] | None = None,
                 batch: int = 3, hypotheses: int = 2) -> dict[str, float] | None:
    """Largest absolute difference between every graph (onnxruntime, CPU) and PyTorch on fresh random inputs
    (another batch size than the export's, so the dynamic axes are exercised); None without onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    files = files or {m: GRAPH_FILES[m] for m in estimator.graph_methods}
    examples = example_inputs(estimator, batch, hypotheses, seed=1)
    result: dict[str, float] = {}
    with torch.no_grad():
        for method, args in examples.items():
            session = ort.InferenceSession(str(Path(out_dir) / files[method]), providers=["CPUExecutionProvider"])
            names = _signature(estimator, method)[1]
            got = session.run(None, {n: a.numpy() for n, a in zip(names, args)})
            want = _outputs(estimator, method, args)
            result[method] = float(max(np.abs(x - y.numpy()).max() for x, y in zip(got, want)))
    return result
