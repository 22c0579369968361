"""Check that ``diffpose evaluate`` reproduces the official poseval, number for number.

poseval is not on PyPI. Clone it yourself (https://github.com/leonid-pishchulin/poseval), install its
dependencies (``pip install shapely click tqdm``) and point this script at the clone:

    python scripts/poseval_parity.py --poseval /path/to/poseval --cases 50

For each case a random split (see ``diffpose.evaluation.random_split``) is written to a temporary folder,
scored by poseval's ``load_data_dir`` + ``evaluateAP`` and by ``diffpose.evaluation.evaluate_dirs``, and the
15 per-joint APs, precisions, recalls and the Total are compared. GT files are evaluated in sorted order on
both sides (poseval uses ``glob`` order, which only matters for tied scores across videos).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

from diffpose.data.posetrack17 import write_posetrack17
from diffpose.data.posetrack18 import read_posetrack18
from diffpose.evaluation import evaluate_dirs
from diffpose.evaluation.random_split import write_random_split


def poseval_ap(poseval_root: Path, gt_dir: Path, pred_dir: Path, out_dir: Path) -> tuple[np.ndarray, ...]:
    sys.path.insert(0, str(poseval_root))
    import glob

    from poseval import eval_helpers  # type: ignore[import-not-found]
    from poseval.evaluateAP import evaluateAP  # type: ignore[import-not-found]

    real_glob = glob.glob
    eval_helpers.glob.glob = lambda pattern: sorted(real_glob(pattern))  # deterministic file order
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            gt, pr = eval_helpers.load_data_dir(["", str(gt_dir) + "/", str(pred_dir) + "/"])
            ap, pre, rec = evaluateAP(gt, pr, str(out_dir), False, False)
    finally:
        eval_helpers.glob.glob = real_glob
    return ap[:, 0], pre[:, 0], rec[:, 0]


def to_posetrack17(folder: Path) -> Path:
    """Rewrite every PoseTrack18 file of ``folder`` as PoseTrack17 annolist JSON in ``folder``_pt17."""
    out = folder.with_name(folder.name + "_pt17")
    for f in sorted(folder.glob("*.json")):
        write_posetrack17(read_posetrack18(f), out / f.name)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--poseval", required=True, type=Path, help="path of a poseval clone (holds poseval/)")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("posetrack18", "posetrack17"), default="posetrack18",
                        help="file format of the split (posetrack17: annolist JSON, read by poseval as is)")
    args = parser.parse_args()
    worst = 0.0
    for case in range(args.cases):
        with tempfile.TemporaryDirectory() as tmp:
            gt_dir, pred_dir = write_random_split(tmp, args.videos, args.frames, args.people, seed=args.seed + case)
            if args.format == "posetrack17":
                gt_dir, pred_dir = to_posetrack17(gt_dir), to_posetrack17(pred_dir)
            ap, pre, rec = poseval_ap(args.poseval, gt_dir, pred_dir, Path(tmp))
            ours = evaluate_dirs(gt_dir, pred_dir)
            mine_ap = np.append(ours.joints.ap, ours.groups["Total"])
            mine_pre = np.append(ours.joints.precision, ours.joints.total(ours.joints.precision))
            mine_rec = np.append(ours.joints.recall, ours.joints.total(ours.joints.recall))
            diff = max(float(np.nanmax(np.abs(a - b))) if np.isfinite(a).any() else 0.0
                       for a, b in ((ap, mine_ap), (pre, mine_pre), (rec, mine_rec)))
            same_nan = all(np.array_equal(np.isnan(a), np.isnan(b))
                           for a, b in ((ap, mine_ap), (pre, mine_pre), (rec, mine_rec)))
            worst = max(worst, diff)
            status = "ok" if diff < 1e-9 and same_nan else "MISMATCH"
            print(f"case {case:3d}: Total poseval {ap[-1]:8.4f}  diffpose {mine_ap[-1]:8.4f}  "
                  f"max |diff| {diff:.2e}  {status}")
            if status != "ok":
                print("  poseval AP :", np.round(ap, 4))
                print("  diffpose AP:", np.round(mine_ap, 4))
                return 1
    print(f"all {args.cases} cases agree (largest difference {worst:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
