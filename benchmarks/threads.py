"""`diffpose infer` wall time by PyTorch thread count, on a quiet machine and on one that is busy.

One SynthTrack video (boxes from its annotations) is run through ``diffpose infer`` as a user would run it
(a fresh process each time, so start-up is included), with ``--threads 1``, ``--threads 2`` and no
``--threads`` (PyTorch's default: one thread per core). Then the same with ``--load`` busy processes
spinning on the CPU (default: one per core), which is what a shared machine or a training job beside
inference looks like. Prints seconds and frames per second per setting, and each setting's time over the
best one of its condition.

    python benchmarks/threads.py [--checkpoint diffpose/assets/tiny_diffpose.pt] [--frames 36] [--repeat 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "diffpose" / "assets"


def spin(stop: mp.Event) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def run_infer(seq: Path, checkpoint: Path, out: Path, threads: int | None) -> float:
    cmd = [sys.executable, "-m", "diffpose", "infer", str(seq), "-c", str(checkpoint), "--boxes", "gt",
           "--json", str(out), "--no-progress"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ASSETS / "tiny_diffpose.pt")
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting; the fastest counts")
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy processes in the loaded case")
    args = parser.parse_args()
    settings = [1, 2, None]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        subprocess.run([sys.executable, "-m", "diffpose", "synth", str(data), "--videos", "1", "--val-videos", "1",
                        "--frames", str(args.frames), "--workers", "1", "--no-progress"], check=True,
                       capture_output=True)
        seq = sorted((data / "annotations" / "val").glob("*.json"))[0]
        rows = []
        for condition in ("quiet", "loaded"):
            stop, procs = mp.Event(), []
            if condition == "loaded":
                procs = [mp.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.load)]
                for p in procs:
                    p.start()
                time.sleep(1.0)
            try:
                for threads in settings:
                    best = min(run_infer(seq, args.checkpoint, Path(tmp) / "out.json", threads)
                               for _ in range(args.repeat))
                    rows.append((condition, threads, best))
            finally:
                stop.set()
                for p in procs:
                    p.join()
    print(f"diffpose infer, {args.frames} frames, {args.checkpoint.name}, {os.cpu_count()} cores; loaded = "
          f"{args.load} busy processes; fastest of {args.repeat} runs, start-up included")
    print(f"{'condition':<10} {'--threads':<10} {'seconds':>8} {'frames/s':>9} {'x best':>7}")
    for condition in ("quiet", "loaded"):
        best = min(s for c, _, s in rows if c == condition)
        for c, threads, seconds in rows:
            if c == condition:
                label = "default" if threads is None else str(threads)
                print(f"{c:<10} {label:<10} {seconds:8.2f} {args.frames / seconds:9.1f} {seconds / best:7.2f}")


if __name__ == "__main__":
    main()
