"""The copy-on-write overlay of a live mount: a sparse data file and the map of what it holds.

``OVERLAY`` is a sparse file as large as the image: a byte written through the mount at image
position ``p`` is stored at ``p`` in it. ``OVERLAY.map`` beside it is a GNU ddrescue-format
mapfile over the same range, where ``+`` marks what the overlay holds and ``?`` the rest, so
``ddfs log -t OVERLAY.map`` or ``ddrescuelog -l+ OVERLAY.map`` read it too. Its first comment line
``# ddfs-overlay: {json}`` records the image size and the files the overlay must never be
applied to by mistake (the rescue's OUTFILE, unless asked, and the source).

Granularity: 512-byte sectors. The overlay only ever holds whole sectors, so a partial-sector
write is merged by the caller with the sector as the mount serves it (read-modify-write).

Durability: :meth:`Overlay.write` writes the data (pwrite) and then records the range in the
map in memory. :meth:`Overlay.commit` takes a snapshot of that map, fsyncs the data file and
only then saves the snapshot atomically (temporary file, fsync, rename, fsync of the directory,
as the rescue's mapfile). So a map on disk never claims a sector that was not written and
fsynced before it; a write made after the last commit may or may not be there after a crash,
as on a disk without a cache flush.

Locking: whoever changes an overlay (the mount, ``ddfs overlay --reset/--apply``) holds an
exclusive ``flock`` on the data file, so two of them never work on it at once.

Nothing here knows about FUSE or trio: the calls block, and the caller runs them in a thread.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from dataclasses import asdict, dataclass

from engine.errors import DdfsError
from engine.map.blockmap import BlockMap
from engine.map.mapfile import mapfile_text, parse_mapfile, save_mapfile

SECTOR = 512
MAP_SUFFIX = ".map"
WRITTEN, CLEAN = "+", "?"
TAG = "# ddfs-overlay: "
FORMAT = 1


@dataclass(frozen=True)
class OverlayInfo:
    """What the map's header records about the image the overlay belongs to."""

    size: int
    output: str | None = None  # the rescue's OUTFILE (absolute path)
    output_offset: int = 0  # output position = image position + output_offset
    source: str | None = None  # the rescue's INFILE (absolute path)
    sector: int = SECTOR
    format: int = FORMAT

    def header(self) -> str:
        return TAG + json.dumps(asdict(self), sort_keys=True) + "\n"


def map_path(path: str) -> str:
    return path + MAP_SUFFIX


def read_info(mpath: str) -> OverlayInfo:
    """The header of an overlay map.

    Raises:
        DdfsError: the file is missing or is not an overlay map.
    """
    try:
        with open(mpath, encoding="latin-1") as fh:
            for line in fh:
                if line.startswith(TAG):
                    fields = json.loads(line[len(TAG) :])
                    info = OverlayInfo(**fields)
                    if info.format != FORMAT or info.sector != SECTOR:
                        break
                    return info
                if not line.startswith("#"):
                    break
    except FileNotFoundError:
        raise DdfsError(f"{mpath}: No such overlay map.") from None
    except (OSError, ValueError, TypeError) as exc:
        raise DdfsError(f"{mpath}: Not a ddfs overlay map ({exc}).") from None
    raise DdfsError(f"{mpath}: Not a ddfs overlay map (no '{TAG.strip()}' line).")


def _same(a: str, b: str | None) -> bool:
    if b is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


class Overlay:
    """An open overlay: the data file, the map of written sectors, and the commit logic.

    Thread-safe: reads, writes and commits may come from several worker threads.
    """

    def __init__(self, path: str, fd: int, info: OverlayInfo, bmap: BlockMap) -> None:
        self.path = path
        self.map_path = map_path(path)
        self.fd = fd
        self.info = info
        self.bmap = bmap
        self.dirty = False
        self.writes = 0
        self.bytes_written = 0
        self.commits = 0
        self.last_commit: float | None = None
        self._lock = threading.Lock()  # the map and the counters
        self._commit_lock = threading.Lock()  # one commit at a time

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        path: str,
        size: int,
        *,
        output: str | None = None,
        output_offset: int = 0,
        source: str | None = None,
        protect: dict[str, str] | None = None,
    ) -> Overlay:
        """Open (or create) the overlay of an image of ``size`` bytes for a mount, locked.

        ``protect`` names files the overlay or its map must not be (``{"OUTFILE": path}``).

        Raises:
            DdfsError: the overlay is one of the protected files, belongs to another image,
                is not an overlay, or is in use.
        """
        path = os.path.abspath(path)
        mpath = map_path(path)
        for what, other in (protect or {}).items():
            for mine in (path, mpath):
                if _same(mine, other):
                    raise DdfsError(f"{mine}: The overlay (or its map) can't be the {what}.")
        info = OverlayInfo(
            size,
            os.path.abspath(output) if output else None,
            output_offset,
            os.path.abspath(source) if source else None,
        )
        if not os.path.exists(mpath):
            return cls._create(path, info)
        old = read_info(mpath)
        if old.size != size:
            raise DdfsError(
                f"{path}: The overlay was made for an image of {old.size} bytes, not {size} bytes."
            )
        overlay = cls._load(path, writable=True)
        if old != info:  # the rescue's files moved: record where they are now
            overlay.info = info
            overlay.dirty = True
            overlay.commit()
        return overlay

    @classmethod
    def _create(cls, path: str, info: OverlayInfo) -> Overlay:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_size not in (0, info.size) or st.st_blocks):
            raise DdfsError(
                f"{path}: Exists and is not a ddfs overlay (there is no {path}{MAP_SUFFIX})."
            )
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _lock(fd, path)
            os.ftruncate(fd, info.size)
            os.fsync(fd)
            overlay = cls(path, fd, info, BlockMap(info.size, CLEAN))
            overlay.dirty = True
            overlay.commit()
        except BaseException:
            os.close(fd)
            raise
        return overlay

    @classmethod
    def load(cls, path: str, *, writable: bool = False) -> Overlay:
        """Open an existing overlay (for ``ddfs overlay``); locked when ``writable``.

        Raises:
            DdfsError: it does not exist, is not an overlay, or is in use (``writable``).
        """
        return cls._load(os.path.abspath(path), writable)

    @classmethod
    def _load(cls, path: str, writable: bool) -> Overlay:
        mpath = map_path(path)
        info = read_info(mpath)
        bmap = parse_mapfile(mpath).bmap
        if bmap.end != info.size or bmap.size_of(WRITTEN) + bmap.size_of(CLEAN) != info.size:
            raise DdfsError(f"{mpath}: Not a ddfs overlay map (unexpected blocks).")
        try:
            fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        except OSError as exc:
            raise DdfsError(f"{path}: Can't open the overlay: {exc.strerror}") from None
        try:
            if writable:
                _lock(fd, path)
                if os.fstat(fd).st_size < info.size:
                    os.ftruncate(fd, info.size)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, info, bmap)

    def close(self) -> None:
        """Close the data file (which also releases the lock); nothing is committed."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ------------------------------------------------------------------ the map
    @property
    def size(self) -> int:
        return self.info.size

    def pieces(self, pos: int, size: int) -> list[tuple[int, int, bool]]:
        """``[pos, pos+size)`` cut into ``(pos, size, written)`` runs, in order."""
        end = min(pos + size, self.size)
        out: list[tuple[int, int, bool]] = []
        with self._lock:
            for s, e, st in self.bmap.blocks_from(pos):
                if s >= end:
                    break
                lo, hi = max(s, pos), min(e, end)
                out.append((lo, hi - lo, st == WRITTEN))
        return out

    def written(self) -> list[tuple[int, int]]:
        """Every written range, as ``(pos, size)``."""
        with self._lock:
            return [(s, e - s) for s, e, st in self.bmap.blocks_from(0) if st == WRITTEN]

    @property
    def written_bytes(self) -> int:
        with self._lock:
            return self.bmap.size_of(WRITTEN)

    def stats(self) -> dict[str, object]:
        """The overlay's figures for ``status.json``."""
        with self._lock:
            written, ranges = self.bmap.size_of(WRITTEN), self.bmap.count_of(WRITTEN)
        return {
            "path": self.path,
            "written_bytes": written,
            "written_ranges": ranges,
            "writes": self.writes,
            "bytes_written": self.bytes_written,
            "commits": self.commits,
            "uncommitted": self.dirty,
            "since_last_commit": (
                None if self.last_commit is None else time.time() - self.last_commit
            ),
        }

    # ------------------------------------------------------------------ data
    def read(self, pos: int, size: int) -> bytes:
        """The overlay's bytes at ``[pos, pos+size)`` (meaningful where written)."""
        data = os.pread(self.fd, size, pos)
        return data + bytes(size - len(data))

    def write(self, pos: int, data: bytes) -> None:
        """Store whole sectors at ``pos`` and record them as written (not yet committed).

        Raises:
            ValueError: ``pos`` or the length is not a multiple of the sector, or out of range.
            OSError: the data file could not be written.
        """
        n = len(data)
        if pos % SECTOR or (n % SECTOR and pos + n != self.size) or pos < 0:
            raise ValueError(f"overlay write [{pos}, {pos + n}) is not whole sectors")
        if pos + n > self.size:
            raise ValueError(f"overlay write [{pos}, {pos + n}) past the end ({self.size})")
        done = 0
        while done < n:
            wrote = os.pwrite(self.fd, data[done:], pos + done)
            if wrote <= 0:
                raise OSError(errno.EIO, "short write to the overlay")
            done += wrote
        with self._lock:  # only now, with the data in the file, does the map claim it
            self.bmap.set_status(pos, n, WRITTEN)
            self.dirty = True
            self.writes += 1
            self.bytes_written += n

    def commit(self) -> bool:
        """Make the writes so far durable: fsync the data, then save the map atomically.

        Returns whether anything had to be saved.

        Raises:
            OSError: the data could not be synced or the map saved (the old map stays).
        """
        with self._commit_lock:
            with self._lock:
                if not self.dirty:
                    return False
                text = mapfile_text(self.bmap, 0, WRITTEN, 1, self._header())
                self.dirty = False
            try:
                os.fsync(self.fd)  # every range in the snapshot was written before it
                save_mapfile(self.map_path, [text])
            except BaseException:
                self.dirty = True
                raise
            self.commits += 1
            self.last_commit = time.time()
            return True

    def _header(self) -> str:
        return (
            self.info.header()
            + "# ddfs overlay map: '+' = sectors written through the mount, '?' = not\n"
        )

    def reset(self) -> None:
        """Throw every write away: an empty map first, then the data is freed."""
        with self._commit_lock:
            with self._lock:
                self.bmap = BlockMap(self.size, CLEAN)
                self.dirty = False
                text = mapfile_text(self.bmap, 0, WRITTEN, 1, self._header())
            save_mapfile(self.map_path, [text])
            os.ftruncate(self.fd, 0)
            os.ftruncate(self.fd, self.size)
            os.fsync(self.fd)


def _lock(fd: int, path: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DdfsError(f"{path}: The overlay is in use (by a ddfs mount?).") from None


def apply_overlay(
    overlay: Overlay, target: str, *, to_output: bool = False, chunk: int = 1 << 20
) -> tuple[int, int]:
    """Write the overlay's ranges into ``target`` (a copy of the image); return (ranges, bytes).

    Positions are shifted by the output offset the overlay recorded, as in OUTFILE. The target is
    synced before this returns.

    Raises:
        DdfsError: ``target`` is the source, or the rescue's OUTFILE without ``to_output``, or
            is too small, or can't be written.
    """
    info = overlay.info
    if _same(target, info.source):
        raise DdfsError(f"{target}: That is the rescue's source; nothing is ever written there.")
    if _same(target, overlay.path) or _same(target, overlay.map_path):
        raise DdfsError(f"{target}: That is the overlay itself.")
    if _same(target, info.output) and not to_output:
        raise DdfsError(
            f"{target}: That is the rescue's output (OUTFILE). Apply to a copy, or give "
            "--to-output to write the repairs into the rescued image itself."
        )
    ranges = overlay.written()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DdfsError(f"{target}: Can't open: {exc.strerror}") from None
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        need = max((p + n for p, n in ranges), default=0) + info.output_offset
        if end < need:
            raise DdfsError(
                f"{target}: Too small ({end} bytes) for the overlay's writes (up to {need})."
            )
        total = 0
        for pos, size in ranges:
            off = 0
            while off < size:
                n = min(chunk, size - off)
                data = overlay.read(pos + off, n)
                os.pwrite(fd, data, pos + off + info.output_offset)
                off += n
            total += size
        os.fsync(fd)
    except OSError as exc:
        raise DdfsError(f"{target}: Write error: {exc.strerror}") from None
    finally:
        os.close(fd)
    return len(ranges), total
