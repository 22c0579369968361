"""The predictor: a checkpoint plus the pre- and post-processing around it, kept outside the ``nn.Module``.

:class:`Predictor` turns frames and person boxes into poses in image pixels:

1. :meth:`Predictor.crop` -- one affine per person box (the box enlarged to the crop aspect, then by
   ``cfg.data.box_enlarge``), applied to every frame of the clip window: exactly :class:`~diffpose.data.
   clip_dataset.ClipDataset`'s crop (same matrix, bilinear ``warpAffine``, zero border, ImageNet
   normalisation), so the same boxes give the same keypoints as ``diffpose test``;
2. :meth:`Predictor.run_model` -- one model call for a batch of clips: DiffPose samples ``K`` hypotheses
   with ``S`` DDIM steps (:func:`~diffpose.diffusion.sample_poses`), the baseline decodes its heatmaps;
3. :meth:`Predictor.to_image` -- crop pixels back to image pixels through the inverse affine; joint score =
   heatmap maximum x box score (DCPose); uncertainty (ensemble spread) scaled from crop to image pixels.

Feature reuse (:mod:`diffpose.inference.feature_cache`) splits step 2: :meth:`Predictor.backbone` runs on
single-frame crops (:meth:`Predictor.crop_frame`) and :meth:`Predictor.run_features` takes assembled clip
features ``(B, T, D, h, w)`` through the STRL and the sampler. All model calls run under
``torch.inference_mode``. The model may also be an :class:`~diffpose.inference.onnx_runtime.OnnxDiffPose`
(onnxruntime), which offers the same methods.

A clip window holds the frames at ``predictor.offsets`` around the key frame (``cfg.data.frame_offsets``,
e.g. ``(-2, -1, 0, 1, 2)``; the baseline uses ``(0,)``), clamped at the video's ends by the caller.

All noise comes from one ``torch.Generator`` seeded with ``seed``; :meth:`Predictor.reseed` restarts it,
so the same frames, boxes and batch size give identical results run after run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from diffpose.codec import HeatmapCodec
from diffpose.config import Config
from diffpose.data.clip_dataset import normalise
from diffpose.data.transforms import CropBox, crop_matrix, invert_affine
from diffpose.diffusion import HeatmapDiffusion, sample_poses
from diffpose.errors import DiffPoseError


@dataclass
class PersonPose:
    """One person in one frame, in image pixels.

    Attributes:
        keypoints: ``(J, 2)`` float64 ``(x, y)``.
        scores: ``(J,)`` float64 joint confidence = heatmap maximum x ``box_score``.
        uncertainty: ``(J,)`` float64 RMS distance (pixels) of the ensemble hypotheses to ``keypoints``;
            0 for one hypothesis and for the baseline.
        box: ``(4,)`` float64 ``(x, y, w, h)``, the box the crop was made from.
        box_score: confidence of that box.
        track_id: identity within the video (set by the tracker), or None.
        origin: where the box came from: ``"detections"``, ``"gt"``, ``"detector"``, ``"propagated"`` or ``"api"``.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    uncertainty: np.ndarray
    box: np.ndarray
    box_score: float = 1.0
    track_id: int | None = None
    origin: str = "api"
    extra: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _normalise_lut() -> np.ndarray:
    """``(1, 256, 3)`` float32: ``normalise(v / 255)`` of every byte value and channel, so that a table lookup
    (``cv2.LUT``, ~5x faster) gives bit for bit what :func:`~diffpose.data.clip_dataset.normalise` gives."""
    values = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)  # (256, 1, 3)
    table = normalise(values.astype(np.float32) / 255.0)  # (3, 256, 1)
    return np.ascontiguousarray(table[:, :, 0].T[None])  # (1, 256, 3)


def _numpy(*tensors: torch.Tensor) -> tuple[np.ndarray, ...]:
    return tuple(t.float().cpu().numpy().astype(np.float64) for t in tensors)


def _clip_offsets(cfg: Config) -> tuple[int, ...]:
    from diffpose.engine.trainer import clip_offsets

    return clip_offsets(cfg)


class Predictor:
    """Poses from frames and boxes with a DiffPose or baseline checkpoint.

    Args:
        model: a loaded model in eval mode (:func:`~diffpose.engine.tester.load_model`).
        cfg: its config.
        device: where the model runs.
        steps, ensemble, combine, eta: DDIM steps ``S``, hypotheses ``K``, how hypotheses combine and the
            DDIM noise; None takes the checkpoint config's ``diffusion.*`` value. The baseline ignores them.
        seed: seed of the diffusion noise.
        batch_size: most person clips per model call.
    """

    def __init__(self, model: torch.nn.Module, cfg: Config, device: torch.device | str = "cpu",
                 steps: int | None = None, ensemble: int | None = None, combine: str | None = None,
                 eta: float | None = None, seed: int = 0, batch_size: int = 32):
        self.model, self.cfg, self.device = model.eval(), cfg, torch.device(device)
        self.kind = cfg.model.kind
        self.offsets = _clip_offsets(cfg)  # e.g. (-2, -1, 0, 1, 2); (0,) for the baseline
        self.key = self.offsets.index(0)
        self.codec = HeatmapCodec.from_model_config(cfg.model)
        self.diffusion = HeatmapDiffusion.from_config(cfg.diffusion)
        self.steps = cfg.diffusion.steps if steps is None else int(steps)
        self.ensemble = cfg.diffusion.ensemble if ensemble is None else int(ensemble)
        self.combine = cfg.diffusion.combine if combine is None else combine
        self.eta = cfg.diffusion.eta if eta is None else float(eta)
        if self.steps < 1 or self.ensemble < 1:
            raise DiffPoseError(f"steps and ensemble must be >= 1, got {self.steps} and {self.ensemble}",
                                field="--steps/--ensemble")
        if batch_size < 1:
            raise DiffPoseError(f"batch size must be >= 1, got {batch_size}", field="--batch-size")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device)
        self.reseed()

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str = "auto", **kwargs: Any) -> Predictor:
        """Load ``checkpoint`` (``final.pt`` of ``diffpose train``) on ``device`` (auto, cpu, cuda, cuda:N)."""
        from diffpose.engine.distributed import resolve_device
        from diffpose.engine.tester import load_model

        dev = resolve_device(device)
        model, cfg = load_model(checkpoint, dev)
        return cls(model, cfg, dev, **kwargs)

    @classmethod
    def from_onnx(cls, folder: str | Path, threads: int | None = None, providers: list[str] | None = None,
                  **kwargs: Any) -> Predictor:
        """Run the graphs of ``diffpose export --onnx`` (``folder``) with onnxruntime instead of PyTorch (CPU)."""
        from diffpose.inference.onnx_runtime import load_onnx_model

        model, cfg = load_onnx_model(folder, threads, providers)
        return cls(model, cfg, "cpu", **kwargs)  # type: ignore[arg-type]

    def reseed(self, seed: int | None = None) -> None:
        """Restart the noise generator (at ``seed``, default the predictor's own)."""
        self.generator.manual_seed(self.seed if seed is None else int(seed))

    @property
    def crop_size(self) -> tuple[int, int]:
        """``(W, H)`` of the model's input crop."""
        return self.codec.input_size

    @property
    def num_joints(self) -> int:
        return int(self.cfg.model.num_joints)

    # ------------------------------------------------------------------------------------------
    # 1. Cropping
    # ------------------------------------------------------------------------------------------
    def crop_matrix(self, box: np.ndarray) -> np.ndarray:
        """The ``(2, 3)`` image -> crop affine of a box ``(x, y, w, h)`` (no augmentation)."""
        crop_w, crop_h = self.crop_size
        crop = CropBox.from_xywh(np.asarray(box, dtype=np.float64), crop_w / crop_h, self.cfg.data.box_enlarge)
        return crop_matrix(crop, (crop_w, crop_h))

    def crop_frame(self, image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """RGB uint8 image ``(H, W, 3)`` through a ``(2, 3)`` crop matrix -> ``(3, H_in, W_in)`` normalised float32."""
        crop_w, crop_h = self.crop_size
        patch = cv2.warpAffine(image, matrix, (crop_w, crop_h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))  # (H_in, W_in, 3)
        # A (3, H, W) view of the (H, W, 3) table lookup: the memory layout ClipDataset gives (see predict_clips).
        return cv2.LUT(patch, _normalise_lut()).transpose(2, 0, 1)  # (3, H_in, W_in)

    def crop(self, window: Sequence[np.ndarray], box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crop a clip window with one affine.

        Args:
            window: ``T = len(offsets)`` RGB uint8 images ``(H, W, 3)``, the frames at ``offsets``.
            box: ``(4,)`` ``(x, y, w, h)`` in the key frame.

        Returns:
            ``clip (T, 3, H_in, W_in)`` float32 normalised, and ``matrix (2, 3)`` image -> crop.
        """
        if len(window) != len(self.offsets):
            raise DiffPoseError(f"expected a window of {len(self.offsets)} frames (offsets {self.offsets}), "
                                f"got {len(window)}", field="window")
        mat = self.crop_matrix(box)
        return np.stack([self.crop_frame(image, mat) for image in window]), mat  # (T, 3, H_in, W_in), (2, 3)

    # ------------------------------------------------------------------------------------------
    # 2. The model call
    # ------------------------------------------------------------------------------------------
    def run_model(self, clips: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One model call on ``clips (B, T, 3, H_in, W_in)``.

        Returns:
            ``keypoints (B, J, 2)`` crop pixels, ``scores (B, J)`` heatmap maxima, ``uncertainty (B, J)`` crop
            pixels (float64 numpy).
        """
        with torch.inference_mode():
            clips = clips.to(self.device)
            if self.kind == "baseline":
                heatmaps = self.model(clips[:, self.key])  # (B, J, H, W)
                kp, scores = self.codec.decode(heatmaps.float())  # (B, J, 2), (B, J)
                return _numpy(kp, scores, torch.zeros_like(scores))
            return self._sample(clips=clips)

    def backbone(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Backbone features of single-frame crops ``(N, 3, H_in, W_in)`` -> ``(N, D, h, w)`` on the model's device,
        in chunks of ``batch_size`` crops."""
        crops = torch.as_tensor(crops)
        with torch.inference_mode():
            chunks = [self.model.backbone_features(crops[i: i + self.batch_size].to(self.device))
                      for i in range(0, len(crops), self.batch_size)]  # each (n, D, h, w)
        return torch.cat(chunks) if len(chunks) != 1 else chunks[0]  # (N, D, h, w)

    def run_features(self, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`run_model` for DiffPose from clip features ``(B, T, D, h, w)`` already computed (feature reuse)."""
        with torch.inference_mode():
            cond = self.model.condition_from_features(features.to(self.device))  # (B, C, h, w)
            return self._sample(cond=cond)

    def _sample(self, clips: torch.Tensor | None = None, cond: torch.Tensor | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = sample_poses(self.model, self.diffusion, self.codec, clips=clips, cond=cond, steps=self.steps,
                         eta=self.eta, hypotheses=self.ensemble, combine=self.combine, generator=self.generator)
        return _numpy(s.keypoints, s.scores, s.uncertainty)  # (B, J, 2), (B, J), (B, J)

    # ------------------------------------------------------------------------------------------
    # 3. Back to the image
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def to_image(keypoints: np.ndarray, scores: np.ndarray, uncertainty: np.ndarray, matrix: np.ndarray,
                 box: np.ndarray, box_score: float = 1.0, origin: str = "api") -> PersonPose:
        """One person's crop-pixel outputs (``(J, 2)``, ``(J,)``, ``(J,)``) in image pixels."""
        inv = invert_affine(matrix)  # (2, 3) crop -> image
        image_kp = keypoints @ inv[:, :2].T + inv[:, 2]  # (J, 2)
        px_per_crop_px = float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
        return PersonPose(keypoints=image_kp, scores=scores * box_score, uncertainty=uncertainty * px_per_crop_px,
                          box=np.asarray(box, dtype=np.float64), box_score=float(box_score), origin=origin)

    def predict_clips(self, clips: np.ndarray, matrices: Sequence[np.ndarray], boxes: np.ndarray,
                      box_scores: np.ndarray | None = None, origins: Sequence[str] | None = None) -> list[PersonPose]:
        """Poses for already cropped clips ``(N, T, 3, H_in, W_in)``, in chunks of ``batch_size``.

        ``matrices`` are the ``N`` crop affines, ``boxes (N, 4)`` and ``box_scores (N,)`` (default 1).
        """
        # Keep the memory layout ClipDataset + the default collate give (no contiguous copy): the
        # convolutions differ in the last float bits between layouts, which DARK decoding can amplify
        # to ~1e-3 px, and `diffpose test` parity is checked to 1e-4 px.
        return self.predict_chunks(len(clips), lambda a, b: self.run_model(torch.from_numpy(clips[a:b])),
                                   matrices, boxes, box_scores, origins)

    def predict_chunks(self, n: int, run: Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]],
                       matrices: Sequence[np.ndarray], boxes: np.ndarray, box_scores: np.ndarray | None = None,
                       origins: Sequence[str] | None = None) -> list[PersonPose]:
        """Poses of ``n`` person clips: ``run(start, stop)`` gives the crop-pixel results of clips ``start:stop``
        (:meth:`run_model` or :meth:`run_features` outputs), called in chunks of ``batch_size``."""
        box_scores = np.ones(n) if box_scores is None else np.asarray(box_scores, dtype=np.float64)
        out: list[PersonPose] = []
        for start in range(0, n, self.batch_size):
            kp, scores, unc = run(start, min(start + self.batch_size, n))
            for i in range(kp.shape[0]):
                j = start + i
                out.append(self.to_image(kp[i], scores[i], unc[i], matrices[j], boxes[j], float(box_scores[j]),
                                         origins[j] if origins is not None else "api"))
        return out

    def predict(self, window: Sequence[np.ndarray], boxes: np.ndarray,
                box_scores: np.ndarray | None = None) -> list[PersonPose]:
        """Poses of the people in one key frame.

        Args:
            window: the frames at ``self.offsets`` around the key frame, RGB uint8 ``(H, W, 3)`` each (for the
                baseline just ``[key_frame]``).
            boxes: ``(N, 4)`` person boxes ``(x, y, w, h)`` in the key frame; each needs ``w, h > 0``.
            box_scores: ``(N,)`` box confidences (default 1).

        Returns:
            ``N`` :class:`PersonPose` (``track_id`` None: tracking is :mod:`diffpose.inference.tracking`'s job).
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not np.isfinite(boxes).all() or (boxes[:, 2:] <= 0).any():
            raise DiffPoseError("boxes must be finite with width and height > 0", field="boxes")
        if len(boxes) == 0:
            return []
        crops = [self.crop(window, box) for box in boxes]
        clips = np.stack([c for c, _ in crops])  # (N, T, 3, H_in, W_in)
        return self.predict_clips(clips, [m for _, m in crops], boxes, box_scores)
