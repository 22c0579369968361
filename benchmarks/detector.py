"""The built-in person detector's cost per frame, next to the single-frame pose model's cost per person.

One run times, side by side, on the same machine and threads:

1. **Detectors**: every built-in torchvision Faster R-CNN (:data:`diffpose.inference.detector.DETECTORS`) on real
   frames of typical sizes -- the first PoseTrack18 val frame of ``--data`` (1920x1080 in the sample data), the
   same frame resized to 1280x720 (PoseTrack's other usual size) and the first Bonn multi-person frame (960x540)
   -- one frame per :meth:`PersonDetector.detect` call, and ``--batch`` copies of the PoseTrack frame per call.
   Random weights: the cost does not depend on them (the RPN keeps a fixed number of proposals; only the few
   boxes left after the score threshold differ). The table gives the size torchvision's transform resizes each
   frame to, ms per frame, frames per second, and the speed-up over the default detector.
2. **ViTPose-B per person**: diffpose's single-frame model at the ``paper`` preset size (``model.kind=baseline``,
   ViT-B backbone, 256x192 crops, random weights), ``estimator.predict`` on 1 and on 8 crops, in ms per person.

Then, per detector, what one detected frame costs in persons' poses (detector ms/frame over ViTPose-B ms/person
at batch 8) and the detector's share of a frame with ``--persons`` people. Every timing is the best of
``--rounds`` interleaved rounds (each runs every case once, in turn, so that a background load slows all of
them alike), after one warm-up call of each.

    python benchmarks/detector.py [--data ../shared/data] [--rounds 3] [--batch 4] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision

from diffpose.config import load_config
from diffpose.data.images import read_rgb
from diffpose.estimators import build_estimator
from diffpose.inference.detector import DEFAULT_DETECTOR, DETECTORS, PersonDetector

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DIFFPOSE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def best_ms(cases: dict[str, Callable[[], object]], rounds: int, device: torch.device) -> dict[str, float]:
    """Milliseconds per call of each case: the fastest of ``rounds`` interleaved rounds (each round runs every
    case once, in turn, so a background load slows all of them alike), after one warm-up call of each."""
    def timed(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return 1000 * (time.perf_counter() - t0)

    best = dict.fromkeys(cases, float("inf"))
    with torch.inference_mode():
        for fn in cases.values():
            timed(fn)
        for _ in range(rounds):
            for name, fn in cases.items():
                best[name] = min(best[name], timed(fn))
    return best


def frames(data: Path) -> dict[str, np.ndarray]:
    """Named RGB frames: PoseTrack18 val, the same at 1280x720, Bonn (random pixels where the data is absent)."""
    posetrack = sorted((data / "posetrack18" / "images" / "val").glob("*/*.jpg"))
    bonn = sorted((data / "bonn_multiperson_posetrack" / "videos").glob("*/*.jpg"))
    rng = np.random.default_rng(0)
    pt = read_rgb(posetrack[0]) if posetrack else rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    bn = read_rgb(bonn[0]) if bonn else rng.integers(0, 256, (540, 960, 3), dtype=np.uint8)
    where = "" if posetrack and bonn else " (random pixels: no sample data)"
    small = cv2.resize(pt, (1280, 720), interpolation=cv2.INTER_AREA)
    return {f"PoseTrack18 val{where}": pt, "PoseTrack18 @1280x720": small, f"Bonn{where}": bn}


def resized(det: PersonDetector, image: np.ndarray) -> str:
    """``WxH`` the model's transform gives ``image`` (before padding to a multiple of 32)."""
    with torch.inference_mode():
        batch, _ = det.model.transform([det._tensor(image, 0)])
    h, w = batch.image_sizes[0]
    return f"{w}x{h}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="folder with posetrack18/ and "
                        "bonn_multiperson_posetrack/ (default ../shared/data)")
    parser.add_argument("--models", nargs="+", default=[m.name for m in DETECTORS], help="detectors to time")
    parser.add_argument("--rounds", type=int, default=3, help="timed calls after the warm-up; the fastest counts")
    parser.add_argument("--batch", type=int, default=4, help="frames per detect() call in the batch row")
    parser.add_argument("--persons", type=int, default=8, help="people per frame in the share line")
    parser.add_argument("--threads", type=int, help="PyTorch threads (default: PyTorch's, one per core)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images = frames(args.data)
    cpu = " ".join(filter(None, (platform.machine(), platform.processor())))
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"torchvision {torchvision.__version__}, device {device}; best of {args.rounds} interleaved rounds after a "
          "warm-up; random weights")
    print("frames: " + ", ".join(f"{name} {im.shape[1]}x{im.shape[0]}" for name, im in images.items()))
    print()

    cases: dict[str, Callable[[], object]] = {}
    rows = []  # (model, frames, resized, case, frames per call)
    first_label, first = next(iter(images.items()))
    for name in args.models:
        torch.manual_seed(0)
        det = PersonDetector(name, pretrained=False, device=device)
        for label, image in images.items():
            cases[f"{name} {label}"] = lambda d=det, im=image: d.detect([im])
            rows.append((name, label, resized(det, image), f"{name} {label}", 1))
        label = f"{first_label} x{args.batch} / call"
        cases[f"{name} {label}"] = lambda d=det, b=[first] * args.batch: d.detect(b)
        rows.append((name, label, resized(det, first), f"{name} {label}", args.batch))

    cfg = load_config("paper", overrides=["model.kind=baseline"])
    torch.manual_seed(0)
    est = build_estimator(cfg, load_weights=False).eval().to(device)
    h, w = cfg.model.backbone.image_size
    for n in (1, 8):
        clips = torch.rand(n, len(est.offsets), 3, h, w, device=device)  # (B, T = 1, 3, H, W)
        cases[f"pose {n}"] = lambda e=est, c=clips: e.predict(c)
    t = best_ms(cases, args.rounds, device)
    pose_ms = {n: t[f"pose {n}"] / n for n in (1, 8)}
    rows = [(name, label, size, t[case] / per_call) for name, label, size, case, per_call in rows]

    default = {label: ms for name, label, _, ms in rows if name == DEFAULT_DETECTOR}
    print(f"{'detector':<21}{'COCO AP':>8}  {'frames':<34}{'resized':>10}{'ms/frame':>10}{'frames/s':>10}"
          f"{'x ' + DEFAULT_DETECTOR:>12}{'= persons':>11}")
    ap = {m.name: m.coco_box_ap for m in DETECTORS}
    for name, label, size, ms in rows:
        speedup = f"{default[label] / ms:.2f}" if label in default else "-"
        print(f"{name:<21}{ap[name]:>8.1f}  {label:<34}{size:>10}{ms:10.1f}{1000 / ms:10.2f}{speedup:>12}"
              f"{ms / pose_ms[8]:11.1f}")
    print()
    print(f"ViTPose-B per person (paper preset, baseline, {h}x{w} crops, estimator.predict): "
          f"{pose_ms[1]:.1f} ms on 1 crop, {pose_ms[8]:.1f} ms/person on 8 crops "
          f"({pose_ms[1] / pose_ms[8]:.2f}x faster batched)")
    for name in args.models:
        ms = next(m for n, label, _, m in rows if n == name and label == first_label)
        total = ms + args.persons * pose_ms[8]
        print(f"a {first_label} frame with {args.persons} persons, {name}: detector {ms:.0f} ms + poses "
              f"{args.persons} x {pose_ms[8]:.1f} ms = {total:.0f} ms; detector share {100 * ms / total:.0f}%")
    print("('= persons': one detected frame costs as much as this many persons' poses at batch 8)")


if __name__ == "__main__":
    main()
