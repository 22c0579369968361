"""Peak memory of `diffpose infer` at two video lengths: streaming keeps it flat.

For each length N (default 60 and 240 frames) this writes a synthetic video of N frames (two coloured
"people" that walk across a textured background, written with OpenCV), then runs

    diffpose infer VIDEO --checkpoint CKPT --detector inference_memory:detect --detect-every 10 \\
        --json OUT.json --coco OUT_coco.json --render OUT.mp4

in a child process, and reads that child's peak resident memory (``ru_maxrss`` from ``os.wait4``). Boxes
come from :func:`detect` (a colour threshold, the detector-callable path) on every 10th frame and from
propagation in between. Without ``--checkpoint`` a randomly initialised model of the ``tiny`` preset is
saved first (memory does not depend on the weights' values). The child uses one thread.

usage:
    python benchmarks/inference_memory.py [--lengths 60 240] [--checkpoint final.pt] [--size 320x240]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
COLOURS = ((230, 60, 40), (40, 90, 230))  # RGB of the two "people"


def detect(image: np.ndarray) -> list[tuple[float, float, float, float, float]]:
    """Boxes of the two coloured figures in an RGB uint8 frame (the detector-callable contract)."""
    out = []
    for colour in COLOURS:
        mask = (np.abs(image.astype(np.int16) - colour) < 40).all(axis=2)  # (H, W)
        ys, xs = np.nonzero(mask)
        if len(xs) > 20:
            out.append((float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                        float(ys.max() - ys.min() + 1), 0.9))
    return out


def write_video(path: Path, frames: int, size: tuple[int, int], fps: float = 25.0) -> Path:
    """Two figures (head, body, legs) walking in opposite directions over a fixed noise texture."""
    import cv2

    width, height = size
    rng = np.random.default_rng(0)
    background = (rng.integers(90, 160, (height, width, 3))).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for t in range(frames):
        image = background.copy()
        for k, colour in enumerate(COLOURS):
            phase = (t / 120.0 + 0.5 * k) % 1.0
            x = int(20 + phase * (width - 60)) if k == 0 else int(width - 40 - phase * (width - 60))
            y = height // 4
            bgr = tuple(int(c) for c in colour[::-1])
            cv2.circle(image, (x + 10, y + 8), 8, bgr, -1)
            cv2.rectangle(image, (x, y + 16), (x + 20, y + 60), bgr, -1)
            swing = int(6 * np.sin(t / 4.0 + k))
            cv2.line(image, (x + 5, y + 60), (x + 5 + swing, y + 100), bgr, 5)
            cv2.line(image, (x + 15, y + 60), (x + 15 - swing, y + 100), bgr, 5)
        writer.write(image)
    writer.release()
    return path


def random_checkpoint(path: Path, preset: str) -> Path:
    import torch

    from diffpose.checkpoint import save_checkpoint
    from diffpose.config import config_to_dict, load_config
    from diffpose.estimators import build_estimator

    torch.manual_seed(0)
    cfg = load_config(preset)
    model = build_estimator(cfg, load_weights=False).net
    return save_checkpoint({"config": config_to_dict(cfg), "model": model.state_dict(), "step": 0}, path)


def run_child(video: Path, checkpoint: Path, out: Path, extra: list[str]) -> tuple[float, float, str]:
    """Run `diffpose infer` in a child; return its peak RSS (MiB), wall time (s) and summary line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "diffpose", "infer", str(video), "--checkpoint", str(checkpoint), "--detector",
           "inference_memory:detect", "--detect-every", "10", "--json", str(out / "poses.json"), "--coco",
           str(out / "coco.json"), "--render", str(out / "poses.mp4"), "--device", "cpu", "--no-progress", *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    seconds = time.perf_counter() - start
    text = proc.stdout.read() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{text}")
    kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024  # Linux: KiB, macOS: bytes
    return kib / 1024.0, seconds, text.strip().splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[60, 240], help="video lengths in frames")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint (default: random tiny-preset weights)")
    parser.add_argument("--preset", default="tiny", help="config preset of the random checkpoint (default tiny)")
    parser.add_argument("--size", default="320x240", help="frame size WxH (default 320x240)")
    parser.add_argument("--infer-args", default="", help="extra `diffpose infer` arguments, e.g. '--ensemble 4'")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="diffpose_mem_") as tmp:
        tmp_dir = Path(tmp)
        ckpt = args.checkpoint or random_checkpoint(tmp_dir / "random.pt", args.preset)
        rows = []
        for n in args.lengths:
            video = write_video(tmp_dir / f"walk_{n}.mp4", n, (width, height))
            out = tmp_dir / f"out_{n}"
            out.mkdir()
            rss, seconds, summary = run_child(video, ckpt, out, args.infer_args.split())
            rows.append((n, rss, seconds))
            print(f"{n:5d} frames: peak RSS {rss:7.1f} MiB, {seconds:6.1f} s wall  | {summary}", flush=True)
    if len(rows) >= 2:
        (n0, r0, _), (n1, r1, _) = rows[0], rows[-1]
        print(f"peak RSS ratio {n1} / {n0} frames: {r1 / r0:.3f} (frames ratio {n1 / n0:.1f})")


if __name__ == "__main__":
    main()
