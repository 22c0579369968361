"""``RunLock``: the races two ``diffpose train`` processes on one folder can run into, made deterministic.

The command-level behaviour (refusal messages, stale takeover, exit codes) is in
``tests/cross/test_reliability_runs.py``; here each race is staged by hand, in this process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from diffpose.engine import run_folder
from diffpose.engine.run_folder import LOCK, RunLock
from diffpose.errors import DiffPoseError

needs_flock = pytest.mark.skipif(run_folder.fcntl is None, reason="no fcntl on this platform")


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@needs_flock
def test_a_held_lock_whose_pid_is_not_written_yet_is_refused_not_taken_over(tmp_path):
    """The holder has created the file but not yet written its PID: an empty file must not read as a stale
    lock, or a second train would take it over and both would train."""
    fd = os.open(tmp_path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    run_folder.fcntl.flock(fd, run_folder.fcntl.LOCK_EX | run_folder.fcntl.LOCK_NB)  # another open file: conflicts
    try:
        with pytest.raises(DiffPoseError, match="another diffpose train is using this run folder"):
            RunLock(tmp_path).acquire()
        assert (tmp_path / LOCK).read_text() == ""  # left as the holder has it
    finally:
        os.close(fd)


@needs_flock
def test_a_held_lock_is_refused_naming_its_pid(tmp_path):
    first = RunLock(tmp_path)
    first.acquire()
    try:
        # the file names this very process, which _live_owner ignores: only the flock refuses here
        with pytest.raises(DiffPoseError, match=f"PID {os.getpid()}"):
            RunLock(tmp_path).acquire()
    finally:
        first.release()
    assert not (tmp_path / LOCK).exists()
    again = RunLock(tmp_path)
    again.acquire()  # released: free again
    assert (tmp_path / LOCK).read_text().split() == [str(os.getpid()), socket.gethostname()]
    again.release()


@needs_flock
def test_a_lock_file_removed_while_being_locked_is_retried_on_the_new_file(tmp_path, monkeypatch):
    """A holder that releases (unlinks) between our open and our flock leaves us locking a dead inode: the
    acquire must notice and lock the file that is at the path now."""
    real = run_folder.fcntl.flock
    calls = []

    def flock(fd, op):
        calls.append(op)
        if len(calls) == 1:
            os.unlink(tmp_path / LOCK)  # the previous holder's release, in between
        return real(fd, op)

    monkeypatch.setattr(run_folder.fcntl, "flock", flock)
    lock = RunLock(tmp_path)
    lock.acquire()
    assert len(calls) == 2 and (tmp_path / LOCK).is_file()
    assert os.fstat(lock._fd).st_ino == os.stat(tmp_path / LOCK).st_ino
    lock.release()


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path, capsys):
    pid = dead_pid()
    (tmp_path / LOCK).write_text(f"{pid} {socket.gethostname()}\n")
    lock = RunLock(tmp_path)
    lock.acquire()
    assert f"took over the stale lock {tmp_path / LOCK} (PID {pid} is not running)" in capsys.readouterr().err
    assert (tmp_path / LOCK).read_text().split()[0] == str(os.getpid())
    lock.release()
    assert not (tmp_path / LOCK).exists()


def test_a_run_that_appeared_before_the_lock_was_taken_is_refused_under_it(tmp_path):
    """Two trains start together and both pass check_run_folder; the first finishes before the second gets
    the lock. The second must then find the run and refuse, releasing the lock, not train over it."""
    run_folder.check_run_folder(tmp_path, resume=False, overwrite=False)  # empty: passes
    (tmp_path / "final.pt").write_bytes(b"the first train's checkpoint")
    lock = RunLock(tmp_path)
    with pytest.raises(DiffPoseError, match=r"already holds a run \(final.pt\)"):
        lock.acquire(check_run=True)
    assert not lock.held and not (tmp_path / LOCK).exists()
    assert (tmp_path / "final.pt").read_bytes() == b"the first train's checkpoint"
    lock.acquire(check_run=False)  # --resume / --overwrite: the run is expected there
    lock.release()


def test_without_fcntl_an_empty_lock_is_held_while_fresh_and_stale_when_old(tmp_path, monkeypatch, capsys):
    """The exclusive-create fallback: an empty (being written) lock is refused for FRESH_S seconds, then taken."""
    monkeypatch.setattr(run_folder, "fcntl", None)
    path = tmp_path / LOCK
    path.write_text("")
    with pytest.raises(DiffPoseError, match="another diffpose train is using this run folder"):
        RunLock(tmp_path).acquire()
    old = time.time() - RunLock.FRESH_S - 5
    os.utime(path, (old, old))
    lock = RunLock(tmp_path)
    lock.acquire()
    assert path.read_text().split()[0] == str(os.getpid())
    lock.release()
    assert not path.exists()
    path.write_text(f"{dead_pid()} {socket.gethostname()}\n")
    lock.acquire()  # a dead PID is stale at once
    assert "took over the stale lock" in capsys.readouterr().err
    lock.release()
