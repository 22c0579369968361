"""Run folders that cannot be clobbered, through ``diffpose train``.

* a folder holding a run is refused without ``--resume`` / ``--overwrite`` (checkpoints byte for byte kept);
* ``--overwrite`` starts over; ``--resume`` and ``--overwrite`` together are refused;
* a second train on a folder locked by a live process is refused naming the PID; a stale lock (its process
  gone) is taken over with a note, and the lock is removed when the run ends;
* ``--resume`` on a finished run does nothing and says so (``summary.json`` untouched, exit 0);
* ``summary.json`` and ``metrics.jsonl`` are always valid JSON (no NaN), even when no step ran;
* ``--val`` with a missing validation split fails before training.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffpose.engine.run_folder import LOCK
from tests.helpers import MICRO, digest, refused, run

BASE = [*MICRO, "model.kind=baseline", "train.checkpoint_every=1", "train.max_steps=2"]

pytestmark = pytest.mark.usefixtures("one_thread")


def train(capsys, root: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    flags = [e for e in extra if e.startswith("--")]
    overrides = [e for e in extra if not e.startswith("--")]
    return run(capsys, "train", "--data", root, "--out", out, "--no-progress", *flags, "--set", *BASE, *overrides)


def strict_json(path: Path):
    def no_constant(name):
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=no_constant)


@pytest.fixture(scope="module")
def finished(synth_small, tmp_path_factory) -> Path:
    """A finished micro run (2 steps), made once for the module; tests copy it."""
    import shutil  # noqa: F401

    from diffpose.cli import main

    out = tmp_path_factory.mktemp("runs") / "done"
    assert main(["train", "--data", str(synth_small), "--out", str(out), "--no-progress", "--set", *BASE]) == 0
    return out


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(finished, tmp_path / "run"))


def test_a_finished_run_is_not_overwritten_without_resume_or_overwrite(synth_small, run_dir, capsys):
    before = digest(run_dir)
    refused(train(capsys, synth_small, run_dir), "train", str(run_dir), "already holds a run", "final.pt",
            "--resume", "--overwrite")
    assert digest(run_dir) == before
    assert not (run_dir / LOCK).exists()


def test_a_folder_with_only_metrics_is_refused_too(synth_small, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    refused(train(capsys, synth_small, out), "train", "already holds a run (metrics.jsonl)")


def test_overwrite_starts_over(synth_small, run_dir, capsys):
    old = digest(run_dir / "metrics.jsonl")
    code, out, err = train(capsys, synth_small, run_dir, "--overwrite")
    assert code == 0, err
    assert "removed the previous run's" in err
    assert digest(run_dir / "metrics.jsonl") != old
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2  # the new run's lines only
    assert not (run_dir / LOCK).exists()


def test_resume_and_overwrite_together_are_refused(synth_small, run_dir, capsys):
    before = digest(run_dir)
    refused(train(capsys, synth_small, run_dir, "--resume", "--overwrite"), "train", "not both")
    assert digest(run_dir) == before


def test_resuming_a_finished_run_is_a_no_op_that_says_so(synth_small, run_dir, capsys):
    before = digest(run_dir)
    code, out, err = train(capsys, synth_small, run_dir, "--resume")
    assert code == 0, err
    assert "already finished" in out and "nothing to resume" in out
    assert digest(run_dir) == before
    summary = strict_json(run_dir / "summary.json")
    assert summary["steps"] == 2 and summary["train_seconds"] is not None


def test_summary_is_valid_json_when_no_step_ran(synth_small, run_dir, capsys):
    """last.pt at the final step but no final.pt (killed between them): resume writes final.pt and a summary
    whose loss is null, never NaN."""
    (run_dir / "final.pt").unlink()
    (run_dir / "summary.json").unlink()
    code, _, err = train(capsys, synth_small, run_dir, "--resume")
    assert code == 0, err
    summary = strict_json(run_dir / "summary.json")
    assert summary["final_loss"] is None and summary["steps"] == 2
    assert (run_dir / "final.pt").is_file()
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"metrics.jsonl holds {c}"))


def test_a_folder_locked_by_a_live_train_is_refused(synth_small, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / LOCK).write_text(f"{holder.pid} {socket.gethostname()}\n")
        refused(train(capsys, synth_small, out), "train", f"another diffpose train (PID {holder.pid})")
        refused(train(capsys, synth_small, out, "--resume"), "train", f"PID {holder.pid}")
        assert [p.name for p in out.iterdir()] == [LOCK]
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over_with_a_note(synth_small, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / LOCK).write_text(f"{gone.pid} {__import__('socket').gethostname()}\n")
    code, _, err = train(capsys, synth_small, out)
    assert code == 0, err
    assert "took over the stale lock" in err and str(gone.pid) in err
    assert (out / "final.pt").is_file() and not (out / LOCK).exists()


def test_two_trains_at_once_on_one_folder_one_is_refused(synth_small, tmp_path):
    """Two real processes: one trains, the other is refused (by the lock or by the run it finds)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "diffpose", "train", "--data", str(synth_small), "--out", str(out), "--no-progress",
           "--set", *BASE[:-1], "train.max_steps=6"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    err = next(e for c, e in results if c == 2).strip()
    assert len(err.splitlines()) == 1 and ("another diffpose train" in err or "already holds a run" in err), err
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) == 6  # one run's lines, not interleaved


def test_val_with_a_missing_split_fails_before_training(synth_small, tmp_path, capsys):
    out = tmp_path / "run"
    refused(train(capsys, synth_small, out, "--val", "data.val_split=nope"), "train", "nope")
    assert not out.exists()
