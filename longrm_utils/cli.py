"""The command line's one error path and its argument types.

Every command raises; only :func:`run_command` prints. A user-facing error is one line on stderr,
naming the file, line, record and field (or the argument as typed), and a non-zero exit status:
2 for bad input or arguments, 1 for anything else. ``--debug`` (or ``LONGRM_DEBUG=1``) shows the
traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from .io import InputError

DEBUG_ENV = "LONGRM_DEBUG"
INPUT_ERRORS = (InputError, ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError,
                UnicodeDecodeError)
"""Errors that mean the input or the arguments are wrong (exit 2); anything else is a failure (exit 1)."""


class UsageError(InputError):
    """A command-line argument is wrong; the message names it as typed (``--max-new-tokens``)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing the usage and exiting, so that
    argument errors take the same one-line path as every other error."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


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
