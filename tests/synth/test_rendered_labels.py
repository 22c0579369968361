"""SynthTrack's labels sit where the renderer draws the joints, and front and back look different.

A figure is painted on a plain background in a star pose (arms out, legs apart, elbows and knees bent), so that
every limb segment is drawn mostly on its own. From the pixels each segment owns (the canvas ``order`` map) a
line is fitted through the segment's middle: it must run through the joint labels at both ends (across), and the
lines of two segments that meet at a joint (upper arm and forearm, thigh and shin, shin and foot) must cross at
that joint's label, within 1.5 px (a tenth of this figure's head is 3.4 px). A label offset along the limb (an
ankle drawn lower than labelled, say) or across it would fail.
"""

from __future__ import annotations

import numpy as np

from diffpose.synth.appearance import sample_appearance
from diffpose.synth.figure import DOF, NUM_DOFS, J, pose_points, project, sample_body
from diffpose.synth.raster import Canvas
from diffpose.synth.render import PART, draw_person

SEGMENTS = [  # (part, joint at its start, joint at its end): capsules drawn from one label to the other
    (f"{s}_{part}", f"{side}_{a}", f"{side}_{b}")
    for s, side in (("l", "left"), ("r", "right"))
    for part, a, b in (("upper_arm", "shoulder", "elbow"), ("forearm", "elbow", "wrist"), ("thigh", "hip", "knee"),
                       ("shin", "knee", "ankle"))
]
MEETINGS = [(f"{s}_{p}", f"{s}_{q}", f"{side}_{joint}") for s, side in (("l", "left"), ("r", "right"))
            for p, q, joint in (("upper_arm", "forearm", "elbow"), ("thigh", "shin", "knee"),
                                ("shin", "foot", "ankle"))]


def star_figure(seed: int, yaw: float, height: float = 260.0, size: tuple[int, int] = (320, 320)):
    """Paint one figure; returns (canvas, part draw orders, joint labels (17, 2), body)."""
    rng = np.random.default_rng(seed)
    body, look = sample_body(rng), sample_appearance(rng)
    angles = np.zeros((1, NUM_DOFS))
    angles[0, DOF["yaw"]] = yaw
    for side, stride in (("l", 0.6), ("r", -0.35)):
        angles[0, DOF[f"{side}_sho_abd"]] = 1.35  # arms out, slightly down
        angles[0, DOF[f"{side}_elbow"]] = 0.9
        angles[0, DOF[f"{side}_hip_abd"]] = 0.35  # legs apart ...
        angles[0, DOF[f"{side}_hip_flex"]] = stride  # ... and striding, knees bent: bends seen from the side
        angles[0, DOF[f"{side}_knee"]] = 1.0
    pts = pose_points(body, angles)
    ground = np.array([[size[0] / 2 + 0.3, size[1] - 20.0 + 0.4]])  # not on a pixel centre: sub-pixel labels
    xy, z = project(pts, np.array([yaw]), np.array([height]), ground)
    canvas = Canvas(np.full((size[1], size[0], 3), 0.5, dtype=np.float32))
    light = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    orders, _ = draw_person(canvas, xy[0], z[0], body, look, yaw, yaw, height, light, 0.4, owner=1)
    return canvas, orders, xy[0, :17], body


def segment_line(canvas: Canvas, order: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A point and unit direction of the centre line of a drawn segment (None when too little of it is visible).

    The segment's own pixels are cut into one-pixel slices across the label axis, over its middle 60 %; a slice
    counts when it is drawn whole (as wide as the segment, without gaps: not half covered by another part), and a
    straight line is fitted through the slices' midpoints.
    """
    ys, xs = np.nonzero(canvas.order == order)
    pts = np.stack([xs, ys], axis=1).astype(np.float64) - a  # pixel centres relative to a
    length = float(np.linalg.norm(b - a))
    u = (b - a) / length
    n = np.array([-u[1], u[0]])
    along, across = pts @ u, pts @ n
    slices = []
    for k in range(int(0.2 * length), int(0.8 * length)):
        row = across[(along >= k) & (along < k + 1)]
        if len(row):
            slices.append((k + 0.5, row.min(), row.max(), len(row)))
    if len(slices) < 8:
        return None
    widths = np.array([hi - lo for _, lo, hi, _ in slices])
    full = [(t, (lo + hi) / 2) for (t, lo, hi, count), w in zip(slices, widths)
            if w >= 0.85 * np.percentile(widths, 90) and count >= 0.8 * (w + 1)]
    if len(full) < 8:
        return None
    t, mid = np.array(full).T
    slope, offset = np.polyfit(t, mid, 1)  # mid = offset + slope * t
    direction = u + slope * n
    return a + offset * n, direction / np.linalg.norm(direction)


def crossing(p: tuple[np.ndarray, np.ndarray], q: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Where two lines (point, direction) cross."""
    (c1, d1), (c2, d2) = p, q
    s, _ = np.linalg.solve(np.stack([d1, -d2], axis=1), c2 - c1)
    return c1 + s * d1


TOLERANCE = 1.5  # pixels, on a figure 260 px tall whose head is ~34 px: a tenth of a head size is ~3.4 px
VIEWS = [(0, 0.0), (1, 0.4), (2, np.pi), (3, -2.6), (4, np.pi / 2 - 0.2), (5, -np.pi / 2 + 0.3), (6, 1.2)]


def test_limb_segments_are_drawn_between_their_joint_labels():
    crossings: dict[str, list[float]] = {}
    for seed, yaw in VIEWS:
        canvas, orders, labels, _ = star_figure(seed, yaw)
        lines = {}
        for part, a_name, b_name in SEGMENTS:
            a, b = labels[J[a_name]], labels[J[b_name]]
            line = segment_line(canvas, orders[PART[part]], a, b)
            if line is None or abs(line[1] @ (b - a)) / np.linalg.norm(b - a) < 0.95:
                continue  # mostly hidden, or foreshortened towards the camera in this view
            centre, d = line
            normal = np.array([-d[1], d[0]])
            for end in (a, b):  # the line fitted through the drawn segment runs through both labels
                assert abs((end - centre) @ normal) < TOLERANCE, (seed, part, (end - centre) @ normal)
            lines[part] = line
        for s in ("l", "r"):  # the foot runs forward from the ankle; its far end (the toe) is not labelled
            ys, xs = np.nonzero(canvas.order == orders[PART[f"{s}_foot"]])
            if len(xs) >= 40:
                pts = np.stack([xs, ys], axis=1).astype(np.float64)
                _, sv, vt = np.linalg.svd(pts - pts.mean(axis=0))
                if sv[0] > 2 * sv[1]:  # elongated: the foot is seen from the side
                    lines[f"{s}_foot"] = (pts.mean(axis=0), vt[0])
        for p, q, joint in MEETINGS:
            if p in lines and q in lines and abs(lines[p][1] @ lines[q][1]) < 0.9:  # a well-defined crossing
                err = float(np.linalg.norm(crossing(lines[p], lines[q]) - labels[J[joint]]))
                crossings.setdefault(joint.split("_")[1], []).append(err)
                assert err < TOLERANCE, (seed, yaw, joint, err)  # the two segments meet at the label
    assert {k: len(v) >= 3 for k, v in crossings.items()} == {"elbow": True, "knee": True, "ankle": True}, crossings


def test_each_labelled_limb_joint_is_on_a_pixel_of_its_own_segments():
    for seed, yaw in ((4, 0.2), (5, 2.9)):
        canvas, orders, labels, _ = star_figure(seed, yaw)
        for part, a_name, b_name in SEGMENTS:
            for name in (a_name, b_name):
                x, y = np.floor(labels[J[name]] + 0.5).astype(int)
                owner_order = canvas.order[y, x]
                mine = {orders[PART[p]] for p, a, b in SEGMENTS if name in (a, b)} | {orders[PART["torso"]]}
                mine |= {orders[PART[f"{name[0]}_{end}"]] for end in ("hand", "foot")}
                assert canvas.owner[y, x] == 1 and owner_order in mine, (name, part)


def test_front_and_back_look_different_for_every_person():
    """As with real people, a figure seen from the front shows its face and its shirt's front (a neckline of skin,
    sometimes a chest print); seen from the back, the head is hair and the shirt is plain."""
    for seed in range(8):
        views = {}
        for side, yaw in (("front", 0.1), ("back", np.pi + 0.1)):
            canvas, orders, labels, body = star_figure(seed, yaw)
            top = labels[J["head_bottom"], 1]
            rows = np.arange(canvas.order.shape[0])[:, None]
            chest = (canvas.order == orders[PART["torso"]]) & (rows < top + 0.16 * 260)  # upper chest, own pixels
            views[side] = (int((canvas.order == orders[PART["face"]]).sum()), canvas.image[chest])
        rng = np.random.default_rng(seed)
        sample_body(rng)
        look = sample_appearance(rng)
        assert views["front"][0] > 100 and views["back"][0] == 0, seed  # the face: only from the front
        skin = look.skin.colour(np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32), 260.0)[0, 0]
        near_skin = [(np.abs(px - skin).max(axis=1) < 0.12).mean() for _, px in (views["front"], views["back"])]
        shirt_is_skin_coloured = np.abs(look.shirt.base - skin).max() < 0.15
        if not shirt_is_skin_coloured:
            assert near_skin[0] > near_skin[1] + 0.02, (seed, near_skin)  # the neckline shows skin in front only
