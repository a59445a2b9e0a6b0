"""The exit statuses of every command, and the one error that ends a command with one.

A mistake a person can fix ends the command with one line on stderr, naming the file, option
or value and what is wrong, and one of these statuses (README, "Exit status"):

==========  ==============================================================================
``0``       done
``1``       the command ran but did not finish its work (``forward`` ended with events the
            next hop never acknowledged; an error of ikefilter's own)
``2``       usage: an option, argument or value on the command line, the site config, a
            plugin
``3``       input: a file the command reads (an input, a catalog, a reference text, a key)
            is missing, unreadable or not what it should be; a stream not in the input
            format
``4``       output: where the command writes or listens (an output file or its directory,
            ``--stats``, a port) cannot be used
``130``     interrupted (SIGINT)
``143``     terminated (SIGTERM), after the batch in flight is written
==========  ==============================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator

OK = 0
FAILED = 1
USAGE = 2
INPUT = 3
OUTPUT = 4

# (where, message, argv) -> None: writes the line of a failure somewhere a person reads it
Reporter = Callable[[str, str, "list[str] | None"], None]


class Failure(Exception):
    """A mistake a person can fix: one line (``str(failure)``) and an exit status.

    :ivar status: one of :data:`USAGE`, :data:`INPUT`, :data:`OUTPUT` (or :data:`FAILED`).
    :ivar where: the command it belongs to (``"ikefilter run"``), when known where raised.
    :ivar report: how the command's failures are written, when not as a line on stderr
        (``mmexternal``, whose stderr is rsyslog's reply pipe).
    """

    def __init__(self, status: int, message: str, *, where: str | None = None,
                 report: Reporter | None = None):
        super().__init__(message)
        self.status = status
        self.where = where
        self.report = report


def os_error_text(exc: OSError) -> str:
    """``path: No such file or directory``: the file and the system's reason, no errno."""
    why = exc.strerror or type(exc).__name__
    return f"{exc.filename}: {why}" if exc.filename else why


@contextlib.contextmanager
def reading(*errors: type[BaseException]) -> Iterator[None]:
    """An ``OSError`` (or one of ``errors``, the reader's own) becomes an :data:`INPUT`
    failure."""
    try:
        yield
    except OSError as exc:
        raise Failure(INPUT, os_error_text(exc)) from None
    except errors as exc:  # type: ignore[misc]
        raise Failure(INPUT, str(exc)) from None


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """An ``OSError`` becomes an :data:`OUTPUT` failure."""
    try:
        yield
    except OSError as exc:
        raise Failure(OUTPUT, os_error_text(exc)) from None


def to_stderr(where: str, message: str, argv: list[str] | None = None) -> None:
    print(f"{where}: {message}", file=sys.stderr)


def log_file_reporter(option: str) -> Reporter:
    """For a command whose stderr is not for people (``mmexternal``'s is rsyslog's reply
    pipe): a mistake found before the command points stderr away goes to the file named
    by ``option`` when the command line names one, to stderr only when that is a terminal
    (a person trying the command), else nowhere (the exit status says it)."""

    def write(where: str, message: str, argv: list[str] | None) -> None:
        args = list(sys.argv[1:] if argv is None else argv)
        path = None
        for i, arg in enumerate(args):
            if arg == option and i + 1 < len(args):
                path = args[i + 1]
            elif arg.startswith(f"{option}="):
                path = arg.partition("=")[2]
        line = f"{where}: {message}\n"
        if path:
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(line)
                return
            except OSError:
                pass
        try:
            if os.isatty(2):
                os.write(2, line.encode("utf-8", "replace"))
        except OSError:
            pass

    return write


def report(failure: Failure, where: str, argv: list[str] | None = None) -> int:
    """Write the failure's one line and return its status."""
    (failure.report or to_stderr)(failure.where or where, str(failure), argv)
    return failure.status


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are :class:`Failure` (:data:`USAGE`): one line that
    points at ``--help``, instead of the usage text and ``SystemExit``.

    A command whose stderr is not for people sets ``report_usage`` in its defaults.
    """

    def error(self, message: str):
        raise Failure(USAGE, f"{message} (see '{self.prog} --help')", where=self.prog,
                      report=self.get_default("report_usage"))

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            # Named for the command they were given to, not for the top-level parser.
            command = getattr(namespace, "command", None)
            where = f"{self.prog} {command}" if command else self.prog
            raise Failure(USAGE, f"unrecognized arguments: {' '.join(extras)} "
                          f"(see '{where} --help')", where=where,
                          report=getattr(namespace, "report_usage", None))
        return namespace
