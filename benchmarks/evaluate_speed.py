"""How long does ``diffpose evaluate`` take on a PoseTrack-sized split?

Writes a random split of 200 videos x 30 labelled frames x ~10 people (ground truth and predictions,
PoseTrack18 JSON, with ignore regions in ~30% of frames) to a temporary folder, then times
``evaluate_dirs`` end to end (reading the files included), split into reading and scoring.

    python benchmarks/evaluate_speed.py [--videos 200 --frames 30 --people 10]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from diffpose.evaluation import evaluate_dirs
from diffpose.evaluation.posetrack_ap import evaluate_frames, frames_for_eval, read_video_for_eval
from diffpose.evaluation.random_split import write_random_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        gt_dir, pred_dir = write_random_split(tmp, args.videos, args.frames, args.people, seed=0, unlabeled_rate=0.0)
        print(f"wrote split in {time.perf_counter() - t0:.1f} s")
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = evaluate_dirs(gt_dir, pred_dir)
            best = min(best, time.perf_counter() - t0)
        # the same work split into its two halves
        t0 = time.perf_counter()
        gt_files = sorted(gt_dir.glob("*.json"))
        pairs = [(read_video_for_eval(g), read_video_for_eval(pred_dir / g.name), g) for g in gt_files]
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        frames = [f for gt, pr, g in pairs for f in frames_for_eval(gt, pr, g, Path(pred_dir / g.name), "poseval")]
        t_prep = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate_frames(frames)
        t_score = time.perf_counter() - t0
        persons = sum(len(fr.persons) for gt, _, _ in pairs for fr in gt.frames)
        preds = sum(len(fr.persons) for _, pr, _ in pairs for fr in pr.frames)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"split: {args.videos} videos, {result.frames_evaluated} evaluated frames, "
          f"{persons} GT persons, {preds} predicted persons")
    print(f"evaluate_dirs end to end: {best:.2f} s (best of {args.repeats})  "
          f"[read {t_read:.2f} s, frames+ignore regions {t_prep:.2f} s, match+AP {t_score:.2f} s]")
    print(f"Total AP of the random predictions: {result.total:.2f}")


if __name__ == "__main__":
    main()
