"""One SynthTrack video: plan everything that happens in it, then render it frame by frame.

:func:`plan_video` draws every random choice for the video from one numpy Generator, in a fixed order:
the stage (:mod:`~diffpose.synth.scene`), the camera, the people (body, looks, motion, path over the
ground), a group of tiny background people, the occluders and the effects. :func:`render_frame` then
paints frame ``t``: background view, ground shadows, people far to near, occluders, dropouts; it returns the
JPEG bytes, the canvas maps and the ground truth of every annotated person. Nothing here writes files.

Ground geometry: a person ``h`` canvas pixels tall stands with their feet at ``y = horizon + c * h / stature``
(``c`` is the camera height over a person's height, drawn per video), so nearer people are larger and lower.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from diffpose.data.records import Person
from diffpose.synth.annotate import annotate_person, ignore_region, joint_orders
from diffpose.synth.appearance import Appearance, sample_appearance
from diffpose.synth.effects import TEAR, EffectsPlan, finish_frame, noise_bank, plan_effects, tear_rows, vignette_map
from diffpose.synth.figure import DOF, BodyShape, pose_points, project, sample_body
from diffpose.synth.motion import ACTIONS, LOCOMOTION, integrate_ground_path, sample_motion
from diffpose.synth.occluders import Occluder, Target, draw_occluder, plan_occluders
from diffpose.synth.presets import SynthPreset
from diffpose.synth.raster import Canvas, ellipse
from diffpose.synth.render import HeadEllipse, draw_person
from diffpose.synth.scene import CANVAS_SCALE, CameraPath, Scene, camera_path, make_scene, view

_ACTION_WEIGHTS = np.array([0.3, 0.1, 0.12, 0.1, 0.12, 0.1, 0.16])  # in the order of ACTIONS
CROWD_HEIGHT = (22.0, 40.0)  # canvas pixels: too small to annotate, covered by an ignore region


@dataclass
class PersonPlan:
    """One person over the whole video. ``xy`` ``(T, P, 2)`` canvas pixels, ``z`` ``(T, P)`` depth."""

    body: BodyShape
    look: Appearance
    actions: tuple[str, ...]
    yaw: np.ndarray  # (T,)
    face_yaw: np.ndarray  # (T,)
    height: np.ndarray  # (T,) canvas pixels
    ground: np.ndarray  # (T, 2) canvas pixels under the pelvis
    xy: np.ndarray
    z: np.ndarray
    crowd: bool


@dataclass
class VideoPlan:
    preset: SynthPreset
    frames: int
    scene: Scene
    camera: CameraPath
    people: list[PersonPlan]
    occluders: list[Occluder]
    effects: EffectsPlan
    vignette: np.ndarray  # (H, W, 1)
    noise: np.ndarray  # (H + pad, W + pad, 3) sensor noise bank


@dataclass
class FrameRender:
    """Frame ``t``: JPEG bytes, the canvas (float image before effects, ``order``/``owner`` maps) and the ground
    truth: ``(person index in VideoPlan.people, Person)`` for every annotated person, plus ignore polygons."""

    t: int
    jpeg: bytes
    canvas: Canvas
    persons: list[tuple[int, Person]]
    ignore_regions: list[np.ndarray]
    joints: dict[int, np.ndarray]  # person index -> (17, 2) true image positions (every person, crowd too)
    own_orders: dict[int, np.ndarray]  # person index -> (17,) latest draw order of each joint's own parts


def _person(rng: np.random.Generator, n: int, action: str, yaw0: float, x0: float, h0: float, horizon: float,
            cam: float, focal: float, h_range: tuple[float, float], crowd: bool) -> PersonPlan:
    body = sample_body(rng)
    look = sample_appearance(rng)
    second = None
    if not crowd and rng.random() < 0.3:
        second = str(rng.choice(ACTIONS, p=_ACTION_WEIGHTS))
    motion = sample_motion(rng, n, action, second, yaw0)
    yaw = motion.angles[:, DOF["yaw"]]
    x, h = integrate_ground_path(motion.speed, yaw, h0, x0, focal, h_range)
    h = h * body.stature
    ground = np.stack([x, horizon + cam * h / body.stature], axis=1)  # (T, 2)
    xy, z = project(pose_points(body, motion.angles), yaw, h, ground)
    return PersonPlan(body=body, look=look, actions=motion.actions, yaw=yaw,
                      face_yaw=yaw + motion.angles[:, DOF["head_yaw"]], height=h, ground=ground, xy=xy, z=z,
                      crowd=crowd)


def plan_video(preset: SynthPreset, rng: np.random.Generator, frames: int) -> VideoPlan:
    """Draw everything that happens in one video (see the module docstring for the order)."""
    w, h = preset.image_size
    canvas_size = (int(round(w * CANVAS_SCALE)), int(round(h * CANVAS_SCALE)))
    mean_h = 0.5 * (preset.height_px[0] + preset.height_px[1])
    scene = make_scene(rng, preset.image_size, int(rng.integers(preset.distractors[0], preset.distractors[1] + 1)),
                       int(rng.integers(preset.clutter[0], preset.clutter[1] + 1)), mean_h)
    camera = camera_path(rng, frames, preset.image_size, canvas_size, preset.camera_pan_px, preset.camera_shake_px,
                         preset.zoom_range)
    zoom = float(np.mean(camera.scale))
    cam = float(rng.uniform(0.45, 0.75))
    view_lo, view_hi = canvas_size[0] / 2 - w / 2 / zoom, canvas_size[0] / 2 + w / 2 / zoom
    h_range = (0.6 * preset.height_px[0] / zoom, 1.15 * preset.height_px[1] / zoom)
    people: list[PersonPlan] = []
    for _ in range(int(rng.integers(preset.people[0], preset.people[1] + 1))):
        action = str(rng.choice(ACTIONS, p=_ACTION_WEIGHTS))
        h0 = float(rng.uniform(*preset.height_px)) / zoom
        if action in LOCOMOTION:
            sign = 1.0 if rng.random() < 0.5 else -1.0
            yaw0 = sign * float(rng.uniform(0.5, 2.6))  # heading right (+) or left (-), seen from any side
            if rng.random() < 0.4:  # start outside the view, on the side opposite its heading
                x0 = view_lo - 0.3 * h0 if sign > 0 else view_hi + 0.3 * h0
            else:
                x0 = float(rng.uniform(view_lo, view_hi))
        else:
            yaw0 = float(np.clip(rng.normal(0.0, 1.1), -np.pi, np.pi))
            x0 = float(rng.uniform(view_lo + 0.1 * w, view_hi - 0.1 * w))
        if people and rng.random() < 0.4:  # stand near someone else: people overlap
            other = people[int(rng.integers(len(people)))]
            x0 = float(other.ground[0, 0] + rng.normal(0.0, 0.3) * other.height[0])
        people.append(_person(rng, frames, action, yaw0, x0, h0, scene.horizon, cam, float(w), h_range, False))
    if rng.random() < preset.crowd_prob:
        cx = float(rng.uniform(view_lo + 0.15 * w, view_hi - 0.15 * w))
        for _ in range(int(rng.integers(3, 7))):
            hc = float(rng.uniform(*CROWD_HEIGHT))
            action = str(rng.choice(["idle", "wave", "turn", "bend"]))
            people.append(_person(rng, frames, action, float(rng.normal(0, 1.2)), cx + rng.normal(0, 1.2) * hc, hc,
                                  scene.horizon, cam, float(w), (hc, hc), True))
    targets = []
    for p in people:
        if not p.crowd:
            mid = p.ground - np.stack([np.zeros(frames), 0.5 * p.height], axis=1)  # (T, 2) canvas
            middle = np.einsum("tij,tj->ti", camera.matrices[:, :, :2], mid) + camera.matrices[:, :, 2]  # (T, 2)
            visible = (middle[:, 0] >= 0) & (middle[:, 0] < w) & (middle[:, 1] >= 0) & (middle[:, 1] < h)
            targets.append(Target(ground=p.ground, height=p.height, visible=visible))
    occluders = plan_occluders(rng, frames, targets, preset.occluder_events, preset.occluder_scale, canvas_size)
    effects = plan_effects(rng, frames, preset.blur_burst_prob, preset.dropout_prob, preset.noise_sigma,
                           preset.jpeg_quality)
    return VideoPlan(preset=preset, frames=frames, scene=scene, camera=camera, people=people, occluders=occluders,
                     effects=effects, vignette=vignette_map(preset.image_size, effects.vignette),
                     noise=noise_bank(rng, preset.image_size))


def _shadow(canvas: Canvas, centre: np.ndarray, height_px: float) -> None:
    """Darken the ground under a person (a soft ellipse; decoration, not recorded in the maps)."""
    f = ellipse(centre, 0.28 * height_px, 0.05 * height_px, np.array([0.0, -1.0]), canvas.size)
    if f is not None:
        region = canvas.image[f.y0: f.y0 + f.alpha.shape[0], f.x0: f.x0 + f.alpha.shape[1]]
        region *= (1.0 - 0.35 * f.alpha)[..., None]


def render_frame(plan: VideoPlan, t: int, rng: np.random.Generator) -> FrameRender:
    """Paint frame ``t`` of ``plan`` (frames must be rendered in order with the same ``rng``)."""
    preset, camera, scene = plan.preset, plan.camera, plan.scene
    canvas = Canvas(view(scene, camera, t, preset.image_size))
    scale = float(camera.scale[t])
    # Far to near: smaller people are further away (ties keep the plan order).
    order = sorted(range(len(plan.people)), key=lambda i: (plan.people[i].height[t] / plan.people[i].body.stature, i))
    for i in order:
        p = plan.people[i]
        _shadow(canvas, camera.apply(t, p.ground[t]), p.height[t] * scale)
    drawn: dict[int, tuple[np.ndarray, np.ndarray, HeadEllipse]] = {}
    for i in order:
        p = plan.people[i]
        xy = camera.apply(t, p.xy[t])  # (P, 2) image pixels
        hp = float(p.height[t] * scale)
        parts, head = draw_person(canvas, xy, p.z[t], p.body, p.look, float(p.yaw[t]), float(p.face_yaw[t]), hp,
                                  scene.light, scene.ambient, owner=i + 1, details=not p.crowd)
        drawn[i] = (xy[:17], joint_orders(parts), head)
    for k, occ in enumerate(plan.occluders):
        draw_occluder(canvas, occ, t, camera, scene.light, scene.ambient, owner=-(k + 1))
    if plan.effects.dropout[t] == TEAR:
        tear_rows(canvas, rng)

    persons, crowd_pts, crowd_h = [], [], []
    for i in sorted(drawn):
        xy, own, head = drawn[i]
        if plan.people[i].crowd:
            crowd_pts.append(xy)
            crowd_h.append(plan.people[i].height[t] * scale)
            continue
        person = annotate_person(xy, own, head, canvas.order, preset.label_margin_px, preset.occlusion_radius_px)
        if person is not None:
            persons.append((i, person))
    ignore = []
    if crowd_pts:
        region = ignore_region(np.concatenate(crowd_pts), 0.3 * max(crowd_h), preset.image_size)
        if region is not None:
            ignore.append(region)
    image = canvas.image.copy()
    jpeg = finish_frame(image, plan.effects, t, camera.image_motion(t, preset.image_size), scene.tint,
                        plan.vignette, plan.noise, rng)
    return FrameRender(t=t, jpeg=jpeg, canvas=canvas, persons=persons, ignore_regions=ignore,
                       joints={i: v[0] for i, v in drawn.items()}, own_orders={i: v[1] for i, v in drawn.items()})


def video_rngs(seed: int, split_code: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The plan and per-frame generators of video ``index`` of a split, from ``(seed, split, index)``."""
    plan_ss, frame_ss = np.random.SeedSequence([seed, split_code, index]).spawn(2)
    return np.random.Generator(np.random.PCG64(plan_ss)), np.random.Generator(np.random.PCG64(frame_ss))


def simulate(preset: SynthPreset, seed: int, split_code: int, index: int, frames: int) -> tuple[
        VideoPlan, Iterator[FrameRender]]:
    """Plan a video and return the plan with a generator over its rendered frames, in order."""
    plan_rng, frame_rng = video_rngs(seed, split_code, index)
    plan = plan_video(preset, plan_rng, frames)
    return plan, (render_frame(plan, t, frame_rng) for t in range(frames))
