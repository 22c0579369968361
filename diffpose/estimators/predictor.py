"""The predictor: an estimator plus the pre- and post-processing around it, kept outside the ``nn.Module``.

:class:`Predictor` turns frames and person boxes into poses in image pixels. ``diffpose test`` and
``diffpose infer`` both predict through it, so the same boxes give the same keypoints in both:

1. :meth:`Predictor.crop` -- one affine per person box (the box enlarged to the crop aspect, then by
   ``cfg.data.box_enlarge``), applied to every frame of the clip window with
   :func:`~diffpose.data.crops.crop_image` and :func:`~diffpose.data.crops.normalise_crop`, the functions
   :class:`~diffpose.data.clip_dataset.ClipDataset` crops test clips with;
2. :meth:`Predictor.run_model` -- one call of :meth:`~diffpose.estimators.base.PoseEstimator.predict` for a
   batch of clips (a diffusion model samples with the predictor's :class:`~diffpose.config.SamplingConfig`);
3. :meth:`Predictor.to_image` -- crop pixels back to image pixels through the inverse affine; joint score =
   heatmap maximum x box score (DCPose); uncertainty (ensemble spread) scaled from crop to image pixels.

Feature reuse (:mod:`diffpose.inference.feature_cache`) splits step 2: :meth:`Predictor.backbone` runs on
single-frame crops (:meth:`Predictor.crop_frame`) and :meth:`Predictor.run_features` takes assembled clip
features ``(B, T, D, h, w)`` the rest of the way. All model calls run under ``torch.inference_mode``. The
network may also be exported graphs run by onnxruntime (:meth:`Predictor.from_onnx`).

A clip window holds the frames at ``predictor.offsets`` around the key frame (the estimator's offsets, e.g.
``(-2, -1, 0, 1, 2)``; ``(0,)`` for a single-frame model), clamped at the video's ends by the caller.

All noise comes from one ``torch.Generator`` seeded with ``seed``; :meth:`Predictor.reseed` restarts it,
so the same frames, boxes and batch size give identical results run after run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffpose.checkpoint import free_memory, resolve_device
from diffpose.config import SamplingConfig, with_sampling
from diffpose.data.crops import crop_image, normalise_crop
from diffpose.data.transforms import CropBox, crop_matrix, invert_affine
from diffpose.errors import DiffPoseError
from diffpose.estimators.base import PoseEstimator
from diffpose.estimators.kinds import load_estimator, load_onnx_estimator
from diffpose.keypoints import Layout, layout_named


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


def _numpy(*tensors: torch.Tensor) -> tuple[np.ndarray, ...]:
    return tuple(t.float().cpu().numpy().astype(np.float64) for t in tensors)


class Predictor:
    """Poses from frames and boxes with any estimator.

    Args:
        estimator: a loaded estimator (:func:`~diffpose.estimators.load_estimator`).
        device: where the network runs.
        steps, ensemble, combine, eta: sampling settings (DDIM steps ``S``, hypotheses ``K``, how hypotheses
            combine, DDIM noise); None takes the checkpoint config's ``sampling.*`` value. Models that do not
            sample ignore them.
        seed: seed of the sampling noise.
        batch_size: most person clips per model call.
    """

    def __init__(self, estimator: PoseEstimator, device: torch.device | str = "cpu", steps: int | None = None,
                 ensemble: int | None = None, combine: str | None = None, eta: float | None = None, seed: int = 0,
                 batch_size: int = 32):
        self.estimator = estimator.eval()
        self.cfg, self.device = estimator.cfg, torch.device(device)
        self.offsets = estimator.offsets  # e.g. (-2, -1, 0, 1, 2); (0,) for a single-frame model
        self.key = estimator.key
        self.codec = estimator.codec
        self.sampling = with_sampling(self.cfg, steps=steps, ensemble=ensemble, combine=combine, eta=eta)
        if batch_size < 1:
            raise DiffPoseError(f"batch size must be >= 1, got {batch_size}", field="--batch-size")
        self.batch_size = int(batch_size)
        self.batch_size = fit_batch_to_memory(estimator, self.sampling, self.batch_size, self.device)
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device)
        self.reseed()

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str = "auto", **kwargs: Any) -> Predictor:
        """Load ``checkpoint`` (``final.pt`` of ``diffpose train``) on ``device`` (auto, cpu, cuda, cuda:N)."""
        dev = resolve_device(device, field="--device")
        return cls(load_estimator(checkpoint, dev), dev, **kwargs)

    @classmethod
    def from_onnx(cls, folder: str | Path, threads: int | None = None, providers: list[str] | None = None,
                  **kwargs: Any) -> Predictor:
        """Run the graphs of ``diffpose export --onnx`` (``folder``) with onnxruntime instead of PyTorch (CPU)."""
        return cls(load_onnx_estimator(folder, threads, providers), "cpu", **kwargs)

    @property
    def layout(self) -> Layout:
        """The joint layout the model predicts (``model.layout``: PoseTrack18's, or COCO's for published ViTPose
        weights); :class:`PersonPose` keypoints are in its order."""
        return layout_named(self.cfg.model.layout)

    @property
    def samples(self) -> bool:
        """Whether the model samples (then :attr:`sampling` applies)."""
        return self.estimator.samples

    def sampling_summary(self) -> str:
        """How this predictor predicts, e.g. ``"steps=1, ensemble=4 (mean), eta=1"`` or ``"single pass"``."""
        return self.estimator.sampling_summary(self.sampling)

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
        return normalise_crop(crop_image(image, matrix, self.crop_size))  # (3, H_in, W_in)

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
            s = self.estimator.predict(clips.to(self.device), self.sampling, self.generator)
        return _numpy(s.keypoints, s.scores, s.uncertainty)  # (B, J, 2), (B, J), (B, J)

    def backbone(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Backbone features of single-frame crops ``(N, 3, H_in, W_in)`` -> ``(N, D, h, w)`` on the model's device,
        in chunks of ``batch_size`` crops."""
        crops = torch.as_tensor(crops)
        with torch.inference_mode():
            chunks = [self.estimator.backbone_features(crops[i: i + self.batch_size].to(self.device))
                      for i in range(0, len(crops), self.batch_size)]  # each (n, D, h, w)
        return torch.cat(chunks) if len(chunks) != 1 else chunks[0]  # (N, D, h, w)

    def run_features(self, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`run_model` from clip features ``(B, T, D, h, w)`` already computed (feature reuse)."""
        with torch.inference_mode():
            s = self.estimator.predict_features(features.to(self.device), self.sampling, self.generator)
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
        # No contiguous copy: ClipDataset + the default collate give this layout too, and convolutions differ in the
        # last float bits between layouts, which DARK decoding can amplify to ~1e-3 px.
        results = [self.run_model(torch.from_numpy(clips[chunk])) for chunk in self.chunks(len(clips))]
        return self.poses(results, matrices, boxes, box_scores, origins)

    def chunks(self, n: int) -> list[slice]:
        """``n`` person clips in model calls of at most ``batch_size``: ``[slice(0, 32), slice(32, 40)]``."""
        return [slice(start, min(start + self.batch_size, n)) for start in range(0, n, self.batch_size)]

    def poses(self, results: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], matrices: Sequence[np.ndarray],
              boxes: np.ndarray, box_scores: np.ndarray | None = None, origins: Sequence[str] | None = None
              ) -> list[PersonPose]:
        """Image-pixel poses of ``N`` person clips from the crop-pixel results of consecutive model calls
        (:meth:`run_model` or :meth:`run_features` outputs, e.g. one per :meth:`chunks` slice), their ``N``
        crop affines, boxes ``(N, 4)``, box scores ``(N,)`` (default 1) and origins."""
        if not results:
            return []
        kp, scores, unc = (np.concatenate(part) for part in zip(*results))  # (N, J, 2), (N, J), (N, J)
        box_scores = np.ones(len(kp)) if box_scores is None else np.asarray(box_scores, dtype=np.float64)
        return [self.to_image(kp[i], scores[i], unc[i], matrices[i], boxes[i], float(box_scores[i]),
                              origins[i] if origins is not None else "api") for i in range(len(kp))]

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


def fit_batch_to_memory(estimator: PoseEstimator, sampling: SamplingConfig, batch_size: int, device: torch.device
                        ) -> int:
    """The batch size whose clips fit in memory (:meth:`~PoseEstimator.memory_per_clip`): refuses (with the
    estimate) when one clip does not fit, lowers the batch size (with a note) when ``batch_size`` clips do not."""
    free = free_memory(device)
    if free is None:
        return batch_size
    budget = free // 2  # leave room for the backbone, the condition and everything else
    per_clip, what = estimator.memory_per_clip(sampling)
    if per_clip > budget:
        advice = ": lower --ensemble" if estimator.samples else ""
        raise DiffPoseError(f"{what} need about {per_clip / 2**30:.1f} GiB per clip; {free / 2**30:.1f} GiB of "
                            f"memory is available{advice}", field="--ensemble" if estimator.samples else None)
    fits = max(1, budget // per_clip)
    if fits < batch_size:
        print(f"diffpose: note: {batch_size} clips ({what}) need about {batch_size * per_clip / 2**30:.1f} GiB; "
              f"predicting {fits} clips per model call instead", file=sys.stderr)
        return int(fits)
    return batch_size
