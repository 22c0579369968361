"""Score checkpoints on the real Bonn multi-person sample (PoseTrack-CVPR2017) with its ground-truth boxes.

What the bundled SynthTrack checkpoints do on real footage, and what a published ViTPose checkpoint does on
the same frames and boxes, measured the way ``diffpose test`` measures (PoseTrack AP, poseval-exact)::

    python scripts/bonn_eval.py -c diffpose/assets/tiny_diffpose.pt -c diffpose/assets/tiny_regression.pt \\
        -c diffpose/assets/tiny_baseline.pt -c vitpose-b.pth --out runs/bonn

The Bonn ``annolist.mat`` is converted to a PoseTrack18 dataset root in ``OUT/root`` (annotations written
there, the frames linked, nothing copied or written into the data folder): the MPII joints map to
PoseTrack18's (``upper_neck`` is ``head_bottom``; Bonn labels no nose or ears), the head boxes are Bonn's
``head_rect``, and person boxes are made from each person's joints, as for every dataset without boxes.
Each checkpoint's predictions and ``ap.json`` go to ``OUT/<checkpoint name>/``; the AP tables are printed and
one summary table closes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffpose.data.bonn import read_bonn_mat  # noqa: E402
from diffpose.data.posetrack18 import write_posetrack18  # noqa: E402
from diffpose.engine.tester import run_test  # noqa: E402
from diffpose.errors import DiffPoseError  # noqa: E402
from diffpose.io_utils import atomic_write_json  # noqa: E402

DEFAULT_BONN = Path(__file__).resolve().parents[2] / "shared" / "data" / "bonn_multiperson_posetrack"


def bonn_root(bonn: Path, out: Path) -> Path:
    """A PoseTrack18 root for the Bonn sample in ``out``: ``annotations/val/<video>.json`` and ``videos`` linked."""
    mat = bonn / "annolist" / "test" / "annolist.mat"
    if not mat.is_file():
        raise DiffPoseError("no Bonn annolist here (expected annolist/test/annolist.mat)", bonn)
    root = out / "root"
    (root / "annotations" / "val").mkdir(parents=True, exist_ok=True)
    link = root / "videos"
    if not link.exists():
        os.symlink((bonn / "videos").resolve(), link, target_is_directory=True)
    for video in read_bonn_mat(mat):
        present = [f for f in video.frames if (root / f.file_name).is_file()]
        video.frames = present  # the sample ships the labelled frames only
        for i, frame in enumerate(present):
            frame.image_id = 1000 + i  # Bonn frames have no ids; PoseTrack18 needs one per image
        write_posetrack18(video, root / "annotations" / "val" / f"{video.name}.json")
    return root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--checkpoint", action="append", required=True, help="checkpoint to score (repeatable)")
    p.add_argument("--bonn", type=Path, default=DEFAULT_BONN, help=f"the Bonn sample (default {DEFAULT_BONN})")
    p.add_argument("--out", type=Path, default=Path("runs/bonn"), help="output folder (default runs/bonn)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    root = bonn_root(args.bonn, args.out)
    rows = []
    for ckpt in args.checkpoint:
        name = Path(ckpt).name.split(".")[0]
        result, predictor = run_test(ckpt, root, "val", args.out / name, device=args.device, progress=False)
        print(f"{ckpt} ({predictor.estimator.describe()}, {predictor.layout.name} joints, "
              f"{predictor.sampling_summary()}):\n{result.table()}\n")
        atomic_write_json({"checkpoint": str(ckpt), **result.to_json()}, args.out / name / "ap.json", indent=2)
        rows.append((name, result.groups))
    names = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total")
    print("Bonn sample, ground-truth boxes, PoseTrack AP:")
    print(f"{'':<24}" + "".join(f"{n[:5]:>7}" for n in names))
    for name, groups in rows:
        print(f"{name:<24}" + "".join(f"{groups[n]:>7.1f}" for n in names))
    summary = {name: {n: round(groups[n], 1) if math.isfinite(groups[n]) else None for n in names}
               for name, groups in rows}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
