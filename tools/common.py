"""What both command-line tools share: how they write files and how a run ends.

Output files are written all-or-nothing (a failure leaves every existing file
as it was) and with the permissions `open()` would give them: mkstemp's
temporary files are 0600, which would otherwise leak into every result.
A run ends like a Unix tool's: diagnostics with exit 1, a closed pipe quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import IO

from lathe.errors import LatheError, internal_error

Writer = Callable[[IO[bytes]], None]  # writes a whole file's contents to a binary stream

EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool that SIGPIPE ended (as `cat` under pipefail)


def _new_file_mode() -> int:
    """0o666 less the umask (which can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _mode_for(path: str) -> int:
    """Replacing a file keeps its mode, as writing into it would; a new file follows the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return _new_file_mode()


def write_files(files: Sequence[tuple[str, Writer]]) -> None:
    """Write every file to a temporary beside its destination, then rename them all into place.
    A symbolic link stays a link (its target is replaced); what is not a regular file
    (/dev/null, a FIFO, a terminal) cannot be replaced, and is written into, last."""
    staged: list[tuple[str, str, str]] = []  # (temporary, final, as given)
    direct: list[tuple[str, Writer, str]] = []
    path = ""
    try:
        for path, write in files:
            if os.path.isdir(path):
                raise LatheError(f"cannot write {path}: it is a directory")
            if os.path.exists(path) and not os.path.isfile(path):
                direct.append((path, write, path))
                continue
            final = os.path.realpath(path)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(final), prefix=".lathe-")
            staged.append((tmp, final, path))
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.chmod(tmp, _mode_for(final))
        for tmp, final, _path in staged:
            os.replace(tmp, final)
        for final, write, _path in direct:
            with open(final, "wb") as f:
                write(f)
    except BaseException as e:
        for tmp, _, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError):
            raise LatheError(f"cannot write {path}: {e.strerror}") from None
        raise


def write_text(path: str, text: str) -> None:
    write_files([(path, lambda f: f.write(text.encode()))])


def write_bytes(path: str, data: bytes) -> None:
    write_files([(path, lambda f: f.write(data))])


def versions() -> str:
    """Lathe's version from its package metadata, then what it is built on."""
    from importlib.metadata import version

    import llvmlite.binding as llvm

    llvm_version = ".".join(map(str, llvm.llvm_version_info))
    return f"lathe {version('lathe')} (xDSL {version('xdsl')}, llvmlite {version('llvmlite')}, LLVM {llvm_version})"


class VersionAction(argparse.Action):
    """--version: computed when asked for, so that llvmlite is not imported on every start."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(versions())
        parser.exit()


def usage_error(parser: argparse.ArgumentParser, message: str):
    """argparse's errors as every other mistake: usage, one line, exit 1 (argparse exits 2)."""
    parser.print_usage(sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def _quiet_stdout() -> None:
    """The reader is gone: point stdout at /dev/null so that Python's flush at exit cannot fail
    again (the recipe of the `signal` module's documentation for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def run_tool(
    body: Callable[[], int],
    render: Callable[[BaseException], str] | None = None,
    user_errors: tuple[type[BaseException], ...] = (LatheError,),
) -> int:
    """Run a tool's body and turn how it ended into an exit status: a user's mistake is one
    diagnostic and exit 1, a closed pipe ends quietly, anything else is a bug in Lathe (exit 2)."""
    try:
        status = body()
        sys.stdout.flush()  # inside the guard: a closed pipe shows up here for buffered output
        return status
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except user_errors as e:
        print(render(e) if render else str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug in Lathe, not in the input: still no traceback unless asked
        return internal_error(e)
