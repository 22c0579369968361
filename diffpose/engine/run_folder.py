"""A run folder belongs to one ``diffpose train`` at a time, and a finished run is never clobbered.

* **Lock.** The main process holds ``RUN/train.lock`` (its PID and host) while it trains. A second
  ``diffpose train`` on the same folder -- a new run or ``--resume`` -- is refused naming the PID. A lock
  whose process is gone (a killed run, a rebooted machine) is stale: it is taken over with a note. The
  lock is an OS file lock where there is one (:class:`RunLock`), so two trains started together cannot both
  hold it, and the folder is checked for a run again once it is held.
* **No accidental restart.** A folder that already holds a run (any checkpoint, metrics or summary) is
  refused unless ``--resume`` continues it or ``--overwrite`` starts over (which removes those files first,
  once the lock is held).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import time
from pathlib import Path

from diffpose.errors import DiffPoseError
from diffpose.io_utils import check_not_input, resolve_path

try:
    import fcntl
except ImportError:  # Windows: an exclusively created file, see RunLock
    fcntl = None

LOCK = "train.lock"
RUN_FILES = ("last.pt", "final.pt", "metrics.jsonl", "summary.json")  # a folder holding any of these holds a run
CLEARED = (*RUN_FILES, "config.yaml")  # what --overwrite removes (tensorboard/ and val*/ are rewritten anyway)
WRITTEN = (*CLEARED, LOCK)  # the files a run writes or removes in its folder
WRITTEN_FOLDERS = ("tensorboard", "val", "val_epoch*")  # ... and the folders it writes into


def _note(text: str) -> None:
    print(f"diffpose train: note: {text}", file=sys.stderr)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def read_lock(folder: Path) -> tuple[int, str] | None:
    """``(pid, host)`` of the lock in ``folder``, or None when there is none; an unreadable lock reads as PID 0."""
    path = folder / LOCK
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return 0, ""
    parts = text.split()
    try:
        return int(parts[0]), parts[1] if len(parts) > 1 else ""
    except (ValueError, IndexError):
        return 0, ""


def _live_owner(found: tuple[int, str] | None) -> int | None:
    """The PID of a live process on this host that a lock's ``(pid, host)`` names (not this one), else None."""
    if found is None:
        return None
    pid, host = found
    if pid == os.getpid() or not pid_alive(pid) or (host and host != socket.gethostname()):
        return None
    return pid


def _refuse_a_run_there(folder: Path) -> None:
    found = [name for name in RUN_FILES if (folder / name).exists()]
    if found:
        raise DiffPoseError(f"already holds a run ({', '.join(found)}); continue it with --resume, or start "
                            "over with --overwrite (which deletes it)", folder)


def _refuse_live(pid: int | None, folder: Path) -> DiffPoseError:
    who = f"another diffpose train (PID {pid})" if pid else "another diffpose train"
    return DiffPoseError(f"{who} is using this run folder; wait for it to end or stop it (the lock is "
                         f"{folder / LOCK})", folder)


def check_run_inputs(folder: str | Path, inputs: list[str | Path | None], flag: str = "--out") -> None:
    """Refuse, before any work, a run folder where the run would write over or into one of ``inputs`` (the
    ``--config`` YAML, the dataset root): an input that is ``config.yaml``, a checkpoint, the metrics or the
    lock of the folder, or lies in its ``tensorboard/`` or ``val*/`` folders, or a folder holding the run
    folder. Other files in the run folder (e.g. ``OUT/my_config.yaml``) are never touched, so they may be
    inputs."""
    folder = Path(folder)
    check_not_input(folder, inputs, flag)  # the folder is an input, or inside an input folder
    root = resolve_path(folder)
    for given in inputs:
        if given is None:
            continue
        source = resolve_path(given)
        if not source.is_relative_to(root) or source == root:
            continue
        first = source.relative_to(root).parts[0]
        written = (first in WRITTEN and len(source.relative_to(root).parts) == 1) or any(
            Path(first).match(pattern) for pattern in WRITTEN_FOLDERS)
        if written:
            raise DiffPoseError(f"the run writes {folder / source.relative_to(root)}, which is the input {given}; "
                                "refusing to write over an input (copy it elsewhere, or choose another folder)",
                                folder, flag)


def check_run_folder(folder: str | Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, a folder another live ``train`` holds, or one holding a run without
    ``--resume`` / ``--overwrite``. A first look only: :meth:`RunLock.acquire` checks again under the lock."""
    folder = Path(folder)
    if resume and overwrite:
        raise DiffPoseError("give --resume or --overwrite, not both")
    if folder.exists() and not folder.is_dir():
        raise DiffPoseError(f"cannot create this folder: {folder} is a file, not a folder", folder)
    pid = _live_owner(read_lock(folder)) if folder.is_dir() else None
    if pid is not None:
        raise _refuse_live(pid, folder)
    if not resume and not overwrite and folder.is_dir():
        _refuse_a_run_there(folder)


class RunLock:
    """``RUN/train.lock`` held by this process (see the module docstring).

    Where ``fcntl`` exists (Linux, macOS) the lock is an exclusive ``flock`` on the file, held for the whole
    run: the kernel drops it when the process ends however it ends, so "held" never depends on reading a PID
    that is still being written, and two processes taking over one stale lock cannot both win. The file's
    PID and host are only for messages, and a file naming another live process here is refused all the same.
    Without ``fcntl`` the file is created exclusively and a lock whose PID is not running is stale; a lock
    file without a readable PID counts as held for ``FRESH_S`` seconds (its writer may be mid-write).

    ``acquire(check_run=True)`` then looks for a run in the folder again, under the lock: two trains started
    together both pass :func:`check_run_folder`, and the second to get the lock must not start over the
    first's finished run.
    """

    FRESH_S = 60.0

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.held = False
        self._fd: int | None = None

    def acquire(self, check_run: bool = False) -> None:
        if fcntl is not None:
            self._acquire_flock()
        else:
            self._acquire_exclusive()
        if check_run:
            try:
                _refuse_a_run_there(self.folder)
            except DiffPoseError:
                self.release()
                raise

    def _age_s(self) -> float:
        """Seconds since the lock file was last written (infinite when it is gone)."""
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return math.inf

    def _take_over_note(self, old: tuple[int, str] | None) -> None:
        if old is not None and old[0] > 0 and old[0] != os.getpid():
            _note(f"took over the stale lock {self.path} (PID {old[0]} is not running)")

    def _acquire_flock(self) -> None:
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise DiffPoseError(f"cannot create the run lock: {e.strerror or e}", self.path) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held by a live process (the PID may not be written yet)
                os.close(fd)
                found = read_lock(self.folder)
                raise _refuse_live(found[0] if found else None, self.folder) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its holder removed it while we opened it: lock the new file instead
                os.close(fd)
                continue
            old = read_lock(self.folder)
            pid = _live_owner(old)
            if pid is not None:  # a live process here names itself in the file without flock: leave it be
                os.close(fd)
                raise _refuse_live(pid, self.folder)
            self._take_over_note(old)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            self._fd, self.held = fd, True
            return
        raise DiffPoseError("cannot take the run lock (its file keeps being replaced)", self.path)

    def _acquire_exclusive(self) -> None:
        text = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                old = read_lock(self.folder)
                pid = _live_owner(old)
                if pid is not None:
                    raise _refuse_live(pid, self.folder) from None
                if old is not None and old[0] <= 0 and self._age_s() < self.FRESH_S:  # no PID yet: being written
                    raise _refuse_live(None, self.folder) from None
                self._take_over_note(old)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                continue
            except OSError as e:
                raise DiffPoseError(f"cannot create the run lock: {e.strerror or e}", self.path) from None
            with os.fdopen(fd, "w") as f:
                f.write(text)
            self.held = True
            return
        raise DiffPoseError("cannot take the run lock (another process keeps creating it)", self.path)

    def release(self) -> None:
        """Remove the file (still under the lock, so a waiting process sees it gone), then unlock."""
        if self.held:
            found = read_lock(self.folder)
            if found is not None and found[0] == os.getpid():
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            if self._fd is not None:
                os.close(self._fd)  # drops the flock
                self._fd = None
            self.held = False


def clear_run(folder: Path) -> list[str]:
    """Remove the files of a previous run (``--overwrite``); returns their names."""
    removed = []
    for name in CLEARED:
        path = folder / name
        if path.exists() or path.is_symlink():
            try:
                path.unlink()
            except OSError as e:
                raise DiffPoseError(f"cannot remove the previous run's {name}: {e.strerror or e}", path) from None
            removed.append(name)
    return removed
