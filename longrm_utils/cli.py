"""The command line's one error path, its argument types and its common switches.

Every command raises; only :func:`run_command` prints. A user-facing error is one line on stderr,
naming the file, line, record and field (or the argument as typed), and a non-zero exit status:
2 for bad input or arguments, 1 for anything else. ``--debug`` (or ``LONGRM_DEBUG=1``) shows the
traceback instead. ``--quiet`` (warnings only, no progress bars) and ``--verbose`` (debug records)
work on every command. Booleans are spelt one way: ``--flag/--no-flag`` (:func:`add_flag`).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable

from .io import InputError
from .runtime import set_verbosity

DEBUG_ENV = "LONGRM_DEBUG"
INPUT_ERRORS = (InputError, ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError,
                UnicodeDecodeError)
"""Errors that mean the input or the arguments are wrong (exit 2); anything else is a failure (exit 1)."""


class UsageError(InputError):
    """A command-line argument is wrong; the message names it as typed (``--max-new-tokens``)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing the usage and exiting, so that
    argument errors take the same one-line path as every other error. Help is plain text: docstring
    markup (````code````, ``:func:`name```) is shown without its marks. ``prog`` names the installed
    ``longrm`` script."""

    def __init__(self, *args, **kwargs):
        if str(kwargs.get("prog", "")).startswith("longrm_utils"):
            kwargs["prog"] = "longrm" + kwargs["prog"][len("longrm_utils"):]
        super().__init__(*args, **kwargs)
        add_flag(self, "quiet", default=False, help="warnings only, no progress bars")
        add_flag(self, "verbose", default=False, help="debug records too")

    def parse_args(self, *args, **kwargs):
        a = super().parse_args(*args, **kwargs)
        set_verbosity(-1 if a.quiet else 1 if a.verbose else 0)
        return a

    def format_help(self) -> str:
        return plain_text(super().format_help())

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def plain_text(text: str) -> str:
    """Docstring markup as plain text: ````x```` and ``:role:`x``` become ``x``."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def add_flag(p: argparse.ArgumentParser, name: str, *, default: bool, help: str) -> None:
    """A boolean switch in the one style of this CLI: ``--name`` / ``--no-name``."""
    p.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=default, help=help)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def one_line(err: BaseException) -> str:
    """The error's message on one line (a KeyError's repr quotes are dropped)."""
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    msg = " ".join(str(msg).split())
    return msg or type(err).__name__


def debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """Strip ``--debug`` from ``argv``; True when it or ``LONGRM_DEBUG`` asks for tracebacks."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    return env or "--debug" in argv, [a for a in argv if a != "--debug"]


def run_command(name: str, fn: Callable[[list[str]], int | None], argv: list[str]) -> int:
    """Run one command; turn its exceptions into a one-line message and an exit status."""
    debug, argv = debug_requested(argv)
    try:
        return int(fn(argv) or 0)
    except KeyboardInterrupt:
        print(f"longrm {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place errors become messages
        if debug:
            raise
        code = 2 if isinstance(e, INPUT_ERRORS) else 1
        hint = "" if code == 2 else f" ({type(e).__name__}; run with --debug for the traceback)"
        print(f"longrm {name}: error: {one_line(e)}{hint}", file=sys.stderr)
        return code
