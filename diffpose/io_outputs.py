"""A run's outputs, staged and then committed together: every output is replaced whole, or not at all.

:class:`Outputs` is how a command writes its results. Before any work it is given the run's inputs (every file
and folder the run reads); each output is then registered with :meth:`Outputs.file` or :meth:`Outputs.folder`,
which checks it against every input and every other output and returns a *staged* path: a hidden temporary
file or folder beside the output (same folder, so the final rename is atomic), where the run writes instead.
When the whole run succeeded, :meth:`Outputs.commit` moves every staged output into place; on any error or
interrupt (``KeyboardInterrupt``, which SIGTERM raises too) :meth:`Outputs.discard` removes every staged file
and folder and the previous outputs stay byte-identical. Used as a context manager it commits on a normal
exit and discards on an exception::

    with Outputs(inputs=[video, checkpoint]) as outputs:
        json_path = outputs.file(args.json, flag="--json")
        frames = outputs.folder(args.frames, owned=("*.png",), flag="--render-frames")
        ...  # write json_path and frames/<n>.png
    # here both are in place, or neither changed

Rules:

* An output equal to an input, inside an input folder, or (a folder output) containing an input is refused
  with one line naming both (:func:`~diffpose.io_utils.check_not_input`); so are two outputs naming the same
  path, an output inside a folder output, a FIFO / device / socket, a symlink loop and an unwritable place.
* A file output that is a symlink replaces the link's target (the link stays); a folder output that is a
  symlink replaces the folder it points to.
* A folder output is replaced whole: the old folder is renamed aside, the new one renamed in, the old one
  deleted; so no file of an earlier run is left in it. Because the whole folder goes, an existing folder is
  replaced only when everything in it is a file a run of this command writes (names matching ``owned``,
  e.g. ``*.png``): a folder holding anything else (another file, a subfolder) is refused before any work --
  choose a new or empty folder. An empty folder is fine.
* Committing is a few renames in the outputs' own folders; between the two renames of a folder output the
  folder is briefly absent. A kill (SIGKILL, power loss) can leave a hidden ``.NAME.*.tmp`` beside an output.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from diffpose.errors import DiffPoseError
from diffpose.io_utils import _umask, _why, check_not_input, output_target, resolve_path

Inputs = Iterable[str | Path | None]


@dataclass
class _Staged:
    target: Path  # where the output lands (a symlink followed)
    staged: Path  # where the run writes it
    folder: bool
    shown: Path  # the path as the user gave it, for messages
    absent: bool = False  # this run has no such output: committing removes an earlier one


class Outputs:
    """Stage a run's outputs and commit them together (see the module docstring).

    Args:
        inputs: every file and folder the run reads (None entries are skipped).
    """

    def __init__(self, inputs: Inputs = ()):
        self.inputs = [Path(p) for p in inputs if p is not None]
        self.items: list[_Staged] = []
        self.made: list[Path] = []  # parent folders made for the outputs
        self.committed = False

    # -- registering -------------------------------------------------------------------------------------------
    def check(self, path: str | Path, flag: str | None = None) -> Path:
        """Refuse a folder the run writes into (not replaced whole) when it is an input or inside one."""
        return check_not_input(path, self.inputs, flag)

    def file(self, path: str | Path, flag: str | None = None) -> Path:
        """Check the file output ``path`` and return the (created, empty) staged file to write instead."""
        path = Path(path)
        check_not_input(path, self.inputs, flag)
        target = output_target(path)  # a FIFO, device or socket, or a symlink loop, is refused here
        if target.is_dir():
            raise DiffPoseError("is a folder; expected a file name", path, flag)
        self._check_overlap(target, path, flag)
        parent = self._parent(target, path, flag)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=parent)
            os.close(fd)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; published files get the usual mode
        except OSError as e:
            raise DiffPoseError(f"cannot write here: {_why(e, parent)}", path, flag) from None
        self.items.append(_Staged(target, Path(tmp), False, path))
        return Path(tmp)

    def folder(self, path: str | Path, owned: tuple[str, ...] = (), flag: str | None = None) -> Path:
        """Check the folder output ``path`` and return the (created, empty) staged folder to fill instead.

        ``owned``: name patterns of the files this output holds; an existing folder holding anything else is
        refused (it would be deleted when the new folder replaces it)."""
        path = Path(path)
        check_not_input(path, self.inputs, flag, replaced=True)
        target = resolve_path(path) if path.is_symlink() else path
        if target.exists() and not target.is_dir():
            raise DiffPoseError("is a file; expected a folder", path, flag)
        self._check_overlap(target, path, flag, folder=True)
        if target.is_dir():
            for entry in sorted(target.iterdir()):
                if entry.is_dir() or not any(fnmatch.fnmatch(entry.name, p) for p in owned):
                    raise DiffPoseError(f"holds {entry.name}, which is not a file this command writes; the folder "
                                        "is replaced whole, so choose a new or empty folder", path, flag)
        parent = self._parent(target, path, flag)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
            os.chmod(tmp, 0o777 & ~_umask())
        except OSError as e:
            raise DiffPoseError(f"cannot write here: {_why(e, parent)}", path, flag) from None
        self.items.append(_Staged(target, tmp, True, path))
        return tmp

    def remove(self, staged: Path) -> None:
        """This run turned out to have no such output after all (e.g. no plot): committing removes the earlier
        run's file of that name, so the outputs in place all come from one run."""
        for item in self.items:
            if item.staged == Path(staged):
                item.absent = True

    def _parent(self, target: Path, path: Path, flag: str | None) -> Path:
        parent = target.parent
        missing = [p for p in (parent, *parent.parents) if not p.exists()]
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.made.extend(missing)  # deepest first: removed again (when empty) if the run fails
        except OSError as e:
            raise DiffPoseError(f"cannot create this folder: {_why(e, parent)}", path, flag) from None
        return parent

    def _check_overlap(self, target: Path, path: Path, flag: str | None, folder: bool = False) -> None:
        mine = resolve_path(target)
        for other in self.items:
            theirs = resolve_path(other.target)
            if mine == theirs:
                raise DiffPoseError(f"is also the output {other.shown}; two outputs name the same path", path, flag)
            if other.folder and mine.is_relative_to(theirs):
                raise DiffPoseError(f"is inside the output folder {other.shown}; two outputs overlap", path, flag)
            if folder and theirs.is_relative_to(mine):
                raise DiffPoseError(f"contains the output {other.shown}; two outputs overlap", path, flag)

    # -- committing --------------------------------------------------------------------------------------------
    def commit(self) -> list[Path]:
        """Move every staged output into place; returns the outputs as given. Only once; later calls no-ops."""
        if self.committed:
            return [item.shown for item in self.items if not item.absent]
        self.committed = True
        done: list[str] = []
        try:
            for item in self.items:
                if item.absent:
                    self._drop(item)
                    if item.target.is_file():
                        item.target.unlink()
                elif item.folder:
                    _replace_folder(item.staged, item.target)
                else:
                    os.replace(item.staged, item.target)
                done.append(str(item.shown))
        except OSError as e:
            self.discard()
            raise DiffPoseError(f"cannot move the output into place: {e.strerror or e}"
                                f"{'; already written: ' + ', '.join(done) if done else ''}", e.filename) from None
        return [item.shown for item in self.items if not item.absent]

    def discard(self) -> None:
        """Remove every staged file and folder that was not committed; the previous outputs stay as they were."""
        for item in self.items:
            self._drop(item)
        if not self.committed:
            for folder in self.made:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when still empty

    @staticmethod
    def _drop(item: _Staged) -> None:
        if item.folder:
            shutil.rmtree(item.staged, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(item.staged)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def _replace_folder(staged: Path, target: Path) -> None:
    """Rename ``staged`` to ``target``; an existing ``target`` is renamed aside first and deleted after."""
    if not target.exists():
        os.replace(staged, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rmdir(old)  # a free name in the same folder
    os.replace(target, old)
    try:
        os.replace(staged, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
