"""The ``diffpose`` command line: one entry point, one module per subcommand.

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy imports (torch, cv2) happen inside ``run`` so that ``diffpose --help`` stays fast.
A :class:`~diffpose.errors.DiffPoseError` is printed as one line (``diffpose: error: ...``) with exit
status 2, never as a traceback (also when it was raised in a data-loading worker process).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from diffpose import __version__
from diffpose.errors import DiffPoseError

# (command, module): the order is the order of ``diffpose --help``.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("demo", "diffpose.cli.demo"),
    ("evaluate", "diffpose.cli.evaluate"),
    ("export", "diffpose.cli.export"),
    ("infer", "diffpose.cli.infer"),
    ("model-info", "diffpose.cli.model_info"),
    ("synth", "diffpose.cli.synth"),
    ("train", "diffpose.cli.train"),
    ("test", "diffpose.cli.test"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffpose",
        description="Video multi-person 2D pose estimation with a spatio-temporal diffusion model "
        "(DiffPose, ICCV 2023): data, training, evaluation and inference.",
    )
    parser.add_argument("--version", action="version", version=f"diffpose {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS:
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def one_line(error: DiffPoseError) -> str:
    """The error's message on one line.

    An error raised in a ``DataLoader`` worker process reaches the main process re-raised with the worker's
    traceback in its message; its last line (``diffpose.errors.DataFormatError: FILE: what``) holds the
    original message.
    """
    text = str(error).strip()
    if "\n" not in text:
        return text
    last = text.splitlines()[-1].strip()
    found = re.match(r"[\w.]*(?:Error|Exception): (.+)", last)
    return found.group(1) if found else " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except DiffPoseError as e:
        print(f"diffpose {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"diffpose {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
