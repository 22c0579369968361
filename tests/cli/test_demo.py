"""The README's first command: the demo runs the bundled checkpoints on a generated video."""

from __future__ import annotations

import json

import cv2

from diffpose.checkpoint import load_checkpoint
from diffpose.cli import main as cli_main
from diffpose.cli.demo import SHOWN
from diffpose.estimators import load_estimator
from tests.helpers import digest


def test_bundled_checkpoints_are_small_and_load():
    assert [shown.folder for shown in SHOWN] == ["diffpose", "regression", "baseline"]
    for shown, kind in zip(SHOWN, ("diffpose", "regression", "baseline")):
        path = shown.bundled
        assert path.stat().st_size <= 10 * 1024 * 1024, path
        ckpt = load_checkpoint(path)
        assert ckpt["config"]["model"]["kind"] == kind
        assert load_estimator(path).kind == kind


def test_demo_writes_video_json_and_sheet_and_prints_the_three_tables(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli_main(["demo", "--out", str(out), "--frames", "12", "--no-progress", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "diffpose (5 frames)" in text and "regression (5 frames)" in text and "baseline (1 frame)" in text
    assert "Total" in text and len(list((out / "predictions" / "regression").glob("*.json"))) == 1
    video = cv2.VideoCapture(str(out / "diffpose.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    video.release()
    preds = sorted((out / "predictions" / "diffpose").glob("*.json"))
    assert len(preds) == 1
    data = json.loads(preds[0].read_text())
    assert len(data["images"]) == 12 and data["annotations"]
    assert all(len(a["scores"]) == 17 for a in data["annotations"])
    assert cv2.imread(str(out / "contact_sheet.png")) is not None


def test_demo_replaces_only_its_own_data_and_never_a_users_dataset(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--frames", "6", "--no-progress", "--device", "cpu"]
    assert cli_main(args) == 0 and cli_main(args) == 0  # a second run replaces the first run's synthtrack/
    assert (out / ".diffpose-demo").is_file() and len(list((out / "synthtrack" / "annotations" / "val").glob("*"))) == 1
    capsys.readouterr()
    # `diffpose synth data/synthtrack` then `diffpose demo --out data`: the user's dataset must survive
    user = tmp_path / "data"
    (user / "synthtrack" / "annotations" / "val").mkdir(parents=True)
    (user / "synthtrack" / "annotations" / "val" / "a.json").write_text("{}")
    before = digest(user)
    assert cli_main(["demo", "--out", str(user), "--frames", "6", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "was not written by diffpose demo" in err and len(err.strip().splitlines()) == 1
    # a dataset root as --out
    root = tmp_path / "root"
    (root / "annotations").mkdir(parents=True)
    assert cli_main(["demo", "--out", str(root), "--frames", "6", "--no-progress"]) == 2
    assert "holds a dataset" in capsys.readouterr().err
    assert digest(user) == before and sorted(p.name for p in root.iterdir()) == ["annotations"]
