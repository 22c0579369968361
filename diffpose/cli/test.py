"""Run a checkpoint over a dataset split, write PoseTrack prediction files and print the AP table.

DiffPose samples with any number of DDIM steps (--steps) and ensemble hypotheses (--ensemble) without
retraining; the baseline ignores both. Person boxes come from the ground truth (--boxes gt, default) or
from a COCO/PoseTrack detection file (--boxes DET.json). Predictions are written to
OUT/predictions/<video>.json in the form poseval reads, and the AP table (with AP on occluded joints when
the ground truth flags them, as SynthTrack does) is printed and saved to OUT/ap.json.

examples:
  diffpose test runs/tiny/final.pt --data synthtrack --out runs/tiny/test
  diffpose test runs/tiny/final.pt --data synthtrack --steps 4 --ensemble 8 --out runs/tiny/s4k8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "predict a split with a checkpoint and score it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a diffpose checkpoint (final.pt or last.pt)")
    p.add_argument("--data", required=True, metavar="ROOT", help="dataset root with images/ and annotations/")
    p.add_argument("--split", default="val", help="split folder under annotations/ (default val)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (predictions/, ap.json)")
    p.add_argument("--steps", type=int, default=1, help="DDIM steps S (DiffPose)")
    p.add_argument("--ensemble", type=int, default=1, help="hypotheses K (DiffPose)")
    p.add_argument("--combine", choices=("mean", "median"), default="mean", help="how hypotheses are combined")
    p.add_argument("--boxes", default="gt", help="'gt' or a detection JSON file")
    p.add_argument("--min-box-score", type=float, default=0.0, help="drop detections below this score")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed of the diffusion noise")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from diffpose.engine.tester import run_test
    from diffpose.io_utils import atomic_write_text

    result = run_test(args.checkpoint, args.data, args.split, args.out, steps=args.steps, ensemble=args.ensemble,
                      combine=args.combine, boxes=args.boxes, batch_size=args.batch_size, device=args.device,
                      seed=args.seed, progress=not args.no_progress, min_box_score=args.min_box_score)
    print(f"PoseTrack AP on {args.split} ({result.frames_evaluated} frames), steps={args.steps}, "
          f"ensemble={args.ensemble}")
    print(result.table())
    out = {"checkpoint": str(args.checkpoint), "split": args.split, "steps": args.steps, "ensemble": args.ensemble,
           "combine": args.combine, "boxes": args.boxes, **result.to_json()}
    atomic_write_text(json.dumps(out, indent=2) + "\n", Path(args.out) / "ap.json")
    print(f"wrote {Path(args.out) / 'ap.json'} and {Path(args.out) / 'predictions'}/")
    return 0
