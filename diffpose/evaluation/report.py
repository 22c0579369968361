"""The evaluation result: per-joint AP / precision / recall, the paper-table groups, JSON and the table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffpose.evaluation.metrics import JointMetrics
from diffpose.keypoints import (
    GROUP_SHORT_NAMES,
    POSETRACK18_JOINTS,
    POSETRACK18_TO_POSEVAL,
    POSETRACK18_UNLABELED,
)

# The 15 evaluated joints named and ordered as PoseTrack18's ``categories`` (ears dropped).
REPORT_JOINTS: tuple[str, ...] = tuple(n for k, n in enumerate(POSETRACK18_JOINTS) if k not in POSETRACK18_UNLABELED)
_POSEVAL_INDEX = {n: int(POSETRACK18_TO_POSEVAL[POSETRACK18_JOINTS.index(n)]) for n in REPORT_JOINTS}


def _clean(x: float) -> float | None:
    """JSON has no NaN: poseval's NaN (a joint with predictions but no GT) is written as null."""
    return None if math.isnan(x) else float(x)


@dataclass
class EvalResult:
    """What ``diffpose evaluate`` computes. APs are percentages.

    Attributes:
        protocol: ``"poseval"`` or ``"posetrack21"``.
        frames_evaluated: number of frames that entered the metric.
        joints: per-joint metrics in poseval order.
        occluded: the same restricted to GT joints flagged occluded, or None when not requested.
        bad_head_boxes: ``{GT file: count}`` of evaluated GT persons whose head box has zero or negative width
            or height. They are scored with poseval's arithmetic as it is (a zero-size box divides by zero and
            matches nothing; a negative one has a positive diagonal), which makes their AP meaningless;
            ``diffpose evaluate`` says so in a warning (:meth:`head_box_warning`).
    """

    protocol: str
    frames_evaluated: int
    joints: JointMetrics
    occluded: JointMetrics | None = None
    bad_head_boxes: dict[str, int] = field(default_factory=dict)

    def head_box_warning(self) -> str | None:
        """One line about :attr:`bad_head_boxes`, or None when there are none."""
        if not self.bad_head_boxes:
            return None
        files = sorted(self.bad_head_boxes)
        names = ", ".join(Path(f).name for f in files[:3]) + (", ..." if len(files) > 3 else "")
        n = sum(self.bad_head_boxes.values())
        return (f"{n} GT head box{'es' if n != 1 else ''} of zero or negative size in {len(files)} "
                f"file{'s' if len(files) != 1 else ''} ({names}); scored with poseval's arithmetic unchanged, so the "
                "AP of those persons' joints is meaningless (a zero-size head box matches no prediction)")

    @property
    def per_joint_ap(self) -> dict[str, float]:
        return {n: float(self.joints.ap[_POSEVAL_INDEX[n]]) for n in REPORT_JOINTS}

    @property
    def per_joint_precision(self) -> dict[str, float]:
        return {n: float(self.joints.precision[_POSEVAL_INDEX[n]]) for n in REPORT_JOINTS}

    @property
    def per_joint_recall(self) -> dict[str, float]:
        return {n: float(self.joints.recall[_POSEVAL_INDEX[n]]) for n in REPORT_JOINTS}

    @property
    def groups(self) -> dict[str, float]:
        return self.joints.groups()

    @property
    def total(self) -> float:
        return self.groups["Total"]

    def to_json(self) -> dict[str, Any]:
        """The JSON document of ``diffpose evaluate --json`` (key ``occluded`` only when requested)."""
        out: dict[str, Any] = {
            "per_joint_ap": {k: _clean(v) for k, v in self.per_joint_ap.items()},
            "per_joint_precision": {k: _clean(v) for k, v in self.per_joint_precision.items()},
            "per_joint_recall": {k: _clean(v) for k, v in self.per_joint_recall.items()},
            "groups": {k: _clean(v) for k, v in self.groups.items()},
            "frames_evaluated": int(self.frames_evaluated),
        }
        if self.occluded is not None:
            occ = self.occluded
            out["occluded"] = {
                "per_joint_ap": {n: _clean(float(occ.ap[_POSEVAL_INDEX[n]])) for n in REPORT_JOINTS},
                "groups": {k: _clean(v) for k, v in occ.groups().items()},
                "num_gt_joints": int(occ.num_gt.sum()),
            }
        return out

    def table(self, per_joint: bool = False) -> str:
        """The paper-style table: ``Head Shou Elb Wri Hip Knee Ankl Total``."""
        names = list(GROUP_SHORT_NAMES.values())
        rows = [("AP", self.groups)]
        if self.occluded is not None:
            rows.append((f"AP occluded ({int(self.occluded.num_gt.sum())} GT joints)", self.occluded.groups()))
        width = max(len(label) for label, _ in rows)
        lines = [" " * width + "".join(f"{n:>7}" for n in names)]
        for label, groups in rows:
            lines.append(f"{label:<{width}}" + "".join(f"{groups[g]:>7.1f}" for g in GROUP_SHORT_NAMES))
        if per_joint:
            lines.append("")
            lines.append(f"{'joint':<16}{'AP':>7}{'prec':>7}{'rec':>7}{'#GT':>7}")
            for n in REPORT_JOINTS:
                i = _POSEVAL_INDEX[n]
                j = self.joints
                lines.append(f"{n:<16}{j.ap[i]:>7.1f}{j.precision[i]:>7.1f}{j.recall[i]:>7.1f}{j.num_gt[i]:>7d}")
        return "\n".join(lines)
