"""Pose estimators: each model kind's training loss and prediction behind one interface, and the predictor.

* :class:`PoseEstimator` -- the interface (``training_noise``, ``loss``, ``predict``, ``predict_features``,
  ``backbone_features``; ``num_frames``, ``offsets``, ``samples``; ``graphs``, ``complexity``,
  ``memory_per_clip`` for export, ``model-info`` and the predictor)
* :class:`DiffusionEstimator` (DiffPose) and :class:`RegressionEstimator` (the single-frame baseline and the
  temporal regression)
* :data:`KINDS`, :func:`build_estimator`, :func:`load_estimator` -- the kinds, named in one place
* :class:`Predictor`, :class:`PersonPose` -- cropping and image pixels around an estimator: the one prediction
  path of ``diffpose test`` and ``diffpose infer``

Layering: above :mod:`diffpose.models`, :mod:`diffpose.diffusion` and :mod:`diffpose.data`; below the engine,
export and inference, which use only this interface.
"""

from diffpose.diffusion.ensemble import PoseSamples
from diffpose.estimators.base import Batch, PoseEstimator
from diffpose.estimators.diffusion import DiffusionEstimator
from diffpose.estimators.kinds import (
    KINDS,
    Kind,
    build_estimator,
    checkpoint_config,
    get_kind,
    load_estimator,
    load_onnx_estimator,
    load_published_estimator,
    meta_estimator,
    model_complexity,
)
from diffpose.estimators.predictor import PersonPose, Predictor
from diffpose.estimators.regression import RegressionEstimator

__all__ = [
    "KINDS", "Batch", "DiffusionEstimator", "Kind", "PersonPose", "PoseEstimator", "PoseSamples", "Predictor",
    "RegressionEstimator", "build_estimator", "checkpoint_config", "get_kind", "load_estimator",
    "load_onnx_estimator", "load_published_estimator", "meta_estimator", "model_complexity",
]  # fmt: skip
