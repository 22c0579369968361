"""The no-image floor: the mean training pose pasted into each ground-truth box, scored like a model.

Every labelled training person's joints are expressed in box units (``(x - x0) / w``, ``(y - y0) / h``) and
averaged per joint over the persons where the joint is labelled. Each evaluated person then gets that mean
pose placed in its own ground-truth box, with one confidence per joint (the share of training persons where
the joint is labelled), and the predictions are scored by the poseval-exact evaluator with AP on occluded
joints. No pixel is read: a model that does not beat this row has learned nothing but where the box is.

    python scripts/mean_pose_prior.py --data data/synthtrack --split val --out runs/prior
    python scripts/mean_pose_prior.py --data data/heldout --train-data data/synthtrack --out runs/prior_heldout
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from diffpose.data.clip_dataset import gt_items, load_split
from diffpose.data.posetrack18 import write_posetrack18
from diffpose.engine.tester import prediction_videos
from diffpose.estimators import PersonPose
from diffpose.evaluation import evaluate_dirs


def mean_pose(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(J, 2)`` mean joint position in box units and ``(J,)`` share of persons with the joint labelled."""
    videos = load_split(root, split)
    total = count = None
    persons = 0
    for item in gt_items(videos):
        person = videos[item.video].frames[item.frame].persons[item.person]
        x0, y0, w, h = item.box
        rel = (person.keypoints - [x0, y0]) / [w, h]  # (J, 2) box units
        present = person.present.astype(np.float64)  # (J,)
        if total is None:
            total, count = np.zeros_like(rel), np.zeros_like(present)
        total += rel * present[:, None]
        count += present
        persons += 1
    if not persons:
        raise SystemExit(f"error: no labelled person in {root}/annotations/{split}")
    return total / np.maximum(count, 1)[:, None], count / persons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="dataset root (images/ and annotations/)")
    parser.add_argument("--train-data", help="dataset root the mean pose is taken from (default: --data)")
    parser.add_argument("--train-split", default="train", help="split the mean pose is taken from")
    parser.add_argument("--split", default="val", help="split to score")
    parser.add_argument("--out", required=True, help="output folder (predictions/ and prior.json)")
    args = parser.parse_args()
    rel, share = mean_pose(args.train_data or args.data, args.train_split)
    videos = load_split(args.data, args.split)
    items = gt_items(videos)
    preds = []
    for item in items:
        x0, y0, w, h = item.box
        preds.append(PersonPose(keypoints=rel * [w, h] + [x0, y0], scores=share.copy(),
                                uncertainty=np.zeros(len(share)), box=np.array(item.box), box_score=1.0,
                                origin="gt"))
    out = Path(args.out)
    for video in prediction_videos(videos, items, preds):
        write_posetrack18(video, out / "predictions" / f"{video.name}.json")
    result = evaluate_dirs(Path(args.data) / "annotations" / args.split, out / "predictions", occluded=True)
    record = {"total": result.total, "occluded": result.occluded.groups()["Total"], "groups": result.groups,
              "persons": len(items)}
    (out / "prior.json").write_text(json.dumps(record, indent=2) + "\n")
    groups = " ".join(f"{k} {v:.1f}" for k, v in result.groups.items())
    print(f"no-image prior on {args.split} ({len(items)} persons): Total {result.total:.1f} "
          f"occluded {record['occluded']:.1f} | {groups}")


if __name__ == "__main__":
    main()
