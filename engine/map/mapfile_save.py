"""Saving a mapfile atomically, with ``MAP.bak`` rotation and a fallback for a full filesystem.

Unlike ddrescue, which rewrites the file in place, :func:`save_mapfile` writes a temporary file
beside it, fsyncs it, renames it over and fsyncs the directory, so a crash never leaves a
truncated mapfile. Only on a full filesystem, where a second copy does not fit, is the map
rewritten in place as ddrescue does.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from typing import IO

#: errnos of a full filesystem: the atomic save then falls back to rewriting the map in place
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class _NoSpace(Exception):
    """Writing the temporary map ran out of space; ``pieces`` holds the whole text."""

    def __init__(self, exc: OSError, pieces: list[str]) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.pieces = pieces


def save_mapfile(
    path: str,
    pieces: Iterable[str],
    rotate_backup: bool = False,
) -> None:
    """Write a mapfile atomically: temp file, fsync, (``MAP.bak`` rotation), rename, fsync dir.

    On a full filesystem (ENOSPC, EDQUOT) there is no room for a second copy. The map is then
    rewritten in place, as ddrescue always does (truncate, write, fsync): the old map's blocks
    are freed first, so the save still fits, and the output was fsynced before, so the map never
    claims data that is not on disk. The one cost is atomicity during that one write.

    Raises:
        OSError: the file could not be written; unless the filesystem was full, the old
            mapfile is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        try:
            _write_temp(tmp, pieces)
        except _NoSpace as full:
            _unlink(tmp)
            if not os.path.isfile(path):
                raise full.exc from None
            _rewrite_in_place(path, full.pieces, full.exc)
        else:
            if rotate_backup and os.path.exists(path):
                bak = path + ".bak"
                bak_tmp = tmp + ".bak"
                os.link(path, bak_tmp)
                os.replace(bak_tmp, bak)
            os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if (directory, path) not in _swept:
        _swept.add((directory, path))
        _sweep_stale_temps(directory, os.path.basename(path))


#: (directory, mapfile) pairs whose stale temporary files this process has already removed
_swept: set[tuple[str, str]] = set()


def _sweep_stale_temps(directory: str, base: str) -> None:
    """Remove the temporary maps a killed run left (``.MAP.tmpPID`` of a dead PID).

    Done once per process and mapfile, after its first successful save.
    """
    prefix = f".{base}.tmp"
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix) :].removesuffix(".bak")
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _unlink(os.path.join(directory, name))
        except OSError:
            pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _write_temp(tmp: str, pieces: Iterable[str]) -> None:
    """Write and fsync ``tmp``; raise :class:`_NoSpace` (with all the text) when it is full.

    An error raised by ``pieces`` itself propagates as it is.
    """
    kept: list[str] = []
    it = iter(pieces)
    with open(tmp, "w", encoding="latin-1") as fh:
        try:
            for piece in it:  # an error of the generator itself propagates as it is
                kept.append(piece)
                _write_piece(fh, piece)
            _write_piece(fh, "", sync=True)
        except _Full as full:
            kept.extend(it)
            try:
                fh.close()
            except OSError:
                pass
            raise _NoSpace(full.exc, kept) from None


class _Full(Exception):
    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.exc = exc


def _write_piece(fh: IO[str], piece: str, sync: bool = False) -> None:
    try:
        fh.write(piece)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise _Full(exc) from None
        raise


def _rewrite_in_place(path: str, pieces: list[str], cause: OSError) -> None:
    """ddrescue's way when the filesystem is full: write the map over itself. The room for a
    longer map is reserved first (``posix_fallocate``): without room for it the old map stays
    whole (a map cut mid-line would stop every later run); then the text goes over it from
    byte 0, and the file is cut to the new length."""
    data = "".join(pieces).encode("latin-1")
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        old = os.fstat(fd).st_size
        if len(data) > old:
            try:
                os.posix_fallocate(fd, 0, len(data))
            except OSError:
                raise cause from None  # no room for it: the old map stays, whole
        view = memoryview(data)
        pos = 0
        while pos < len(data):
            pos += os.pwrite(fd, view[pos:], pos)
        if len(data) < old:
            os.ftruncate(fd, len(data))
        os.fsync(fd)
    except OSError:
        raise cause from None
    finally:
        os.close(fd)
