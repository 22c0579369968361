"""Score pose predictions against PoseTrack ground truth with the official PoseTrack AP.

Reads every *.json in GT_DIR (PoseTrack 2018/21 per-video files, or PoseTrack 2017 annolist JSON) and the
prediction file of the same name in PRED_DIR, and prints per-joint-group AP the way papers print it
(Head Shou Elb Wri Hip Knee Ankl Total). The numbers reproduce poseval (protocol "poseval", used for
PoseTrack 2017 and 2018) or the PoseTrack21 evaluation kit (protocol "posetrack21").

Prediction files must list every GT image in GT order, hold `categories`, a `track_id` unique within each
frame, and the per-joint confidences in `scores` (and in the keypoints' third slot). Nothing in GT_DIR or
PRED_DIR is modified. GT head boxes of zero or negative size are scored as poseval scores them, with one
warning line saying how many there are and in which files.

examples:
  diffpose evaluate --gt data/annotations/val --pred runs/exp1/predictions
  diffpose evaluate --gt GT --pred PRED --protocol posetrack21 --json ap.json
  diffpose evaluate --gt synth/annotations/val --pred PRED --occluded
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from diffpose.cli.args import add_progress
from diffpose.data.dataset_root import check_dataset_root
from diffpose.errors import DiffPoseError
from diffpose.evaluation import evaluate_dirs
from diffpose.io_utils import atomic_write_text, check_not_input, check_writable


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gt", required=True, metavar="GT_DIR", help="folder of ground-truth *.json, one per video")
    p.add_argument("--pred", required=True, metavar="PRED_DIR",
                   help="folder of prediction files named like the GT files")
    p.add_argument("--protocol", choices=("poseval", "posetrack21"), default="poseval",
                   help="poseval (PoseTrack 2017/2018, default) or the PoseTrack21 kit's rules")
    p.add_argument("--occluded", action="store_true",
                   help="also report AP on GT joints flagged occluded (SynthTrack's keypoints_occluded flag)")
    p.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    p.add_argument("--per-joint", action="store_true", help="also print AP, precision and recall per joint")
    add_progress(p)


def run(args: argparse.Namespace) -> int:
    if args.json:
        try:
            check_not_input(args.json, [args.gt, args.pred], "--json")
        except DiffPoseError:
            raise DiffPoseError("refusing to write into an input folder (--gt / --pred); choose another path",
                                args.json, "--json") from None
        check_writable(args.json)  # say so before evaluating, not after
    gt = Path(args.gt).resolve()
    if gt.parent.name == "annotations":  # ROOT/annotations/<split>: an interrupted SynthTrack root is refused
        check_dataset_root(gt.parent.parent, gt.name)
    result = evaluate_dirs(args.gt, args.pred, protocol=args.protocol, occluded=args.occluded,
                           progress=not args.no_progress)
    warning = result.head_box_warning()
    if warning:
        print(f"diffpose evaluate: warning: {warning}", file=sys.stderr)
    print(f"PoseTrack AP ({result.protocol} protocol), {result.frames_evaluated} frames evaluated")
    print(result.table(per_joint=args.per_joint))
    if args.json:
        atomic_write_text(json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n", args.json)
        print(f"wrote {args.json}")
    return 0
