"""How a read of the live image is answered (async, trio; no FUSE here).

Finished data is read from OUTFILE in a worker thread (its own limiter; never the source). Data
not yet finished becomes an urgent request to the engine thread, awaited up to the read timeout;
afterwards whatever is finished is served, and the rest follows the ``--unreadable`` policy:
``eio`` (as the disk would) or ``zero`` (for tools that give up at the first EIO). A request that
times out stays queued: the engine keeps going on it while the caller has its answer.

Layers, top first: with ``--overlay``, the sectors written through the mount come from the
overlay file (:mod:`ddfs.live.overlay`); with ``--repair-view``, a lost primary whose backup is
rescued is served from the backup (:mod:`ddfs.live.repairview`); everything else is the rescued data
above. A write goes to the overlay only, in whole sectors: a partial sector is first read as it
is served (any layer) and merged, so a write never needs the rescue to have the bytes it
replaces unless it covers part of a sector. Every blocking read or write runs in a worker thread.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TypeVar

import trio

from ddfs.live.overlay import SECTOR, Overlay
from ddfs.live.repairview import RepairView, Substitution
from ddfs.live.tree import SequentialDetector
from ddfs.live.view import View

T = TypeVar("T")


class Unreadable(Exception):
    """The range holds bad or unrescued data and the policy is EIO."""


class ImageReader:
    """Reads of the image for the FUSE layer."""

    def __init__(
        self,
        view: View,
        output_path: str,
        offset: int = 0,
        timeout: float = 5.0,
        unreadable: str = "eio",
        readahead: int = 1 << 20,
        overlay: Overlay | None = None,
        repair: RepairView | None = None,
    ) -> None:
        self.view = view
        self.live = view.live
        self.fd = os.open(output_path, os.O_RDONLY | os.O_CLOEXEC)
        self.offset = offset  # output position = input position + offset
        self.timeout = timeout
        self.unreadable = unreadable
        self.readahead = readahead
        self.limiter = trio.CapacityLimiter(8)
        self.overlay = overlay
        self.repair = repair
        self.overlay_limiter = trio.CapacityLimiter(4)
        self._write_lock = trio.Lock()  # one read-modify-write at a time

    @property
    def writable(self) -> bool:
        return self.overlay is not None

    def close(self) -> None:
        os.close(self.fd)

    def detector(self) -> SequentialDetector:
        return SequentialDetector(self.readahead)

    async def read(
        self,
        pos: int,
        size: int,
        seq: SequentialDetector | None = None,
        strict: bool = False,
    ) -> bytes:
        """The bytes of the image at ``[pos, pos+size)``.

        Raises:
            Unreadable: the range starts with bad data or data that could not be rescued in
                time (policy eio, or ``strict``: the merge of a partial-sector write never
                stores made-up zeros, and then any such byte in the range raises). Otherwise a
                range with such bytes further on gives the good bytes before them: a short read.
        """
        if size <= 0:
            return b""
        if seq is not None:
            ahead = seq.note(pos, size)
            if ahead is not None:
                self._read_ahead(*ahead)
        if self.overlay is None and self.repair is None:
            return await self._read_rescued(pos, size, strict)
        parts: list[bytes] = []
        try:
            for p, n, written in self._overlay_pieces(pos, size):
                if written:
                    assert self.overlay is not None
                    parts.append(await self._in_thread(self.overlay.read, p, n))
                    continue
                for q, m, sub in self._repair_pieces(p, n):
                    if sub is None:
                        parts.append(await self._read_rescued(q, m, strict))
                        if len(parts[-1]) < m:  # a short read: stop before the bad sector
                            return b"".join(parts)
                    else:
                        parts.append(await self._read_backup(sub, q, m))
        except Unreadable:
            if strict or not parts:
                raise
        return b"".join(parts)  # (short when a later piece was unreadable)

    def _overlay_pieces(self, pos: int, size: int) -> list[tuple[int, int, bool]]:
        if self.overlay is None:
            return [(pos, size, False)]
        return self.overlay.pieces(pos, size)

    def _repair_pieces(self, pos: int, size: int) -> list[tuple[int, int, Substitution | None]]:
        if self.repair is None:
            return [(pos, size, None)]
        return self.repair.split(pos, size)

    async def _read_backup(self, sub: Substitution, pos: int, size: int) -> bytes:
        """``size`` bytes of ``sub``'s backup, at the offset of ``pos`` in its primary."""
        assert self.repair is not None
        self.repair.note_served(sub)
        off = pos - sub.primary
        if sub.data is not None:
            return sub.data[off : off + size]
        return await self._pread(sub.backup + off, size)

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a worker thread (the overlay's own limiter)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self.overlay_limiter)

    async def _read_rescued(self, pos: int, size: int, strict: bool = False) -> bytes:
        """The rescued data, rescued on demand first when needed (the policy above)."""
        if not self.live.is_finished(pos, size):
            await self._rescue_now(pos, size)
            if not self.live.is_finished(pos, size):
                if strict or self.unreadable != "zero":
                    good = self.live.first_unfinished(pos, size)
                    if not strict and good is not None and good > pos:
                        # a short read: the good bytes before the first unreadable one, so that
                        # cp, dd conv=noerror and ddrescue reading the mount get every good byte
                        return await self._pread(pos, good - pos)
                    self.view.ondemand_eio += 1
                    raise Unreadable(f"[{pos}, {pos + size}) not rescued")
                return await self._read_zero_filled(pos, size)
        return await self._pread(pos, size)

    # ------------------------------------------------------------------ blocking, for threads
    def rescued_sync(self, pos: int, size: int) -> bytes | None:
        """The rescued bytes of ``[pos, pos+size)``, or None unless all finished (blocking)."""
        if pos < 0 or size <= 0 or pos + size > self.view.image_size:
            return None
        if not self.live.is_finished(pos, size):
            return None
        data = os.pread(self.fd, size, pos + self.offset)
        return data + bytes(size - len(data))

    def served_sync(self, pos: int, size: int) -> bytes | None:
        """The bytes as served (overlay, substitutions, rescued data) if all of them can be had
        without rescuing anything, else None (blocking: for worker threads)."""
        if pos < 0 or size <= 0 or pos + size > self.view.image_size:
            return None
        parts = []
        for p, n, written in self._overlay_pieces(pos, size):
            if written:
                assert self.overlay is not None
                parts.append(self.overlay.read(p, n))
                continue
            for q, m, sub in self._repair_pieces(p, n):
                if sub is not None and sub.data is not None:
                    data: bytes | None = sub.data[q - sub.primary : q - sub.primary + m]
                elif sub is not None:
                    data = self.rescued_sync(sub.backup + q - sub.primary, m)
                else:
                    data = self.rescued_sync(q, m)
                if data is None:
                    return None
                parts.append(data)
        return b"".join(parts)

    # ------------------------------------------------------------------ writes (--overlay)
    async def write(self, pos: int, data: bytes) -> int:
        """Write ``data`` at image position ``pos`` into the overlay; return the bytes taken.

        Raises:
            OSError: EROFS without an overlay.
            Unreadable: a partial sector whose current bytes can't be read (whatever the
                ``--unreadable`` policy: zeros would be stored for good).
        """
        overlay = self.overlay
        if overlay is None:
            raise OSError(errno.EROFS, "read-only mount")
        size = len(data)
        if size == 0:
            return 0
        end = pos + size
        lo = pos - pos % SECTOR
        hi = min(-(-end // SECTOR) * SECTOR, overlay.size)
        async with self._write_lock:
            buf = bytearray(hi - lo)
            if lo < pos:
                head = await self.read(lo, min(SECTOR, hi - lo), strict=True)
                buf[: len(head)] = head
            last = (end - 1) // SECTOR * SECTOR  # the sector holding the last byte
            if end < hi and (last > lo or lo == pos):  # (else the head read covered it)
                rest = await self.read(last, hi - last, strict=True)
                buf[last - lo :] = rest
            buf[pos - lo : end - lo] = data
            await self._in_thread(overlay.write, lo, bytes(buf))
        return size

    async def commit(self) -> None:
        """Make the overlay's writes durable (data fsynced, then the map saved)."""
        if self.overlay is not None and self.overlay.dirty:
            await self._in_thread(self.overlay.commit)

    async def _pread(self, pos: int, size: int) -> bytes:
        data = await trio.to_thread.run_sync(
            os.pread, self.fd, size, pos + self.offset, limiter=self.limiter
        )
        if len(data) < size:  # the output ends before the input: unwritten means zeros
            data += bytes(size - len(data))
        return data

    async def _read_zero_filled(self, pos: int, size: int) -> bytes:
        data = bytearray(await self._pread(pos, size))
        for s, e in self.live.unfinished_ranges(pos, size):
            data[s - pos : e - pos] = bytes(e - s)
        return bytes(data)

    async def rescue_range(self, pos: int, size: int) -> bool:
        """Rescue ``[pos, pos+size)`` ahead of the schedule; True when it is all finished."""
        if not self.live.is_finished(pos, size):
            await self._rescue_now(pos, size)
        return self.live.is_finished(pos, size)

    async def _rescue_now(self, pos: int, size: int) -> None:
        self.view.ondemand_reads += 1
        event = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def wake() -> None:
            try:
                token.run_sync_soon(event.set)
            except trio.RunFinishedError:
                pass

        self.live.request(pos, size, urgent=True, callback=wake)
        with trio.move_on_after(self.timeout) as scope:
            await event.wait()
        if scope.cancelled_caught:
            self.view.ondemand_timeouts += 1

    def read_ahead(self, pos: int, size: int) -> None:
        """Ask the engine for ``[pos, pos+size)`` soon, without waiting (read-ahead priority)."""
        self._read_ahead(pos, size)

    def _read_ahead(self, pos: int, size: int) -> None:
        end = min(pos + size, self.view.image_size)
        if end > pos and not self.live.is_finished(pos, end - pos):
            self.view.readahead_requests += 1
            self.live.request(pos, end - pos, urgent=False)
