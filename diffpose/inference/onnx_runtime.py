"""Run exported ONNX graphs (``diffpose export --onnx DIR``) with onnxruntime, in place of the PyTorch model.

:class:`OnnxDiffPose` offers the methods the predictor and :func:`~diffpose.diffusion.sample_poses` call on
a ``DiffPoseNet`` -- ``backbone_features``, ``condition_from_features``, ``encode_condition``, ``prepare``,
``denoise``, ``num_joints``, ``heatmap_size`` -- backed by the four graphs, so the DDIM loop, the ensemble,
the codec and feature reuse are the very same Python code as with PyTorch. :class:`OnnxBaseline` does the
same for the single-frame baseline (``model(images) -> heatmaps``). Tensors go in and come out as CPU
``torch.Tensor`` (zero-copy views of the numpy arrays onnxruntime uses).

    predictor = Predictor.from_onnx("exported/", steps=1, ensemble=4)      # or: diffpose infer --onnx DIR

onnxruntime is an optional dependency (``pip install 'diffpose[onnx]'``).
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
STEP_FIELDS = tuple(f for f in PYRAMID_FIELDS if f != "f1")


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().contiguous().numpy()


def _sessions(folder: Path, names: list[str], threads: int | None, providers: list[str] | None) -> dict[str, Any]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise DiffPoseError("running ONNX graphs needs onnxruntime: pip install 'diffpose[onnx]'") from None
    options = ort.SessionOptions()
    # Threads that spin while waiting for work take the cores from the Python and PyTorch code between the
    # graph calls (cropping, DDIM arithmetic, decoding): with 2 threads on 2 cores spinning made `diffpose
    # infer --onnx` 1.6x slower.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    providers = providers or ["CPUExecutionProvider"]
    out = {}
    for name in names:
        path = folder / f"{name}.onnx"
        if not path.is_file():
            raise DiffPoseError(f"missing graph {path.name}; export again with diffpose export --onnx", folder)
        out[name] = ort.InferenceSession(str(path), options, providers=providers)
    return out


def read_manifest(folder: str | Path) -> tuple[dict[str, Any], Config]:
    """The export manifest of ``folder`` and the checkpoint config it holds."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DiffPoseError(f"not an exported diffpose model (no {MANIFEST}); run diffpose export --onnx", folder)
    try:
        manifest = json.loads(path.read_text())
        return manifest, config_from_dict(manifest["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise DiffPoseError(f"unreadable export manifest: {e}", path) from None


class OnnxDiffPose:
    """DiffPose through onnxruntime (the four graphs of :func:`~diffpose.export.export_onnx`).

    Args:
        folder: the export folder; threads: onnxruntime intra-op threads (None: its default);
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
    """

    def __init__(self, folder: str | Path, threads: int | None = None, providers: list[str] | None = None):
        self.folder = Path(folder)
        self.manifest, self.cfg = read_manifest(self.folder)
        if self.cfg.model.kind != "diffpose":
            raise DiffPoseError(f"this export holds a {self.cfg.model.kind} model, not DiffPose", self.folder)
        self.sessions = _sessions(self.folder, ["backbone", "strl", "decoder_prepare", "decoder_step"], threads,
                                  providers)
        self.num_joints = int(self.cfg.model.num_joints)
        self.num_frames = int(self.cfg.model.num_frames)
        self.heatmap_size = tuple(int(v) for v in self.cfg.model.heatmap_size)  # (H, W)

    def eval(self) -> OnnxDiffPose:
        return self

    def backbone_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (N, 3, H_in, W_in)`` -> ``(N, D, h, w)``."""
        return torch.from_numpy(self.sessions["backbone"].run(None, {"frames": _np(frames.float())})[0])

    def condition_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """``feats (B, T, D, h, w)`` -> ``cond (B, C, h, w)``."""
        return torch.from_numpy(self.sessions["strl"].run(None, {"features": _np(feats.float())})[0])

    def encode_condition(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames (B, T, 3, H_in, W_in)`` -> ``cond (B, C, h, w)``."""
        b, t = frames.shape[:2]
        feats = self.backbone_features(frames.flatten(0, 1))  # (B*T, D, h, w)
        return self.condition_from_features(feats.reshape(b, t, *feats.shape[1:]))  # (B, C, h, w)

    def prepare(self, cond: torch.Tensor) -> ConditionPyramid:
        """``cond (B, C, h, w)`` -> :class:`ConditionPyramid` (numpy-backed CPU tensors)."""
        outs = self.sessions["decoder_prepare"].run(None, {"cond": _np(cond.float())})
        return ConditionPyramid.from_tensors([torch.from_numpy(o) for o in outs])

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: ConditionPyramid | torch.Tensor) -> torch.Tensor:
        """``x_t (B*K, J, H, W)``, ``t (B*K,)``, a pyramid of ``B`` clips -> ``x0_hat (B*K, J, H, W)``."""
        pyramid = cond if isinstance(cond, ConditionPyramid) else self.prepare(cond)
        if x_t.shape[0] != pyramid.batch_size:
            raise DiffPoseError(f"x_t has {x_t.shape[0]} rows, the pyramid serves {pyramid.batch_size}", field="x_t")
        t = t.reshape(-1).expand(x_t.shape[0]) if t.numel() == 1 else t.reshape(-1)  # (B*K,)
        feeds = {"x_t": _np(x_t.float()), "t": _np(t.long()), **{f: _np(getattr(pyramid, f)) for f in STEP_FIELDS}}
        return torch.from_numpy(self.sessions["decoder_step"].run(None, feeds)[0])  # (B*K, J, H, W)


class OnnxBaseline:
    """The single-frame baseline through onnxruntime: ``model(images (N, 3, H, W)) -> heatmaps (N, J, H_hm, W_hm)``."""

    def __init__(self, folder: str | Path, threads: int | None = None, providers: list[str] | None = None):
        self.folder = Path(folder)
        self.manifest, self.cfg = read_manifest(self.folder)
        if self.cfg.model.kind != "baseline":
            raise DiffPoseError(f"this export holds a {self.cfg.model.kind} model, not the baseline", self.folder)
        self.sessions = _sessions(self.folder, ["baseline"], threads, providers)

    def eval(self) -> OnnxBaseline:
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim == 5:
            images = images[:, images.shape[1] // 2]  # (N, 3, H, W): the key frame, as BaselineNet does
        return torch.from_numpy(self.sessions["baseline"].run(None, {"images": _np(images.float())})[0])


def load_onnx_model(folder: str | Path, threads: int | None = None,
                    providers: list[str] | None = None) -> tuple[OnnxDiffPose | OnnxBaseline, Config]:
    """The runtime model of an export folder (DiffPose or baseline) and its config."""
    _, cfg = read_manifest(folder)
    model = OnnxBaseline(folder, threads, providers) if cfg.model.kind == "baseline" else OnnxDiffPose(
        folder, threads, providers)
    return model, cfg
