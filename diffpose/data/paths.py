"""Paths that come from data files stay inside their root.

A PoseTrack ``file_name``, a split name (``data.train_split``, ``--split``) or an ONNX manifest's graph file
name is text someone else wrote; joined to a root it must name something *under* that root. The rule is
**lexical**: the name must be relative (no leading ``/``, no drive) and hold no ``..`` component. It is not
resolved: a dataset whose ``images`` folder is a symlink to another disk (``images -> /mnt/big/images``) is
legitimate and keeps working; what the rule refuses is a data file that points elsewhere by itself.

* :func:`confined` -- ``root / relative`` or a one-line :class:`~diffpose.errors.DataFormatError` naming the
  file the name came from and its field.
* :func:`single_name` -- a name that must be one path component (a split folder, a graph file).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from diffpose.errors import DataFormatError


def escape_reason(relative: str) -> str | None:
    """Why ``relative`` would leave its root (``"is an absolute path"``, ``"holds '..'"``), or None."""
    if not isinstance(relative, str):
        return "is not a string"
    if "\x00" in relative:
        return "holds a NUL character"
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or relative.startswith(("/", "\\")):
        return "is an absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "holds '..'"
    return None


def confined(root: str | Path, relative: str, source: str | Path | None = None, field: str | None = None,
             what: str = "path") -> Path:
    """``root / relative``, refusing a ``relative`` that is absolute or holds ``..`` (checked lexically: a
    symlinked folder inside the root is followed as the user set it up). ``source`` and ``field`` name where the
    name was read (default: the root)."""
    reason = escape_reason(relative)
    if reason is not None:
        raise DataFormatError(f"{what} {relative!r} {reason}; it must be relative to {root} and stay inside it",
                              source if source is not None else root, field)
    return Path(root) / relative


def single_name(name: str, source: str | Path | None = None, field: str | None = None, what: str = "name") -> str:
    """``name`` if it is one plain path component (not empty, not ``.``/``..``, no ``/`` or ``\\``)."""
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise DataFormatError(f"{what} {name!r} must be a single folder or file name (no '/', '\\' or '..')",
                              source, field)
    return name
