"""Joint conventions: names, maps between layouts, flip pairs."""

import numpy as np

from diffpose.keypoints import (
    COCO,
    MPII,
    POSETRACK17,
    POSETRACK18,
    POSETRACK18_FROM_MPII,
    POSETRACK18_TO_POSEVAL,
    POSEVAL_FROM_POSETRACK18,
    POSEVAL_GROUPS,
    posetrack18_to_poseval,
)


def test_posetrack18_to_poseval_map_matches_the_reference_table():
    # posetrack-format-and-eval.md 2.1: kp15 = kp17[[16,14,12,11,13,15,10,8,6,5,7,9,1,0,2]]
    assert POSEVAL_FROM_POSETRACK18.tolist() == [16, 14, 12, 11, 13, 15, 10, 8, 6, 5, 7, 9, 1, 0, 2]
    assert POSETRACK18_TO_POSEVAL[3] == -1 and POSETRACK18_TO_POSEVAL[4] == -1  # ears are not evaluated
    for i, k in enumerate(POSEVAL_FROM_POSETRACK18):
        assert POSETRACK18_TO_POSEVAL[k] == i
        name15, name17 = POSETRACK17.joints[i], POSETRACK18.joints[k]
        assert name15 == name17 or (name15, name17) == ("neck", "head_bottom")


def test_select_along_axis():
    kp = np.arange(17 * 2).reshape(17, 2)  # (17, 2)
    out = posetrack18_to_poseval(kp, axis=-2)  # (15, 2)
    assert out.shape == (15, 2) and out[0].tolist() == kp[16].tolist()  # right_ankle first


def test_flip_pairs_swap_left_and_right_names():
    for layout in (POSETRACK18, COCO, POSETRACK17, MPII):
        perm = layout.flip_permutation()
        assert sorted(perm.tolist()) == list(range(layout.num_joints))
        for i, j in enumerate(perm):
            a, b = layout.joints[i], layout.joints[j]
            if a.startswith("left_"):
                assert b == "right_" + a[5:]
            elif a.startswith("right_"):
                assert b == "left_" + a[6:]
            else:
                assert i == j  # midline joints (nose, head_bottom, head_top, neck, pelvis) stay
    # COCO eyes flip, PoseTrack's head_bottom/head_top (same slots) do not
    assert COCO.flip_permutation()[1] == 2 and POSETRACK18.flip_permutation()[1] == 1


def test_groups_cover_the_15_joints_once():
    joints = sorted(j for g in POSEVAL_GROUPS.values() for j in g)
    assert joints == list(range(15))
    assert [POSETRACK17.joints[j] for j in POSEVAL_GROUPS["Head"]] == ["head_top", "neck", "nose"]


def test_mpii_map_uses_names():
    for mpii_id, k in POSETRACK18_FROM_MPII.items():
        m, p = MPII.joints[mpii_id], POSETRACK18.joints[k]
        assert m == p or (m, p) == ("upper_neck", "head_bottom")
    assert len(POSETRACK18_FROM_MPII) == 14  # no pelvis, no thorax


def test_skeletons_index_existing_joints():
    for layout in (POSETRACK18, COCO, POSETRACK17, MPII):
        for a, b in layout.skeleton:
            assert 0 <= a < layout.num_joints and 0 <= b < layout.num_joints and a != b


def test_atomic_write_keeps_old_file_on_failure_and_uses_normal_permissions(tmp_path):
    import os
    import stat

    import pytest

    from diffpose.io_utils import atomic_write_text, atomic_write_with

    target = tmp_path / "out.txt"
    atomic_write_text("first", target)
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode == 0o666 & ~_umask()

    def broken(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="No space left"):
        atomic_write_with(broken, target)
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left behind


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_layouts_convert_by_joint_name_and_mark_what_the_target_lacks():
    import numpy as np

    from diffpose.keypoints import COCO, POSETRACK18, convert_layout, joint_map, layout_named

    assert layout_named("coco") is COCO and layout_named("posetrack18") is POSETRACK18
    # COCO -> PoseTrack18: same index for the shared names; head_bottom / head_top missing; ears never labelled
    assert joint_map(COCO, POSETRACK18).tolist() == [0, -1, -1, 3, 4, *range(5, 17)]
    kp = np.arange(34, dtype=float).reshape(17, 2) + 1.0  # (J, 2), no joint at (0, 0)
    scores = np.linspace(0.1, 0.9, 17)
    out, sc, present = convert_layout(kp, scores, COCO, POSETRACK18)
    assert present.tolist() == [True, False, False, False, False] + [True] * 12
    assert (out[~present] == 0).all() and (sc[~present] == 0).all()
    np.testing.assert_array_equal(out[present], kp[[0, *range(5, 17)]])
    np.testing.assert_array_equal(sc[5:], scores[5:])
    # PoseTrack18 -> COCO: the eyes are missing, the ears kept (COCO labels them)
    out, sc, present = convert_layout(kp, scores, POSETRACK18, COCO)
    assert present.tolist() == [True, False, False, True, True] + [True] * 12
    # the same layout: only what the layout never labels is dropped
    out, sc, present = convert_layout(kp, scores, POSETRACK18, POSETRACK18)
    assert present.tolist() == [True, True, True, False, False] + [True] * 12
    np.testing.assert_array_equal(out[:3], kp[:3])
