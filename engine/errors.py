"""Exceptions of the engine, each carrying the exit status GNU ddrescue uses for it."""

from __future__ import annotations


class DdfsError(Exception):
    """An error that ends a run with a one-line message and an exit status."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class MapfileError(DdfsError):
    """A corrupt or invalid mapfile (exit 2), with the offending line number."""

    exit_code = 2

    def __init__(self, path: str, line: int, what: str) -> None:
        super().__init__(f"{path}: Error in mapfile, line {line}: {what}")
        self.path = path
        self.line = line
        self.what = what


class FatalReadError(DdfsError):
    """A read error that ddrescue treats as fatal (exit 1)."""


class WriteError(DdfsError):
    """A failed or short write to the output (exit 1)."""


class Stop(Exception):
    """The run stops before a read: an interrupt or a limit. ``signum`` is set for a signal."""

    def __init__(self, message: str, signum: int = 0) -> None:
        super().__init__(message)
        self.signum = signum
