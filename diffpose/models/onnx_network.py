"""An exported model as a network: the methods of :class:`~diffpose.models.ClipNetwork` run by onnxruntime.

``diffpose export --onnx DIR`` writes one ONNX graph per network method an estimator calls when it predicts
(its ``graph_methods``) and a manifest. :class:`OnnxNetwork` reads them back and offers those methods --
``backbone_features``, ``condition_from_features``, ``encode_condition`` and, depending on the model,
``prepare`` / ``denoise`` (a denoising head) or ``heatmaps`` (a regression head) -- so the estimator, the
DDIM loop, the ensemble, the codec and feature reuse are the very same Python code as with PyTorch::

    predictor = Predictor.from_onnx("exported/", ensemble=4)       # or: diffpose infer --onnx DIR

Tensors go in and come out as CPU ``torch.Tensor`` (zero-copy views of the arrays onnxruntime uses).
onnxruntime is an optional dependency (``pip install 'diffpose[onnx]'``), imported when a model is opened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffpose.config import Config, config_from_dict
from diffpose.errors import DiffPoseError
from diffpose.models.pose_decoder import PYRAMID_FIELDS, ConditionPyramid

MANIFEST = "diffpose_onnx.json"
FORMAT_VERSION = 2
# network method -> graph file
GRAPH_FILES = {
    "backbone_features": "backbone.onnx",
    "condition_from_features": "condition.onnx",
    "prepare": "decoder_prepare.onnx",
    "denoise": "decoder_step.onnx",
    "heatmaps": "head.onnx",
}
STEP_FIELDS = tuple(f for f in PYRAMID_FIELDS if f != "f1")  # the pyramid tensors a denoising step reads


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().contiguous().numpy()


def read_manifest(folder: str | Path) -> tuple[dict[str, Any], Config]:
    """The export manifest of ``folder`` and the checkpoint config it holds."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DiffPoseError(f"not an exported diffpose model (no {MANIFEST}); run diffpose export --onnx", folder)
    try:
        manifest = json.loads(path.read_text())
        version = manifest.get("version")
        if version != FORMAT_VERSION:
            raise DiffPoseError(f"export format version {version!r}, this diffpose reads {FORMAT_VERSION}: export "
                                "the checkpoint again with diffpose export --onnx", path)
        graphs, sizes = manifest["graphs"], manifest.get("bytes", {})
        for name in graphs.values():
            graph = Path(folder) / name
            if not graph.is_file():
                raise DiffPoseError(f"incomplete export: graph {name} is missing; export again with diffpose export "
                                    "--onnx", folder)
            if name in sizes and graph.stat().st_size != sizes[name]:
                raise DiffPoseError(f"not a valid ONNX graph: {graph.stat().st_size} bytes, the manifest says "
                                    f"{sizes[name]} (truncated?); export again with diffpose export --onnx", graph)
        return manifest, config_from_dict(manifest["config"])
    except RecursionError:
        raise DiffPoseError("unreadable export manifest: JSON nested too deeply", path) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DiffPoseError(f"unreadable export manifest: {e}", path) from None


def _sessions(folder: Path, files: dict[str, str], threads: int | None, providers: list[str] | None
              ) -> dict[str, Any]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise DiffPoseError("running ONNX graphs needs onnxruntime: pip install 'diffpose[onnx]'") from None
    options = ort.SessionOptions()
    # Threads that spin while waiting for work take the cores from the Python and PyTorch code between the
    # graph calls (cropping, DDIM arithmetic, decoding); docs/speed.md has the measurement.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    providers = providers or ["CPUExecutionProvider"]
    out = {}
    for method, name in files.items():
        path = folder / name
        if not path.is_file():
            raise DiffPoseError(f"missing graph {name}; export again with diffpose export --onnx", folder)
        try:
            out[method] = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for damaged files
            raise DiffPoseError(f"not a valid ONNX graph (truncated or damaged; export again): "
                                f"{' '.join(str(e).split())[:160]}", path) from None
    return out


class OnnxNetwork:
    """The exported graphs of ``folder`` as a network (see the module docstring).

    Args:
        folder: the export folder; threads: onnxruntime intra-op threads (None: its default);
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
    """

    def __init__(self, folder: str | Path, threads: int | None = None, providers: list[str] | None = None):
        self.folder = Path(folder)
        self.manifest, self.cfg = read_manifest(self.folder)
        self.sessions = _sessions(self.folder, dict(self.manifest["graphs"]), threads, providers)
        self.num_joints = int(self.cfg.model.num_joints)
        self.num_frames = int(self.manifest["num_frames"])
        self.heatmap_size = tuple(int(v) for v in self.cfg.model.heatmap_size)  # (H, W)
        self.predicts = self.cfg.model.decoder.predicts
        self.self_condition = self.cfg.model.decoder.self_condition

    def eval(self) -> OnnxNetwork:
        return self

    def _run(self, method: str, feeds: dict[str, torch.Tensor]) -> list[np.ndarray]:
        if method not in self.sessions:
            raise DiffPoseError(f"this export has no graph for {method}", self.folder)
        return self.sessions[method].run(None, {k: _np(v) for k, v in feeds.items()})

    def backbone_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (N, 3, H_in, W_in)`` -> ``(N, D, h, w)``."""
        return torch.from_numpy(self._run("backbone_features", {"frames": frames.float()})[0])

    def condition_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D, h, w)`` -> ``cond (B, C, h, w)``."""
        return torch.from_numpy(self._run("condition_from_features", {"features": feats.float()})[0])

    def encode_condition(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips (B, T, 3, H_in, W_in)`` -> ``cond (B, C, h, w)``."""
        b, t = clips.shape[:2]
        feats = self.backbone_features(clips.flatten(0, 1))  # (B*T, D, h, w)
        return self.condition_from_features(feats.reshape(b, t, *feats.shape[1:]))  # (B, C, h, w)

    def heatmaps(self, cond: torch.Tensor) -> torch.Tensor:
        """``cond (B, C, h, w)`` -> heatmaps ``(B, J, H, W)`` (regression head)."""
        return torch.from_numpy(self._run("heatmaps", {"cond": cond.float()})[0])

    def prepare(self, cond: torch.Tensor) -> ConditionPyramid:
        """``cond (B, C, h, w)`` -> :class:`ConditionPyramid` (denoising head)."""
        outs = self._run("prepare", {"cond": cond.float()})
        return ConditionPyramid.from_tensors([torch.from_numpy(o) for o in outs])

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: ConditionPyramid | torch.Tensor,
                prev: torch.Tensor | None = None) -> torch.Tensor:
        """``x_t (B*K, J, H, W)``, ``t (B*K,)``, a pyramid of ``B`` clips (and, self-conditioning, the previous
        estimate ``prev``, zeros when None) -> ``x0_hat (B*K, J, H, W)``."""
        pyramid = cond if isinstance(cond, ConditionPyramid) else self.prepare(cond)
        if x_t.shape[0] != pyramid.batch_size:
            raise DiffPoseError(f"x_t has {x_t.shape[0]} rows, the pyramid serves {pyramid.batch_size}", field="x_t")
        t = t.reshape(-1).expand(x_t.shape[0]) if t.numel() == 1 else t.reshape(-1)  # (B*K,)
        feeds = {"x_t": x_t.float(), "t": t.long(), **{f: getattr(pyramid, f) for f in STEP_FIELDS}}
        if self.self_condition:
            feeds["prev"] = torch.zeros_like(x_t) if prev is None else prev.float()
        return torch.from_numpy(self._run("denoise", feeds)[0])  # (B*K, J, H, W)
