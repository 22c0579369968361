"""The whole pipeline on built-in data, with nothing downloaded: video in, tracked poses out, scored.

1. Generates a SynthTrack validation video (procedural people, occluders, blur; PoseTrack18 ground truth,
   every frame labelled).
2. Runs the bundled DiffPose checkpoint (trained by `diffpose train`, shipped with the package) over it:
   person boxes from the annotations, K diffusion hypotheses per person, people tracked across frames.
3. Writes OUT/diffpose.mp4 (skeletons coloured by track id, each joint's uncertainty as a circle),
   OUT/predictions/diffpose/<video>.json (PoseTrack18), and OUT/contact_sheet.png.
4. Runs the bundled temporal regression (the same backbone and STRL with a plain heatmap head, no diffusion)
   and the single-frame baseline the same way and prints the three AP tables against the ground truth, with
   AP on the joints that are occluded in the pixels.

example:
  diffpose demo                        # writes demo_out/
  diffpose demo --out /tmp/demo --seed 3 --ensemble 8
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from diffpose.cli.args import SEED_MAX, add_device, add_progress, add_sampling, number, sampling_from_args
from diffpose.errors import DiffPoseError
from diffpose.evaluation import EvalResult, evaluate_dirs
from diffpose.inference import (
    FrameFolderRenderer,
    GroundTruthBoxes,
    PipelineOptions,
    PoseTrackWriter,
    Predictor,
    StreamingPipeline,
    VideoRenderer,
    consume,
    open_source,
)
from diffpose.io_utils import atomic_write_bytes, atomic_write_text, check_output
from diffpose.synth import generate, get_preset

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@dataclasses.dataclass(frozen=True)
class Shown:
    """One model the demo runs: the option that replaces its bundled checkpoint, and its predictions folder."""

    option: str  # the argparse destination, e.g. "checkpoint" for -c/--checkpoint
    bundled: Path
    folder: str  # OUT/predictions/<folder>
    renders: bool = False  # its poses are rendered (the video and the contact sheet)


SHOWN = (Shown("checkpoint", ASSETS / "tiny_diffpose.pt", "diffpose", renders=True),
         Shown("regression", ASSETS / "tiny_regression.pt", "regression"),
         Shown("baseline", ASSETS / "tiny_baseline.pt", "baseline"))
DEMO_MARKER = ".diffpose-demo"  # in OUT: the folder is the demo's own, so its synthtrack/ may be replaced


def _prepare_out(out: Path) -> Path:
    """Check ``OUT`` before any work and return ``OUT/synthtrack``, emptied only if an earlier demo wrote it.

    The demo replaces ``OUT/synthtrack`` on every run; a folder of that name that the demo did not write (a
    user's dataset made by ``diffpose synth OUT/synthtrack``) is never deleted, and a dataset root as ``OUT``
    is refused."""
    check_output(out, folder=True, flag="--out")
    if (out / "annotations").exists() or (out / "synthtrack.json").exists():
        raise DiffPoseError("holds a dataset (annotations/ or synthtrack.json); the demo writes its own files into "
                            "--out, choose another folder", out, "--out")
    data = out / "synthtrack"
    if data.exists():
        if not (out / DEMO_MARKER).is_file():
            raise DiffPoseError(f"{data} exists and was not written by diffpose demo; refusing to replace it, "
                                "choose another --out", out, "--out")
        shutil.rmtree(data)  # our own generated data from an earlier demo run
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text("written by diffpose demo: its synthtrack/ folder is replaced on the next run\n",
                      out / DEMO_MARKER)
    return data


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", type=Path, help="output folder (default: demo_out)")
    p.add_argument("--seed", type=number(int, 0, SEED_MAX), default=7, help="seed of the generated video (default 7)")
    p.add_argument("--frames", type=number(int, 1), default=36, help="frames of the generated video (default 36)")
    p.add_argument("-c", "--checkpoint", type=Path, help="a checkpoint to demonstrate instead of the bundled DiffPose")
    p.add_argument("--regression", type=Path,
                   help="a checkpoint to compare with instead of the bundled temporal regression (no diffusion)")
    p.add_argument("--baseline", type=Path, help="a checkpoint to compare with instead of the bundled baseline")
    add_sampling(p)
    add_device(p)
    add_progress(p)


def _infer(checkpoint: Path, gt_file: Path, root: Path, args: argparse.Namespace, json_out: Path,
           render: Path | None, frames_dir: Path | None) -> tuple[str, str]:
    """Run one checkpoint over the video; returns (a label for the table, a line about the run)."""
    source = open_source(gt_file, root)
    predictor = Predictor.from_checkpoint(checkpoint, args.device, **sampling_from_args(args))
    rendering = render is not None
    pipeline = StreamingPipeline(predictor, GroundTruthBoxes(), options=PipelineOptions(keep_images=rendering))
    sinks = [PoseTrackWriter(json_out, source.name, source.video)]
    if render is not None:
        sinks.append(VideoRenderer(render, source.fps))
    if frames_dir is not None:
        sinks.append(FrameFolderRenderer(frames_dir))
    consume(iter(pipeline.run(source)), sinks)
    s = pipeline.stats
    est = predictor.estimator
    label = f"{est.kind} ({'1 frame' if est.num_frames == 1 else f'{est.num_frames} frames'})"
    return label, (f"{est.kind}: {s.frames} frames, {s.persons} persons, {len(s.track_ids)} tracks, "
                   f"{s.fps:.1f} frames/s ({predictor.sampling_summary()})")


def _contact_sheet(frames_dir: Path, out: Path, count: int = 6, width: int = 3) -> Path:
    files = sorted(frames_dir.glob("*.png"))
    picks = [files[int(i)] for i in np.linspace(0, len(files) - 1, count).round()]
    tiles = [cv2.imread(str(f)) for f in picks]
    rows = [np.concatenate(tiles[i:i + width], axis=1) for i in range(0, len(tiles), width)]
    ok, data = cv2.imencode(".png", np.concatenate(rows, axis=0))
    return atomic_write_bytes(data.tobytes(), out)


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    checkpoints = [getattr(args, shown.option) or shown.bundled for shown in SHOWN]
    for shown, path in zip(SHOWN, checkpoints):
        if not Path(path).is_file():
            what = "the bundled one is missing from this installation" if path == shown.bundled else "no such file"
            raise DiffPoseError(f"no {shown.folder} checkpoint ({what})", path)
    out = Path(args.out)
    data = _prepare_out(out)
    # every frame labelled, so boxes come from the annotations and AP is measured on the whole video
    preset = get_preset("default").with_overrides(videos=1, frames=args.frames)
    preset = dataclasses.replace(preset, val_label_stride=1)
    generate(data, preset, seed=args.seed, workers=1, progress=False)
    gt_dir = data / "annotations" / "val"
    gt_file = sorted(gt_dir.glob("*.json"))[0]
    print(f"generated SynthTrack video {gt_file.stem} ({args.frames} frames) in {data}")
    results: list[tuple[str, EvalResult]] = []
    for shown, checkpoint in zip(SHOWN, checkpoints):
        pred_dir = out / "predictions" / shown.folder
        label, line = _infer(checkpoint, gt_file, data, args, pred_dir / gt_file.name,
                             out / "diffpose.mp4" if shown.renders else None, out / "frames" if shown.renders else None)
        print(line)
        results.append((label, evaluate_dirs(gt_dir, pred_dir, occluded=True)))
    sheet = _contact_sheet(out / "frames", out / "contact_sheet.png")
    print(f"\nPoseTrack AP against the ground truth ({results[0][1].frames_evaluated} labelled frames):")
    names = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total")
    print(f"{'':<22}" + "".join(f"{n[:5]:>7}" for n in names) + f"{'Occl.':>8}")
    for label, r in results:
        print(f"{label:<22}" + "".join(f"{r.groups[n]:>7.1f}" for n in names) +
              f"{r.occluded.groups()['Total']:>8.1f}")
    print(f"\nwrote {out / 'diffpose.mp4'}, {out / 'predictions'}/, {sheet}  ({time.perf_counter() - start:.0f} s)")
    return 0
