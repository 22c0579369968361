"""Do the predicted uncertainty and the joint score flag the joints a model gets wrong?

With GT person boxes every prediction belongs to one GT person, so every labelled GT joint has one predicted
joint and one error. A joint is *wrong* when poseval's PCKh@0.5 would not match it to its own GT person:
``error > 0.5 x head size`` with ``head size = 0.6 x`` the GT head-box diagonal
(:func:`diffpose.evaluation.matching.head_size`). This is the per-box error, not poseval's person assignment
(which may hand a prediction to another GT person); with GT boxes the two rarely differ.

How well a per-joint value ranks errors is measured by

* :func:`auroc`: the probability that a random wrong joint has a higher value than a random right one (ties
  count half): 1 ranks perfectly, 0.5 is chance, 0 ranks backwards;
* :func:`spearman`: the rank correlation of the value with the error in pixels;
* :func:`reliability`: equal-count bins of the value, each with its mean, the mean and median observed error and
  the fraction wrong. For a calibrated uncertainty (pixels) the mean error of each bin follows ``y = x``.

The predicted uncertainty is the RMS distance (pixels) of the ensemble hypotheses to the combined keypoint; the
score is the heatmap maximum (times the box score), so ``1 - score`` is the score's own "this may be wrong".

:func:`uncertainty_report` collects these into the JSON section ``ap.json["uncertainty"]`` of ``diffpose test``;
:func:`plot_reliability` draws it (matplotlib, an optional dependency: ``pip install 'diffpose[plots]'``).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata, spearmanr

from diffpose.data.records import Video
from diffpose.errors import DiffPoseError
from diffpose.evaluation.matching import PCKH_THRESHOLD, head_size
from diffpose.evaluation.posetrack_ap import inside_ignore_regions
from diffpose.io_utils import atomic_write_bytes
from diffpose.keypoints import POSETRACK18_UNLABELED

PLOTS_HINT = "install matplotlib (pip install 'diffpose[plots]')"


@dataclass
class JointErrors:
    """One entry per evaluated GT joint (flat arrays of equal length N).

    Attributes:
        error: ``(N,)`` float64, pixels, Euclidean distance of the predicted joint to the GT joint.
        threshold: ``(N,)`` float64, pixels, ``0.5 x`` the GT person's head size (PCKh@0.5).
        wrong: ``(N,)`` bool, ``error > threshold`` (poseval's PCKh@0.5 would not match the joint).
        uncertainty: ``(N,)`` float64, pixels, the predicted uncertainty of the joint.
        score: ``(N,)`` float64, the predicted joint score.
        joint: ``(N,)`` int64, the joint's index in the video's layout (PoseTrack18 order).
        occluded: ``(N,)`` bool, the GT flags the joint occluded (False where the GT has no flags).
    """

    error: np.ndarray
    threshold: np.ndarray
    wrong: np.ndarray
    uncertainty: np.ndarray
    score: np.ndarray
    joint: np.ndarray
    occluded: np.ndarray

    def __len__(self) -> int:
        return int(self.error.shape[0])


def joint_errors(videos: list[Video], items: list[Any], preds: list[Any]) -> JointErrors:
    """The errors of ``preds`` (one per item, image pixels) at every GT joint PoseTrack evaluates.

    ``items`` are :class:`~diffpose.data.clip_dataset.ClipItem` (``video``, ``frame``, ``person``) and ``preds``
    :class:`~diffpose.estimators.PersonPose` (``keypoints``, ``scores``, ``uncertainty``); named here only by
    their fields, since this layer does not import torch.

    Counted: items that are GT persons (``item.person >= 0``; detections are skipped) with a usable head box
    (persons without one, or with a zero or non-finite head size, are skipped: PCKh is undefined for them);
    their labelled joints (``present``) except the never-labelled ears (``POSETRACK18_UNLABELED``) and joints
    strictly inside an ignore region of the frame (poseval removes those).
    """
    if len(items) != len(preds):
        raise DiffPoseError(f"{len(preds)} predictions for {len(items)} items; expected one per item", field="preds")
    cols: dict[str, list[np.ndarray]] = {f.name: [] for f in fields(JointErrors)}
    for item, pred in zip(items, preds):
        if item.person < 0:
            continue
        frame = videos[item.video].frames[item.frame]
        gt = frame.persons[item.person]
        if gt.head_box is None:
            continue
        size = float(head_size(np.asarray(gt.head_box, dtype=np.float64).reshape(1, 4))[0])
        if not math.isfinite(size) or size <= 0:
            continue
        if pred.keypoints.shape != gt.keypoints.shape:
            raise DiffPoseError(f"prediction has {pred.keypoints.shape[0]} joints but the GT person has "
                                f"{gt.num_joints}", field="keypoints")
        keep = gt.present.astype(bool).copy()
        keep[[j for j in POSETRACK18_UNLABELED if j < len(keep)]] = False
        keep &= ~inside_ignore_regions(frame.ignore_regions, gt.keypoints)
        idx = np.flatnonzero(keep)
        d = pred.keypoints[idx] - gt.keypoints[idx]  # (n, 2)
        with np.errstate(over="ignore", invalid="ignore"):
            error = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])  # as poseval computes the norm
            wrong = ~(error / size <= PCKH_THRESHOLD)  # poseval's match test; a NaN prediction is wrong
        cols["error"].append(error)
        cols["threshold"].append(np.full(len(idx), PCKH_THRESHOLD * size))
        cols["wrong"].append(wrong)
        cols["uncertainty"].append(np.asarray(pred.uncertainty, dtype=np.float64)[idx])
        cols["score"].append(np.asarray(pred.scores, dtype=np.float64)[idx])
        cols["joint"].append(idx.astype(np.int64))
        occluded = np.zeros(len(idx), dtype=bool) if gt.occluded is None else gt.occluded[idx].astype(bool)
        cols["occluded"].append(occluded)
    dtypes = {"wrong": bool, "occluded": bool, "joint": np.int64}
    return JointErrors(**{name: np.concatenate(parts) if parts else np.zeros(0, dtypes.get(name, np.float64))
                          for name, parts in cols.items()})


def crop_thresholds(videos: list[Video], video: np.ndarray, frame: np.ndarray, person: np.ndarray,
                    matrices: np.ndarray) -> np.ndarray:
    """``(B,)`` PCKh@0.5 thresholds in **crop** pixels: half the head size of GT person ``person[b]`` of frame
    ``frame[b]`` of video ``video[b]``, times the scale of its ``(2, 3)`` image -> crop matrix (a similarity
    transform, so distances scale by ``sqrt(|det|)``). NaN for a person without a head box."""
    out = []
    for v, f, p, mat in zip(np.asarray(video), np.asarray(frame), np.asarray(person), np.asarray(matrices)):
        box = videos[int(v)].frames[int(f)].persons[int(p)].head_box
        scale = float(np.sqrt(abs(np.linalg.det(np.asarray(mat, np.float64)[:, :2]))))  # crop px per image px
        size = np.nan if box is None else float(head_size(np.asarray(box, np.float64)[None])[0])
        out.append(PCKH_THRESHOLD * size * scale)
    return np.asarray(out, dtype=np.float64)


def auroc(values: np.ndarray, labels: np.ndarray) -> float:
    """P(value of a random positive > value of a random negative), ties counted half; NaN if a class is empty.

    Rank-based (Mann-Whitney U with average ranks). Entries with a NaN value are left out. When every value is
    equal (a model that does not sample writes uncertainty 0 everywhere) the answer is 0.5, which is right: such
    a value cannot tell wrong joints from right ones.
    """
    values, labels = np.asarray(values, dtype=np.float64).ravel(), np.asarray(labels, dtype=bool).ravel()
    if values.shape != labels.shape:
        raise DiffPoseError(f"{len(values)} values but {len(labels)} labels", field="labels")
    keep = ~np.isnan(values)
    values, labels = values[keep], labels[keep]
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(values)  # average ranks for ties, 1-based
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of ``a`` and ``b``; NaN with fewer than two pairs or a constant side."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    return float(spearmanr(a, b).statistic)


def reliability(uncertainty: np.ndarray, error: np.ndarray, bins: int = 10,
                wrong: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Equal-count bins of ``uncertainty`` (ascending), each ``{"value", "count", "error_mean", "error_median",
    "wrong_rate"}``.

    ``value`` is the bin's mean ``uncertainty``; ``wrong_rate`` the fraction of ``wrong`` (None without it).
    Joints are sorted by uncertainty and cut into ``bins`` runs of (nearly) equal length; equal values are never
    split, so a tie joins the bin of its first member (all-equal values give one bin). NaN values are left out.
    """
    if bins < 1:
        raise DiffPoseError(f"bins must be at least 1, got {bins}", field="bins")
    u, e = np.asarray(uncertainty, dtype=np.float64).ravel(), np.asarray(error, dtype=np.float64).ravel()
    w = None if wrong is None else np.asarray(wrong, dtype=bool).ravel()
    if e.shape != u.shape or (w is not None and w.shape != u.shape):
        raise DiffPoseError(f"uncertainty, error and wrong differ in length ({len(u)}, {len(e)}, "
                            f"{None if w is None else len(w)})", field="error")
    keep = ~np.isnan(u)
    u, e, w = u[keep], e[keep], None if w is None else w[keep]
    n = len(u)
    if n == 0:
        return []
    order = np.argsort(u, kind="stable")
    u, e, w = u[order], e[order], None if w is None else w[order]
    base = np.arange(n) * min(bins, n) // n  # equal-count bin of each sorted position
    which = base[np.searchsorted(u, u, side="left")]  # ties take the bin of their first member
    out = []
    for b in np.unique(which):
        sel = which == b
        out.append({"value": float(u[sel].mean()), "count": int(sel.sum()), "error_mean": float(np.mean(e[sel])),
                    "error_median": float(np.median(e[sel])),
                    "wrong_rate": None if w is None else float(w[sel].mean())})
    return out


def _json_float(x: float) -> float | None:
    """A float for JSON: NaN and infinity become None (JSON has neither), others keep 5 significant digits."""
    return float(f"{float(x):.5g}") if math.isfinite(x) else None


def _json_bins(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v if isinstance(v, int) or v is None else _json_float(v) for k, v in r.items()} for r in rows]


def uncertainty_report(errors: JointErrors, bins: int = 10) -> dict[str, Any]:
    """The JSON section ``ap.json["uncertainty"]`` (no NaN: None where a number is undefined).

    Keys: ``joints`` (N), ``wrong_rate``, ``error_median_px``, ``auroc_uncertainty`` and
    ``auroc_one_minus_score`` (how well each ranks the wrong joints above the right ones),
    ``spearman_uncertainty_error``, ``occluded_joints``, ``auroc_uncertainty_occluded`` and
    ``auroc_one_minus_score_occluded`` (on GT-occluded joints only; None when there are none or all are
    right / all wrong), ``reliability`` (:func:`reliability` bins of the uncertainty, ``value`` in pixels) and
    ``reliability_score`` (bins of ``1 - score``).

    A model that does not sample writes uncertainty 0 for every joint: its ``auroc_uncertainty`` is 0.5
    (chance) and its Spearman correlation None (undefined for a constant), which is the right answer.
    """
    one_minus_score = 1.0 - errors.score
    occ = errors.occluded
    return {
        "joints": len(errors),
        "wrong_rate": _json_float(errors.wrong.mean()) if len(errors) else None,
        "error_median_px": _json_float(np.median(errors.error)) if len(errors) else None,
        "auroc_uncertainty": _json_float(auroc(errors.uncertainty, errors.wrong)),
        "auroc_one_minus_score": _json_float(auroc(one_minus_score, errors.wrong)),
        "spearman_uncertainty_error": _json_float(spearman(errors.uncertainty, errors.error)),
        "occluded_joints": int(occ.sum()),
        "auroc_uncertainty_occluded": _json_float(auroc(errors.uncertainty[occ], errors.wrong[occ])),
        "auroc_one_minus_score_occluded": _json_float(auroc(one_minus_score[occ], errors.wrong[occ])),
        "reliability": _json_bins(reliability(errors.uncertainty, errors.error, bins, errors.wrong)),
        "reliability_score": _json_bins(reliability(one_minus_score, errors.error, bins, errors.wrong)),
    }


def report_summary(report: dict[str, Any]) -> str:
    """One line, e.g. ``wrong joints (error > half head size): 18.3% of 5,124; AUROC uncertainty 0.75, 1 - score
    0.84``."""
    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    rate = "n/a" if report["wrong_rate"] is None else f"{100 * report['wrong_rate']:.1f}%"
    return (f"wrong joints (error > half head size): {rate} of {report['joints']:,}; "
            f"AUROC uncertainty {num(report['auroc_uncertainty'])}, 1 - score {num(report['auroc_one_minus_score'])}")


def _percentile_centres(rows: list[dict[str, Any]]) -> np.ndarray:
    """Each bin's centre on the ranking axis: the percentile of joints at its middle (0-100)."""
    counts = np.array([r["count"] for r in rows], dtype=np.float64)
    return 100 * (np.cumsum(counts) - counts / 2) / max(counts.sum(), 1)


def draw_reliability(ax_error: Any, ax_rank: Any, report: dict[str, Any], label: str | None = None,
                     color: str | None = None) -> None:
    """Draw ``report`` (:func:`uncertainty_report`) on two matplotlib axes.

    ``ax_error``: mean observed error against mean predicted uncertainty per bin (pixels), with ``y = x``.
    ``ax_rank``: fraction of wrong joints per bin of uncertainty (solid) and of ``1 - score`` (dashed), bins placed
    at their percentile, so a value that ranks errors well rises from left to right; AUROCs in the legend.
    """
    prefix = f"{label}: " if label else ""
    rel, rel_score = report.get("reliability") or [], report.get("reliability_score") or []

    def auc(key: str) -> str:
        return "n/a" if report.get(key) is None else f"{report[key]:.2f}"

    if rel:
        x = [r["value"] for r in rel]
        line, = ax_error.plot(x, [r["error_mean"] for r in rel], "o-", color=color, label=f"{prefix}mean error")
        top = max(max(x), max(r["error_mean"] for r in rel), 1e-6)
        ax_error.plot([0, top], [0, top], ":", color="grey", label="y = x" if not label else None)
        ax_rank.plot(_percentile_centres(rel), [r["wrong_rate"] for r in rel], "o-", color=line.get_color(),
                     label=f"{prefix}uncertainty (AUROC {auc('auroc_uncertainty')})")
        color = line.get_color()
    if rel_score:
        ax_rank.plot(_percentile_centres(rel_score), [r["wrong_rate"] for r in rel_score], "s--", color=color,
                     label=f"{prefix}1 - score (AUROC {auc('auroc_one_minus_score')})")
    if report.get("wrong_rate") is not None:
        ax_rank.axhline(report["wrong_rate"], color=color or "grey", lw=0.8, alpha=0.5,
                        label=f"{prefix}all joints ({100 * report['wrong_rate']:.1f}% wrong)")
    ax_error.set_xlabel("predicted uncertainty (px, bin mean)")
    ax_error.set_ylabel("observed error (px, bin mean)")
    ax_error.set_title("calibration")
    ax_rank.set_xlabel("joints ranked by the value (percentile, bin centre)")
    ax_rank.set_ylabel("fraction wrong (error > half head size)")
    ax_rank.set_xlim(0, 100)
    ax_rank.set_ylim(-0.02, 1.02)
    ax_rank.set_title("ranking of errors")
    for ax in (ax_error, ax_rank):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)


def plot_reliability(report_or_errors: dict[str, Any] | JointErrors, path: str | Path,
                     title: str | None = None) -> Path | None:
    """Write the two-panel reliability plot (:func:`draw_reliability`) to the PNG ``path``, atomically.

    Takes an :func:`uncertainty_report` dict or :class:`JointErrors`. Returns ``path``, or None when matplotlib
    is not installed (the caller says so: :data:`PLOTS_HINT`).
    """
    try:  # a Figure with the Agg canvas, not pyplot: no global backend switch, nothing left open
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    report = report_or_errors if isinstance(report_or_errors, dict) else uncertainty_report(report_or_errors)
    fig = Figure(figsize=(10, 4.2))
    FigureCanvasAgg(fig)
    ax_error, ax_rank = fig.subplots(1, 2)
    draw_reliability(ax_error, ax_rank, report)
    fig.suptitle(f"{title + ': ' if title else ''}{report.get('joints', 0):,} joints")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return atomic_write_bytes(buffer.getvalue(), path)
