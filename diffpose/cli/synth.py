"""Generate SynthTrack, a procedural multi-person video pose benchmark, in the PoseTrack18 layout.

Writes OUT_DIR/images/{train,val}/<seq>/<NNNNNN>.jpg, one PoseTrack18 JSON per video in
OUT_DIR/annotations/{train,val}/<seq>.json (train: a centred run of labeled frames; val: every 4th frame),
and a manifest OUT_DIR/synthtrack.json. Joints hidden in the pixels keep their true position and are
flagged in each annotation's "keypoints_occluded". The same seed gives the same bytes for any --workers.

--videos N sets the number of train videos; val gets max(1, N/4 rounded half up) videos.

examples:
  diffpose synth data/synthtrack
  diffpose synth /tmp/st --preset hard --videos 4 --frames 20 --seed 7 --preview
  diffpose evaluate --gt data/synthtrack/annotations/val --pred runs/preds
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from diffpose.cli.args import SEED_MAX, add_progress, number
from diffpose.data.dataset_root import INCOMPLETE
from diffpose.errors import DiffPoseError
from diffpose.io_utils import check_writable
from diffpose.synth.generate import MANIFEST, generate
from diffpose.synth.presets import get_preset
from diffpose.synth.preview import make_preview


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output directory (created; must be empty or hold a "
                        "previous SynthTrack output together with --force)")
    parser.add_argument("--preset", default="default", choices=("easy", "default", "hard"),
                        help="difficulty and size (default: %(default)s)")
    parser.add_argument("--videos", type=int, default=None, help="number of train videos (preset: easy 32, "
                        "default 48, hard 48); val gets a quarter of that, at least 1")
    parser.add_argument("--val-videos", type=int, default=None, help="number of val videos (default: a quarter of "
                        "the train videos, at least 1); video i of a split is the same whatever the count")
    parser.add_argument("--frames", type=int, default=None, help="frames per video (preset: 36)")
    parser.add_argument("--seed", type=number(int, 0, SEED_MAX), default=0,
                        help=f"random seed, 0 to {SEED_MAX} (default: 0)")
    parser.add_argument("--workers", type=number(int, 1), default=2, help="worker processes (default: %(default)s); "
                        "the output does not depend on it")
    parser.add_argument("--preview", action="store_true", help="also write OUT_DIR/preview.png, a contact sheet "
                        "of frames (val first) with the ground truth drawn")
    parser.add_argument("--force", action="store_true", help="replace a previous SynthTrack output in OUT_DIR")
    add_progress(parser)


def _prepare(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DiffPoseError("exists and is not a directory", out)
    if not out.exists() or not any(out.iterdir()):
        return
    partial = (out / INCOMPLETE).is_file()
    if not partial and not (out / MANIFEST).is_file():
        raise DiffPoseError(f"is not empty and holds no {MANIFEST}; refusing to write into it", out)
    if not force:
        what = "an incomplete (interrupted) SynthTrack output" if partial else "a SynthTrack dataset"
        raise DiffPoseError(f"already holds {what}; pass --force to replace it", out)
    for sub in ("images", "annotations"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for name in (MANIFEST, "preview.png", INCOMPLETE):
        (out / name).unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    preset = get_preset(args.preset).with_overrides(videos=args.videos, frames=args.frames, val_videos=args.val_videos)
    out = Path(args.out_dir)
    _prepare(out, args.force)
    check_writable(out, folder=True)  # an unwritable OUT_DIR fails now, not after the first rendered frame
    start = time.perf_counter()
    manifest = generate(out, preset, seed=args.seed, workers=args.workers, progress=not args.no_progress)
    took = time.perf_counter() - start
    for split, c in manifest["splits"].items():
        print(f"{split}: {c['videos']} videos, {c['frames']} frames ({c['labeled_frames']} labeled), "
              f"{c['persons']} persons, {c['joints']} joints ({c['occluded_joints']} occluded)")
    print(f"wrote {out} in {took:.1f} s")
    if args.preview:
        print(f"preview: {make_preview(out, out / 'preview.png')}")
    return 0
