"""Atomic file output: write to a temporary file in the target directory, then rename over the target.

A crash, a full disk or a kill in the middle of a write leaves the previous file (if any) intact and
never a half-written one.

Every output path goes through :func:`output_target` first: a symlink is followed, so the write replaces its
target (the temporary file is made in the target's folder) and the link stays; a FIFO, a device or a socket
is refused (renaming over it would replace it with a plain file); a symlink loop is a one-line error.
:func:`check_output` adds what every command checks before any work: the output is not one of the inputs and
not inside an input folder (a dataset root, an annotation folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from diffpose.errors import DiffPoseError


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it is flushed, fsynced and renamed to ``path``."""
    path = output_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise DiffPoseError(f"cannot write here: {_why(e, path.parent)}", path) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; published files get the usual mode
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def ensure_dir(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents) or raise a one-line :class:`DiffPoseError` saying why not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DiffPoseError(f"cannot create this folder: {_why(e, folder)}", folder) from None
    return folder


def check_writable(path: str | Path, folder: bool = False) -> Path:
    """Fail now, before any work, when ``path`` (a file, or a folder with ``folder=True``) cannot be written.

    Creates the missing parent folders (the later write would create them too) and probes the folder with a
    temporary file that is removed at once. Raises a one-line :class:`DiffPoseError` naming ``path``.
    """
    path = Path(path)
    if not folder:
        output_target(path)  # a FIFO, device or socket, or a symlink loop, is refused now
    if not folder and path.is_dir():
        raise DiffPoseError("is a folder; expected a file name", path)
    if folder and path.exists() and not path.is_dir():
        raise DiffPoseError("is a file; expected a folder", path)
    where = path if folder else path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".diffpose-probe.", suffix=".tmp", dir=where)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise DiffPoseError(f"cannot write here: {_why(e, where)}", path) from None
    return path


SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def resolve_path(path: str | Path) -> Path:
    """``path`` made absolute with every symlink followed; a symlink loop is a one-line error."""
    try:
        return Path(path).resolve(strict=False)
    except (RuntimeError, OSError) as e:  # Python 3.11 raises RuntimeError("Symlink loop ...")
        raise DiffPoseError(f"cannot resolve this path (a symlink loop?): {getattr(e, 'strerror', None) or e}",
                            path) from None


def output_target(path: str | Path) -> Path:
    """The file a write to ``path`` really replaces: ``path`` itself, or the target of the symlink ``path``.

    Refuses a FIFO, a device or a socket (atomic replacement would swap it for a plain file) and a symlink loop.
    """
    path = Path(path)
    target = resolve_path(path) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as e:
        if e.errno == 40:  # ELOOP
            raise DiffPoseError("cannot resolve this path (a symlink loop)", path) from None
        return target
    for test, what in SPECIAL_FILES:
        if test(mode):
            raise DiffPoseError(f"is {what}, not a regular file; refusing to write to it", path)
    return target


def check_output(path: str | Path, inputs: list[str | Path] | tuple[str | Path, ...] = (), folder: bool = False,
                 flag: str | None = None) -> Path:
    """Before any work: ``path`` can be written (:func:`check_writable`), is not a special file, and is neither
    one of ``inputs`` nor inside an input folder."""
    check_not_input(path, inputs, flag)
    return check_writable(path, folder=folder)


def check_not_input(path: str | Path, inputs: list[str | Path] | tuple[str | Path, ...] = (),
                    flag: str | None = None, replaced: bool = False) -> Path:
    """Refuse ``path`` when it is one of ``inputs`` or inside an input folder (creates nothing); with
    ``replaced=True`` (a folder output that is replaced whole) also when an input lies inside it."""
    target = resolve_path(path)
    for given in inputs:
        if given is None:
            continue
        source = resolve_path(given)
        if target == source:
            raise DiffPoseError(f"is one of the inputs ({given}); refusing to write over or into an input", path,
                                flag)
        if source.is_dir() and target.is_relative_to(source):
            raise DiffPoseError(f"is inside the input folder {given}; refusing to write over or into an input",
                                path, flag)
        if replaced and source.is_relative_to(target):
            raise DiffPoseError(f"contains the input {given} and would be replaced whole; refusing to write over "
                                "or into an input", path, flag)
    return target


def _why(error: OSError, folder: Path) -> str:
    """Why ``folder`` cannot hold a new file: a file in the way (the nearest existing ancestor), or the OS reason."""
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            if not candidate.is_dir():
                return f"{candidate} is a file, not a folder"
            break
    return error.strerror or str(error)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    return atomic_write_with(lambda f: f.write(data), path)


def atomic_write_text(text: str, path: str | Path) -> Path:
    return atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj: Any, path: str | Path, indent: int | None = None) -> Path:
    """Serialise ``obj`` as JSON (no NaN allowed) and write it atomically."""
    text = json.dumps(obj, indent=indent, allow_nan=False)
    return atomic_write_text(text, path)


def atomic_write_with(writer: Callable[[IO[bytes]], None], path: str | Path) -> Path:
    """Let ``writer`` fill a binary file object, then publish it atomically (e.g. ``torch.save``).

    A failed write (a full disk, a quota, an I/O error) raises a one-line :class:`DiffPoseError` and leaves
    ``path`` as it was. Serialisers that wrap the ``OSError`` in their own exception (``torch.save`` raises
    ``RuntimeError`` with the ``OSError`` as its context) are recognised through the exception chain.
    """
    try:
        with atomic_open(path, "wb") as f:
            writer(f)
    except DiffPoseError:
        raise
    except Exception as e:
        os_error = os_error_in_chain(e)
        if os_error is None:
            raise
        raise DiffPoseError(f"cannot write: {os_error.strerror or os_error}", path) from None
    return Path(path)


def os_error_in_chain(error: BaseException) -> OSError | None:
    """The first :class:`OSError` among ``error`` and its causes / contexts, or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def missing_reason(path: Path) -> str:
    """Why ``path`` is not a readable file: a symlink loop, a dangling link, not there, or not a file."""
    if path.is_symlink() or any(p.is_symlink() for p in path.parents):
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return "cannot resolve this path (a symlink loop)"
        except OSError as e:
            if e.errno == 40:
                return "cannot resolve this path (a symlink loop)"
            return f"cannot resolve this path (the link points to nothing: {e.strerror or e})"
    if not path.exists():
        return "file does not exist"
    return "is not a file"
