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

OUT/predictions/, OUT/ap.json and OUT/reliability.png are staged beside their targets and moved into place
together only when the whole run (scoring included) succeeded: a failure or Ctrl-C leaves the previous run's
files as they were. predictions/ is replaced whole (a predictions/ folder holding anything but .json files is
refused); a run without a reliability plot removes an earlier one. An output inside the dataset, or equal
to the checkpoint or the detection file, is refused before any work.

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
from diffpose.io_outputs import Outputs
from diffpose.io_utils import atomic_write_text


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
    out = Path(args.out)
    with Outputs(inputs) as outputs:  # predictions/, ap.json and reliability.png land together, or none changes
        outputs.check(out, flag="--out")  # never among the annotations: later reads would fail
        pred_dir = outputs.folder(out / "predictions", owned=("*.json",), flag="--out")
        ap_json = outputs.file(out / "ap.json", flag="--out")
        plot_file = outputs.file(out / "reliability.png", flag="--out")
        report: dict = {}
        result, predictor = run_test(checkpoint, args.data, args.split, out, boxes=args.boxes, device=args.device,
                                     progress=not args.no_progress, min_box_score=args.min_box_score,
                                     uncertainty=report, seed=args.seed, batch_size=args.batch_size,
                                     pred_dir=pred_dir, **sampling_from_args(args))
        warn_unused_sampling(args, predictor.samples)
        summary = {"checkpoint": str(checkpoint), "split": args.split, "kind": predictor.estimator.kind,
                   "sampling": predictor.estimator.sampling_record(predictor.sampling), "boxes": args.boxes,
                   **result.to_json(), "uncertainty": report or None}
        atomic_write_text(json.dumps(summary, indent=2) + "\n", ap_json)
        plot = None
        if report:
            title = f"{Path(checkpoint).name} on {args.split}, {predictor.sampling_summary()}"
            plot = plot_reliability(report, plot_file, title)
        if plot is None:  # no plot of this run: an earlier run's reliability.png goes, it would not match ap.json
            outputs.remove(plot_file)
        outputs.commit()
    print(f"PoseTrack AP on {args.split} ({result.frames_evaluated} frames), {predictor.sampling_summary()}")
    print(result.table())
    if report:
        print(report_summary(report))
        print(f"wrote {out / 'reliability.png'}" if plot else f"{PLOTS_HINT} for {out / 'reliability.png'}")
    print(f"wrote {out / 'ap.json'} and {out / 'predictions'}/")
    return 0
