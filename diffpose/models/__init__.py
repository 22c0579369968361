"""The networks: ViT backbone, STRL, Pose-Decoder with LMSFI, DiffPose wiring and the single-frame baseline.

Nothing here imports :mod:`diffpose.diffusion`, the estimators or the data layer: the networks take tensors
and a step number, and know nothing of noise schedules, codecs or losses (the estimators drive them).

* :class:`ClipNetwork` -- what every network offers (per-frame features, one condition per clip)
* :class:`DiffPoseNet` (denoising head), :class:`BaselineNet` and :class:`TemporalRegressionNet` (regression
  heads, one frame or a clip), each with ``from_config``
* :func:`load_vitpose` / :class:`LoadReport` -- original ViTPose checkpoints, strict shape check
* :func:`read_published_vitpose` / :func:`config_overrides` -- published ViTPose weights (mmpose, transformers)
  as a single-frame network: architecture read from the weights, state in our key names
* :func:`param_groups` / :func:`freeze_backbone` -- optimiser groups with layer-wise lr decay
* :class:`Graph` -- a network method as a graph (export, exported models, complexity); :class:`Complexity` --
  parameter counts and GFLOPs (MACs) per part
"""

from diffpose.models.baseline import BaselineNet
from diffpose.models.build import build_backbone, build_decoder, build_head, build_strl, check_geometry
from diffpose.models.complexity import Complexity, Part, count_gflops, count_params
from diffpose.models.diffpose import DiffPoseNet
from diffpose.models.graphs import Graph
from diffpose.models.heads import ViTPoseHead, ViTPoseSimpleHead
from diffpose.models.network import ClipNetwork
from diffpose.models.optim import freeze_backbone, param_groups
from diffpose.models.pose_decoder import ConditionPyramid, PoseDecoder
from diffpose.models.strl import STRL
from diffpose.models.temporal_regression import TemporalRegressionNet
from diffpose.models.vit import ViT
from diffpose.models.vitpose_formats import (
    PublishedViTPose,
    config_overrides,
    detect_vitpose,
    load_published_vitpose,
    read_published_vitpose,
    to_diffpose_keys,
)
from diffpose.models.vitpose_io import LoadReport, load_vitpose, read_state_dict

__all__ = [
    "STRL", "BaselineNet", "ClipNetwork", "Complexity", "ConditionPyramid", "DiffPoseNet", "Graph", "LoadReport",
    "Part", "PoseDecoder", "PublishedViTPose", "TemporalRegressionNet", "ViT", "ViTPoseHead", "ViTPoseSimpleHead",
    "build_backbone", "build_decoder", "build_head", "build_strl", "check_geometry", "config_overrides",
    "count_gflops", "count_params", "detect_vitpose", "freeze_backbone", "load_published_vitpose", "load_vitpose",
    "param_groups", "read_published_vitpose", "read_state_dict", "to_diffpose_keys",
]  # fmt: skip
