"""PoseTrack pose AP, exactly as the official poseval computes it (no torch, no models).

``evaluate_dirs(gt_dir, pred_dir, protocol="poseval", occluded=False) -> EvalResult``.
"""

from diffpose.evaluation.posetrack_ap import PROTOCOLS, evaluate_dirs, evaluate_frames, evaluate_videos
from diffpose.evaluation.report import REPORT_JOINTS, EvalResult

__all__ = ["PROTOCOLS", "REPORT_JOINTS", "EvalResult", "evaluate_dirs", "evaluate_frames", "evaluate_videos"]
