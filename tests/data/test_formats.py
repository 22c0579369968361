"""Readers and writers of PoseTrack17, Bonn, COCO and detection files, and format detection."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from diffpose.data.bonn import bonn_from_mat, read_bonn_mat, write_bonn_mat
from diffpose.data.coco import read_coco, read_coco_results, write_coco, write_coco_results
from diffpose.data.detections import detections_by_image, read_detections, write_detections
from diffpose.data.formats import detect_format, read_annotations, write_annotations
from diffpose.data.posetrack17 import (
    corners_from_head_box,
    head_box_from_corners,
    load_mat,
    read_posetrack17,
    write_posetrack17,
)
from diffpose.data.posetrack18 import read_posetrack18, read_posetrack18_videos, write_posetrack18_videos
from diffpose.data.records import Detection, Frame, Person, Video
from diffpose.errors import DataFormatError
from diffpose.keypoints import COCO, POSETRACK18
from tests.helpers import SHARED_DATA

requires_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="sample data ../shared/data not available")
PT18_VAL = sorted((SHARED_DATA / "posetrack18" / "annotations" / "val").glob("*.json"))
BONN_MAT = SHARED_DATA / "bonn_multiperson_posetrack" / "annolist" / "test" / "annolist.mat"
J = POSETRACK18.index


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


# --------------------------------------------------------------------------------------------------
# Hand-built PoseTrack17 input: every scalar in a one-element list, as jsonlab writes it
# --------------------------------------------------------------------------------------------------
def _pt17_point(pid: int, x: float, y: float, vis: int = 1, **more: float) -> dict:
    return {"id": [pid], "x": [x], "y": [y], "is_visible": [vis], **{k: [v] for k, v in more.items()}}


def _pt17_data() -> dict:
    full = {"x1": [10], "y1": [20], "x2": [50], "y2": [80], "track_id": [3], "foo": [7],
            "annopoints": [{"point": [_pt17_point(12, 30.5, 70, blur=2), _pt17_point(13, 31, 60, 0),
                                      _pt17_point(0, 100, 400)]}]}
    scored = {"track_id": [4], "score": [0.5],
              "annopoints": [{"point": [_pt17_point(14, 5, 6, score=0.25), _pt17_point(9, 7, 8)]}]}
    rects = [full, {"track_id": [5]}, {"annopoints": []}, {"annopoints": [{}]},
             {"track_id": [6], "annopoints": [{"point": []}]}, scored]
    region = {"point": [{"x": [0], "y": [0]}, {"x": [10.5], "y": [0]}, {"x": [10], "y": [10]}]}
    return {"annolist": [
        {"image": [{"name": "images/bonn/000001_bonn/00000001.jpg"}], "imgnum": [1], "is_labeled": [1],
         "annorect": rects, "ignore_regions": [region]},
        {"image": [{"name": "images/bonn/000001_bonn/00000002.jpg"}], "imgnum": [2], "is_labeled": [0],
         "annorect": []},
    ]}  # fmt: skip


def _pt17_mat(path: Path) -> None:
    """The same content as the official ``.mat`` files store it: bare scalars and struct arrays."""
    frames = np.zeros((1, 2), dtype=[("image", "O"), ("imgnum", "O"), ("is_labeled", "O"), ("annorect", "O"),
                                     ("ignore_regions", "O")])  # a 1x2 MATLAB struct array
    json_frames = _pt17_data()["annolist"]

    def bare(value: object) -> object:  # undo jsonlab's wrapping; lists of structs -> cell arrays
        if isinstance(value, dict):
            return {k: bare(v) for k, v in value.items()}
        if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], dict):
            return value[0]
        if isinstance(value, list):
            cells = np.empty(len(value), dtype=object)
            cells[:] = [bare(v) for v in value]
            return cells
        return value

    for i, entry in enumerate(json_frames):
        for key in frames.dtype.names:
            frames[0, i][key] = bare(entry.get(key, []))
    scipy.io.savemat(path, {"annolist": frames})


def test_posetrack17_json_values_by_hand(tmp_path: Path) -> None:
    video = read_posetrack17(_write(tmp_path, "seq.json", _pt17_data()))
    assert video.name == "seq" and video.layout == POSETRACK18 and len(video.frames) == 2
    f0, f1 = video.frames
    assert f0.file_name.endswith("00000001.jpg") and f0.is_labeled and not f1.is_labeled
    assert f0.extra == {"imgnum": [1]} and f1.frame_index == 1 and f1.persons == []
    np.testing.assert_array_equal(f0.ignore_regions[0], [[0, 0], [10.5, 0], [10, 10]])
    full, no_ap, empty_ap, empty_struct, no_points, scored = f0.persons
    np.testing.assert_array_equal(full.head_box, [10, 20, 40, 60])  # x2 - x1, y2 - y1
    assert full.track_id == 3 and full.score is None and full.extra["foo"] == [7]
    assert full.extra["point_extra"] == {"blur": [None, [2]] + [None] * 15}  # unknown point keys, per joint
    # poseval id 12 (neck) -> head_bottom, 13 (nose) -> nose, 0 (right_ankle) -> right_ankle
    assert np.flatnonzero(full.present).tolist() == sorted([J("head_bottom"), J("nose"), J("right_ankle")])
    np.testing.assert_array_equal(full.keypoints[J("head_bottom")], [30.5, 70])
    assert full.visibility[J("nose")] == 0 and full.visibility[J("right_ankle")] == 1
    assert full.scores is None  # no point has a score
    assert [p.pose_annotated for p in f0.persons] == [True, False, False, False, True, True]
    assert not no_ap.present.any() and no_points.track_id == 6 and not no_points.present.any()
    assert scored.score == 0.5 and scored.scores[J("head_top")] == 0.25
    assert np.isnan(np.delete(scored.scores, J("head_top"))).all()  # NaN where a point has no score
    assert not full.present[[J("left_ear"), J("right_ear")]].any()


@pytest.mark.parametrize("suffix", [".json", ".mat"])
def test_posetrack17_round_trip(tmp_path: Path, suffix: str) -> None:
    video = read_posetrack17(_write(tmp_path, "seq.json", _pt17_data()))
    again = read_posetrack17(write_posetrack17(video, tmp_path / "out" / f"seq{suffix}"))
    assert again == video
    assert read_posetrack17(write_posetrack17(again, tmp_path / "out2" / f"seq{suffix}")) == video


def test_posetrack17_mat_reads_like_json(tmp_path: Path) -> None:
    _pt17_mat(tmp_path / "seq.mat")
    from_mat = read_posetrack17(tmp_path / "seq.mat")
    assert from_mat == read_posetrack17(_write(tmp_path, "seq.json", _pt17_data()))
    assert detect_format(tmp_path / "seq.mat") == "posetrack17"


def test_head_box_corners_are_exact_where_plain_addition_is_not() -> None:
    x1, x2 = 311 + 2.0**-43, 1335 + 2.0**-42  # x2 - x1 rounds to 1024; x1 + 1024 rounds back to 1335
    box = head_box_from_corners(x1, 0.0, x2, 1.0)
    assert (x1 + box[2]) - x1 != box[2]  # the naive writer would drift by one ulp
    assert np.array_equal(head_box_from_corners(*corners_from_head_box(box)), box)


def _pt17_representable(video: Video) -> Video:
    """``video`` without what PoseTrack17 cannot store (ears, body box, ids, size, occlusion, categories)."""
    video = copy.deepcopy(video)
    video.categories, video.vid_id = None, None
    for frame in video.frames:
        frame.image_id, frame.size = None, None
        for p in frame.persons:
            p.box, p.id, p.occluded = None, None, None
            ears = [J("left_ear"), J("right_ear")]
            p.present[ears], p.keypoints[ears], p.visibility[ears] = False, 0.0, 0.0
    return video


@requires_shared_data
@pytest.mark.parametrize("path", PT18_VAL, ids=lambda p: p.stem)
def test_posetrack18_samples_survive_posetrack17(tmp_path: Path, path: Path) -> None:
    video = read_posetrack18(path)
    expected = _pt17_representable(video)
    assert read_posetrack17(write_posetrack17(video, tmp_path / f"{video.name}.json")) == expected
    from_mat = read_posetrack17(write_posetrack17(video, tmp_path / f"{video.name}.mat"))
    for frame in [*from_mat.frames, *expected.frames]:  # .mat wraps scalars in extras: compare the rest
        frame.extra = {}
        for p in frame.persons:
            p.extra = {}
    assert from_mat == expected


BAD_PT17 = [
    ({"annolist": {"image": 1}}, "annolist[0].image", "expected a list"),
    ({"annolist": [{"annorect": []}]}, "annolist[0].image", "missing required key"),
    ({"annolist": [{"image": [{"name": [3]}]}]}, "annolist[0].image[0].name", "expected a string"),
    ({"frames": []}, "annolist", "missing required key"),
]


@pytest.mark.parametrize("point, field, message", [
    ({"id": [1], "x": ["a"], "y": [2]}, "[0].x", "expected a finite number"),
    ({"id": [1], "x": [1, 2], "y": [2]}, "[0].x", "one-element list"),
    ({"id": [15], "x": [1], "y": [2]}, "[0].id", "poseval joint id 0..14"),
    ({"id": [1.5], "x": [1], "y": [2]}, "[0].id", "expected an integer"),
    ({"x": [1], "y": [2]}, "[0].id", "missing required key"),
    ({"id": [1], "x": [1], "y": [2], "is_visible": ["yes"]}, "[0].is_visible", "finite number"),
])  # fmt: skip
def test_posetrack17_bad_points_name_file_and_field(tmp_path: Path, point: dict, field: str, message: str) -> None:
    data = {"annolist": [{"image": [{"name": "a.jpg"}], "annorect": [{"annopoints": [{"point": [point]}]}]}]}
    path = _write(tmp_path, "bad.json", data)
    with pytest.raises(DataFormatError, match=message) as e:
        read_posetrack17(path)
    assert e.value.path == str(path) and e.value.field == "annolist[0].annorect[0].annopoints[0].point" + field


def test_posetrack17_bad_files(tmp_path: Path) -> None:
    for data, field, message in BAD_PT17:
        with pytest.raises(DataFormatError, match=message) as e:
            read_posetrack17(_write(tmp_path, "bad.json", data))
        assert e.value.field == field
    rect = {"x1": [1], "y1": [2], "x2": [3], "annopoints": [{"point": [_pt17_point(1, 1, 1), _pt17_point(1, 2, 2)]}]}
    with pytest.raises(DataFormatError, match="head box needs all") as e:
        read_posetrack17(_write(tmp_path, "bad.json", {"annolist": [{"image": [{"name": "a"}], "annorect": [rect]}]}))
    assert e.value.field == "annolist[0].annorect[0].y2"
    del rect["x1"], rect["y1"], rect["x2"]
    with pytest.raises(DataFormatError, match="listed twice"):
        read_posetrack17(_write(tmp_path, "bad.json", {"annolist": [{"image": [{"name": "a"}], "annorect": [rect]}]}))
    for text, message in [("", "file is empty"), ('{"annolist": [', "invalid JSON"), ("[1, 2]", "expected an object")]:
        with pytest.raises(DataFormatError, match=message):
            read_posetrack17(_write(tmp_path, "bad.json", text))
    for raw, message in [(b"", "file is empty"), (b"not a mat file at all" * 10, "cannot read as a MATLAB")]:
        (tmp_path / "bad.mat").write_bytes(raw)
        with pytest.raises(DataFormatError, match=message) as e:
            read_posetrack17(tmp_path / "bad.mat")
        assert e.value.path == str(tmp_path / "bad.mat")


def test_posetrack17_writer_refuses_what_it_cannot_store(tmp_path: Path) -> None:
    person = Person.empty(17, pose_annotated=False)
    person.present[0] = True
    video = Video(name="v", frames=[Frame(file_name="a.jpg", frame_index=0, persons=[person])])
    with pytest.raises(DataFormatError, match="pose_annotated is False"):
        write_posetrack17(video, tmp_path / "v.json")
    with pytest.raises(DataFormatError, match="posetrack18 layout"):
        write_posetrack17(Video(name="v", layout=COCO), tmp_path / "v.json")
    assert not (tmp_path / "v.json").exists()


# --------------------------------------------------------------------------------------------------
# Bonn multi-person .mat
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bonn_raw() -> dict:
    if not BONN_MAT.is_file():
        pytest.skip("sample data ../shared/data not available")
    return load_mat(BONN_MAT)


@requires_shared_data
def test_bonn_counts_and_joint_mapping(bonn_raw: dict) -> None:
    videos = bonn_from_mat(bonn_raw, BONN_MAT)
    assert len(videos) == 30 and sum(len(v.frames) for v in videos) == 1566
    video = next(v for v in videos if v.name == "060470979")
    assert len(video.frames) == 41 and all(len(f.persons) == 4 and f.is_labeled for f in video.frames)
    persons = [p for f in video.frames for p in f.persons]
    assert sum(int(p.present.sum()) for p in persons) == 2296 == 4 * 41 * 14
    assert sum(int(((p.visibility == 0) & p.present).sum()) for p in persons) == 153
    assert not any(p.present[[J("nose"), J("left_ear"), J("right_ear")]].any() for p in persons)
    assert video.frames[40].file_name == "videos/060470979/00041.jpg"
    assert [p.track_id for p in video.frames[0].persons] == [0, 1, 2, 3]
    raw = next(e for e in bonn_raw["annolist"] if e.name == "060470979").annopoints[2, 5]  # person 2, frame 5
    person = video.frames[5].persons[2]
    for mpii_id, joint in [(8, "head_bottom"), (9, "head_top"), (13, "left_shoulder"), (0, "right_ankle")]:
        point = next(q for q in raw.point if q.id == mpii_id)
        np.testing.assert_array_equal(person.keypoints[J(joint)], [point.x, point.y])
        assert person.visibility[J(joint)] == point.is_visible
        assert person.extra["is_truncated"][J(joint)] == point.is_truncated
    x1, y1, x2, y2 = raw.head_rect
    np.testing.assert_array_equal(person.head_box, [x1, y1, x2 - x1, y2 - y1])


@requires_shared_data
def test_bonn_one_video_round_trip_and_selection(tmp_path: Path, bonn_raw: dict) -> None:
    (video,) = bonn_from_mat(bonn_raw, BONN_MAT, video="060470979")
    assert read_bonn_mat(write_bonn_mat([video], tmp_path / "one.mat")) == [video]
    assert read_annotations(tmp_path / "one.mat") == [video]
    with pytest.raises(DataFormatError, match="no video named 'nope'"):
        bonn_from_mat(bonn_raw, BONN_MAT, video="nope")


@pytest.mark.slow
@requires_shared_data
def test_bonn_whole_file_round_trip(tmp_path: Path, bonn_raw: dict) -> None:  # ~25 s in savemat
    videos = bonn_from_mat(bonn_raw, BONN_MAT)
    assert read_bonn_mat(write_bonn_mat(videos, tmp_path / "all.mat")) == videos


def _bonn_cell(points: list[tuple[int, float, float, int]], head: list[float] | None = None) -> dict:
    cells = np.empty(len(points), dtype=object)
    cells[:] = [{"x": x, "y": y, "id": i, "is_visible": v, "is_truncated": 0} for i, x, y, v in points]
    return {"point": cells} if head is None else {"point": cells, "head_rect": np.array(head)}


def test_bonn_hand_built_file(tmp_path: Path) -> None:
    grid = np.empty((2, 3), dtype=object)  # 2 persons x 3 frames
    for p in range(2):
        for f in range(3):
            grid[p, f] = np.zeros((1, 0))  # person not in the frame
    grid[0, 0] = _bonn_cell([(8, 5.0, 6.0, 1), (6, 7.0, 8.0, 0)], head=[1, 2, 4, 6])  # 6 = pelvis, no PT18 joint
    grid[1, 2] = _bonn_cell([(15, 9.5, 1.5, 0)])
    scipy.io.savemat(tmp_path / "b.mat", {"annolist": np.array([{"name": "vid", "num_frames": 3, "num_persons": 2,
                                                                  "annopoints": grid}], dtype=object)})
    (video,) = read_bonn_mat(tmp_path / "b.mat")
    assert [len(f.persons) for f in video.frames] == [1, 0, 1]
    assert [f.is_labeled for f in video.frames] == [True, False, True]
    first, last = video.frames[0].persons[0], video.frames[2].persons[0]
    assert first.track_id == 0 and last.track_id == 1 and last.head_box is None
    np.testing.assert_array_equal(first.head_box, [1, 2, 3, 4])
    assert np.flatnonzero(first.present).tolist() == [J("head_bottom")]
    assert first.extra["unmapped_points"] == [{"x": 7.0, "y": 8.0, "id": 6, "is_visible": 0, "is_truncated": 0}]
    np.testing.assert_array_equal(last.keypoints[J("left_wrist")], [9.5, 1.5])
    assert read_bonn_mat(write_bonn_mat([video], tmp_path / "c.mat")) == [video]
    grid[0, 1] = _bonn_cell([(8, 1.0, 1.0, 1), (8, 2.0, 2.0, 1)])
    scipy.io.savemat(tmp_path / "d.mat", {"annolist": np.array([{"name": "vid", "num_frames": 2, "num_persons": 2,
                                                                  "annopoints": grid}], dtype=object)})
    with pytest.raises(DataFormatError, match="expected 2 x 2 cells") as e:
        read_bonn_mat(tmp_path / "d.mat")
    assert e.value.field == "annolist[0].annopoints"
    video.frames[0].persons[0].track_id = None
    with pytest.raises(DataFormatError, match="track_id"):
        write_bonn_mat([video], tmp_path / "e.mat")


# --------------------------------------------------------------------------------------------------
# Every annotation / detection sample: read -> write -> read is lossless
# --------------------------------------------------------------------------------------------------
@requires_shared_data
@pytest.mark.parametrize("name", ["posetrack18/annotations/test_posetrack18_val.json",
                                  "jhmdb/test_jhmdb_sub1.json", *(str(p.relative_to(SHARED_DATA)) for p in PT18_VAL)])
def test_posetrack18_samples_round_trip(tmp_path: Path, name: str) -> None:
    videos = read_posetrack18_videos(SHARED_DATA / name)
    assert read_posetrack18_videos(write_posetrack18_videos(videos, tmp_path / "out.json")) == videos
    assert detect_format(SHARED_DATA / name) == "posetrack18" and read_annotations(SHARED_DATA / name) == videos
    if name.startswith("jhmdb"):  # 3 frames of 3 different clips: 3 videos of 15 joints
        assert len(videos) == 3 and videos[0].layout.num_joints == 15 and videos[0].layout.name == "custom"


@requires_shared_data
@pytest.mark.parametrize("name", ["coco/test_coco.json", "coco/test_coco_wholebody.json", "mpii/test_mpii_trb.json"])
def test_coco_samples_round_trip(tmp_path: Path, name: str) -> None:
    video = read_coco(SHARED_DATA / name)
    assert read_coco(write_coco(video, tmp_path / f"{video.name}.json")) == video
    assert detect_format(SHARED_DATA / name) == "coco" and read_annotations(SHARED_DATA / name) == [video]


@requires_shared_data
def test_coco_sample_values() -> None:
    raw = json.loads((SHARED_DATA / "coco" / "test_coco.json").read_text())
    video = read_coco(SHARED_DATA / "coco" / "test_coco.json")
    assert video.layout == COCO and video.name == "test_coco" and set(video.extra) == {"info", "licenses"}
    assert [f.image_id for f in video.frames] == [img["id"] for img in raw["images"]]
    assert video.frames[0].size == (640, 425) and all(f.is_labeled for f in video.frames)
    persons = {p.id: p for f in video.frames for p in f.persons}
    assert len(persons) == 14
    for ann in raw["annotations"]:
        person, v = persons[ann["id"]], np.array(ann["keypoints"][2::3])
        np.testing.assert_array_equal(person.visibility, v)
        np.testing.assert_array_equal(person.present, v > 0)
        assert int(person.present.sum()) == ann["num_keypoints"]
        assert person.extra["segmentation"] == ann["segmentation"] and person.extra["area"] == ann["area"]
    assert {2, 1, 0} <= set(np.concatenate([p.visibility for p in persons.values()]).tolist())


@requires_shared_data
def test_coco_partition_sample_is_refused_clearly() -> None:
    path = SHARED_DATA / "coco" / "test_keypoint_partition_metric.json"  # 17 names, 133 keypoints
    with pytest.raises(DataFormatError, match="expected 51 numbers, got 399") as e:
        read_coco(path)
    assert e.value.field == "annotations[0] (id 442619).keypoints"


@requires_shared_data
@pytest.mark.parametrize("name, count", [("coco/test_coco_det_AP_H_56.json", 118),
                                         ("posetrack18/annotations/test_posetrack18_human_detections.json", 278)])
def test_detection_samples_round_trip(tmp_path: Path, name: str, count: int) -> None:
    dets = read_detections(SHARED_DATA / name)
    raw = json.loads((SHARED_DATA / name).read_text())
    assert len(dets) == count and dets[0].box.tolist() == raw[0]["bbox"] and dets[0].score == raw[0]["score"]
    assert read_detections(write_detections(dets, tmp_path / "d.json")) == dets
    by_image = detections_by_image(dets, min_score=0.5)
    assert sum(map(len, by_image.values())) == sum(d["score"] >= 0.5 for d in raw)
    assert detect_format(SHARED_DATA / name) == "detections"
    with pytest.raises(DataFormatError, match="read_detections"):
        read_annotations(SHARED_DATA / name)


@requires_shared_data
def test_mpii_single_image_json_is_reported_unsupported() -> None:
    with pytest.raises(DataFormatError, match="MPII single-image JSON"):
        read_annotations(SHARED_DATA / "mpii" / "test_mpii.json")


# --------------------------------------------------------------------------------------------------
# COCO, results, detections: hand-built cases
# --------------------------------------------------------------------------------------------------
def _coco_data() -> dict:
    kps = [0] * 51
    kps[0:3] = [10, 20, 2]  # nose visible
    kps[15:18] = [30, 40, 1]  # left_shoulder labelled, not visible
    return {"images": [{"id": 7, "file_name": "a.jpg", "width": 64, "height": 48}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "keypoints": kps, "bbox": [1, 2, 3, 4]},
                            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5]}],
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO.joints), "skeleton": []}]}


def test_coco_hand_built_and_fill_missing(tmp_path: Path) -> None:
    video = read_coco(_write(tmp_path, "c.json", _coco_data()))
    kp, box_only = video.frames[0].persons
    assert np.flatnonzero(kp.present).tolist() == [0, 5] and kp.visibility[[0, 5]].tolist() == [2, 1]
    assert not box_only.pose_annotated and video.frames[0].size == (64, 48)
    plain = json.loads(write_coco(video, tmp_path / "plain.json").read_text())["annotations"][0]
    assert "iscrowd" not in plain and "num_keypoints" not in plain
    filled = json.loads(write_coco(video, tmp_path / "f.json", fill_missing=True).read_text())["annotations"]
    assert (filled[0]["num_keypoints"], filled[0]["area"], filled[0]["iscrowd"]) == (2, 12, 0)
    assert "keypoints" not in filled[1] and filled[1]["area"] == 25
    kp.visibility[0] = 0.0  # present but v = 0: COCO would read it as absent
    with pytest.raises(DataFormatError, match="v <= 0"):
        write_coco(video, tmp_path / "x.json")


@pytest.mark.parametrize("mutate, field, message", [
    (lambda d: d["annotations"][0].update(keypoints=[1, 2, 3]), "annotations[0] (id 1).keypoints", "expected 51"),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(4, "x"), "annotations[0] (id 1).keypoints", "numbers"),
    (lambda d: d["annotations"][0].update(image_id=99), "annotations[0].image_id", "not in 'images'"),
    (lambda d: d["images"].append(dict(d["images"][0])), "images[1].id", "duplicate image id"),
    (lambda d: d.pop("images"), "images", "missing required key"),
    (lambda d: d["images"][0].update(width="wide"), "images[0].width", "expected an integer"),
])  # fmt: skip
def test_coco_bad_files(tmp_path: Path, mutate, field: str, message: str) -> None:
    data = _coco_data()
    mutate(data)
    path = _write(tmp_path, "bad.json", data)
    with pytest.raises(DataFormatError, match=message) as e:
        read_coco(path)
    assert e.value.path == str(path) and e.value.field == field


def test_coco_results_round_trip_and_errors(tmp_path: Path) -> None:
    kps = [float(i) for i in range(51)]
    kps[3:6] = [0, 0, 0]  # joint 1 absent
    results = [{"image_id": 785, "category_id": 1, "keypoints": kps, "score": 0.9},
               {"image_id": 40083, "category_id": 1, "keypoints": kps, "score": 0.5, "track_id": 2},
               {"image_id": 785, "category_id": 1, "keypoints": kps, "score": 0.1}]
    by_image = read_coco_results(_write(tmp_path, "r.json", results))
    assert list(by_image) == [785, 40083] and [p.score for p in by_image[785]] == [0.9, 0.1]
    person = by_image[40083][0]
    assert person.track_id == 2 and not person.present[1] and person.present[0]  # (0, 0, 0.0) at joint 0 is present
    assert read_coco_results(write_coco_results(by_image, tmp_path / "r2.json")) == by_image
    assert detect_format(tmp_path / "r.json") == "coco_results"
    results[2]["keypoints"] = kps[:48]
    with pytest.raises(DataFormatError, match="expected 51 numbers, got 48") as e:
        read_coco_results(_write(tmp_path, "r.json", results))
    assert e.value.field == "[2].keypoints"


@pytest.mark.parametrize("item, field, message", [
    ({"bbox": [1, 2, 3], "image_id": 1, "score": 0.5}, "[0].bbox", "expected 4 numbers"),
    ({"bbox": [1, 2, -3, 4], "image_id": 1, "score": 0.5}, "[0].bbox", "width and height >= 0"),
    ({"bbox": [1, 2, 3, 4], "image_id": 1, "score": "high"}, "[0].score", "finite number"),
    ({"bbox": [1, 2, 3, 4], "image_id": True, "score": 0.5}, "[0].image_id", "expected an integer"),
    ({"bbox": [1, 2, 3, 4], "image_id": 1}, "[0].score", "missing required key"),
])  # fmt: skip
def test_detections_bad_files(tmp_path: Path, item: dict, field: str, message: str) -> None:
    with pytest.raises(DataFormatError, match=message) as e:
        read_detections(_write(tmp_path, "d.json", [item]))
    assert e.value.field == field
    with pytest.raises(DataFormatError, match="finite"):
        read_detections(_write(tmp_path, "d.json", '[{"bbox": [1, 2, 3, 4], "image_id": 1, "score": NaN}]'))


def test_detections_dict_form_extra_and_grouping(tmp_path: Path) -> None:
    items = [{"bbox": [0, 0, 1, 1], "image_id": "f1", "score": 0.9, "source": "yolo"},
             {"bbox": [0, 0, 2, 2], "image_id": 2, "score": 0.3, "category_id": 1},
             {"bbox": [0, 0, 3, 3], "image_id": "f1", "score": 0.6, "category_id": 2},
             {"bbox": [0, 0, 4, 4], "image_id": "f1", "score": 0.5}]
    dets = read_detections(_write(tmp_path, "d.json", {"annotations": items}))
    assert dets[0] == Detection(image_id="f1", box=np.array([0.0, 0, 1, 1]), score=0.9, extra={"source": "yolo"})
    assert read_detections(write_detections(dets, tmp_path / "e.json")) == dets
    grouped = detections_by_image(dets, min_score=0.5)
    assert list(grouped) == ["f1"] and [d.score for d in grouped["f1"]] == [0.9, 0.5]
    assert [d.score for d in detections_by_image(dets, category_id=None)["f1"]] == [0.9, 0.6, 0.5]


# --------------------------------------------------------------------------------------------------
# Format detection
# --------------------------------------------------------------------------------------------------
def test_detect_format_rules(tmp_path: Path) -> None:
    pt18 = {"images": [{"id": 1, "file_name": "v/0.jpg", "is_labeled": True}], "annotations": []}
    cases = [(_pt17_data(), "posetrack17"), (_coco_data(), "coco"), (pt18, "posetrack18"), ([], "detections")]
    for data, fmt in cases:
        assert detect_format(_write(tmp_path, "x.json", data)) == fmt
    video = read_annotations(_write(tmp_path, "seq.json", _pt17_data()))[0]
    assert video == read_posetrack17(tmp_path / "seq.json")
    for data, message in [({"foo": 1}, "keys \\['foo'\\]"), ([1, 2], "first item is integer"), ('"x"', "got string")]:
        with pytest.raises(DataFormatError, match=message):
            read_annotations(_write(tmp_path, "x.json", data))
    scipy.io.savemat(tmp_path / "m.mat", {"other": np.ones(3)})
    with pytest.raises(DataFormatError, match="without an 'annolist'"):
        read_annotations(tmp_path / "m.mat")
    with pytest.raises(DataFormatError, match="exactly one video"):
        write_annotations([video, video], tmp_path / "two.json", "coco")
