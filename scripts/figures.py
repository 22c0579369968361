"""The documentation's pictures, drawn with matplotlib (Agg) from the files the runs write; one PNG each.

* ``curves``: validation AP against optimiser steps from ``scripts/learning_curve.py`` runs (their
  ``curve.jsonl``): Total AP solid, AP on occluded joints dashed (when recorded), one colour per run;
* ``grid``: the DDIM steps S x ensemble size K grid of ``benchmarks/steps_ensemble_grid.py`` as a heatmap of
  Total AP (or occluded AP) with the number in each cell; read from its ``grid.json`` or, without one, from the
  ``ap.json`` files of ``diffpose test`` runs below the folder (S and K from their ``"sampling"`` key);
* ``reliability``: the reliability plot of ``diffpose test`` (``ap.json["uncertainty"]``) for one or more runs
  side by side: observed against predicted error, and how well uncertainty and ``1 - score`` rank wrong joints.

    python scripts/figures.py curves runs/lc_base runs/lc_dp --labels baseline DiffPose --name learning_curves.png
    python scripts/figures.py grid runs/tiny/grid --name sk_grid.png
    python scripts/figures.py reliability runs/base/test/ap.json runs/dp/test/ap.json --labels baseline DiffPose

Needs matplotlib (``pip install 'diffpose[plots]'``). A missing or malformed input is a one-line error (exit 2).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from diffpose.errors import DiffPoseError
from diffpose.evaluation.uncertainty import PLOTS_HINT, draw_reliability
from diffpose.io_utils import atomic_write_bytes, missing_reason


# --------------------------------------------------------------------------------------------------- reading
def read_json(path: Path) -> Any:
    if not path.is_file():
        raise DiffPoseError(missing_reason(path), path)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DiffPoseError(f"cannot read as JSON: {e}", path) from None


def read_curve(run: Path) -> list[dict[str, Any]]:
    """The evaluations of a ``learning_curve.py`` run (its folder or its ``curve.jsonl``), by step; a step
    recorded twice (a resumed run) keeps its last record."""
    path = run / "curve.jsonl" if run.is_dir() else run
    if not path.is_file():
        what = "no curve.jsonl in this folder (written by scripts/learning_curve.py)" if run.is_dir() \
            else missing_reason(path)
        raise DiffPoseError(what, run)
    by_step: dict[int, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            by_step[int(record["step"])] = record
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise DiffPoseError(f"line {n} is not an evaluation record with a step ({e})", path) from None
    if not by_step:
        raise DiffPoseError("holds no evaluations yet", path)
    return [by_step[s] for s in sorted(by_step)]


def _value(record: dict[str, Any], split: str, key: str) -> float:
    value = (record.get(split) or {}).get(key)
    return math.nan if value is None else float(value)


def read_grid(folder: Path, metric: str) -> dict[tuple[int, int], float]:
    """``{(S, K): AP}`` from ``grid.json`` (``steps_ensemble_grid.py``), else from the ``ap.json`` files below."""
    grid_json = folder / "grid.json" if folder.is_dir() else folder
    if grid_json.is_file():
        rows = read_json(grid_json)
        key = "total" if metric == "total" else "occluded_total"
        try:
            return {(int(r["steps"]), int(r["ensemble"])): float(r[key]) for r in rows}
        except (KeyError, TypeError, ValueError) as e:
            raise DiffPoseError(f"not a steps_ensemble_grid.py table (rows with steps, ensemble, {key}): {e}",
                                grid_json) from None
    if not folder.is_dir():
        raise DiffPoseError(missing_reason(folder), folder)
    cells: dict[tuple[int, int], float] = {}
    where: dict[tuple[int, int], Path] = {}
    for path in sorted(folder.rglob("ap.json")):
        doc = read_json(path)
        sampling = doc.get("sampling") if isinstance(doc, dict) else None
        if not sampling:
            continue  # a model that does not sample has no place in the grid
        groups = doc.get("groups") if metric == "total" else (doc.get("occluded") or {}).get("groups")
        if not groups or groups.get("Total") is None:
            raise DiffPoseError(f"has no {'occluded ' if metric == 'occluded' else ''}Total AP", path)
        cell = (int(sampling["steps"]), int(sampling["ensemble"]))
        if cell in cells:
            raise DiffPoseError(f"S={cell[0]} K={cell[1]} also in {where[cell]}; keep one run per setting", path)
        cells[cell], where[cell] = float(groups["Total"]), path
    if not cells:
        raise DiffPoseError("no grid.json and no ap.json of a sampling model below this folder", folder)
    return cells


def read_uncertainty(path: Path) -> dict[str, Any]:
    doc = read_json(path)
    report = doc.get("uncertainty") if isinstance(doc, dict) else None
    if not report:
        raise DiffPoseError("has no uncertainty section (diffpose test writes it with GT boxes)", path)
    return report


# --------------------------------------------------------------------------------------------------- drawing
def new_figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DiffPoseError(f"{PLOTS_HINT} to draw figures") from None
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, path: Path) -> Path:
    """PNG, written atomically."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return atomic_write_bytes(buffer.getvalue(), path)


def draw_curves(runs: list[Path], labels: list[str], probe: bool = False, title: str | None = None) -> Any:
    curves = [read_curve(r) for r in runs]
    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    for records, label in zip(curves, labels):
        steps = [r["step"] for r in records]
        line, = ax.plot(steps, [_value(r, "val", "total") for r in records], "o-", ms=3, label=f"{label}: Total")
        occluded = [_value(r, "val", "occluded") for r in records]
        if not all(math.isnan(v) for v in occluded):
            ax.plot(steps, occluded, "--", color=line.get_color(), label=f"{label}: occluded joints")
        if probe and any(r.get("probe") for r in records):
            ax.plot(steps, [_value(r, "probe", "total") for r in records], ":", color=line.get_color(),
                    label=f"{label}: training probe")
    ax.set_xlabel("optimiser steps")
    ax.set_ylabel("validation AP (%)")
    ax.set_title(title or "learning curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def draw_grid(cells: dict[tuple[int, int], float], metric: str, title: str | None = None) -> Any:
    steps = sorted({s for s, _ in cells})
    ensembles = sorted({k for _, k in cells})
    table = np.full((len(steps), len(ensembles)), np.nan)
    for (s, k), ap in cells.items():
        table[steps.index(s), ensembles.index(k)] = ap
    fig = new_figure(1.2 + 1.1 * len(ensembles), 1.2 + 0.8 * len(steps))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(table), cmap="viridis", origin="lower", aspect="auto")
    finite = table[np.isfinite(table)]
    middle = (finite.min() + finite.max()) / 2
    for i in range(len(steps)):
        for j in range(len(ensembles)):
            if np.isfinite(table[i, j]):
                ax.text(j, i, f"{table[i, j]:.1f}", ha="center", va="center",
                        color="black" if table[i, j] > middle else "white")
    ax.set_xticks(range(len(ensembles)), [str(k) for k in ensembles])
    ax.set_yticks(range(len(steps)), ["0 (prior head)" if s == 0 else str(s) for s in steps])  # S = 0: no step
    ax.set_xlabel("ensemble size K")
    ax.set_ylabel("DDIM steps S")
    what = "Total AP" if metric == "total" else "AP on occluded joints"
    ax.set_title(title or what)
    fig.colorbar(image, ax=ax, label=f"{what} (%)")
    return fig


def draw_reliabilities(files: list[Path], labels: list[str], title: str | None = None) -> Any:
    reports = [read_uncertainty(f) for f in files]
    fig = new_figure(4.6 * len(reports), 7.5)
    axes = fig.subplots(2, len(reports), squeeze=False, sharey="row")
    for col, (report, label) in enumerate(zip(reports, labels)):
        draw_reliability(axes[0, col], axes[1, col], report)
        axes[0, col].set_title(f"{label}: calibration ({report.get('joints', 0):,} joints)")
        axes[1, col].set_title(f"{label}: ranking of errors")
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------------------------------------------------ command line
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="figures.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="figure", required=True, metavar="FIGURE")

    def common(p: argparse.ArgumentParser, name: str) -> None:
        p.add_argument("--out", type=Path, default=Path("docs/images"), help="output folder (default docs/images)")
        p.add_argument("--name", default=name, help=f"file name of the PNG (default {name})")
        p.add_argument("--title", help="figure title (default: what is plotted)")

    p = sub.add_parser("curves", help="validation AP against optimiser steps (learning_curve.py runs)",
                       description="Validation Total AP (solid) and occluded AP (dashed) against optimiser steps, "
                                   "one colour per run folder (its curve.jsonl).")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="a learning_curve.py --out folder")
    p.add_argument("--labels", nargs="+", help="one label per run (default: the folder names)")
    p.add_argument("--probe", action="store_true", help="also draw the training probe's Total AP (dotted)")
    common(p, "learning_curves.png")

    p = sub.add_parser("grid", help="heatmap of AP over DDIM steps S x ensemble size K",
                       description="Heatmap of AP over S x K from steps_ensemble_grid.py's grid.json, or from the "
                                   "ap.json files of diffpose test runs below the folder.")
    p.add_argument("folder", type=Path, metavar="GRID_OUT_DIR", help="steps_ensemble_grid.py --out folder "
                   "(or a folder of diffpose test outputs)")
    p.add_argument("--metric", choices=("total", "occluded"), default="total",
                   help="Total AP (default) or AP on occluded joints")
    common(p, "sk_grid.png")

    p = sub.add_parser("reliability", help="reliability plots of diffpose test runs side by side",
                       description="Calibration and error ranking from the 'uncertainty' section of ap.json files "
                                   "(diffpose test with GT boxes), one column per file.")
    p.add_argument("files", nargs="+", type=Path, metavar="AP_JSON", help="an ap.json written by diffpose test")
    p.add_argument("--labels", nargs="+", help="one label per file (default: the folder names)")
    common(p, "reliability.png")
    return parser.parse_args(argv)


def labels_for(paths: list[Path], labels: list[str] | None, folder_of_file: bool = False) -> list[str]:
    if labels is None:
        return [(p.parent if folder_of_file or p.is_file() else p).resolve().name for p in paths]
    if len(labels) != len(paths):
        raise DiffPoseError(f"{len(labels)} labels for {len(paths)} inputs; give one per input", field="--labels")
    return labels


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.figure == "curves":
            fig = draw_curves(args.runs, labels_for(args.runs, args.labels), args.probe, args.title)
        elif args.figure == "grid":
            fig = draw_grid(read_grid(args.folder, args.metric), args.metric, args.title)
        else:
            fig = draw_reliabilities(args.files, labels_for(args.files, args.labels, folder_of_file=True),
                                     args.title)
        print(f"wrote {save(fig, args.out / args.name)}")
    except DiffPoseError as e:
        print(f"figures.py {args.figure}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
