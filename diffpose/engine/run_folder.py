"""A run folder belongs to one ``diffpose train`` at a time, and a finished run is never clobbered.

* **Lock.** The main process holds ``RUN/train.lock`` (its PID and host) while it trains. A second
  ``diffpose train`` on the same folder -- a new run or ``--resume`` -- is refused naming the PID. A lock
  whose process is gone (a killed run, a rebooted machine) is stale: it is taken over with a note.
* **No accidental restart.** A folder that already holds a run (any checkpoint, metrics or summary) is
  refused unless ``--resume`` continues it or ``--overwrite`` starts over (which removes those files first,
  once the lock is held).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

from diffpose.errors import DiffPoseError

LOCK = "train.lock"
RUN_FILES = ("last.pt", "final.pt", "metrics.jsonl", "summary.json")  # a folder holding any of these holds a run
CLEARED = (*RUN_FILES, "config.yaml")  # what --overwrite removes (tensorboard/ and val*/ are rewritten anyway)


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


def _live_owner(folder: Path) -> int | None:
    """The PID of a live process holding ``folder``'s lock (not this one), else None."""
    found = read_lock(folder)
    if found is None:
        return None
    pid, host = found
    if pid == os.getpid() or not pid_alive(pid) or (host and host != socket.gethostname()):
        return None
    return pid


def check_run_folder(folder: str | Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, a folder another live ``train`` holds, or one holding a run without
    ``--resume`` / ``--overwrite``."""
    folder = Path(folder)
    if resume and overwrite:
        raise DiffPoseError("give --resume or --overwrite, not both")
    if folder.exists() and not folder.is_dir():
        raise DiffPoseError(f"cannot create this folder: {folder} is a file, not a folder", folder)
    pid = _live_owner(folder) if folder.is_dir() else None
    if pid is not None:
        raise DiffPoseError(f"another diffpose train (PID {pid}) is using this run folder; wait for it to end or "
                            f"stop it (the lock is {folder / LOCK})", folder)
    if not resume and not overwrite and folder.is_dir():
        found = [name for name in RUN_FILES if (folder / name).exists()]
        if found:
            raise DiffPoseError(f"already holds a run ({', '.join(found)}); continue it with --resume, or start "
                                "over with --overwrite (which deletes it)", folder)


class RunLock:
    """``RUN/train.lock`` held by this process (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.held = False

    def acquire(self) -> None:
        text = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = _live_owner(self.folder)
                if pid is not None:
                    raise DiffPoseError(f"another diffpose train (PID {pid}) is using this run folder; wait for it "
                                        "to end or stop it", self.folder) from None
                old = read_lock(self.folder)
                if old is not None and old[0] != os.getpid():
                    _note(f"took over the stale lock {self.path} (PID {old[0]} is not running)")
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
        if self.held:
            found = read_lock(self.folder)
            if found is not None and found[0] == os.getpid():
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
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
