"""The commands spell shared arguments the same way, old spellings still work with a note, and a model that does
not sample says so instead of reporting settings it did not use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from diffpose.checkpoint import load_checkpoint
from tests.helpers import ASSETS, MICRO, run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_help_lists_every_command_without_importing_torch():
    code = ("import sys; from diffpose.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("NO TORCH")
    for name in ("demo", "evaluate", "export", "infer", "model-info", "synth", "train", "test"):
        assert f"    {name}" in out


@pytest.mark.parametrize("command", ["test", "export", "infer"])
def test_checkpoint_is_dash_c_everywhere(capsys, command):
    with pytest.raises(SystemExit):
        run(capsys, command, "--help")
    assert "-c CKPT, --checkpoint CKPT" in capsys.readouterr().out


def test_test_uses_the_checkpoints_sampling_and_records_it(synth_small, tmp_path, capsys):
    ckpt = ASSETS / "tiny_diffpose.pt"
    assert load_checkpoint(ckpt)["config"]["sampling"]["ensemble"] == 4
    code, out, err = run(capsys, "test", "-c", ckpt, "--data", synth_small, "--out", tmp_path / "dp", "--no-progress",
                         "--device", "cpu")
    assert code == 0 and "steps=2, ensemble=4 (mean), eta=1" in out and err == ""
    doc = json.loads((tmp_path / "dp" / "ap.json").read_text())
    assert doc["kind"] == "diffpose" and doc["sampling"] == {"steps": 2, "ensemble": 4, "combine": "mean", "eta": 1.0}
    code, out, err = run(capsys, "test", "-c", ckpt, "--data", synth_small, "--out", tmp_path / "dp2",
                         "--ensemble", "2", "--steps", "3", "--no-progress", "--device", "cpu")
    assert code == 0 and "steps=3, ensemble=2" in out
    assert json.loads((tmp_path / "dp2" / "ap.json").read_text())["sampling"]["ensemble"] == 2


def test_a_model_that_does_not_sample_says_so(synth_small, tmp_path, capsys):
    code, out, err = run(capsys, "test", "-c", ASSETS / "tiny_baseline.pt", "--data", synth_small, "--out",
                         tmp_path / "b", "--steps", "4", "--ensemble", "8", "--no-progress", "--device", "cpu")
    assert code == 0 and "single pass (no sampling)" in out and "ensemble=" not in out
    assert "does not sample" in err and "--steps, --ensemble ignored" in err and len(err.splitlines()) == 1
    doc = json.loads((tmp_path / "b" / "ap.json").read_text())
    assert doc["kind"] == "baseline" and doc["sampling"] is None and "steps" not in doc


def test_old_spellings_work_with_a_note(synth_small, tmp_path, capsys):
    code, out, err = run(capsys, "test", ASSETS / "tiny_baseline.pt", "--data", synth_small, "--out", tmp_path / "t",
                         "--no-progress", "--device", "cpu")
    assert code == 0 and "note: a positional checkpoint" in err and "write -c" in err
    code, _, err = run(capsys, "test", ASSETS / "tiny_baseline.pt", "-c", ASSETS / "tiny_baseline.pt", "--data",
                       synth_small, "--out", tmp_path / "t2")
    assert code == 2 and "give the checkpoint once" in err
    code, _, err = run(capsys, "train", "--data", synth_small, "--out", tmp_path / "run", "--no-progress",
                       *MICRO, "model.kind=baseline", "train.max_steps=1")
    assert code == 0 and "note: bare KEY=VALUE overrides" in err and "write --set" in err
    assert (tmp_path / "run" / "final.pt").is_file()
    code, _, err = run(capsys, "evaluate", "--gt", synth_small / "annotations" / "val", "--pred",
                       tmp_path / "t" / "predictions", "--quiet")
    assert code == 0 and err == ""


def test_set_and_the_default_preset_are_shared(capsys):
    code, out, _ = run(capsys, "model-info", "--json")
    assert code == 0 and json.loads(out)["params"]["backbone"] < 2_000_000  # tiny by default
    code, out, _ = run(capsys, "model-info", "--json", "--set", "model.backbone.depth=2", "model.strl.depth=1")
    small = json.loads(out)
    code, out, _ = run(capsys, "model-info", "--json", "--set", "model.backbone.depth=2", "--set", "model.strl.depth=1")
    assert json.loads(out) == small  # one --set with several values or several --set: the same
    code, _, err = run(capsys, "model-info", "--set", "model.backbone.depthh=2")
    assert code == 2 and "model.backbone.depthh" in err and "unknown config key" in err


def test_moved_config_keys_still_work_for_one_release(capsys):
    with pytest.warns(DeprecationWarning, match="diffusion.steps is now sampling.steps"):
        code, _, _ = run(capsys, "model-info", "--json", "--set", "diffusion.steps=3")
    assert code == 0
