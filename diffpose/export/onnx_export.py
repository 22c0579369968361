"""Export an estimator's network as ONNX graphs, one per network method its prediction calls (``diffpose export``).

An estimator lists the network methods it calls when it predicts (:meth:`~diffpose.estimators.PoseEstimator.graphs`,
each a :class:`~diffpose.models.graphs.Graph` with its file, flat inputs and outputs and dynamic axes) and makes
example inputs for them (:meth:`~diffpose.estimators.PoseEstimator.example_inputs`); each method becomes one
graph, so an ONNX runtime can run the same Python prediction code with the graphs in place of the network
(:class:`~diffpose.models.onnx_network.OnnxNetwork`). The diffusion maths stays in Python. Nothing here knows
a model kind: the graphs of each kind are tabulated in :mod:`diffpose.models.graphs`.

Every batch axis is dynamic. ``diffpose_onnx.json`` holds the checkpoint's config, the clip length, the graph
files and the parity measured at export (largest absolute difference to PyTorch on random inputs, when
onnxruntime is installed). The graphs are traced with ``torch.onnx.export(..., dynamo=False)`` (the
TorchScript-based exporter: it needs only the ``onnx`` package), opset 17.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from diffpose.config import config_to_dict
from diffpose.errors import DiffPoseError
from diffpose.estimators import PoseEstimator
from diffpose.io_utils import atomic_write_bytes, atomic_write_json, ensure_dir
from diffpose.models.graphs import Graph
from diffpose.models.onnx_network import FORMAT_VERSION, MANIFEST

OPSET = 17


class _Traced(nn.Module):
    """One graph of the network as a traceable module: ``forward(*flat inputs) = graph.run(net, *flat inputs)``."""

    def __init__(self, net: nn.Module, graph: Graph):
        super().__init__()
        self.net, self.graph = net, graph

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.graph.run(self.net, *inputs)
        return out[0] if len(out) == 1 else out


def _trace(module: nn.Module, args: tuple[torch.Tensor, ...], graph: Graph) -> bytes:
    buffer = io.BytesIO()
    dynamic = {name: dict(axes) for name, axes in graph.dynamic.items()}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings on shape checks and the exporter's deprecation notice
        torch.onnx.export(module, args, buffer, dynamo=False, input_names=list(graph.inputs),
                          output_names=list(graph.outputs), dynamic_axes=dynamic, opset_version=OPSET,
                          do_constant_folding=True)
    return buffer.getvalue()


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
        graphs = estimator.graphs(estimator.cfg)
        examples = estimator.example_inputs()
        files = {}
        for method, graph in graphs.items():
            files[method] = graph.file
            data = _trace(_Traced(estimator.net, graph).eval(), examples[method], graph)
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
    graphs = estimator.graphs(estimator.cfg)
    files = files or {method: graph.file for method, graph in graphs.items()}
    examples = estimator.example_inputs(batch, hypotheses, seed=1)
    result: dict[str, float] = {}
    with torch.no_grad():
        for method, args in examples.items():
            session = ort.InferenceSession(str(Path(out_dir) / files[method]), providers=["CPUExecutionProvider"])
            got = session.run(None, {n: a.numpy() for n, a in zip(graphs[method].inputs, args)})
            want = graphs[method].run(estimator.net, *args)
            result[method] = float(max(np.abs(x - y.numpy()).max() for x, y in zip(got, want)))
    return result
