"""Every output replaced whole or not at all; every input safe from every output.

A run's outputs are staged beside their targets (:class:`diffpose.io_outputs.Outputs`) and moved into place
together only when the whole run succeeded: a failure at the last step, a failure while scoring or an interrupt
leaves the previous outputs byte-identical and no hidden temporary file or folder. A folder output is replaced
whole (no stale frame of an earlier run stays). Every output is checked against every input before any work,
the ``--detector`` module's source file and a ``--config`` YAML inside the run folder included.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from diffpose.errors import DiffPoseError
from tests.helpers import ASSETS, digest, refused, run, val_json

pytestmark = pytest.mark.usefixtures("one_thread")
CKPT = ASSETS / "tiny_baseline.pt"


def infer(capsys, root: Path, *out: object):
    return run(capsys, "infer", val_json(root), "-c", CKPT, "--boxes", "gt", "--no-progress", *out)


def hidden(folder: Path) -> list[str]:
    """Hidden (temporary) names left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_infer_failing_at_its_last_step_keeps_every_previous_output(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    files = (out / "a.json", out / "a_coco.json", out / "a.mp4")
    args = ("--json", files[0], "--coco", files[1], "--render", files[2])
    code, _, err = infer(capsys, data, *args)
    assert code == 0, err
    before = digest(out)
    assert len(before) == 3
    import diffpose.inference.render as render

    monkeypatch.setattr(render, "count_video_frames", lambda path: 0)  # the video (last sink) does not read back
    refused(infer(capsys, data, *args), "infer", "does not read back", "the previous file is kept")
    assert digest(out) == before and hidden(out) == []
    monkeypatch.undo()

    import diffpose.inference.outputs as outputs

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "write_coco_results", full_disk)
    with pytest.raises(OSError):
        infer(capsys, data, *args)
    assert digest(out) == before and hidden(out) == []


def test_infer_failing_leaves_no_output_when_there_was_none(data, tmp_path, capsys, monkeypatch):
    import diffpose.inference.render as render

    monkeypatch.setattr(render, "count_video_frames", lambda path: 0)
    refused(infer(capsys, data, "--json", tmp_path / "a.json", "--render", tmp_path / "a.mp4"), "infer",
            "does not read back", "nothing was written")
    assert [p.name for p in tmp_path.iterdir() if p.name != "st"] == []


def test_render_frames_replaces_the_folder_whole(data, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(30):  # an earlier, longer run's frames
        (frames / f"{i:06d}.png").write_bytes(b"old")
    code, _, err = infer(capsys, data, "--render-frames", frames)
    assert code == 0, err
    names = sorted(p.name for p in frames.iterdir())
    assert names == [f"{i:06d}.png" for i in range(12)]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in frames.iterdir())
    assert hidden(tmp_path) == []


def test_render_frames_interrupted_keeps_the_old_frames(data, tmp_path, capsys, monkeypatch):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        (frames / f"{i:06d}.png").write_bytes(b"old")
    before = digest(frames)
    json_out = tmp_path / "a.json"
    json_out.write_text("old")
    import diffpose.cli.infer as cli_infer

    real = cli_infer.StreamingPipeline.run

    def interrupted(self, source):
        for n, result in enumerate(real(self, source)):
            if n == 5:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(cli_infer.StreamingPipeline, "run", interrupted)
    code, _, err = infer(capsys, data, "--render-frames", frames, "--json", json_out)
    assert code == 130, err
    assert digest(frames) == before and json_out.read_text() == "old"
    assert hidden(tmp_path) == [] and hidden(frames) == []


def test_a_folder_output_holding_other_files_or_an_input_is_refused(data, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "notes.txt").write_text("mine")
    refused(infer(capsys, data, "--render-frames", frames), "infer", "holds notes.txt", "--render-frames")
    assert (frames / "notes.txt").read_text() == "mine"
    dets = frames / "dets.json"
    dets.write_text("[]")
    refused(run(capsys, "infer", val_json(data), "-c", CKPT, "--boxes", dets, "--render-frames", frames,
                "--no-progress"), "infer", "contains the input", str(dets))
    refused(infer(capsys, data, "--render-frames", tmp_path / "f2", "--json", tmp_path / "f2" / "a.json"), "infer",
            "two outputs overlap")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "st"]


def test_test_failing_while_scoring_keeps_the_previous_run(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "t"
    args = ("test", "-c", CKPT, "--data", data, "--out", out, "--no-progress")
    code, _, err = run(capsys, *args)
    assert code == 0, err
    (out / "notes.txt").write_text("mine")  # not an output of test: never touched
    before = digest(out)
    assert (out / "ap.json").is_file() and list((out / "predictions").glob("*.json"))
    import diffpose.engine.tester as tester

    def broken(*a, **k):
        raise DiffPoseError("scoring failed")

    monkeypatch.setattr(tester, "evaluate_dirs", broken)
    refused(run(capsys, *args), "test", "scoring failed")
    assert digest(out) == before and hidden(out) == [] and hidden(out / "predictions") == []


def test_an_output_that_is_the_detector_module_is_refused_without_importing_it(data, tmp_path, capsys,
                                                                             monkeypatch):
    marker = tmp_path / "imported"
    module = tmp_path / "stagedet.py"
    module.write_text(f"open({str(marker)!r}, 'w').close()\n\ndef detect(image):\n    return []\n")
    before = module.read_bytes()
    monkeypatch.syspath_prepend(str(tmp_path))
    for flag in ("--json", "--coco", "--render"):
        refused(run(capsys, "infer", val_json(data), "-c", CKPT, "--detector", "stagedet:detect", flag, module,
                    "--no-progress"), "infer", "is one of the inputs", flag)
    assert module.read_bytes() == before and not marker.exists() and "stagedet" not in sys.modules


def test_train_never_writes_over_its_config(data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    config = out / "config.yaml"
    config.write_text("train:\n  epochs: 1\n")
    before = config.read_bytes()
    for extra in ((), ("--overwrite",)):
        refused(run(capsys, "train", "--config", config, "--data", data, "--out", out, "--no-progress", *extra),
                "train", "is the input", "--out")
        assert config.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]
    from diffpose.engine.run_folder import check_run_inputs

    check_run_inputs(out, [data, out / "cfg.yaml"])  # another file in OUT is never written: fine as the config
    with pytest.raises(DiffPoseError, match="is the input"):
        check_run_inputs(out, [out / "val" / "x.yaml"])
