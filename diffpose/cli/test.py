"""Run a checkpoint over a dataset split, write PoseTrack prediction files and print the AP table.

A diffusion model samples with its checkpoint's sampling settings unless --steps, --ensemble, --combine or
--eta say otherwise (any values work without retraining); a model that does not sample (the single-frame
baseline) predicts in one pass and says so. Person boxes come from the ground truth (--boxes gt, default) or
from a COCO/PoseTrack detection file (--boxes DET.json). Predictions are written to
OUT/predictions/<video>.json in the form poseval reads, and the AP table (with AP on occluded joints when the
ground truth flags them, as SynthTrack does) is printed and saved to OUT/ap.json with the settings used.

With GT boxes, ap.json also says how well the predicted uncertainty and the joint score flag wrong joints
(error above half the head size, poseval's PCKh@0.5): its "uncertainty" section holds their AUROCs and
reliability bins (null with --boxes DET.json), drawn in OUT/reliability.png when matplotlib is installed.

examples:
  diffpose test -c runs/tiny/final.pt --data synthtrack --out runs/tiny/test
  diffpose test -c runs/tiny/final.pt --data synthtrack --steps 4 --ensemble 8 --out runs/tiny/s4k8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffpose.cli.args import (
    add_batch_size,
    add_checkpoint,
    add_device,
    add_progress,
    add_sampling,
    add_seed,
    checkpoint_from_args,
    number,
    sampling_from_args,
    warn_unused_sampling,
)
from diffpose.engine.tester import run_test
from diffpose.evaluation.uncertainty import PLOTS_HINT, plot_reliability, report_summary
from diffpose.io_utils import atomic_write_text, check_not_input, output_target


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint(p, positional_alias=True)
    p.add_argument("--data", required=True, metavar="ROOT", help="dataset root with images/ and annotations/")
    p.add_argument("--split", default="val", help="split folder under annotations/ (default val)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (predictions/, ap.json)")
    p.add_argument("--boxes", default="gt", help="'gt' (default) or a detection JSON file")
    p.add_argument("--min-box-score", type=number(float), default=0.0, help="drop detections below this score")
    add_sampling(p)
    add_batch_size(p)
    add_device(p)
    add_seed(p)
    add_progress(p)


def run(args: argparse.Namespace) -> int:
    checkpoint = checkpoint_from_args(args)
    inputs = [args.data, checkpoint] + ([args.boxes] if args.boxes != "gt" else [])
    check_not_input(args.out, inputs, flag="--out")  # never among the annotations: later reads would fail
    for name in ("ap.json", "reliability.png"):  # a FIFO or device of that name is refused now; nothing is created
        output_target(Path(args.out) / name)
    report: dict = {}
    result, predictor = run_test(checkpoint, args.data, args.split, args.out, boxes=args.boxes, device=args.device,
                                 progress=not args.no_progress, min_box_score=args.min_box_score, uncertainty=report,
                                 seed=args.seed, batch_size=args.batch_size, **sampling_from_args(args))
    warn_unused_sampling(args, predictor.samples)
    print(f"PoseTrack AP on {args.split} ({result.frames_evaluated} frames), {predictor.sampling_summary()}")
    print(result.table())
    out = {"checkpoint": str(checkpoint), "split": args.split, "kind": predictor.estimator.kind,
           "sampling": predictor.estimator.sampling_record(predictor.sampling), "boxes": args.boxes,
           **result.to_json(), "uncertainty": report or None}
    atomic_write_text(json.dumps(out, indent=2) + "\n", Path(args.out) / "ap.json")
    if report:
        print(report_summary(report))
        title = f"{Path(checkpoint).name} on {args.split}, {predictor.sampling_summary()}"
        plot = plot_reliability(report, Path(args.out) / "reliability.png", title)
        print(f"wrote {plot}" if plot else f"{PLOTS_HINT} for {Path(args.out) / 'reliability.png'}")
    print(f"wrote {Path(args.out) / 'ap.json'} and {Path(args.out) / 'predictions'}/")
    return 0
