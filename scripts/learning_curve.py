"""Train with periodic diagnostics: AP on the validation split and on a probe of the training split, against
samples seen, with the numbers that say *why* a model does not learn.

Every ``--eval-every`` optimiser steps (and at the end) the weights ``final.pt`` would hold are scored with GT
boxes on ``--val-split`` and ``--probe-split`` (a few training videos copied to their own annotation folder,
so the train/val gap is measured on the same kind of data). Each evaluation records:

* Total AP, AP on occluded joints, AP per joint group (the poseval-exact evaluator);
* the left/right swap rate: the share of persons (with at least three labelled left/right pairs of shoulders,
  elbows, wrists, hips, knees, ankles) whose predicted left and right joints, exchanged, lie closer to the
  ground truth than as predicted;
* the mean heatmap peak height at labelled joints (a target heatmap peaks at ~1; a model that does not know
  where a joint is spreads its mass and peaks low).

Lines go to ``OUT/curve.jsonl`` and are printed. Training itself is ``diffpose train``'s (same config, same
checkpoints, ``final.pt`` at the end; ``--resume`` works).

    python scripts/learning_curve.py --data data/st_big --out runs/lc_base --eval-every 500 \\
        --set model.kind=baseline train.max_steps=4000
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffpose.config import load_config
from diffpose.data.clip_dataset import gt_items, load_split
from diffpose.data.posetrack18 import write_posetrack18
from diffpose.engine.run import write_final
from diffpose.engine.tester import predict_items, prediction_videos
from diffpose.engine.trainer import Trainer
from diffpose.estimators import Predictor, build_estimator
from diffpose.evaluation import evaluate_dirs
from diffpose.keypoints import POSETRACK18

PAIRS = [(POSETRACK18.index(f"left_{n}"), POSETRACK18.index(f"right_{n}"))
         for n in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]


def diagnose(predictor: Predictor, root: str, split: str, out_dir: Path) -> dict:
    """AP, occluded AP, groups, swap rate and peak height of ``predictor`` on ``split`` (GT boxes)."""
    videos = load_split(root, split)
    items = gt_items(videos)
    with torch.inference_mode():
        preds = predict_items(predictor, videos, root, items)
    pred_dir = out_dir / "predictions"
    for video in prediction_videos(videos, items, preds):
        write_posetrack18(video, pred_dir / f"{video.name}.json")
    result = evaluate_dirs(Path(root) / "annotations" / split, pred_dir, occluded=True)
    swapped = counted = 0
    peaks = []
    for item, pred in zip(items, preds):
        gt = videos[item.video].frames[item.frame].persons[item.person]
        same = swap = 0.0
        pairs = 0
        for a, b in PAIRS:
            if gt.present[a] and gt.present[b]:
                pairs += 1
                pa, pb, ga, gb = pred.keypoints[a], pred.keypoints[b], gt.keypoints[a], gt.keypoints[b]
                same += np.linalg.norm(pa - ga) + np.linalg.norm(pb - gb)
                swap += np.linalg.norm(pa - gb) + np.linalg.norm(pb - ga)
        if pairs >= 3:
            counted += 1
            swapped += swap < same
        peaks.append(float(pred.scores[gt.present].mean()) / max(item.score, 1e-9))
    return {"total": result.total, "groups": result.groups,
            "occluded": result.occluded.groups()["Total"] if result.occluded is not None else None,
            "swap_rate": swapped / max(counted, 1), "peak": float(np.mean(peaks)), "persons": len(items)}


class CurveTrainer(Trainer):
    """:class:`~diffpose.engine.trainer.Trainer` that scores the current weights every ``every`` steps."""

    def __init__(self, *args, every: int, val_split: str, probe_split: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.every, self.val_split, self.probe_split = every, val_split, probe_split
        self.curve = self.out_dir / "curve.jsonl"
        self.train_seconds, self.last_eval = 0.0, -1
        self._tick = time.perf_counter()

    def train_step(self, batch: dict[str, torch.Tensor]) -> float:
        loss = super().train_step(batch)
        if self.step % self.every == 0 or self.step == self.total_steps:
            self.evaluate()
        return loss

    def evaluate(self) -> None:
        if self.step == self.last_eval:
            return
        now = time.perf_counter()
        self.train_seconds += now - self._tick
        estimator = build_estimator(self.cfg, load_weights=False, net=copy.deepcopy(self.model))
        if self.ema is not None:
            estimator.net.load_state_dict(self.ema.state_dict())
        predictor = Predictor(estimator, self.ctx.device, batch_size=64)
        record = {"step": self.step, "samples": self.step * self.cfg.train.batch_size,
                  "train_seconds": round(self.train_seconds, 1)}
        for name, split in (("val", self.val_split), ("probe", self.probe_split)):
            if not split:
                continue
            record[name] = diagnose(predictor, self.cfg.data.root, split, self.out_dir / f"eval_{self.step}_{name}")
        with open(self.curve, "a") as f:
            f.write(json.dumps(record) + "\n")
        v, p = record["val"], record.get("probe")
        probe = f" | probe {p['total']:.1f} swap {p['swap_rate']:.2f} peak {p['peak']:.2f}" if p else ""
        print(f"step {self.step} ({record['samples']} samples, {self.train_seconds:.0f} s): val {v['total']:.1f} "
              f"occl {v['occluded']:.1f} swap {v['swap_rate']:.2f} peak {v['peak']:.2f}{probe}", flush=True)
        self.last_eval = self.step
        self._tick = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--config", help="YAML config file")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--eval-every", type=int, default=500, help="optimiser steps between evaluations")
    parser.add_argument("--val-split", default="val")
    parser.add_argument("--probe-split", default="trainprobe", help="training videos copied to their own split "
                        "(default %(default)s); '' for none")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    cfg = load_config(args.preset, args.config, [*args.overrides, f"data.root={args.data}"])
    trainer = CurveTrainer(cfg, args.out, resume=args.resume, progress=False, every=args.eval_every,
                           val_split=args.val_split, probe_split=args.probe_split)
    trainer.run()
    trainer.evaluate()
    print(f"wrote {write_final(trainer, Path(args.out) / 'final.pt')}")


if __name__ == "__main__":
    main()
