"""Inference: predictor parity with `diffpose test`, sources, boxes, streaming window, outputs, rendering, errors."""

from __future__ import annotations

import json
import weakref
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from diffpose.cli import main as cli_main
from diffpose.data.clip_dataset import ClipDataset, FrameReader, gt_items, load_split
from diffpose.data.detections import write_detections
from diffpose.data.posetrack18 import read_posetrack18
from diffpose.data.records import Detection
from diffpose.engine.tester import predict_items
from diffpose.errors import DiffPoseError
from diffpose.estimators import load_estimator
from diffpose.evaluation import evaluate_dirs, evaluate_videos
from diffpose.inference import (
    Boxes,
    DetectionFileBoxes,
    FolderSource,
    PersonPose,
    PipelineOptions,
    PoseTrackSource,
    Predictor,
    StreamingPipeline,
    VideoFileSource,
    draw_poses,
    load_detector,
    open_source,
    sanitize_boxes,
)
from diffpose.inference.sources import FrameSource, SourceFrame
from diffpose.keypoints import POSETRACK18_UNLABELED
from tests.helpers import MICRO, SHARED_DATA

SHARED = SHARED_DATA


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the models are tiny; one thread is as fast and leaves the machine alone
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoints(synth_small, tmp_path_factory) -> dict[str, Path]:
    """Micro DiffPose and baseline checkpoints trained for 2 steps on the small SynthTrack set."""
    out = {}
    for kind in ("diffpose", "baseline"):
        run = tmp_path_factory.mktemp(f"micro_{kind}")
        assert cli_main(["train", "--data", str(synth_small), "--out", str(run), "--no-progress", "--set", *MICRO,
                         "train.max_steps=2", f"model.kind={kind}"]) == 0
        out[kind] = run / "final.pt"
    return out


@pytest.fixture(scope="module")
def val_json(synth_small) -> Path:
    return sorted((synth_small / "annotations" / "val").glob("*.json"))[0]


def _gt_detections(val_json: Path, key: str = "index", frames: set[int] | None = None) -> list[Detection]:
    """The val video's GT boxes as detections keyed by frame index (or real image id), scores 0.9."""
    video = read_posetrack18(val_json)
    out = []
    for i, frame in enumerate(video.frames):
        if frames is not None and i not in frames:
            continue
        for p in frame.persons:
            out.append(Detection(i if key == "index" else frame.image_id, p.box.copy(), 0.9))
    return out


def _persons(path: Path) -> list[list[tuple]]:
    """Per image (in order): the annotations' (track_id, bbox, keypoints, scores, uncertainty)."""
    data = json.loads(path.read_text())
    by_image: dict[int, list[tuple]] = {img["id"]: [] for img in data["images"]}
    for a in data["annotations"]:
        by_image[a["image_id"]].append((a["track_id"], a["bbox"], a["keypoints"], a["scores"], a["uncertainty"]))
    return [by_image[img["id"]] for img in data["images"]]


# --------------------------------------------------------------------------------------------------
# Predictor parity with the test engine
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["diffpose", "baseline"])
def test_test_and_infer_crop_paths_give_the_same_poses_for_the_same_gt_boxes(synth_small, checkpoints, kind):
    """`diffpose test` crops clips with ClipDataset (in a DataLoader); `diffpose infer` with Predictor.crop."""
    estimator = load_estimator(checkpoints[kind])
    videos = load_split(synth_small, "val")
    items = gt_items(videos)
    predictor = Predictor(estimator, "cpu", steps=2, ensemble=3, seed=5, batch_size=len(items))
    with torch.inference_mode():
        expected = predict_items(predictor, videos, synth_small, items)
    dataset = ClipDataset(videos, synth_small, items, predictor.codec, predictor.offsets,
                          estimator.cfg.data.box_enlarge)
    assert dataset[0]["frames"].shape[0] == len(estimator.offsets) == (5 if kind == "diffpose" else 1)
    predictor.reseed()

    reader = FrameReader(synth_small)
    crops = []
    for item in items:
        frames = videos[item.video].frames
        window = [reader(frames[min(max(item.frame + o, 0), len(frames) - 1)].file_name) for o in predictor.offsets]
        crops.append(predictor.crop(window, np.array(item.box)))
    got = predictor.predict_clips(np.stack([c for c, _ in crops]), [m for _, m in crops],
                                  np.array([i.box for i in items]), np.array([i.score for i in items]))
    assert len(got) == len(expected) > 4
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.keypoints, e.keypoints, atol=1e-4, rtol=0)
        np.testing.assert_allclose(g.scores, e.scores, atol=1e-6)
        np.testing.assert_allclose(g.uncertainty, e.uncertainty, atol=1e-4)
    spread = np.concatenate([g.uncertainty for g in got])
    assert (spread > 0).any() if kind == "diffpose" else (spread == 0).all()


def test_predictor_api_on_one_window(checkpoints, val_json):
    predictor = Predictor.from_checkpoint(checkpoints["diffpose"], device="cpu", steps=1, ensemble=2)
    source = PoseTrackSource(val_json)
    frames = [f.image for f in source][2:7]  # the window around the labelled frame 4
    boxes = np.array([p.box for p in source.video.frames[4].persons])
    assert len(boxes) > 1
    poses = predictor.predict(frames, boxes, np.full(len(boxes), 0.5))
    assert len(poses) == len(boxes) and poses[0].keypoints.shape == (17, 2)
    assert all(p.track_id is None and (p.scores <= 0.5 + 1e-9).all() for p in poses)
    # keypoints come back inside (roughly) the enlarged box they were cropped from
    for p, box in zip(poses, boxes):
        cx = box[0] + box[2] / 2
        assert np.abs(p.keypoints[:, 0] - cx).max() <= 0.7 * max(box[2], box[3] * 0.75) + 1
    with pytest.raises(DiffPoseError, match="window of 5 frames"):
        predictor.predict(frames[:3], boxes)
    with pytest.raises(DiffPoseError, match="finite"):
        predictor.predict(frames, np.array([[0, 0, 0, 10.0]]))


# --------------------------------------------------------------------------------------------------
# Sources: a video file and the same frames as a folder
# --------------------------------------------------------------------------------------------------
def _write_video(frames_rgb: list[np.ndarray], path: Path, fps: float = 10.0) -> Path:
    h, w = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames_rgb:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_file_and_its_frames_as_a_folder_give_identical_results(checkpoints, val_json, tmp_path):
    frames = [f.image for f in PoseTrackSource(val_json)]
    video = _write_video(frames, tmp_path / "clip.mp4")
    folder = tmp_path / "clip"
    folder.mkdir()
    decoded = [f.image for f in VideoFileSource(video)]
    assert len(decoded) == len(frames)
    for i, image in enumerate(decoded):  # PNG is lossless: the folder holds exactly the decoded pixels
        cv2.imwrite(str(folder / f"frame{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert [f.name for f in FolderSource(folder)][:3] == ["clip/frame0.png", "clip/frame1.png", "clip/frame2.png"]
    dets = write_detections(_gt_detections(val_json), tmp_path / "dets.json")  # every 4th frame; others propagate
    outs = []
    for name, inp in (("video", video), ("folder", folder)):
        out = tmp_path / f"{name}.json"
        assert cli_main(["infer", str(inp), "-c", str(checkpoints["diffpose"]), "--boxes", str(dets), "--json",
                         str(out), "--steps", "2", "--ensemble", "2", "--batch-size", "3", "--propagate-score", "0",
                         "--no-progress"]) == 0
        outs.append(_persons(out))
    assert outs[0] == outs[1]
    assert len(outs[0]) == len(frames) and all(len(p) > 0 for p in outs[0])


def test_results_come_out_for_every_frame_in_order_with_a_bounded_window(checkpoints, val_json):
    """N frames in -> N results in order; the pipeline never holds more than window + batch frames."""
    real = [f.image for f in PoseTrackSource(val_json)]
    alive: set[int] = set()
    most = [0]

    class Counted(FrameSource):
        name, fps, path = "counted", 25.0, Path("counted")

        def __init__(self, n: int):
            self.num_frames = n

        def __iter__(self):
            for i in range(self.num_frames):
                image = real[i % len(real)].copy()
                alive.add(i)
                weakref.finalize(image, alive.discard, i)
                most[0] = max(most[0], len(alive))
                yield SourceFrame(i, image, f"counted/{i:06d}.jpg", i)

    box = np.array([[100.0, 60.0, 80.0, 160.0]])
    detector = lambda image: [(*box[0], 0.8)]  # noqa: E731
    from diffpose.inference import CallableDetector

    for kind, n in (("diffpose", 40), ("diffpose", 2), ("baseline", 7)):
        predictor = Predictor.from_checkpoint(checkpoints[kind], device="cpu", batch_size=4)
        options = PipelineOptions(max_frames_per_batch=3)
        pipeline = StreamingPipeline(predictor, CallableDetector(detector), options=options)
        most[0] = 0
        results = []
        for r in pipeline.run(Counted(n)):
            results.append(r.index)
        assert results == list(range(n))
        assert pipeline.stats.frames == n and pipeline.stats.persons == n
        bound = len(predictor.offsets) + options.max_frames_per_batch + 1
        assert most[0] <= bound, (kind, most[0], bound)


def test_shared_sample_video_and_folder(checkpoints, tmp_path):
    folder = SHARED / "posetrack18" / "videos" / "000001_mpiinew_test"
    if not folder.is_dir():
        pytest.skip("sample data ../shared/data not available")
    video = VideoFileSource(folder / "000001_mpiinew_test.mp4")
    frames = FolderSource(folder)
    assert video.num_frames == 5 and frames.num_frames == 5 and video.fps == pytest.approx(30.0)
    det = tmp_path / "sample_det.py"
    det.write_text("def detect(image):\n"
                   "    h, w = image.shape[:2]\n"
                   "    return [(w * 0.4, h * 0.2, w * 0.2, h * 0.6, 0.9)]\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        out = tmp_path / "out.json"
        assert cli_main(["infer", str(folder / "000001_mpiinew_test.mp4"), "-c", str(checkpoints["baseline"]),
                         "--detector", "sample_det:detect", "--json", str(out), "--no-progress"]) == 0
    finally:
        sys.path.remove(str(tmp_path))
    assert [len(p) for p in _persons(out)] == [1] * 5


def test_shared_posetrack_sequence_with_its_detection_file(checkpoints, tmp_path):
    root = SHARED / "posetrack18"
    seq, dets = root / "annotations" / "val" / "009473_mpii_test.json", root / "annotations"
    if not seq.is_file():
        pytest.skip("sample data ../shared/data not available")
    dets = dets / "test_posetrack18_human_detections.json"
    gt = read_posetrack18(seq)
    expected = [d for d in json.loads(dets.read_text()) if d["image_id"] == gt.frames[0].image_id and d["score"] >= 0.5]
    out = tmp_path / seq.name
    assert cli_main(["infer", str(seq), "-c", str(checkpoints["baseline"]), "--boxes", str(dets), "--min-box-score",
                     "0.5", "--json", str(out), "--no-progress"]) == 0  # ROOT defaults to posetrack18/
    pred = read_posetrack18(out)
    assert len(pred.frames[0].persons) == len(expected) > 0
    assert pred.frames[0].image_id == gt.frames[0].image_id and pred.vid_id == gt.vid_id
    result = evaluate_videos([(gt, pred)])
    assert result.frames_evaluated == 1


# --------------------------------------------------------------------------------------------------
# Boxes: file, annotations, propagation, detector
# --------------------------------------------------------------------------------------------------
def test_infer_with_gt_boxes_gives_diffpose_test_keypoints_also_for_boxes_reaching_outside(checkpoints, val_json,
                                                                                           synth_small, tmp_path):
    """The whole pipeline (sanitising, batching, tracking, writing) against `diffpose test` on the same boxes:
    the deterministic baseline, every labelled person, including those whose box leaves the image."""
    ckpt = str(checkpoints["baseline"])
    assert cli_main(["infer", str(val_json), "-c", ckpt, "--boxes", "gt", "--no-propagate", "--no-progress",
                     "--json", str(tmp_path / "infer.json")]) == 0
    assert cli_main(["test", "-c", ckpt, "--data", str(synth_small), "--out", str(tmp_path / "test"),
                     "--no-progress", "--device", "cpu"]) == 0
    got = {(a["image_id"], tuple(a["bbox"])): a["keypoints"]
           for a in json.loads((tmp_path / "infer.json").read_text())["annotations"]}
    gt = read_posetrack18(val_json)
    expected = json.loads((tmp_path / "test" / "predictions" / val_json.name).read_text())["annotations"]
    boxes = {(f.image_id, p.id): p.box for f in gt.frames for p in f.persons}
    compared = 0
    for frame in gt.frames:
        if not frame.is_labeled:
            continue
        for person, e in zip(frame.persons, [a for a in expected if a["image_id"] == frame.image_id]):
            g = got[(frame.image_id, tuple(boxes[(frame.image_id, person.id)]))]
            ge, ee = np.array(g).reshape(-1, 3), np.array(e["keypoints"]).reshape(-1, 3)
            shown = ee[:, 2] > 0  # test leaves the never-labelled ears out
            np.testing.assert_allclose(ge[shown, :2], ee[shown, :2], atol=1e-3)
            compared += 1
    assert compared >= 10


def test_boxes_from_annotations_a_detection_file_and_propagation(checkpoints, val_json, tmp_path):
    ckpt = str(checkpoints["diffpose"])
    gt = read_posetrack18(val_json)
    labeled = [i for i, f in enumerate(gt.frames) if f.is_labeled]
    common = ["-c", ckpt, "--no-progress", "--propagate-score", "0"]

    out = tmp_path / "gt.json"
    assert cli_main(["infer", str(val_json), "--boxes", "gt", "--no-propagate", "--json", str(out), *common]) == 0
    persons = _persons(out)
    assert [len(p) for p in persons] == [len(f.persons) for f in gt.frames]
    outside = 0
    for i in labeled:  # the GT boxes as given, also those reaching outside the 384x288 image
        for (_, bbox, *_), person in zip(persons[i], gt.frames[i].persons):
            np.testing.assert_allclose(bbox, person.box, atol=1e-9)
            outside += bool(min(person.box[:2]) < 0 or person.box[0] + person.box[2] > 384
                            or person.box[1] + person.box[3] > 288)
    assert outside > 0  # boxes that clipping to the image would change

    dets = _gt_detections(val_json, key="image_id")
    dets[0].score = 0.1  # below --min-box-score
    det_file = write_detections(dets, tmp_path / "dets.json")
    out = tmp_path / "det.json"
    assert cli_main(["infer", str(val_json), "--boxes", str(det_file), "--min-box-score", "0.5", "--no-propagate",
                     "--json", str(out), *common]) == 0
    counts = [len(p) for p in _persons(out)]
    assert counts[0] == len(gt.frames[0].persons) - 1 and counts[4] == len(gt.frames[4].persons)
    assert counts[1] == counts[2] == counts[3] == 0  # frames the file does not list stay empty without propagation

    first_only = write_detections(_gt_detections(val_json, "image_id", {0}), tmp_path / "first.json")
    for boxes, every, consulted in ((str(first_only), 1, {0}), ("gt", 4, set(range(0, len(gt.frames), 4)))):
        out = tmp_path / f"prop{every}.json"
        assert cli_main(["infer", str(val_json), "--boxes", boxes, "--detect-every", str(every), "--json", str(out),
                         *common]) == 0
        counts = [len(p) for p in _persons(out)]
        for i, n in enumerate(counts):  # consulted frames: the source's boxes; others: everyone carried on
            assert n == (len(gt.frames[i].persons) if i in consulted else counts[i - 1]), (boxes, i, counts)
        assert counts[1] > 0


def test_detector_callable_gets_read_only_rgb_frames_and_bad_boxes_are_dropped(checkpoints, val_json, tmp_path,
                                                                                 monkeypatch):
    (tmp_path / "userdet.py").write_text(
        "import numpy as np\n"
        "seen = []\n"
        "def detect(image):\n"
        "    seen.append((image.shape, image.dtype.name, image.flags.writeable, int(image[..., 0].sum())))\n"
        "    return [(50, 40, 80, 160, 0.9), (float('nan'), 0, 10, 10, 0.9), (500, 500, 30, 30, 0.8),\n"
        "            (-20, -20, 60, 100, 0.7), (10, 10, 0, 50, 0.9)]\n"
        "def broken(image):\n"
        "    return [(1, 2, 3)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    provider = load_detector("userdet:detect")
    source = PoseTrackSource(val_json)
    frame = next(iter(source))
    boxes = provider(frame)
    import userdet

    shape, dtype, writeable, red = userdet.seen[0]
    assert shape == (288, 384, 3) and dtype == "uint8" and not writeable
    bgr = cv2.imread(str(source.root / frame.name))
    assert red == int(bgr[..., 2].sum())  # RGB order: channel 0 is red
    kept, dropped = sanitize_boxes(boxes, frame.size)
    assert dropped == 3  # NaN, outside the image, zero width
    np.testing.assert_allclose(kept.xywh, [[50, 40, 80, 160], [-20, -20, 60, 100]])  # partly outside: whole
    predictor = Predictor.from_checkpoint(checkpoints["baseline"], device="cpu")
    pipeline = StreamingPipeline(predictor, provider)
    results = list(pipeline.run(source))
    assert [len(r.persons) for r in results] == [2] * len(results) and pipeline.stats.dropped_boxes == 3 * len(results)
    with pytest.raises(DiffPoseError, match=r"userdet:broken.*\(x, y, w, h, score\)"):
        list(StreamingPipeline(predictor, load_detector("userdet:broken")).run(source))
    with pytest.raises(DiffPoseError, match="no callable"):
        load_detector("userdet:missing")
    with pytest.raises(DiffPoseError, match="MODULE:FUNCTION"):
        load_detector("userdet")


def test_detection_file_keys_frames_by_index_or_file_name(tmp_path):
    dets = [Detection(0, np.array([1.0, 2, 3, 4]), 0.9), Detection("b.png", np.array([5.0, 6, 7, 8]), 0.8),
            Detection(2, np.array([1.0, 1, 1, 1]), 0.9, category_id=2)]
    provider = DetectionFileBoxes(write_detections(dets, tmp_path / "d.json"))
    img = np.zeros((4, 4, 3), np.uint8)
    assert provider(SourceFrame(0, img, "f/a.png", 0)).xywh.tolist() == [[1, 2, 3, 4]]
    assert provider(SourceFrame(1, img, "f/b.png", 1)).xywh.tolist() == [[5, 6, 7, 8]]
    assert len(provider(SourceFrame(2, img, "f/c.png", 2))) == 0  # listed, but not a person: "nobody here"
    assert provider(SourceFrame(3, img, "f/d.png", 3)) is None  # not listed: no information


# --------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------
def test_posetrack_json_is_read_by_the_evaluator_and_follows_poseval_rules(checkpoints, synth_small, val_json,
                                                                           tmp_path):
    pred_dir = tmp_path / "pred"
    coco = tmp_path / "coco.json"
    assert cli_main(["infer", str(val_json), "-c", str(checkpoints["diffpose"]), "--boxes", "gt", "--json",
                     str(pred_dir / val_json.name), "--coco", str(coco), "--no-progress", "--ensemble", "2"]) == 0
    result = evaluate_dirs(synth_small / "annotations" / "val", pred_dir)
    assert result.frames_evaluated == sum(f.is_labeled for f in read_posetrack18(val_json).frames)
    data = json.loads((pred_dir / val_json.name).read_text())
    gt = json.loads(val_json.read_text())
    assert [i["id"] for i in data["images"]] == [i["id"] for i in gt["images"]]
    assert [i["file_name"] for i in data["images"]] == [i["file_name"] for i in gt["images"]]
    assert data["categories"][0]["keypoints"][3:5] == ["left_ear", "right_ear"]
    for a in data["annotations"]:
        kps = np.array(a["keypoints"]).reshape(17, 3)
        assert (kps[list(POSETRACK18_UNLABELED)] == 0).all()
        assert np.allclose(kps[:, 2], a["scores"]) and 0 <= a["track_id"] < 10000 and len(a["uncertainty"]) == 17
    for img in data["images"]:
        ids = [a["track_id"] for a in data["annotations"] if a["image_id"] == img["id"]]
        assert len(ids) == len(set(ids))
    results = json.loads(coco.read_text())
    assert len(results) == len(data["annotations"]) and {"image_id", "keypoints", "score", "track_id"} <= set(
        results[0])


def test_render_draws_uncertainty_circles_and_writes_video_and_frames(checkpoints, val_json, tmp_path):
    image = np.full((120, 160, 3), 40, np.uint8)
    kp = np.tile([[80.0, 60.0]], (17, 1)) + np.arange(17)[:, None] * [2.0, 0.0]
    person = PersonPose(kp, np.full(17, 0.9), np.full(17, 15.0), np.array([70.0, 30, 50, 70]), track_id=3)
    drawn = draw_poses(image, [person])
    diff = (drawn != cv2.cvtColor(image, cv2.COLOR_RGB2BGR)).any(axis=2)
    assert diff[60, 63:66].any() and not diff[60, 50:62].any()  # the uncertainty circle: 15 px left of joint 0
    faint = draw_poses(image, [PersonPose(kp, np.full(17, 0.05), np.full(17, 15.0), np.array([70.0, 30, 50, 70]),
                                          track_id=3)])
    strong_px, faint_px = np.abs(drawn[60, 90].astype(int) - 40).max(), np.abs(faint[60, 90].astype(int) - 40).max()
    assert 0 < faint_px < 0.5 * strong_px  # joint 5's dot, drawn at 30% opacity when its score is low

    out, frames = tmp_path / "out" / "poses.mp4", tmp_path / "frames"
    assert cli_main(["infer", str(val_json), "-c", str(checkpoints["baseline"]), "--boxes", "gt", "--render",
                     str(out), "--render-frames", str(frames), "--fps", "12", "--no-progress"]) == 0
    cap = cv2.VideoCapture(str(out))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    assert n == 12 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 384
    cap.release()
    assert sorted(p.name for p in frames.iterdir()) == [f"{i:06d}.png" for i in range(12)]
    assert sorted(p.name for p in out.parent.iterdir()) == ["poses.mp4"]  # no temporary file left behind


# --------------------------------------------------------------------------------------------------
# Errors: one line, naming the file; nothing written, nothing the user gave modified
# --------------------------------------------------------------------------------------------------
def test_bad_inputs_give_one_line_errors(checkpoints, val_json, tmp_path, capsys):
    ckpt = str(checkpoints["baseline"])
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    (tmp_path / "noimages").mkdir()
    (tmp_path / "noimages" / "notes.txt").write_text("x")
    (tmp_path / "badframes").mkdir()
    cv2.imwrite(str(tmp_path / "badframes" / "0.png"), np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "badframes" / "1.png").write_bytes(b"not a png")
    cases = [
        (tmp_path / "missing.mp4", ["--detector", "x:y"], "does not exist"),
        (tmp_path / "empty.mp4", ["--detector", "x:y"], "empty"),
        (tmp_path / "junk.mp4", ["--detector", "x:y"], "junk.mp4"),
        (tmp_path / "noimages", ["--detector", "x:y"], "no image files"),
        (tmp_path / "badframes", ["--boxes", str(tmp_path / "none.json")], "none.json"),
        (tmp_path / "badframes", ["--boxes", "gt"], "needs annotations"),
    ]
    for inp, extra, message in cases:
        code = cli_main(["infer", str(inp), "-c", ckpt, *extra, "--json", str(tmp_path / "o.json"), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and len(err.splitlines()) == 1, (inp, err)
    dets = write_detections([Detection(0, np.array([2.0, 2, 10, 10]), 0.9)], tmp_path / "d.json")
    render = tmp_path / "r.mp4"
    code = cli_main(["infer", str(tmp_path / "badframes"), "-c", ckpt, "--boxes", str(dets), "--json",
                     str(tmp_path / "o.json"), "--render", str(render), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "1.png" in err and "cannot decode" in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".json", ".mp4") and p.name != "junk.mp4") == [
        "d.json", "empty.mp4"]  # neither the JSON nor the (temporary) video was left behind
    before = val_json.read_bytes()
    code = cli_main(["infer", str(val_json), "-c", ckpt, "--boxes", "gt", "--json", str(val_json), "--no-progress"])
    assert code == 2 and "refusing" in capsys.readouterr().err and val_json.read_bytes() == before


def test_sanitize_drops_and_counts_but_never_clips():
    boxes = Boxes(np.array([[-10.0, -10, 30, 30], [np.inf, 0, 5, 5], [10, 10, 5, 5], [90, 90, 50, 50],
                            [100, 10, 5, 5], [-20, 10, 20, 5], [10, 10, 0, 5], [10, 10, -5, 5]]),
                  np.array([0.9, 0.9, np.nan, 0.5, 0.9, 0.9, 0.9, 0.9]), "detector")
    kept, dropped = sanitize_boxes(boxes, (100, 100))
    assert dropped == 6  # not finite (2), touching the image only at its edge (2), no area (2)
    np.testing.assert_allclose(kept.xywh, [[-10, -10, 30, 30], [90, 90, 50, 50]])  # partly outside: as given
    np.testing.assert_allclose(kept.scores, [0.9, 0.5])


def test_open_source_picks_the_kind(val_json, tmp_path):
    assert isinstance(open_source(val_json), PoseTrackSource)
    assert isinstance(open_source(val_json.parents[2] / "images" / "val" / val_json.stem), FolderSource)
    with pytest.raises(DiffPoseError, match="--root"):
        open_source(val_json, root=tmp_path)

