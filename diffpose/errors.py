"""The tool's own error type.

Anything a user can get wrong (a missing file, a malformed field, an incompatible checkpoint) raises
:class:`DiffPoseError` with a message that names the file, the field and what was expected. The command
line prints that message on one line and exits with status 2; it never shows a traceback for these.
"""

from __future__ import annotations

from pathlib import Path


class DiffPoseError(Exception):
    """A problem with the user's input, explained in one line."""

    def __init__(self, message: str, path: str | Path | None = None, field: str | None = None):
        self.path = None if path is None else str(path)
        self.field = field
        where = ""
        if self.path is not None:
            where = self.path + (f" [{field}]" if field else "") + ": "
        elif field:
            where = f"[{field}]: "
        super().__init__(where + message)


class DataFormatError(DiffPoseError):
    """An annotation, prediction or detection file does not have the expected form."""
